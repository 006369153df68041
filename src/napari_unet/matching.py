"""Instance pairing behind :mod:`napari_unet.metrics`: contingency table and assignment.

The IoU of every overlapping (ground truth, prediction) pair of one pair of
label arrays is computed from a sparse contingency table (one pass over the
pixels, never a loop over pairs), and a one-to-one assignment maximizing the
total IoU is found with the Hungarian algorithm, run separately on each
connected component of the candidate graph. Merges and splits are counted
from the same table. :func:`napari_unet.metrics.match_instances` and
:func:`napari_unet.metrics.evaluate` pool these per-plane counts into scores.
"""

from __future__ import annotations

import numpy as np


def _contingency(p: np.ndarray, g: np.ndarray):
    """Overlapping (gt, pred) pairs of one pair of label arrays.

    Returns ``(gi, pi, inter, g_area, p_area)``: indices (0-based over the
    objects present) and pixel counts of every overlapping pair, and the
    object areas; None when either image has no object, with the counts.
    """
    p_ids, p_inv = np.unique(p.ravel(), return_inverse=True)
    g_ids, g_inv = np.unique(g.ravel(), return_inverse=True)
    # Index 0 is background only when label 0 is present.
    p_off = 1 if p_ids[0] == 0 else 0
    g_off = 1 if g_ids[0] == 0 else 0
    n_p, n_g = len(p_ids) - p_off, len(g_ids) - g_off
    if n_p == 0 or n_g == 0:
        return None, n_p, n_g
    p_area = np.bincount(p_inv, minlength=len(p_ids))[p_off:]
    g_area = np.bincount(g_inv, minlength=len(g_ids))[g_off:]
    # Sparse contingency table: only pixels where both are foreground.
    both = (p_inv >= p_off) & (g_inv >= g_off)
    key = (g_inv[both].astype(np.int64) - g_off) * n_p + (p_inv[both] - p_off)
    pair, inter = np.unique(key, return_counts=True)
    gi, pi = np.divmod(pair, n_p)
    return (gi, pi, inter, g_area, p_area), n_p, n_g


def _match_counts(p: np.ndarray, g: np.ndarray, thresholds) -> tuple[list, int, int, int, int]:
    """Per threshold ``(tp, sum of matched IoU)``, then n_pred, n_true, merges, splits."""
    table, n_p, n_g = _contingency(p, g)
    if table is None:
        return [(0, 0.0)] * len(thresholds), n_p, n_g, 0, 0
    gi, pi, inter, g_area, p_area = table
    iou = inter / (g_area[gi] + p_area[pi] - inter)
    counts = []
    for thr in thresholds:
        keep = iou >= thr
        counts.append(_assign(gi[keep], pi[keep], iou[keep]) if keep.any() else (0, 0.0))
    # Merges: predictions holding >= 2 true objects that lie half inside them.
    inside_p = 2 * inter >= g_area[gi]
    merges = int(np.count_nonzero(np.bincount(pi[inside_p], minlength=n_p) >= 2))
    inside_g = 2 * inter >= p_area[pi]
    splits = int(np.count_nonzero(np.bincount(gi[inside_g], minlength=n_g) >= 2))
    return counts, n_p, n_g, merges, splits


def _assign(gi: np.ndarray, pi: np.ndarray, iou: np.ndarray) -> tuple[int, float]:
    """Maximum-IoU one-to-one assignment among candidate pairs.

    The candidate graph is split into connected components and the Hungarian
    algorithm runs on each one: for IoU >= 0.5 every component is a single
    pair, so thousands of objects cost no more than a sort.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g_u, g_idx = np.unique(gi, return_inverse=True)
    p_u, p_idx = np.unique(pi, return_inverse=True)
    n_g = len(g_u)
    n = n_g + len(p_u)
    graph = coo_matrix((np.ones(len(iou)), (g_idx, n_g + p_idx)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    pair_comp = comp[g_idx]
    tp, total = 0, 0.0
    order = np.argsort(pair_comp, kind="stable")
    bounds = np.flatnonzero(np.diff(pair_comp[order])) + 1
    for sel in np.split(order, bounds):
        if len(sel) == 1:
            tp += 1
            total += float(iou[sel[0]])
            continue
        rows, r = np.unique(g_idx[sel], return_inverse=True)
        cols, c = np.unique(p_idx[sel], return_inverse=True)
        score = np.zeros((len(rows), len(cols)))
        score[r, c] = iou[sel]
        ri, ci = linear_sum_assignment(score, maximize=True)
        matched = score[ri, ci] > 0
        tp += int(matched.sum())
        total += float(score[ri, ci][matched].sum())
    return tp, total
