"""Touching nuclei: separation targets, weight map, copy-paste packing, the
distance output's loss and post-processing (shape prior and merge test)."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk, ellipse

import napari_unet as nu
from napari_unet.training import make_targets
from napari_unet.training.losses import make_loss
from napari_unet.training.sampler import Augmentation, PatchSampler, paste_cluster
from napari_unet.training.targets import normalized_distance, separation_weights

ALL = ("foreground", "boundary", "distance")


def touching_pair(gap=0):
    lab = np.zeros((20, 32), np.int32)
    lab[5:15, 3:14] = 1
    lab[5:15, 14 + gap:25] = 2
    return lab


def test_boundary_target_marks_the_gap_between_instances():
    lab = touching_pair(gap=2)  # two nuclei 2 px apart
    t = make_targets(lab, ALL, boundary_width=2)
    assert t.shape == (20, 32, 3) and t.dtype == np.float32
    assert t[10, 14:16, 1].tolist() == [1, 1]  # background between them: boundary
    assert t[10, 14:16, 0].tolist() == [0, 0]  # ...and not foreground
    assert t[10, 27:, 1].sum() == 0  # background beside a single nucleus: not
    assert t[1, :, 1].sum() == 0


def test_normalized_distance_peaks_once_per_object():
    lab = touching_pair()
    d = normalized_distance(lab)
    assert d[lab == 0].max() == 0
    for i in (1, 2):
        assert d[lab == i].max() == pytest.approx(1.0)
    assert d[10, 13] < 0.3 and d[10, 14] < 0.3  # low where the two touch


def test_separation_weights_are_high_only_between_objects():
    lab = touching_pair(gap=2)
    w = separation_weights(lab, w0=10, sigma=5)
    assert w[lab > 0].max() == 1.0
    between, outside = w[10, 14], w[10, 30]
    assert between > 9  # d1 + d2 = 2 px: 1 + 10 exp(-4 / 50)
    assert outside < 1.1
    assert np.all(separation_weights(lab * (lab == 1), 10, 5) == 1)  # one object: none


def test_weight_map_channel_multiplies_the_loss():
    lab = touching_pair(gap=2)
    t = make_targets(lab, ("foreground", "boundary"))[None]
    w = separation_weights(lab)[None, ..., None]
    pred = np.full(t.shape, 0.5, np.float32)
    plain = float(make_loss(["foreground", "boundary"])(t, pred))
    weighted = float(make_loss(["foreground", "boundary"], separation=True)(
        np.concatenate([t, w], -1), pred))
    assert weighted > plain * 1.01
    dist = make_loss(ALL)
    t3 = make_targets(lab, ALL)[None]
    good = float(dist(t3, np.clip(t3, 0.05, 0.95)))
    assert good < float(dist(t3, np.full(t3.shape, 0.5, np.float32)))


def test_paste_cluster_packs_touching_nuclei():
    rng = np.random.default_rng(0)
    image = np.zeros((96, 96, 1), np.float32)
    labels = np.zeros((96, 96), np.int32)
    labels[disk((48, 48), 8)] = 1
    mask = np.zeros((17, 17), bool)
    mask[disk((8, 8), 8)] = True
    bank = [(np.full((17, 17, 1), 0.8, np.float32), mask)]
    paste_cluster(image, labels, bank, rng, n_range=(4, 4))
    assert labels.max() >= 3  # a paste hiding too much of a neighbour is skipped
    assert np.all(image[labels > 1, 0] == pytest.approx(0.8))
    # Every pasted nucleus touches another one.
    for i in range(2, labels.max() + 1):
        ring = ndi.binary_dilation(labels == i, iterations=2) & (labels != i) & (labels > 0)
        assert ring.any()


def test_sampler_appends_the_weight_map_and_pastes():
    lab = np.zeros((64, 64), np.int32)
    for k, (y, x) in enumerate([(15, 15), (15, 45), (45, 15), (45, 45)], start=1):
        lab[disk((y, x), 7)] = k
    img = ((lab > 0) * 500.0 + 100)[..., None].astype(np.float32)
    sampler = PatchSampler([img], [lab], 32, ALL, augment=Augmentation(paste_probability=1.0),
                           separation=(10.0, 5.0))
    assert len(sampler.bank) == 4
    x, y = sampler.batch(4, np.random.default_rng(1))
    assert x.shape == (4, 32, 32, 1) and y.shape == (4, 32, 32, 4)
    assert y[..., 3].min() >= 1 and y[..., 3].max() > 2  # weights, touching pasted nuclei


def test_distance_output_splits_touching_nuclei_but_not_an_elongated_one():
    gt = np.zeros((80, 140), np.int32)
    gt[disk((40, 30), 16)] = 1
    gt[disk((40, 58), 16)] = 2  # touching the first
    gt[ellipse(40, 110, 12, 26)] = 3  # one elongated nucleus
    d = normalized_distance(gt)
    probs = np.stack([(gt > 0).astype(np.float32), np.zeros(gt.shape, np.float32), d])
    labels = nu.probabilities_to_labels(probs, outputs=list(ALL))
    scores = nu.evaluate(labels, gt)
    assert scores["f1"] == 1.0 and scores["merges"] == 0 and scores["splits"] == 0


def test_shape_prior_splits_a_pair_the_network_left_whole():
    gt = np.zeros((80, 120), np.int32)
    gt[disk((40, 40), 18)] = 1
    gt[disk((40, 72), 18)] = 2
    # The network saw one object: a single core, no boundary between them.
    single = normalized_distance((gt > 0).astype(np.int32))
    probs = np.stack([(gt > 0).astype(np.float32), np.zeros(gt.shape, np.float32), single])
    split = nu.probabilities_to_labels(probs, outputs=list(ALL))
    assert nu.evaluate(split, gt)["f1"] == 1.0
    # merge_ratio 0.3: the neck is not deep enough, the pair stays one object.
    kept = nu.probabilities_to_labels(probs, outputs=list(ALL), merge_ratio=0.3)
    assert kept.max() == 1
    with pytest.raises(ValueError, match="merge_ratio"):
        nu.probabilities_to_labels(probs, outputs=list(ALL), merge_ratio=0)


def test_shape_prior_shortcut_never_skips_an_object_with_two_h_maxima():
    """``_one_peak`` lets the splitter skip h-maxima; it must be exact: on
    random blobs, pairs and chains (many with spurious EDT plateaus), every
    object it skips has at most one h-maxima marker, and it skips most."""
    from skimage.morphology import h_maxima

    from napari_unet.splitting import _components, _one_peak

    rng = np.random.default_rng(0)
    skipped = checked = 0
    for _ in range(300):
        mask = np.zeros((72, 72), bool)
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(20, 52, 2)
            mask[ellipse(cy, cx, rng.uniform(5, 16), rng.uniform(5, 16), mask.shape,
                         rotation=rng.uniform(0, np.pi))] = True
        mask = ndi.binary_opening(mask) if rng.random() < 0.5 else mask
        labels, n = ndi.label(mask)
        for i in range(1, n + 1):
            obj = np.pad(labels == i, 1)
            edt = ndi.distance_transform_edt(obj)
            for h in (1.0, 2.0, 3.0):
                markers = _components(h_maxima(edt, h).astype(bool) & obj, 1).max()
                checked += 1
                if _one_peak(edt, obj, h):
                    skipped += 1
                    assert markers <= 1
    assert skipped > 0.5 * checked
