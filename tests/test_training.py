"""Training core: learning, saving, cancellation, fine-tuning, input checks.

Tiny models (base 4, depth 2) on 32 px patches of small synthetic images keep
the whole file fast on 2 CPU cores.
"""

import threading

import numpy as np
import pytest

from napari_unet import load_model, read_model_info, train
from napari_unet.training import make_targets, read_dataset, split_components

FAST = dict(base_filters=4, depth=2, patch_size=32, batch_size=4, learning_rate=1e-2,
            augment=False, jit_compile=False)


def synthetic(seed, size=64, n=6):
    """Bright noisy disks on a dark background, with their instance labels."""
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    lab = np.zeros((size, size), np.int32)
    for i in range(1, n + 1):
        r = int(rng.integers(4, 7))
        lab[disk(tuple(rng.integers(r, size - r, 2)), r, shape=lab.shape)] = i
    img = (lab > 0) * 600.0 + rng.normal(100, 30, lab.shape)
    return img.astype(np.uint16), lab


@pytest.fixture(scope="module")
def pairs():
    return [synthetic(s) for s in range(3)]


def test_training_learns_and_saves_model_with_metadata(pairs, tmp_path):
    images, labels = zip(*pairs, strict=True)
    events = []
    path = tmp_path / "m.keras"
    res = train(list(images), list(labels), epochs=3, steps_per_epoch=8, output_path=path,
                data_description="synthetic disks", progress=events.append, **FAST)
    steps = [e for e in events if e["event"] == "step"]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert len(steps) == 24 and len(epochs) == 3
    assert epochs[-1]["loss"] < steps[0]["loss"]
    assert res.stopped == "completed" and res.path == path and res.best_epoch is not None
    assert 0 <= res.best_score <= 1 and "val_score" in res.history[0]

    model, info = load_model(path, with_info=True)
    assert info.outputs == ["foreground", "boundary"] and info.out_channels == 2
    assert (info.base_filters, info.depth, info.tile_size) == (4, 2, 32)
    assert info.normalization == {"method": "percentile", "low": 1.0, "high": 99.8}
    assert info.training["data"] == "synthetic disks"
    assert info.training["epochs"] == 3 and info.training["best_epoch"] == res.best_epoch
    assert info.training["n_val_planes"] == 1  # 15 % of 3 planes, at least one
    # The saved file holds the best weights, the same as the returned model.
    x = np.random.default_rng(0).random((1, 32, 32, 1), dtype=np.float32)
    np.testing.assert_allclose(model(x), res.model(x), atol=1e-6)


def test_cancel_keeps_existing_file_byte_identical(pairs, tmp_path):
    path = tmp_path / "existing.keras"
    path.write_bytes(b"precious model bytes")
    stop = threading.Event()

    def progress(event):
        if event["event"] == "step" and event["step"] == 2:
            stop.set()

    images, labels = zip(*pairs, strict=True)
    res = train(list(images), list(labels), epochs=2, steps_per_epoch=50, output_path=path,
                overwrite=True, progress=progress, cancel=stop, **FAST)
    assert res.stopped == "cancelled" and res.cancelled
    assert res.path is None and res.history == [] and res.best_score is None
    assert path.read_bytes() == b"precious model bytes"
    with pytest.raises(FileExistsError):
        train(list(images), list(labels), epochs=1, steps_per_epoch=1, output_path=path,
              **FAST)


def test_cancel_after_an_epoch_keeps_best_so_far(pairs, tmp_path):
    path = tmp_path / "m.keras"
    calls = []

    def cancel():  # callable token: cancel in the second epoch
        calls.append(1)
        return len(calls) > 4

    images, labels = zip(*pairs, strict=True)
    res = train(list(images), list(labels), epochs=3, steps_per_epoch=3, output_path=path,
                cancel=cancel, **FAST)
    assert res.cancelled and len(res.history) == 1 and res.path == path
    assert read_model_info(path).training["epochs"] == 1


def test_time_limit_and_single_image_split(pairs):
    image, labels = pairs[0]
    res = train(image, labels, epochs=5, steps_per_epoch=20, time_limit=0, **FAST)
    assert res.stopped == "time_limit" and len(res.history) == 1
    assert res.info.training["validation"] == "held-out strip of the image"


