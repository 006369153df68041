"""Dice and instance matching on hand-made label images with known answers."""

import numpy as np
import pytest

from napari_unet.metrics import dice, evaluate, match_instances


def squares(ids=(1, 2, 3), size=40):
    """Three separate 8x8 squares with the given ids."""
    lab = np.zeros((size, size), np.int32)
    for k, i in enumerate(ids):
        lab[2 + 12 * k:10 + 12 * k, 5:13] = i
    return lab


def test_dice_known_values():
    gt = np.zeros((10, 10), int)
    gt[:, :4] = 1  # 40 px
    pred = np.zeros((10, 10), int)
    pred[:, 2:6] = 7  # 40 px, 20 overlap
    assert dice(pred, gt) == pytest.approx(0.5)
    assert dice(gt, gt) == 1.0
    assert dice(np.zeros((3, 3), int), np.zeros((3, 3), int)) == 1.0
    assert dice(np.zeros((3, 3), int), np.ones((3, 3), int)) == 0.0


def test_perfect_match_with_permuted_ids():
    gt = squares((1, 2, 3))
    pred = squares((42, 7, 1000))
    m = match_instances(pred, gt)
    assert (m.tp, m.fp, m.fn) == (3, 0, 0)
    assert m.f1 == m.precision == m.recall == 1.0
    assert m.mean_matched_iou == 1.0


def test_missed_and_extra_objects():
    gt = squares((1, 2, 3))
    pred = squares((1, 2, 0))  # third nucleus missed
    pred[30:36, 25:31] = 9  # and a false positive
    m = match_instances(pred, gt)
    assert (m.tp, m.fp, m.fn, m.n_pred, m.n_true) == (2, 1, 1, 3, 3)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)


def test_iou_threshold():
    gt = np.zeros((1, 20), int)
    gt[0, 0:10] = 1
    pred = np.zeros((1, 20), int)
    pred[0, 5:15] = 1  # IoU = 5 / 15
    assert match_instances(pred, gt, 0.5).tp == 0
    m = match_instances(pred, gt, 0.3)
    assert m.tp == 1 and m.mean_matched_iou == pytest.approx(1 / 3)


def test_hungarian_beats_greedy():
    # IoU(X,A)=6/14, IoU(X,B)=4/10, IoU(Y,A)=4/10: greedy takes X-A and
    # matches once; the optimal assignment X-B, Y-A matches twice.
    gt = np.zeros((1, 20), int)
    gt[0, 0:10], gt[0, 10:14] = 1, 2
    pred = np.zeros((1, 20), int)
    pred[0, 0:4], pred[0, 4:14] = 5, 6
    m = match_instances(pred, gt, 0.3)
    assert m.tp == 2
    assert m.mean_matched_iou == pytest.approx(0.4)


def test_empty_images():
    empty, gt = np.zeros((40, 40), int), squares()
    both = match_instances(empty, empty)
    assert (both.f1, both.precision, both.recall) == (1.0, 1.0, 1.0)
    m = match_instances(empty, gt)
    assert (m.tp, m.fp, m.fn, m.f1, m.precision, m.recall) == (0, 0, 3, 0.0, 0.0, 0.0)
    m = match_instances(gt, empty)
    assert (m.fp, m.f1) == (3, 0.0)


def test_stacks_per_plane_and_whole_stack_ids():
    gt = np.stack([squares((1, 2, 3)), squares((1, 2, 0))])  # ids repeat per plane
    unique = gt.copy()
    unique[1][unique[1] > 0] += 3  # same objects, ids unique over the stack
    assert match_instances(gt, unique).f1 == 1.0
    m = match_instances(gt, gt)
    assert (m.tp, m.n_true) == (5, 5)
    # As 3D objects, ids 1 and 2 span both planes: 3 objects.
    assert match_instances(gt, gt, per_plane=False).n_true == 3


def test_lists_are_pooled():
    a, b = squares((1, 2, 3)), squares((1, 0, 0))
    m = match_instances([a, b], [a, squares((1, 2, 0))])
    assert (m.tp, m.fp, m.fn) == (4, 0, 1)


def test_matches_brute_force_on_random_blobs():
    from scipy import ndimage as ndi
    from scipy.optimize import linear_sum_assignment

    def blobs(seed):
        r = np.random.default_rng(seed)
        return ndi.label(ndi.gaussian_filter(r.random((64, 64)), 2) > 0.52)[0]

    gt, pred = blobs(1), blobs(2)
    for thr in (0.1, 0.5):
        iou = np.zeros((gt.max(), pred.max()))
        for i in range(1, gt.max() + 1):
            for j in range(1, pred.max() + 1):
                inter = np.sum((gt == i) & (pred == j))
                iou[i - 1, j - 1] = inter / np.sum((gt == i) | (pred == j))
        score = np.where(iou >= thr, iou, 0)
        r, c = linear_sum_assignment(score, maximize=True)
        expected = int(np.sum(score[r, c] > 0))
        assert match_instances(pred, gt, thr).tp == expected


