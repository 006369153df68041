"""Per-object confidence: low for the objects a user should look at."""

from pathlib import Path

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
    # Ranks, not absolute values: the fitted weights are calibrated to the
    # shipped model's error rate (a few %), so even a merge may score high.
    assert conf[4] < good and conf[5] < good
    assert good > 0.5 > conf[5]


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


def _fit_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "fit_confidence.py"
    spec = importlib.util.spec_from_file_location("fit_confidence", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_script_recovers_weights_and_rewrites_only_the_weights(tmp_path):
    import importlib.util

    from napari_unet import confidence

    fit = _fit_script()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    true_w = np.array([0.5, 2.0, -1.0])
    y = rng.random(4000) < 1 / (1 + np.exp(-(true_w[0] + x @ true_w[1:])))
    np.testing.assert_allclose(fit.fit_logistic(x, y, l2=0), true_w, atol=0.2)

    copy = tmp_path / "confidence.py"
    copy.write_text(Path(confidence.__file__).read_text())
    weights = np.arange(len(confidence.FEATURES) + 1) / 10
    fit.write_weights(weights, "Logistic weights, fitted by\n``a command``", copy)
    spec = importlib.util.spec_from_file_location("conf_copy", copy)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    np.testing.assert_allclose(module.WEIGHTS, weights)
    assert module.FEATURES == confidence.FEATURES
    assert "#: ``a command``" in copy.read_text()
    fit.write_weights(weights[::-1], "Logistic weights again", copy)  # re-runnable
    spec.loader.exec_module(module)
    np.testing.assert_allclose(module.WEIGHTS, weights[::-1])


def test_max_by_label_equals_scipy():
    """The vectorized per-object maximum is ndi.maximum, for sparse, large
    ids and ids with no pixel (-inf there; the caller masks them)."""
    from scipy import ndimage as ndi

    from napari_unet.confidence import _max_by_label

    rng = np.random.default_rng(1)
    labels = rng.choice(np.array([0, 3, 7, 70_000, 2**31 - 5]), size=(64, 64))
    values = rng.random((64, 64)).astype(np.float32)
    ids = np.array([3, 7, 9, 70_000, 2**31 - 5])  # 9 has no pixel
    got = _max_by_label(values, labels, ids)
    want = np.asarray(ndi.maximum(values, labels, ids), float)
    present = ids != 9
    np.testing.assert_array_equal(got[present], want[present])
    assert got[~present] == -np.inf
