"""The U-Net builder and safe model files."""

import zipfile

import numpy as np
import pytest

import napari_unet as nu
from napari_unet.model_io import METADATA_MEMBER, ModelFileError, ModelInfo


def test_reference_architecture_parameter_count():
    model = nu.build_unet()
    assert model.count_params() == nu.REFERENCE_PARAMS == 31_030_593
    names = [layer.__class__.__name__ for layer in model.layers]
    assert names.count("MaxPooling2D") == 4
    assert names.count("Conv2DTranspose") == 4
    assert names.count("Concatenate") == 4
    assert max(getattr(layer, "filters", 0) for layer in model.layers) == 1024
    assert model.layers[-1].activation.__name__ == "sigmoid"
    assert tuple(model.inputs[0].shape) == (None, None, None, 1)


@pytest.mark.parametrize("base,depth,cin,cout", [(8, 3, 1, 1), (4, 2, 3, 2)])
def test_width_depth_channels_are_parameters(base, depth, cin, cout):
    model = nu.build_unet(in_channels=cin, out_channels=cout, base_filters=base, depth=depth)
    assert model.inputs[0].shape[-1] == cin
    assert model.outputs[0].shape[-1] == cout
    pools = [layer for layer in model.layers if layer.__class__.__name__ == "MaxPooling2D"]
    assert len(pools) == depth


def test_fully_convolutional_on_odd_shapes(tiny_model):
    # Any multiple of 2**depth works in one pass, whatever the aspect ratio.
    for shape in [(1, 4, 12, 1), (2, 36, 8, 1), (1, 100, 52, 1)]:
        out = tiny_model(np.zeros(shape, np.float32))
        assert out.shape == shape
        assert np.all((np.asarray(out) >= 0) & (np.asarray(out) <= 1))


def test_invalid_architecture_arguments():
    with pytest.raises(ValueError, match="depth"):
        nu.build_unet(depth=0)
    with pytest.raises(ValueError, match="base_filters"):
        nu.build_unet(base_filters=2.5)


def test_save_load_round_trip_keeps_weights_and_metadata(tmp_path, tiny_model_2out):
    info = ModelInfo(name="test", out_channels=2, outputs=["foreground", "boundary"],
                     thresholds={"foreground": 0.3, "boundary": 0.6}, min_size=5,
                     training={"epochs": 3})
    path = nu.save_model(tiny_model_2out, tmp_path / "m.keras", info)
    assert METADATA_MEMBER in zipfile.ZipFile(path).namelist()
    model, loaded = nu.load_model(path, with_info=True)
    assert loaded == info
    x = np.random.default_rng(0).random((1, 32, 48, 1), dtype=np.float32)
    np.testing.assert_allclose(model(x), tiny_model_2out(x), atol=1e-6)
    assert nu.read_model_info(path) == info


def test_saved_model_is_readable_by_others(tmp_path, tiny_model):
    import os

    umask = os.umask(0o022)
    try:
        path = nu.save_model(tiny_model, tmp_path / "m.keras")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_save_never_overwrites_by_default(tmp_path, tiny_model):
    path = nu.save_model(tiny_model, tmp_path / "m.keras")
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        nu.save_model(tiny_model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temp files left


def test_model_without_metadata_gets_inferred_info(tmp_path, tiny_model):
    path = tmp_path / "plain.keras"
    tiny_model.save(path)
    model, info = nu.load_model(path, with_info=True)
    assert (info.in_channels, info.out_channels, info.outputs) == (1, 1, ["foreground"])
    assert info.depth == 2 and info.base_filters == 4


def test_missing_truncated_and_foreign_files_raise_one_clear_error(tmp_path, tiny_model):
    with pytest.raises(ModelFileError, match="not found.*nope.keras"):
        nu.load_model(tmp_path / "nope.keras")
    foreign = tmp_path / "foreign.keras"
    foreign.write_text("hello")
    with pytest.raises(ModelFileError, match="foreign.keras"):
        nu.load_model(foreign)
    good = nu.save_model(tiny_model, tmp_path / "good.keras")
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="truncated.keras"):
        nu.load_model(truncated)
    with pytest.raises(ModelFileError, match="folder"):
        nu.load_model(tmp_path)


def test_safe_mode_refuses_lambda_layers(tmp_path):
    import keras

    inputs = keras.Input((None, None, 1))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelFileError, match="lambda.keras"):
        nu.load_model(path)


def test_metadata_channel_mismatch_is_detected(tmp_path, tiny_model):
    path = nu.save_model(tiny_model, tmp_path / "m.keras", ModelInfo(in_channels=3))
    with pytest.raises(ModelFileError, match="channels"):
        nu.load_model(path)


def test_save_never_replaces_a_model_that_appears_while_saving(tmp_path, tiny_model,
                                                               monkeypatch):
    import napari_unet as nu

    target = tmp_path / "m.keras"
    save = type(tiny_model).save

    def save_then_race(self, path, *args, **kwargs):
        save(self, path, *args, **kwargs)
        target.write_bytes(b"someone else's model")

    monkeypatch.setattr(type(tiny_model), "save", save_then_race)
    with pytest.raises(FileExistsError, match="not overwriting"):
        nu.save_model(tiny_model, target)
    assert target.read_bytes() == b"someone else's model"
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temporary file left
