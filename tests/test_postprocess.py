"""Probabilities to labels: thresholds, splitting, sizes, stacks."""

import numpy as np
import pytest
from skimage.draw import disk
from skimage.segmentation import find_boundaries

import napari_unet as nu
from napari_unet.model_io import ModelInfo


def two_touching_discs(shape=(80, 120), r=18):
    gt = np.zeros(shape, np.int32)
    gt[disk((40, 40), r, shape=shape)] = 1
    gt[disk((40, 40 + 2 * r - 4), r, shape=shape)] = 2  # overlapping by 4 px
    return gt


def test_distance_transform_watershed_splits_touching_discs():
    gt = two_touching_discs()
    probs = (gt > 0).astype(np.float32)
    labels = nu.probabilities_to_labels(probs, outputs=["foreground"], min_size=10)
    assert labels.dtype == np.int32
    assert labels.max() == 2
    # Each disc is (nearly) one label.
    for k in (1, 2):
        ids, counts = np.unique(labels[gt == k], return_counts=True)
        assert counts.max() / counts.sum() > 0.95
    no_split = nu.probabilities_to_labels(probs, outputs=["foreground"], split=False)
    assert no_split.max() == 1


def test_boundary_channel_seeds_the_split():
    gt = two_touching_discs()
    fg = (gt > 0).astype(np.float32)
    bnd = find_boundaries(gt, mode="inner").astype(np.float32)
    probs = np.stack([fg, bnd])
    labels = nu.probabilities_to_labels(probs, outputs=["foreground", "boundary"], min_size=10)
    assert labels.max() == 2
    assert (labels > 0).sum() == (gt > 0).sum()  # the watershed re-grows the boundary


def test_semantic_mode_threshold_holes_and_min_size():
    prob = np.zeros((60, 60), np.float32)
    prob[10:40, 10:40] = 0.8
    prob[20:25, 20:25] = 0.1  # a hole
    prob[50:52, 50:52] = 0.9  # a speck of 4 px
    mask = nu.probabilities_to_labels(prob, mode="semantic", threshold=0.5, min_size=10)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert mask[22, 22] == 1 and mask[51, 51] == 0
    with_hole = nu.probabilities_to_labels(prob, mode="semantic", min_size=10, fill_holes=False)
    assert with_hole[22, 22] == 0
    higher = nu.probabilities_to_labels(prob, mode="semantic", threshold=0.85, min_size=1)
    assert higher.sum() == 4


def test_defaults_come_from_model_metadata():
    prob = np.full((30, 30), 0.4, np.float32)
    info = ModelInfo(thresholds={"foreground": 0.3, "boundary": 0.5}, min_size=1)
    assert nu.probabilities_to_labels(prob, info=info).max() == 1
    assert nu.probabilities_to_labels(prob).max() == 0  # default threshold 0.5


def test_instance_ids_are_unique_across_a_stack():
    gt = two_touching_discs()
    stack = np.stack([gt > 0, gt > 0, np.zeros_like(gt, bool), gt > 0]).astype(np.float32)
    labels = nu.probabilities_to_labels(stack[None], axes="TYX", outputs=["foreground"],
                                        min_size=10)
    assert labels.shape == stack.shape
    per_plane = [set(np.unique(p)) - {0} for p in labels]
    assert [len(s) for s in per_plane] == [2, 2, 0, 2]
    all_ids = set().union(*per_plane)
    assert len(all_ids) == 6 and all_ids == set(range(1, 7))


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        nu.probabilities_to_labels(np.zeros((1, 4, 4)), mode="panoptic")
    with pytest.raises(ValueError, match="shape"):
        nu.probabilities_to_labels(np.zeros(5))
    with pytest.raises(ValueError, match="foreground"):
        nu.probabilities_to_labels(np.zeros((1, 4, 4)), outputs=["distance"])


def test_stack_post_processing_can_be_cancelled_between_planes():
    import threading

    from napari_unet import Cancelled, probabilities_to_labels

    probs = np.zeros((1, 3, 32, 32), np.float32)
    probs[0, :, 8:20, 8:20] = 0.9
    assert probabilities_to_labels(probs, axes="TYX", cancel=threading.Event()).max() == 3
    checks = []

    def cancel():  # set once the first plane is done
        checks.append(1)
        return len(checks) > 1

    with pytest.raises(Cancelled):
        probabilities_to_labels(probs, axes="TYX", cancel=cancel)
    assert len(checks) == 2


def test_only_objects_that_can_change_are_refined(monkeypatch):
    """Whole-image passes pick the objects to fill and to split; the result
    equals refining every object one by one."""
    from scipy import ndimage as ndi

    from napari_unet import refine

    rng = np.random.default_rng(0)
    fg = np.zeros((300, 300), np.float32)
    for _ in range(40):  # discs, many touching
        fg[disk(tuple(rng.integers(10, 290, 2)), rng.integers(6, 16), shape=fg.shape)] = 1
    fg[disk((150, 150), 30, shape=fg.shape)] = 1
    fg[disk((150, 150), 8, shape=fg.shape)] = 0  # a hole
    fg[disk((150, 150), 3, shape=fg.shape)] = 1  # an object inside the hole
    fg[0:40, 0:6] = 1
    fg[10:20, 0:3] = 0  # a dent open to the image border: not a hole
    labels = ndi.label(fg > 0.5)[0]
    bnd = find_boundaries(labels, mode="inner").astype(np.float32)
    probs = np.stack([fg * 0.9 + 0.05, bnd * 0.9 + 0.05]) + rng.normal(0, 0.02, (2, 300, 300))
    probs = probs.astype(np.float32)
    info = ModelInfo(outputs=["foreground", "boundary"])
    fast = nu.probabilities_to_labels(probs, info=info, min_size=10)
    n = int(fast.max())
    monkeypatch.setattr(refine, "_objects_next_to_pockets",
                        lambda labels: range(1, int(labels.max()) + 1))
    monkeypatch.setattr(refine, "_objects_with_seeds",
                        lambda labels, *a: range(1, int(labels.max()) + 1))
    every = nu.probabilities_to_labels(probs, info=info, min_size=10)
    np.testing.assert_array_equal(fast, every)
    assert n > 20 and fast[150, 145] > 0  # the hole was filled
    assert fast[15, 1] == 0  # the dent was not
