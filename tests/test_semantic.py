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


# -- training ---------------------------------------------------------------
from napari_unet.phantom import PHANTOM_CLASSES, annotate_planes, tissue_phantom  # noqa: E402
from napari_unet.settings import SEMANTIC_DEFAULTS  # noqa: E402
from napari_unet.training import train  # noqa: E402
from napari_unet.training.semantic import (  # noqa: E402
    MIN_SPLIT_PLANES,
    annotated_planes,
    class_targets,
    class_weights,
    make_semantic_loss,
)


@pytest.fixture(scope="module")
def phantom():
    image, labels = tissue_phantom((16, 64, 64), seed=1)
    sparse, planes = annotate_planes(labels, 0.2)
    return image, labels, sparse, planes


def test_targets_weights_and_unannotated_planes():
    lab = np.array([[0, 1], [2, 2]])
    np.testing.assert_array_equal(class_targets(lab, 2).argmax(-1), lab)
    np.testing.assert_array_equal(class_targets(lab, 1)[..., 0], lab == 1)
    planes, labels, dropped = annotated_planes([1, 2, 3], [lab, np.zeros((2, 2), int), lab])
    assert planes == [1, 3] and dropped == 1
    w = class_weights([np.array([[0] * 90 + [1] * 9 + [2]])], 2)
    assert w[2] > w[1] > w[0]  # rarer classes weigh more
    with pytest.raises(ValueError, match="class 2"):
        class_weights([lab.clip(0, 1)], 2)


@pytest.mark.parametrize("k", [1, 3])
def test_loss_prefers_the_right_classes(k):
    lab = np.random.default_rng(0).integers(0, k + 1, (2, 8, 8))
    t = np.stack([class_targets(x, k) for x in lab]).astype(np.float32)
    loss = make_semantic_loss(k, np.ones(1 if k == 1 else k + 1))
    right = float(loss(t, 0.9 * t + 0.1 / t.shape[-1]))
    flipped = 1 - t if k == 1 else t[..., ::-1]
    wrong = float(loss(t, 0.9 * flipped + 0.1 / t.shape[-1]))
    assert right < wrong


def test_semantic_training_from_a_few_planes(phantom, tmp_path):
    image, _, sparse, planes = phantom
    events = []
    res = train(image, sparse, task="semantic", classes=list(PHANTOM_CLASSES), base_filters=4,
                depth=2, epochs=2, steps_per_epoch=3, batch_size=2, patch_size=32,
                jit_compile=False, output_path=tmp_path / "sem.keras", progress=events.append)
    info = nu.read_model_info(res.path)
    assert info.task == "semantic" and info.classes == list(PHANTOM_CLASSES)
    assert info.outputs == ["background", *PHANTOM_CLASSES] and info.out_channels == 4
    assert len(info.class_colors) == 3
    assert info.training["n_unannotated_planes"] == 16 - len(planes)
    # Three painted planes all train; the best epoch is the lowest training loss.
    assert len(planes) == 3 < MIN_SPLIT_PLANES
    assert info.training["n_train_planes"] == 3 and info.training["n_val_planes"] == 0
    assert "best by training loss" in info.training["validation"]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert "val_score" not in epochs[-1]
    assert res.best_score == min(e["loss"] for e in epochs)


def test_semantic_validation_planes_and_defaults(tmp_path):
    image, labels = tissue_phantom((16, 64, 64), seed=1)
    sparse, planes = annotate_planes(labels, 0.4)  # enough planes to hold some out
    events = []
    res = train(image, sparse, task="semantic", classes=list(PHANTOM_CLASSES), base_filters=4,
                depth=2, epochs=2, steps_per_epoch=2, jit_compile=False,
                progress=events.append)
    training = res.info.training
    assert len(planes) >= MIN_SPLIT_PLANES and training["n_val_planes"] >= 1
    assert training["n_train_planes"] + training["n_val_planes"] == len(planes)
    epoch = [e for e in events if e["event"] == "epoch"][-1]
    assert {f"val_dice_{c}" for c in PHANTOM_CLASSES} <= set(epoch)
    assert 0 <= epoch["val_score"] <= 1
    # Settings left at train()'s defaults take the semantic from-scratch ones,
    # settings passed explicitly are kept.
    for key in ("batch_size", "patch_size", "learning_rate"):
        assert training[key] == SEMANTIC_DEFAULTS[key]
    assert training["steps_per_epoch"] == 2 and res.info.tile_size == 96


