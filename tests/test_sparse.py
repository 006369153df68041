"""Sparse annotation: only reviewed and corrected regions count for training."""

import json

import numpy as np
import pytest
import tifffile
from test_training import FAST, synthetic

from napari_unet import predict_probabilities, train
from napari_unet.counted import counted_mask, reviewed_ids_from_features
from napari_unet.export import Region, export_pairs
from napari_unet.training import read_dataset
from napari_unet.training.losses import make_loss
from napari_unet.training.sampler import PatchSampler, grid_patches


def test_counted_mask_grows_reviewed_objects_and_edits():
    labels = np.zeros((40, 40), np.int32)
    labels[5:10, 5:10], labels[25:30, 25:30] = 1, 2
    edited = np.zeros_like(labels, bool)
    edited[0:4, 30:34] = True
    mask = counted_mask(labels, [2], edited, margin=2)
    assert mask[25:30, 25:30].all() and mask[23, 27] and mask[31, 27]  # border counts
    assert not mask[20, 27] and not mask[5:10, 5:10].any()  # unreviewed object 1
    assert mask[0:4, 30:34].all() and mask[5, 31] and not mask[8, 31]
    assert not counted_mask(labels, [], None).any()
    with pytest.raises(ValueError, match="does not match"):
        counted_mask(labels, [1], edited[:10])
    # A stack grows in Y, X only.
    stack = counted_mask(np.stack([labels, 0 * labels]), [1], margin=1)
    assert stack[0].any() and not stack[1].any()


def test_reviewed_ids_from_features():
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame({"index": [1, 2, 3], "confidence": [0.1, 0.9, 0.5],
                          "reviewed": [True, False, True]})
    assert reviewed_ids_from_features(table) == [1, 3]
    assert reviewed_ids_from_features({"index": [4], "reviewed": [True]}) == [4]
    assert reviewed_ids_from_features(pd.DataFrame({"index": [1]})) == []
    assert reviewed_ids_from_features(None) == []


def test_export_writes_counted_masks_and_training_reads_them(tmp_path, rng):
    image = rng.integers(0, 4000, (2, 40, 50), dtype=np.uint16)
    labels = np.zeros((2, 40, 50), np.int32)
    labels[:, 5:15, 5:15] = 1
    counted = np.zeros(labels.shape, bool)
    counted[0, :20, :20] = True  # plane 1 has nothing counted: skipped
    entries = export_pairs(image, labels, tmp_path, name="s", counted=counted,
                           regions=[Region((0,), (0, 30, 0, 30)), Region((1,))])
    assert len(entries) == 1 and entries[0]["counted"] == "counted/s_0000.tif"
    assert entries[0]["counted_fraction"] == round(400 / 900, 4)
    manifest = json.loads((tmp_path / "dataset.json").read_text())
    assert manifest["pairs"][0]["counted"] == "counted/s_0000.tif"
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "counted" / "s_0000.tif") > 0,
                                  counted[0, :30, :30])
    ds = read_dataset(tmp_path)
    assert ds.sparse and ds.counted[0].dtype == bool
    np.testing.assert_array_equal(ds.counted[0], counted[0, :30, :30])
    # Whole-image export stays the default: no counted masks.
    export_pairs(image[0], labels[0], tmp_path / "whole", name="w")
    assert not (tmp_path / "whole" / "counted").exists()
    assert not read_dataset(tmp_path / "whole").sparse
    with pytest.raises(ValueError, match="counted mask"):
        export_pairs(image, labels, tmp_path, name="s", counted=counted[0])


def test_loss_ignores_pixels_that_do_not_count():
    loss = make_loss(("foreground", "boundary"))
    rng = np.random.default_rng(0)
    pred = rng.random((2, 16, 16, 2)).astype(np.float32)
    target = (rng.random((2, 16, 16, 2)) > 0.5).astype(np.float32)
    weight = np.zeros((2, 16, 16, 1), np.float32)
    weight[:, :8] = 1
    other = target.copy()
    other[:, 8:] = 1 - other[:, 8:]  # different labels where nothing counts
    a = float(loss(np.concatenate([target, weight], -1), pred))
    b = float(loss(np.concatenate([other, weight], -1), pred))
    assert a == pytest.approx(b)
    assert float(loss(target, pred)) != pytest.approx(float(loss(other, pred)))
    # All weights 1: the plain loss.
    ones = np.concatenate([target, np.ones_like(weight)], -1)
    assert float(loss(ones, pred)) == pytest.approx(float(loss(target, pred)), rel=1e-5)


def test_sampler_centres_patches_on_counted_pixels():
    img, lab = synthetic(0, size=128, n=12)
    counted = np.zeros(lab.shape, bool)
    counted[100:110, 100:110] = True
    sampler = PatchSampler([img[..., None]], [lab], 32, counted=[counted])
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, y = sampler.sample(rng)
        assert y.shape == (32, 32, 3) and y[..., 2].any()  # every patch holds counted pixels
    x, y = grid_patches([img[..., None]], [lab], 32, counted=[counted])
    assert len(x) == 1 and y.shape[-1] == 3  # only the window holding the counted square


def test_training_ignores_wrong_labels_outside_the_counted_region():
    """The right half is labelled inverted (nuclei as background and back):
    trained on everything the network learns the errors; with only the
    reviewed left half counting it segments unseen images well."""
    img, lab = synthetic(0, size=128, n=16)
    wrong = lab.copy()
    unreviewed = np.zeros(lab.shape, bool)
    unreviewed[:, 64:] = True
    wrong[unreviewed] = np.where(lab[unreviewed] > 0, 0, 99)
    test_img, test_lab = synthetic(5, size=128, n=16)
    truth = test_lab > 0

    def dice(counted):
        res = train([img], [wrong], counted=counted, epochs=4, steps_per_epoch=25,
                    val_fraction=0, seed=0, **FAST)
        fg = predict_probabilities(test_img, res.model)[0] > 0.5
        return 2 * (fg & truth).sum() / (fg.sum() + truth.sum())

    sparse, dense = dice([~unreviewed]), dice(None)
    assert sparse > 0.9
    assert dense < sparse - 0.3