def test_evaluate_dict_and_bad_input():
    gt = squares()
    res = evaluate(gt, gt)
    assert res["dice"] == 1.0 and res["f1"] == 1.0 and res["tp"] == 3
    assert {"precision", "recall", "mean_matched_iou", "fp", "fn"} <= set(res)
    with pytest.raises(ValueError, match="Shape"):
        evaluate(gt, gt[:-1])
    with pytest.raises(ValueError, match="integer"):
        evaluate(gt + 0.5, gt)
    with pytest.raises(ValueError):
        match_instances(gt, gt, iou_threshold=0)


def test_otsu_baseline_on_synthetic_nuclei():
    from skimage.draw import disk

    from napari_unet.baseline import otsu_watershed

    gt = np.zeros((96, 96), np.int32)
    for i, c in enumerate([(20, 20), (20, 60), (60, 30), (70, 75)], start=1):
        gt[disk(c, 9, shape=gt.shape)] = i
    image = (gt > 0) * 200.0 + np.random.default_rng(0).normal(50, 5, gt.shape)
    labels = otsu_watershed(image.astype(np.float32))
    assert evaluate(labels, gt)["f1"] == 1.0
    stack = otsu_watershed(np.stack([image, image]))
    assert stack.shape == (2, 96, 96) and stack.max() == 8


def test_merges_and_splits_are_counted():
    gt = np.zeros((40, 60), np.int32)
    gt[5:15, 5:15], gt[5:15, 15:25] = 1, 2  # a touching pair...
    gt[25:35, 5:25] = 3  # ...and one long nucleus
    gt[25:35, 40:50] = 4
    pred = np.zeros_like(gt)
    pred[5:15, 5:25] = 1  # the pair merged into one object
    pred[25:35, 5:15], pred[25:35, 15:25] = 2, 3  # the long one split in two
    pred[25:35, 40:50] = 4  # right
    pred[26:28, 30:32] = 5  # a false positive is neither
    scores = evaluate(pred, gt)
    assert (scores["merges"], scores["splits"]) == (1, 1)
    assert scores["tp"] == 3 and scores["n_pred"] == 5  # halves reach IoU 0.5 exactly
    # A prediction holding only a sliver of a second nucleus is no merge.
    pred2 = gt.copy()
    pred2[5:15, 15:18] = 1
    assert evaluate(pred2, gt)["merges"] == 0


def test_mean_f1_over_iou_thresholds():
    gt = np.zeros((1, 100), int)
    gt[0, 0:20] = 1
    gt[0, 50:70] = 2
    pred = np.zeros_like(gt)
    pred[0, 0:20] = 1  # IoU 1
    pred[0, 50:64] = 2  # IoU 0.7: a match up to the 0.7 threshold only
    scores = evaluate(pred, gt)
    # thresholds 0.5..0.7 (5): F1 1; 0.75..0.9 (4): F1 0.5.
    assert scores["mean_f1"] == pytest.approx((5 * 1.0 + 4 * 0.5) / 9)
    assert scores["f1"] == 1.0
    assert match_instances(pred, gt, 0.75).f1 == 0.5


def test_best_overlap_tells_matched_objects():
    from napari_unet.metrics import best_overlap

    gt = np.zeros((20, 20), int)
    gt[0:10, 0:10], gt[0:10, 10:20], gt[12:18, 0:6] = 1, 2, 3
    pred = np.zeros_like(gt)
    pred[0:10, 0:20] = 5     # merge of 1 and 2: IoU 0.5 with each? 100/200
    pred[12:18, 0:3] = 7     # half of 3: IoU 0.5
    pred[12:18, 3:5] = 8     # a third of 3
    pred[19, 19] = 9         # false positive
    ids, iou, partner = best_overlap(pred, gt)
    assert ids.tolist() == [5, 7, 8, 9]
    np.testing.assert_allclose(iou, [0.5, 0.5, 12 / 36, 0.0])
    assert partner[1:].tolist() == [3, 3, 0] and partner[0] in (1, 2)
    # Agrees with the one-to-one matching at 0.5.
    pred[0:10, 10:20] = 6
    ids, iou, _ = best_overlap(pred, gt)
    assert int((iou >= 0.5).sum()) == match_instances(pred, gt).tp == 3


def test_auroc():
    from napari_unet.metrics import auroc

    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.3, 0.1, 0.2], [True, False, True]) == 1.0
    assert np.isnan(auroc([0.1, 0.2], [True, True]))
