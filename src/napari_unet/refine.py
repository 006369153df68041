"""Object-by-object clean-up of instance labels: size filter, hole filling, splitting.

The steps :mod:`napari_unet.postprocess` runs after the connected components
of the thresholded foreground: objects under the minimum size are dropped
and ids made 1..n with chunked look-up-table passes (bounded temporaries
whatever the image size), holes are filled and touching objects split by a
marker-controlled watershed, each object inside its own bounding box. Two
vectorized whole-image passes first pick the few objects that can change
(those next to enclosed background, those holding two or more seeds), so the
cost follows the number of touching objects, not the image size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# Chunk size for look-up-table passes: bounds temporaries to ~16 MB whatever
# the image size (a 8192x8192 int32 plane alone is 256 MB).
_CHUNK = 4_000_000


def _apply_lut(labels: np.ndarray, lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``out = lut[labels]`` computed in place / in chunks."""
    out = labels if out is None else out
    src, dst = labels.reshape(-1), out.reshape(-1)
    for i in range(0, src.size, _CHUNK):
        dst[i:i + _CHUNK] = lut[src[i:i + _CHUNK]]
    return out


def _object_sizes(labels: np.ndarray) -> np.ndarray:
    """``np.bincount(labels)`` in chunks: bincount casts its whole input to
    int64 first, a 512 MB temporary for a 8192^2 int32 plane."""
    flat = labels.reshape(-1)
    sizes = np.zeros(int(flat.max(initial=0)) + 1, dtype=np.int64)
    for i in range(0, flat.size, _CHUNK):
        counts = np.bincount(flat[i:i + _CHUNK])
        sizes[: len(counts)] += counts
    return sizes


def _drop_small_and_relabel(labels: np.ndarray, min_size: int, protect=()) -> int:
    """Remove objects under ``min_size`` px (except the ids in ``protect``)
    and make ids 1..n, in place."""
    sizes = _object_sizes(labels)
    keep = sizes >= max(min_size, 1)
    protect = np.asarray(protect, dtype=np.int64)
    keep[protect[(protect > 0) & (protect < len(keep))]] = True
    keep &= sizes > 0
    keep[0] = False
    lut = np.zeros(len(sizes), dtype=labels.dtype)
    n = int(keep.sum())
    lut[keep] = np.arange(1, n + 1, dtype=labels.dtype)
    _apply_lut(labels, lut)
    return n