def test_semantic_training_bad_input(phantom):
    image, _, sparse, _ = phantom
    with pytest.raises(ValueError, match="No plane has a label"):
        train(image, np.zeros_like(sparse), task="semantic", epochs=1)
    with pytest.raises(ValueError, match="class ids 0..2"):
        train(image, sparse, task="semantic", classes="a,b", epochs=1)
    with pytest.raises(ValueError, match="task"):
        train(image, sparse, task="panoptic", epochs=1)


# -- export: class names in the manifest --------------------------------------
def test_export_writes_class_names_that_training_reads(tmp_path):
    from napari_unet.export import Region, class_names_from_features, export_pairs
    from napari_unet.training import read_dataset

    features = {"index": [0, 1, 2], "class": ["background", "organ", "vessel"]}
    names = class_names_from_features(features)
    assert names == ["organ", "vessel"]
    assert class_names_from_features({"area": [1, 2], "name": ["a", "b"]}) is None
    with pytest.raises(ValueError, match="label 2"):
        class_names_from_features({"index": [1, 3], "class": ["a", "c"]})
    image = np.random.default_rng(0).random((4, 32, 32), np.float32)
    labels = np.zeros((4, 32, 32), np.uint8)
    labels[1, 4:20, 4:20], labels[1, 22:30, 22:30] = 1, 2
    export_pairs(image, labels, tmp_path, name="stack", regions=[Region((1,))], classes=names)
    assert read_dataset(tmp_path).manifest["classes"] == ["organ", "vessel"]
    with pytest.raises(ValueError, match="holds classes"):
        export_pairs(image, labels, tmp_path, name="stack", regions=[Region((1,))],
                     classes=["x", "y"])
    with pytest.raises(ValueError, match="only 1 classes"):
        export_pairs(image, labels, tmp_path / "b", name="s", classes=["organ"])
    with pytest.raises(ValueError, match="holds class labels"):  # instances among classes
        export_pairs(image, labels, tmp_path, name="instances", regions=[Region((1,))])
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["stack_0000.tif"]


# -- prediction ---------------------------------------------------------------
@pytest.fixture(scope="module")
def class_model():
    model = build_unet(task="semantic", classes=3, base_filters=4, depth=2)
    info = ModelInfo(name="cls", out_channels=4, outputs=["background", "a", "b", "c"],
                     task="semantic", classes=["a", "b", "c"], tile_size=32)
    return model, info


def test_segment_gives_class_labels_through_tiling_and_blocks(class_model):
    from napari_unet.largescale import segment_dask

    model, info = class_model
    image = np.random.default_rng(3).random((2, 40, 72), np.float32)
    labels, probs = nu.segment(image, model, info=info, axes="ZYX", tile_size=32, overlap=8,
                               return_probabilities=True)
    assert labels.dtype == np.uint8 and labels.shape == image.shape
    assert probs.shape == (4, *image.shape)
    np.testing.assert_array_equal(labels, probs.argmax(0))
    assert len(np.unique(labels)) > 1  # a random network still varies
    # Out of core, block by block: the same class labels.
    lazy = segment_dask(image, model, info=info, axes="ZYX", tile_size=32, overlap=8,
                        block_size=(32, 32))
    np.testing.assert_array_equal(np.asarray(lazy), labels)
    with pytest.raises(ValueError, match="class labels"):
        nu.segment(image, model, info=info, axes="ZYX", mode="instance", tile_size=32, overlap=8)


def test_one_class_model_gives_a_mask_by_default():
    model = build_unet(task="semantic", classes=1, base_filters=4, depth=2)
    info = ModelInfo(name="bin", task="semantic", classes=["lesion"], min_size=0)
    image = np.random.default_rng(4).random((32, 48), np.float32)
    labels, probs = nu.segment(image, model, info=info, return_probabilities=True,
                               fill_holes=False)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, probs[0] > 0.5)


