"""How much to trust each object: a per-object confidence for reviewing results.

A user's time goes into finding the wrong objects. :func:`object_confidence`
scores every object of a label image in [0, 1] from evidence the network and
the labels already hold, so the Segment dock can list the objects worth a
look first (lowest confidence first). Errors leave traces:

* a **false positive** is dim in the foreground probability, or tiny;
* a **merge** of touching nuclei has boundary probability inside it, a
  concave outline (low solidity), two or more distance-transform peaks and
  an area far above the image's typical nucleus;
* a **split** or a **missed half** is a fragment: small against the typical
  size, with much of its outline on uncertain (mid-probability) pixels.

The features (:func:`object_features`) are combined by a logistic model
whose weights (:data:`WEIGHTS`) were fitted on the *training* images of the
shipped model's data (``scripts/fit_confidence.py``); the benchmark
``benchmarks/bench_confidence.py`` reports how well low values flag wrong
objects (AUROC) on held-out images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

__all__ = ["FEATURES", "WEIGHTS", "object_confidence", "object_features"]

#: Names of the columns of :func:`object_features`, in order.
FEATURES = (
    "mean_foreground",      # mean foreground probability inside the object
    "uncertain_edge",       # fraction of the object's rim with 0.25 < p < 0.75
    "inner_boundary",       # strongest boundary evidence away from the rim (merges)
    "solidity",             # area / convex-hull area (merges are concave)
    "extra_peaks",          # distance-transform peaks beyond the first (merges)
    "log_size_ratio",       # log(area / the image's median area)
    "small",                # max(0, -log_size_ratio): fragments, debris
    "large",                # max(0, log_size_ratio): merges
)

#: Logistic weights (intercept first, then one per feature) turning the
#: features into P(object is right). Fitted by
#: ``python scripts/fit_confidence.py`` (2026-12-02):
#: the shipped nuclei_default.keras on the 30 mnfinder 1.2.3 training-data images,
#: 2406 predicted objects, 104 wrong (no ground-truth match at
#: IoU 0.5); AUROC on these (training) objects 0.864. Held-out figures:
#: benchmarks/bench_confidence.py.
WEIGHTS = (
    +2.7031,  # intercept
    +0.4569,  # mean_foreground
    -0.4008,  # uncertain_edge
    -0.0452,  # inner_boundary
    +0.9395,  # solidity
    -0.2546,  # extra_peaks
    +0.0000,  # log_size_ratio
    -1.9595,  # small
    +0.0447,  # large
)


def _channel(probs: np.ndarray, outputs: Sequence[str], name: str) -> np.ndarray | None:
    return probs[list(outputs).index(name)] if name in outputs else None


def object_features(labels, probabilities, *, outputs: Sequence[str] | None = None,
                    peak_depth: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-object evidence of errors (see :data:`FEATURES`).

    Parameters
    ----------
    labels : ndarray of int
        Instance labels, 2D or N-D (shape cues of N-D objects are measured on
        their projection along the leading axes).
    probabilities : ndarray
        ``(C,) + labels.shape`` network outputs (as from
        :func:`~napari_unet.predict_probabilities`), or a foreground map with
        the labels' shape.
    outputs : sequence of str, optional
        Names of the channels (default ``("foreground", "boundary")[:C]``).
    peak_depth : float
        Minimum depth (px) of a distance-transform peak to count.

    Returns
    -------
    ids : ndarray of int
        The object ids, sorted.
    features : ndarray, shape (n_objects, len(FEATURES))
    """
    labels = np.asarray(labels)
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.shape == labels.shape:
        probs = probs[None]
    if probs.shape[1:] != labels.shape:
        raise ValueError(f"probabilities {probs.shape} do not match labels {labels.shape} "
                         "(expected (C,) + labels.shape)")
    outputs = list(outputs or ["foreground", "boundary"][: probs.shape[0]])
    if "foreground" not in outputs:
        raise ValueError(f"no 'foreground' output among {outputs}")
    fg = _channel(probs, outputs, "foreground")
    boundary = _channel(probs, outputs, "boundary")

    ids = np.unique(labels)
    ids = ids[ids > 0]
    n = len(ids)
    feats = np.zeros((n, len(FEATURES)), np.float32)
    if n == 0:
        return ids, feats
    areas = ndi.sum_labels(np.ones(labels.shape, np.float32), labels, ids)
    feats[:, 0] = ndi.mean(fg, labels, ids)
    # The rim: object pixels next to another value (background or another object).
    size = (3,) * labels.ndim
    rim = (labels != ndi.grey_erosion(labels, size=size, mode="nearest")) | (
        labels != ndi.grey_dilation(labels, size=size, mode="nearest"))
    rim &= labels > 0
    uncertain = ((fg > 0.25) & (fg < 0.75)).astype(np.float32)
    rim_px = np.maximum(ndi.sum_labels(rim.astype(np.float32), labels, ids), 1)
    feats[:, 1] = ndi.sum_labels(uncertain * rim, labels, ids) / rim_px
    if boundary is not None:
        # A merge shows a line of boundary probability across its interior;
        # a light blur keeps single noisy pixels from counting.
        inner = (labels > 0) & ~rim
        inner_labels = np.where(inner, labels, 0)
        smooth = ndi.gaussian_filter(boundary, 1.0, truncate=2.0)
        has_inner = ndi.sum_labels(inner.astype(np.float32), labels, ids) > 0
        feats[:, 2] = np.where(has_inner, _max_by_label(smooth, inner_labels, ids), 0)
    median_area = float(np.median(areas))
    ratio = np.log(np.maximum(areas, 1) / max(median_area, 1.0))
    feats[:, 5] = ratio
    feats[:, 6] = np.maximum(0, -ratio)
    feats[:, 7] = np.maximum(0, ratio)
    _shape_features(labels, ids, feats, peak_depth)
    return ids, feats


