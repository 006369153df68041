"""Semantic segmentation with classes: model, training, prediction, evaluation."""

import json
import zipfile

import numpy as np
import pytest

import napari_unet as nu
from napari_unet.model import REFERENCE_PARAMS, build_unet
from napari_unet.model_io import METADATA_MEMBER, ModelInfo


def test_seed_binary_configuration_is_the_reference_unet():
    model = build_unet(task="semantic", classes=1, base_filters=64)
    assert model.count_params() == REFERENCE_PARAMS == 31_030_593
    assert model.layers[-1].activation.__name__ == "sigmoid"
    assert model.outputs[0].shape[-1] == 1


def test_several_classes_give_a_softmax_over_background_and_classes():
    model = build_unet(task="semantic", classes=3, base_filters=4, depth=2)
    assert model.layers[-1].activation.__name__ == "softmax"
    out = np.asarray(model(np.random.default_rng(0).random((1, 16, 16, 1), np.float32)))
    assert out.shape == (1, 16, 16, 4)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="task"):
        build_unet(task="panoptic")
    with pytest.raises(ValueError, match="classes"):
        build_unet(task="semantic", base_filters=4)
    with pytest.raises(ValueError, match="classes"):
        build_unet(classes=2, base_filters=4)


def test_model_info_keeps_task_classes_and_colours(tmp_path):
    model = build_unet(task="semantic", classes=2, base_filters=4, depth=2)
    info = ModelInfo(name="tissue", out_channels=3, outputs=["background", "a", "b"],
                     task="semantic", classes=["a", "b"], class_colors=["#ff0000", "#00ff00"])
    path = nu.save_model(model, tmp_path / "m.keras", info)
    loaded_model, loaded = nu.load_model(path, with_info=True)
    assert loaded == info and loaded.is_semantic
    assert loaded.label_colors() == {0: "transparent", 1: "#ff0000", 2: "#00ff00"}


def test_files_without_task_read_as_instance_models(tmp_path, tiny_model):
    path = nu.save_model(tiny_model, tmp_path / "old.keras", ModelInfo(name="old"))
    # Rewrite the metadata as an older version wrote it: no task/classes keys.
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(members[METADATA_MEMBER])
    for key in ("task", "classes", "class_colors"):
        meta.pop(key)
    members[METADATA_MEMBER] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    info = nu.read_model_info(path)
    assert info.task == "instance" and info.classes == [] and not info.is_semantic