def test_finetune_single_output_model(tiny_model, pairs):
    before = [w.copy() for w in tiny_model.get_weights()]
    images, labels = zip(*pairs, strict=True)
    res = train(list(images), list(labels), model=tiny_model, epochs=1, steps_per_epoch=3,
                val_fraction=0, patch_size=32, batch_size=4, augment=True, jit_compile=False)
    assert res.info.outputs == ["foreground"] and res.info.out_channels == 1
    assert res.info.parent == tiny_model.name and res.info.depth == 2
    assert res.model is not tiny_model
    assert res.best_score == pytest.approx(res.history[0]["loss"])  # no validation
    for a, b in zip(before, tiny_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the model passed in is untouched
    with pytest.raises(ValueError, match="outputs"):
        train(list(images), list(labels), model=tiny_model, outputs=("foreground", "boundary"),
              epochs=1, steps_per_epoch=1)


@pytest.mark.parametrize(
    ("images", "labels", "kwargs", "match"),
    [
        ([], [], {}, "No training images"),
        ([np.zeros((40, 40))], [np.zeros((40, 41), int)], {}, "shape"),
        ([np.zeros((40, 40))], [np.zeros((40, 40))], {}, "integers"),
        ([np.zeros((40, 40))] * 2, [np.zeros((40, 40), int)], {}, "label images"),
        ([np.zeros((40, 40))], [np.zeros((40, 40), int)], {"patch_size": 30}, "multiple"),
        ([np.zeros((40, 40))], [np.zeros((40, 40), int)], {"epochs": 0}, "epochs"),
        ([np.zeros((40, 40))], [np.zeros((40, 40), int)], {"outputs": ["cells"]}, "outputs"),
    ],
)
def test_bad_input_raises_value_error(images, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train(images, labels, **{**FAST, "depth": 2, **kwargs})


def test_boundary_target_separates_touching_nuclei():
    from scipy import ndimage as ndi

    lab = np.zeros((20, 30), np.int32)
    lab[5:15, 3:15], lab[5:15, 15:27] = 1, 2  # two touching rectangles
    t = make_targets(lab)
    assert t.shape == (20, 30, 2) and t.dtype == np.float32
    assert t[..., 0].sum() == np.count_nonzero(lab)
    seeds = (t[..., 0] == 1) & (t[..., 1] == 0)
    assert ndi.label(seeds)[1] == 2
    assert t[10, 13:17, 1].tolist() == [1, 1, 1, 1]  # 2 px rim on each side


def test_split_components_and_read_dataset(tmp_path):
    import json

    import tifffile

    lab = np.zeros((30, 30), np.uint8)
    lab[2:8, 2:8] = 5
    lab[20:26, 20:26] = 5  # one id, two nuclei
    lab[0, 29] = 5  # a stray pixel
    out = split_components(lab, min_size=2)
    assert out.max() == 2 and out[0, 29] == 0

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / "images" / f"{name}.tif", np.zeros((30, 30), np.uint16))
    tifffile.imwrite(tmp_path / "images" / "c.tif", np.zeros((30, 30), np.uint16))
    tifffile.imwrite(tmp_path / "masks" / "a.tif", lab)
    tifffile.imwrite(tmp_path / "masks" / "b.tif", lab)
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "toy"}))
    ds = read_dataset(tmp_path)
    assert ds.names == ["a", "b"] and ds.skipped == ["c.tif"] and ds.manifest == {"name": "toy"}
    tifffile.imwrite(tmp_path / "masks" / "b.tif", lab[:-1])
    with pytest.raises(ValueError, match="b: "):
        read_dataset(tmp_path)
    with pytest.raises(ValueError, match="no 'images'"):
        read_dataset(tmp_path / "masks")


def test_unknown_preset_is_refused(pairs):
    images, labels = zip(*pairs, strict=True)
    with pytest.raises(ValueError, match="Unknown training preset 'slow'"):
        train(list(images), list(labels), preset="slow", **FAST)


def test_early_stopping_waits_for_patience_after():
    from napari_unet.training.monitor import TrainingMonitor

    class Net:
        stop_training = False

        def get_weights(self):
            return []

    def stopped(after):
        monitor = TrainingMonitor(
            net=Net(), export=None, val=None, loss_fn=None, outputs=["foreground"], epochs=10,
            steps=1, learning_rate=1e-3, patience=1, time_limit=None, cancel=None,
            progress=None, output_path=None, overwrite=False, make_info=None,
            patience_after=after)
        for epoch, loss in enumerate([1.0, 2.0]):  # the second epoch does not improve
            monitor.steps_done = epoch + 1
            monitor.on_epoch_end(epoch, {"loss": loss})
        return monitor.stopped

    assert stopped(0.0) == "early_stopping"
    assert stopped(0.5) == "completed"  # 2 of 10 planned steps: too early to stop


def test_given_values_beat_the_preset_even_when_equal_to_the_defaults(pairs):
    """The preset fills only what was not given: an explicit ``time_limit=None``
    (no limit) and ``patience=8`` (train's own default) are kept."""
    images, labels = zip(*pairs, strict=True)
    result = train(list(images), list(labels), preset="quick", epochs=2, steps_per_epoch=1,
                   time_limit=None, patience=8, **FAST)
    training = result.info.training
    assert training["max_epochs"] == 2 and training["steps_per_epoch"] == 1
    assert training["time_limit"] is None and training["preset"] == "quick"
    # Not given: the preset's values.
    plain = train(list(images), list(labels), preset="quick", epochs=1, steps_per_epoch=1,
                  **FAST)
    assert plain.info.training["time_limit"] == 140.0