def _max_by_label(values: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``ndi.maximum(values, labels, ids)`` for sorted ``ids``, -inf where an id
    has no pixel: one ``np.maximum.at`` instead of scipy's sort of every
    labelled pixel (0.02 s instead of 0.9 s for 724 objects on 2048^2)."""
    inside = labels > 0
    out = np.full(len(ids), -np.inf, dtype=np.float64)
    np.maximum.at(out, np.searchsorted(ids, labels[inside]), values[inside])
    return out


def _shape_features(labels, ids, feats, peak_depth) -> None:
    """Solidity and extra distance peaks, object by object in bounding boxes."""
    from skimage.morphology import convex_hull_image

    from .splitting import distance_peaks

    flat = labels.reshape((-1,) + labels.shape[-2:]) if labels.ndim > 2 else labels[None]
    # N-D objects: their footprint on the Y/X plane (max projection).
    index = {int(i): k for k, i in enumerate(ids)}
    boxes = ndi.find_objects(flat)
    for i, box in enumerate(boxes, start=1):
        k = index.get(i)
        if box is None or k is None:
            continue
        mask = (flat[box] == i).any(axis=0)
        mask = np.pad(mask, 1)
        area = mask.sum()
        if area < 3:
            feats[k, 3] = 1.0
            continue
        try:
            hull = convex_hull_image(mask)
            feats[k, 3] = area / max(hull.sum(), area)
        except Exception:  # noqa: BLE001 - degenerate (collinear) objects: treat as convex
            feats[k, 3] = 1.0
        _, peaks = distance_peaks(mask, peak_depth)  # None: at most one
        if peaks is not None:
            feats[k, 4] = max(0, int(peaks.max(initial=0)) - 1)


def object_confidence(labels, probabilities, *, outputs: Sequence[str] | None = None,
                      weights: Sequence[float] = WEIGHTS) -> dict[int, float]:
    """Confidence in [0, 1] that each object is right; low values flag errors.

    Parameters
    ----------
    labels : ndarray of int
        Instance labels (2D or N-D).
    probabilities : ndarray
        ``(C,) + labels.shape`` probability maps the labels came from (or a
        foreground map).
    outputs : sequence of str, optional
        Names of the probability channels (a model's ``ModelInfo.outputs``).
    weights : sequence of float
        Logistic weights, intercept first (default: :data:`WEIGHTS`).

    Returns
    -------
    dict
        ``{object id: confidence}`` for every object.

    Examples
    --------
    >>> labels, probs = nu.segment(image, return_probabilities=True)  # doctest: +SKIP
    >>> worst = sorted(object_confidence(labels, probs).items(), key=lambda kv: kv[1])[:10]
    """
    ids, feats = object_features(labels, probabilities, outputs=outputs)
    if len(weights) != len(FEATURES) + 1:
        raise ValueError(f"expected {len(FEATURES) + 1} weights, got {len(weights)}")
    w = np.asarray(weights, dtype=np.float64)
    score = 1 / (1 + np.exp(-(w[0] + feats.astype(np.float64) @ w[1:])))
    return {int(i): float(s) for i, s in zip(ids, score, strict=True)}