# -- command line -------------------------------------------------------------
def test_cli_train_segment_evaluate_semantic(tmp_path, capsys, phantom):
    from napari_unet.cli import main
    from napari_unet.export import Region, export_pairs
    from napari_unet.tiff import read_tiff, write_tiff_atomic

    image, truth, sparse, planes = phantom
    export_pairs(image, sparse, tmp_path / "ds", name="ph",
                 regions=[Region((p,)) for p in planes], classes=list(PHANTOM_CLASSES))

    def cli(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    cli("train", tmp_path / "ds", "-o", tmp_path / "m.keras", "--task", "semantic", "--from",
        "scratch", "--base-filters", "4", "--epochs", "1", "--steps", "2", "--batch-size", "2",
        "--patch-size", "32", "-q")
    info = nu.read_model_info(tmp_path / "m.keras")
    assert info.task == "semantic" and info.classes == list(PHANTOM_CLASSES)
    write_tiff_atomic(tmp_path / "stack.tif", image, axes="ZYX")
    write_tiff_atomic(tmp_path / "truth.tif", truth, axes="ZYX")
    cli("segment", tmp_path / "stack.tif", "-o", tmp_path / "out", "--model",
        tmp_path / "m.keras", "--tile-size", "64", "-q")
    pred = read_tiff(next((tmp_path / "out").iterdir()))[0]
    assert pred.shape == truth.shape and pred.max() <= 3
    out = cli("evaluate", next((tmp_path / "out").iterdir()), tmp_path / "truth.tif",
              "--model", tmp_path / "m.keras")
    lines = out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == [*PHANTOM_CLASSES, "mean"] and "IoU" in lines[0]
    # Bad input: one line, non-zero exit.
    assert main(["train", str(tmp_path / "ds"), "-o", str(tmp_path / "x.keras"),
                 "--classes", "a,b"]) != 0
    assert "--task semantic" in capsys.readouterr().err


def test_class_scores_per_class_and_planes():
    from napari_unet.metrics import class_scores

    gt = np.zeros((3, 4, 4), np.uint8)
    gt[1, :2], gt[1, 2:] = 1, 2
    pred = gt.copy()
    pred[1, 3] = 1  # 4 px of class 2 called class 1
    pred[0, 0, 0] = 2  # an unannotated plane
    s = class_scores(pred, gt, 2, ignore_unlabelled_planes=True)
    assert s["dice"] == pytest.approx([2 * 8 / 20, 2 * 4 / 12])
    assert s["iou"] == pytest.approx([8 / 12, 4 / 8])
    assert s["mean_dice"] == pytest.approx(np.mean(s["dice"]))
    assert class_scores(pred, gt, 2)["dice"][1] < s["dice"][1]


# -- the few-slices workflow, headless ----------------------------------------
def test_few_slices_workflow_paint_export_train_predict_correct_finetune(tmp_path):
    """Paint classes on 3 planes, export them, train from scratch, predict
    every plane, correct one plane, export it too, fine-tune."""
    from napari_unet.export import Region, class_names_from_features, export_pairs
    from napari_unet.training import read_dataset

    image, truth = tissue_phantom((12, 64, 64), n_classes=2, seed=2)
    painted = np.zeros_like(truth)
    planes = [2, 6, 9]
    painted[planes] = truth[planes]  # what the user painted
    features = {"index": [0, 1, 2], "class": ["background", "organ", "vessels"]}
    names = class_names_from_features(features)
    export_pairs(image, painted, tmp_path / "ds", name="stack", classes=names,
                 regions=[Region((p,)) for p in planes])
    ds = read_dataset(tmp_path / "ds")
    fast = dict(epochs=1, steps_per_epoch=2, batch_size=2, patch_size=32, jit_compile=False)
    first = train(ds.images, ds.labels, task="semantic", classes=ds.manifest["classes"],
                  base_filters=4, depth=2, output_path=tmp_path / "first.keras", **fast)
    pred = nu.segment(image, first.path, axes="ZYX", tile_size=32, overlap=8)
    assert pred.shape == truth.shape and pred.dtype == np.uint8 and pred.max() <= 2
    corrected = pred.copy()
    corrected[4] = truth[4]  # the user fixes plane 4
    export_pairs(image, corrected, tmp_path / "ds", name="stack", classes=names,
                 regions=[Region((4,))])
    ds = read_dataset(tmp_path / "ds")
    assert len(ds.images) == 4 and ds.manifest["classes"] == names
    tuned = train(ds.images, ds.labels, model=first.path,
                  output_path=tmp_path / "tuned.keras", **fast)
    info = nu.read_model_info(tuned.path)
    assert info.task == "semantic" and info.classes == names and info.parent == "first"
    with pytest.raises(ValueError, match="semantic model, not instance"):
        train(ds.images, ds.labels, model=first.path, task="instance", **fast)