def _refine_objects(labels, n, *, fill_holes, split, seeds, elevation, min_size,
                    split_h, distance=None, merge_ratio=1.0) -> bool:
    """Fill holes and split touching objects, in place, object by object.

    Each object is handled inside its own bounding box: whole-image
    ``binary_fill_holes`` per object would flood the background with a
    pixel queue each time, and a full-size marker image would add 256 MB on
    a 8192^2 plane. Two whole-image passes first pick the few objects that
    need work (vectorized): those next to enclosed background, and those
    holding two or more seeds; the others are left as they are. Returns
    whether any object was split.
    """
    from skimage.segmentation import watershed

    min_seed = max(3, min_size // 4)
    boxes = ndi.find_objects(labels)
    if fill_holes:
        for i in _objects_next_to_pockets(labels):
            if i > n or boxes[i - 1] is None:
                continue
            region = labels[_pad_slice(boxes[i - 1], labels.shape, 1)]  # a view
            holes = ndi.binary_fill_holes(region == i) & (region == 0)  # other objects stay
            region[holes] = i
    if not split:
        return False
    # Distance models try every object: the shape prior splits one-seed objects.
    candidates = (_objects_with_seeds(labels, seeds, min_seed)
                  if seeds is not None and distance is None else range(1, n + 1))
    next_id = n + 1
    changed = False
    for i in candidates:
        if i > n or boxes[i - 1] is None:
            continue
        sl = _pad_slice(boxes[i - 1], labels.shape, 1)
        region = labels[sl]  # a view: edits go straight into labels
        mask = region == i
        if distance is not None:  # distance output: see napari_unet.splitting
            from .splitting import split_object

            ws = split_object(mask, distance[sl], seeds[sl], min_seed=min_seed,
                              split_h=split_h, merge_ratio=merge_ratio)
            if ws is None:
                continue
        elif seeds is not None:  # boundary output: seeds are non-boundary pixels
            markers = _label_min_size(seeds[sl] & mask, min_seed)
            if markers.max(initial=0) < 2:
                continue
            relief = elevation[sl]
        else:
            markers, relief = _distance_markers(mask, split_h)
            if markers is None:
                continue
        if distance is None:
            ws = watershed(relief, markers, mask=mask)
        ids = np.unique(ws[mask])
        ids = ids[ids > 0]
        for marker_id in ids[1:]:  # the first piece keeps id i
            region[ws == marker_id] = next_id
            next_id += 1
        changed |= len(ids) > 1
    return changed


def _objects_next_to_pockets(labels) -> list[int]:
    """Ids of objects touching background that no 4-path links to the image
    border. Background an object encloses (its hole) is such a pocket, so
    only these objects can have holes to fill. (Labelling the background is
    ~8x faster than a whole-image ``binary_fill_holes``.)"""
    background = np.empty(labels.shape, dtype=np.int32)
    k = ndi.label(labels == 0, output=background)
    enclosed = np.ones(k + 1, dtype=bool)
    enclosed[0] = False
    for edge in (background[0], background[-1], background[:, 0], background[:, -1]):
        enclosed[edge] = False
    if not enclosed.any():
        return []
    pockets = enclosed[background]
    del background
    near = np.concatenate([labels[1:][pockets[:-1]], labels[:-1][pockets[1:]],
                           labels[:, 1:][pockets[:, :-1]], labels[:, :-1][pockets[:, 1:]]])
    return [int(i) for i in np.unique(near) if i]


def _objects_with_seeds(labels, seeds, min_seed: int) -> list[int]:
    """Ids of objects holding two or more seed components of ``min_seed`` px
    (only they can be split), plus any object a seed component crosses into
    (decided object by object)."""
    comps = np.empty(labels.shape, dtype=np.int32)
    k = ndi.label(seeds & (labels > 0), output=comps)
    if k == 0:
        return []
    inside = comps > 0
    c, owner = comps[inside], labels[inside]
    del inside
    lo = np.full(k + 1, np.iinfo(labels.dtype).max, dtype=labels.dtype)
    hi = np.zeros(k + 1, dtype=labels.dtype)
    np.minimum.at(lo, c, owner)
    np.maximum.at(hi, c, owner)
    sizes = np.bincount(c, minlength=k + 1)
    del c, owner
    lo, hi, sizes = lo[1:], hi[1:], sizes[1:]
    single = (lo == hi) & (sizes >= min_seed)
    counts = np.bincount(lo[single].astype(np.intp))
    ids = set(np.flatnonzero(counts >= 2).tolist())
    crossing = np.flatnonzero(lo != hi) + 1
    if len(crossing):
        ids.update(int(i) for i in np.unique(labels[np.isin(comps, crossing)]) if i)
    return sorted(ids)


def _distance_markers(mask: np.ndarray, h: float):
    from .splitting import distance_peaks

    dist, markers = distance_peaks(mask, h)
    if markers is None or markers.max(initial=0) < 2:
        return None, None
    return markers, -dist


def _label_min_size(mask: np.ndarray, min_size: int) -> np.ndarray:
    labels = np.empty(mask.shape, dtype=np.int32)
    n = ndi.label(mask, output=labels)
    if n and min_size > 1:
        _drop_small_and_relabel(labels, min_size)
    return labels


def _pad_slice(sl: tuple[slice, ...], shape: tuple[int, ...], pad: int) -> tuple[slice, ...]:
    return tuple(slice(max(0, s.start - pad), min(n, s.stop + pad))
                 for s, n in zip(sl, shape, strict=True))
