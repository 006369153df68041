"""Per-object confidence: low for the objects a user should look at."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet.confidence import FEATURES, object_confidence, object_features


def disk(shape, centre, r):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r


def scene():
    """Three good nuclei, one merge of two touching nuclei, one dim speck."""
    shape = (120, 160)
    labels = np.zeros(shape, np.int32)
    fg = np.zeros(shape, np.float32)
    bnd = np.zeros(shape, np.float32)
    for i, c in enumerate([(20, 20), (20, 60), (20, 100)], start=1):
        m = disk(shape, c, 10)
        labels[m], fg[m] = i, 0.97
    a, b = disk(shape, (80, 40), 10), disk(shape, (80, 58), 10)
    labels[a | b], fg[a | b] = 4, 0.95
    line = (a & b) | (ndi.binary_dilation(a, iterations=1) & b)
    bnd[line] = 0.8  # the network saw the contact, the threshold merged them
    speck = disk(shape, (100, 130), 2)
    labels[speck], fg[speck] = 5, 0.55
    rims = labels != ndi.grey_erosion(labels, size=3)
    bnd = np.maximum(bnd, (rims & (labels > 0)) * 0.9)
    return labels, np.stack([fg, bnd])


def test_errors_score_below_good_objects():
    labels, probs = scene()
    conf = object_confidence(labels, probs, outputs=["foreground", "boundary"])
    assert set(conf) == {1, 2, 3, 4, 5}
    assert all(0 <= v <= 1 for v in conf.values())
    good = min(conf[1], conf[2], conf[3])
    assert conf[4] < good and conf[5] < good
    assert good > 0.5 > max(conf[4], conf[5])


def test_features_see_the_merge():
    labels, probs = scene()
    ids, feats = object_features(labels, probs)
    col = {name: i for i, name in enumerate(FEATURES)}
    row = {int(i): k for k, i in enumerate(ids)}
    assert feats[row[4], col["extra_peaks"]] >= 1 and feats[row[1], col["extra_peaks"]] == 0
    assert feats[row[4], col["solidity"]] < feats[row[1], col["solidity"]]
    assert feats[row[4], col["inner_boundary"]] > feats[row[1], col["inner_boundary"]]
    assert feats[row[5], col["small"]] > 1


def test_foreground_only_stacks_and_bad_shapes():
    labels, probs = scene()
    conf2d = object_confidence(labels, probs[0])  # a single foreground map works too
    assert set(conf2d) == {1, 2, 3, 4, 5}
    stack = np.stack([labels, np.where(labels > 0, labels + 10, 0)])
    conf = object_confidence(stack, np.stack([probs[0]] * 2)[None])
    assert set(conf) == {1, 2, 3, 4, 5, 11, 12, 13, 14, 15}
    assert object_confidence(np.zeros((8, 8), int), np.zeros((8, 8))) == {}
    with pytest.raises(ValueError, match="do not match"):
        object_confidence(labels, probs[:, :10])
