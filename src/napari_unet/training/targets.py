"""Training targets derived from instance labels (after augmentation).

* ``foreground``: ``labels > 0``;
* ``boundary``: object pixels within ``boundary_width`` px of another label
  or of background (both rims where two nuclei touch), plus the background
  pixels *between* instances: those with two different objects within
  ``boundary_width`` px. Rims alone leave the thin gap between touching
  nuclei unmarked, and the network then learns to bridge it.
* ``distance``: per-object normalized distance to the object's border
  (1 at the object's centre, 0 on background): its maxima are watershed
  markers, one per nucleus, even where no boundary is visible.

:func:`separation_weights` is the separation-border weight map of the U-Net
paper (Ronneberger et al. 2015): background pixels squeezed between two
objects weigh up to ``1 + w0`` in the loss.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

SUPPORTED_OUTPUTS = ("foreground", "boundary", "distance")


def make_targets(labels, outputs=("foreground", "boundary"),
                 boundary_width: int = 2) -> np.ndarray:
    """Training targets ``(H, W, len(outputs))`` (float32 in [0, 1]) from instance labels.

    Parameters
    ----------
    labels : ndarray (H, W)
        Instance labels (0 = background).
    outputs : sequence of str
        Names of the model outputs, among :data:`SUPPORTED_OUTPUTS`.
    boundary_width : int
        Rim thickness in pixels of the ``"boundary"`` target.
    """
    from skimage.morphology import disk

    labels = np.asarray(labels)
    fg = labels > 0
    out = np.zeros(labels.shape + (len(outputs),), dtype=np.float32)
    for c, name in enumerate(outputs):
        if name == "foreground":
            out[..., c] = fg
        elif name == "boundary":
            # A pixel is on a rim if a different value lies within the disk;
            # 'nearest' edges: objects cut by the patch border get no rim there.
            fp = disk(boundary_width)
            hi = ndi.maximum_filter(labels, footprint=fp, mode="nearest")
            lo = ndi.minimum_filter(labels, footprint=fp, mode="nearest")
            rim = fg & ((hi != labels) | (lo != labels))
            # Background between two objects: the smallest non-zero label in
            # reach differs from the largest one.
            big = int(labels.max(initial=0)) + 1  # (int64 max overflows in scipy)
            lo_obj = ndi.minimum_filter(np.where(fg, labels.astype(np.int64), big),
                                        footprint=fp, mode="nearest")
            gap = ~fg & (lo_obj != big) & (lo_obj != hi)
            out[..., c] = rim | gap
        elif name == "distance":
            out[..., c] = normalized_distance(labels)
        else:
            raise ValueError(f"Unknown output {name!r}: supported are {SUPPORTED_OUTPUTS}.")
    return out


def normalized_distance(labels) -> np.ndarray:
    """Distance of each object pixel to its object's border, divided by the
    object's largest distance (float32, 0 on background)."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, dtype=np.float32)
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        sl = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
        mask = labels[sl] == i
        d = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        top = d.max()
        if top > 0:
            region = out[sl]
            region[mask] = d[mask] / top
    return out


def separation_weights(labels, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """U-Net paper weight map ``1 + w0 exp(-(d1 + d2)^2 / (2 sigma^2))`` on
    background (``d1``, ``d2``: distances to the nearest and second nearest
    object), 1 on objects.

    Each object's distance map is computed only in a window of ``3 sigma``
    around it: farther away the term is negligible (< 1e-7 of ``w0``).
    """
    labels = np.asarray(labels)
    shape = labels.shape
    weights = np.ones(shape, dtype=np.float32)
    boxes = [(i, b) for i, b in enumerate(ndi.find_objects(labels), start=1) if b is not None]
    if w0 <= 0 or len(boxes) < 2:
        return weights
    pad = int(np.ceil(3 * sigma))
    d1 = np.full(shape, np.inf, dtype=np.float32)
    d2 = np.full(shape, np.inf, dtype=np.float32)
    for i, box in boxes:
        sl = tuple(slice(max(0, s.start - pad), min(n, s.stop + pad))
                   for s, n in zip(box, shape, strict=True))
        d = ndi.distance_transform_edt(labels[sl] != i).astype(np.float32)
        a, b = d1[sl], d2[sl]
        b[...] = np.minimum(b, np.maximum(a, d))
        a[...] = np.minimum(a, d)
    bg = (labels == 0) & np.isfinite(d2)
    s = d1[bg] + d2[bg]
    weights[bg] += w0 * np.exp(-(s * s) / (2 * sigma * sigma))
    return weights
