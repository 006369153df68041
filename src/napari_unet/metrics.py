"""Segmentation quality: foreground Dice and one-to-one instance matching.

Instances are matched the way the StarDist / Cellpose benchmarks do it: the
IoU of every overlapping (ground truth, prediction) pair is computed from a
sparse contingency table (one pass over the pixels, never a loop over pairs),
and a one-to-one assignment maximizing the total IoU is found with the
Hungarian algorithm. A pair is a true positive when its IoU reaches the
threshold.

Merges and splits are counted from the same table: a merge is one predicted
object covering two or more true objects, each of which lies at least half
inside it (the error a user fixes by painting a split line); a split is one
true object covered by two or more predicted objects, each at least half
inside it. :func:`evaluate` also reports the mean F1 over IoU thresholds
0.5, 0.55, ..., 0.9 (:data:`MEAN_F1_THRESHOLDS`), which rewards accurate
outlines and not only detection.

Stacks are matched plane by plane by default (each plane's section of a 3D
object counts as one object there), or as N-D objects with
``per_plane=False`` (3D instances of a Z stack, ``napari-unet evaluate
--3d``). Lists of images are pooled: counts and pixel overlaps are summed
over all images before the scores are computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .matching import _match_counts

#: IoU thresholds of the mean F1 reported by :func:`evaluate`.
MEAN_F1_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(9))


@dataclass
class MatchResult:
    """Counts and scores of a one-to-one instance matching.

    Attributes
    ----------
    tp, fp, fn : int
        Matched pairs, unmatched predictions, unmatched ground-truth objects.
    n_pred, n_true : int
        Number of predicted and ground-truth objects.
    precision, recall, f1 : float
        ``tp / n_pred``, ``tp / n_true`` and their harmonic mean. All three
        are 1.0 when both images are empty, 0.0 when only one is.
    mean_matched_iou : float
        Mean IoU of the true-positive pairs (0.0 without any).
    iou_threshold : float
        Minimum IoU for a pair to count as a match.
    merges : int
        Predicted objects covering two or more true objects, each at least
        half inside them.
    splits : int
        True objects covered by two or more predicted objects, each at
        least half inside them.
    """

    tp: int
    fp: int
    fn: int
    n_pred: int
    n_true: int
    precision: float
    recall: float
    f1: float
    mean_matched_iou: float
    iou_threshold: float
    merges: int = 0
    splits: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _as_labels(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.all(np.mod(a, 1) == 0):
            return a.astype(np.int64)
        raise ValueError(f"{name} must be an integer label image, got dtype {a.dtype}")
    if a.dtype.kind == "i" and a.size and a.min() < 0:
        raise ValueError(f"{name} has negative labels")
    return a


def _pairs(pred, gt) -> list[tuple[np.ndarray, np.ndarray]]:
    """Normalize inputs to a list of same-shape (pred, gt) label arrays."""
    if isinstance(pred, Sequence) and not isinstance(pred, np.ndarray):
        if not isinstance(gt, Sequence) or len(gt) != len(pred):
            raise ValueError("pred and gt must both be arrays or lists of equal length")
        pairs = [(_as_labels(p, "pred"), _as_labels(g, "gt"))
                 for p, g in zip(pred, gt, strict=True)]
    else:
        pairs = [(_as_labels(pred, "pred"), _as_labels(gt, "gt"))]
    for p, g in pairs:
        if p.shape != g.shape:
            raise ValueError(f"Shape mismatch: pred {p.shape} vs gt {g.shape}")
    return pairs


def dice(pred, gt) -> float:
    """Foreground Dice coefficient of two label images (or masks).

    Parameters
    ----------
    pred, gt : array-like or list of array-like
        Label images of the same shape; any non-zero pixel is foreground.
        Lists are pooled over all images.

    Returns
    -------
    float
        ``2 |P & G| / (|P| + |G|)``; 1.0 when both are empty.
    """
    inter = total = 0
    for p, g in _pairs(pred, gt):
        pf, gf = p > 0, g > 0
        inter += int(np.count_nonzero(pf & gf))
        total += int(np.count_nonzero(pf)) + int(np.count_nonzero(gf))
    return 1.0 if total == 0 else 2.0 * inter / total


def _planes(a: np.ndarray, per_plane: bool):
    if a.ndim <= 2 or not per_plane:
        yield a
        return
    for idx in np.ndindex(*a.shape[:-2]):
        yield a[idx]


def match_instances(pred, gt, iou_threshold: float = 0.5, *,
                    per_plane: bool = True) -> MatchResult:
    """One-to-one matching of predicted and ground-truth instances.

    Parameters
    ----------
    pred, gt : array-like or list of array-like
        Instance label images of equal shape (0 = background). Ids need not
        be sequential nor shared between the two images. A list of images is
        pooled: counts are summed before computing the scores.
    iou_threshold : float
        Minimum intersection over union for a match, in (0, 1].
    per_plane : bool
        For arrays with more than two dimensions, match each 2D plane (last
        two axes) separately, so ids may repeat between planes. Set False to
        treat ids as N-D objects spanning planes.

    Returns
    -------
    MatchResult
        Counts (TP, FP, FN), precision, recall, F1 and mean matched IoU.

    Examples
    --------
    >>> gt = np.zeros((8, 8), int); gt[:4, :4] = 1; gt[4:, 4:] = 2
    >>> match_instances(gt * 3, gt).f1
    1.0
    """
    return _match_all(pred, gt, (iou_threshold,), per_plane)[0]


def _match_all(pred, gt, thresholds, per_plane: bool) -> list[MatchResult]:
    """One :class:`MatchResult` per IoU threshold, from one pass over the pixels."""
    for thr in thresholds:
        if not 0 < thr <= 1:
            raise ValueError(f"iou_threshold must be in (0, 1], got {thr}")
    tps, sums = np.zeros(len(thresholds), int), np.zeros(len(thresholds))
    n_p = n_g = merges = splits = 0
    for p, g in _pairs(pred, gt):
        for pp, gg in zip(_planes(p, per_plane), _planes(g, per_plane), strict=True):
            counts, a, b, m, s = _match_counts(pp, gg, thresholds)
            tps += [c[0] for c in counts]
            sums += [c[1] for c in counts]
            n_p, n_g, merges, splits = n_p + a, n_g + b, merges + m, splits + s
    results = []
    for thr, tp, total in zip(thresholds, tps.tolist(), sums.tolist(), strict=True):
        if n_p == 0 and n_g == 0:
            precision = recall = f1 = 1.0
        else:
            precision = tp / n_p if n_p else 0.0
            recall = tp / n_g if n_g else 0.0
            f1 = 2 * tp / (n_p + n_g)
        results.append(MatchResult(
            tp=tp, fp=n_p - tp, fn=n_g - tp, n_pred=n_p, n_true=n_g, precision=precision,
            recall=recall, f1=f1, mean_matched_iou=total / tp if tp else 0.0,
            iou_threshold=float(thr), merges=merges, splits=splits))
    return results


def evaluate(pred, gt, iou_threshold: float = 0.5, *, per_plane: bool = True) -> dict:
    """Foreground Dice and instance matching scores in one dictionary.

    Parameters
    ----------
    pred, gt : array-like or list of array-like
        Predicted and ground-truth instance labels (see
        :func:`match_instances`).
    iou_threshold : float
        IoU needed for an instance match.
    per_plane : bool
        Match stacks plane by plane (see :func:`match_instances`).

    Returns
    -------
    dict
        ``dice``, ``f1``, ``precision``, ``recall``, ``mean_matched_iou``,
        ``tp``, ``fp``, ``fn``, ``n_pred``, ``n_true``, ``iou_threshold``
        (all at ``iou_threshold``), ``merges``, ``splits`` and ``mean_f1``
        (mean F1 over :data:`MEAN_F1_THRESHOLDS`).
    """
    thresholds = (iou_threshold, *MEAN_F1_THRESHOLDS)
    first, *rest = _match_all(pred, gt, thresholds, per_plane)
    return {"dice": dice(pred, gt), **first.as_dict(),
            "mean_f1": float(np.mean([r.f1 for r in rest]))}


def class_scores(pred, gt, n_classes: int | None = None, *, names=None,
                 ignore_unlabelled_planes: bool = False) -> dict:
    """Per-class Dice and IoU of class labels (semantic segmentation).

    Parameters
    ----------
    pred, gt : array-like or lists of arrays
        Class labels: 0 background, 1..K the classes. Lists are pooled.
    n_classes : int, optional
        K; the largest value in either input by default.
    names : list of str, optional
        Class names, for the ``"classes"`` entry.
    ignore_unlabelled_planes : bool
        Score only the planes (last two axes) of ``gt`` that hold a label,
        as for a stack annotated on a few planes.

    Returns
    -------
    dict
        ``dice``, ``iou`` (lists, class 1..K), ``mean_dice``, ``mean_iou``
        (over the classes present in ``gt`` or ``pred``; a class absent
        from both scores 1 and is left out of the means), ``classes``.
    """
    pairs = _pairs(pred, gt)
    if n_classes is None:
        n_classes = max(max(int(p.max(initial=0)), int(g.max(initial=0))) for p, g in pairs)
    n_classes = max(int(n_classes), 1)
    inter = np.zeros(n_classes + 1, np.int64)
    n_pred = np.zeros(n_classes + 1, np.int64)
    n_true = np.zeros(n_classes + 1, np.int64)
    for p, g in pairs:
        if ignore_unlabelled_planes and g.ndim > 2:
            keep = g.reshape(-1, *g.shape[-2:]).any(axis=(1, 2))
            p, g = p.reshape(-1, *p.shape[-2:])[keep], g.reshape(-1, *g.shape[-2:])[keep]
        p = np.clip(p.ravel(), 0, n_classes + 1).astype(np.intp)
        g = np.clip(g.ravel(), 0, n_classes + 1).astype(np.intp)
        size = n_classes + 2  # values above K count as wrong for every class
        n_pred += np.bincount(p, minlength=size)[: n_classes + 1]
        n_true += np.bincount(g, minlength=size)[: n_classes + 1]
        inter += np.bincount(g[p == g], minlength=size)[: n_classes + 1]
    dice_c, iou_c, present = [], [], []
    for c in range(1, n_classes + 1):
        union = n_pred[c] + n_true[c] - inter[c]
        present.append(bool(n_pred[c] or n_true[c]))
        dice_c.append(1.0 if not present[-1] else float(2 * inter[c] / (n_pred[c] + n_true[c])))
        iou_c.append(1.0 if not present[-1] else float(inter[c] / union))
    used = [i for i, ok in enumerate(present) if ok] or list(range(n_classes))
    names = list(names) if names else [f"class_{c}" for c in range(1, n_classes + 1)]
    return {"classes": names[:n_classes], "dice": dice_c, "iou": iou_c,
            "mean_dice": float(np.mean([dice_c[i] for i in used])),
            "mean_iou": float(np.mean([iou_c[i] for i in used]))}


def best_overlap(pred, gt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every predicted object, its best-overlapping ground-truth object.

    At IoU >= 0.5 a prediction has at most one such partner, so
    ``best_iou >= 0.5`` is exactly "matched one-to-one at 0.5" (as counted by
    :func:`match_instances`); lower values tell merges, splits and false
    positives apart from near misses.

    Parameters
    ----------
    pred, gt : ndarray of int
        Instance labels of equal shape; ids of ``pred`` are taken as whole
        (N-D) objects.

    Returns
    -------
    ids : ndarray of int
        Predicted ids, sorted.
    best_iou : ndarray of float
        Their highest IoU with any ground-truth object (0 if none overlaps).
    best_gt : ndarray of int
        The ground-truth id of that IoU (0 if none).
    """
    p, g = _as_labels(pred, "pred"), _as_labels(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred {p.shape} and gt {g.shape} differ in shape")
    ids = np.unique(p)
    ids = ids[ids > 0]
    best_iou, best_gt = np.zeros(len(ids)), np.zeros(len(ids), np.int64)
    if not len(ids):
        return ids, best_iou, best_gt
    p_idx = np.searchsorted(ids, p.ravel())  # index of each pixel's id (if any)
    p_fg = p.ravel() > 0
    p_area = np.bincount(p_idx[p_fg], minlength=len(ids))
    g_ids, g_inv = np.unique(g.ravel(), return_inverse=True)
    g_area = np.bincount(g_inv, minlength=len(g_ids))
    both = p_fg & (g.ravel() > 0)
    key = p_idx[both].astype(np.int64) * len(g_ids) + g_inv[both]
    pair, inter = np.unique(key, return_counts=True)
    pi, gi = np.divmod(pair, len(g_ids))
    iou = inter / (p_area[pi] + g_area[gi] - inter)
    order = np.lexsort((iou, pi))  # per prediction, the best last
    last = np.r_[pi[order][1:] != pi[order][:-1], True]
    best_iou[pi[order][last]] = iou[order][last]
    best_gt[pi[order][last]] = g_ids[gi[order][last]]
    return ids, best_iou, best_gt


def auroc(scores, positive) -> float:
    """Area under the ROC curve: the chance that a random positive scores
    higher than a random negative (ties count half; Mann-Whitney U).

    Parameters
    ----------
    scores : array-like of float
    positive : array-like of bool
        Which items are positives.

    Returns
    -------
    float
        NaN when there are no positives or no negatives.
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, float).ravel()
    positive = np.asarray(positive, bool).ravel()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
