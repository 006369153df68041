"""From probability maps to semantic masks or instance labels.

Post-processing is separate from the network so that thresholds and sizes
can be changed on cached probabilities (the napari widget re-labels in well
under a second) without running the U-Net again.

Instances are the connected components of the thresholded foreground, with
touching objects split by a marker-controlled watershed:

* models with a ``"boundary"`` output: markers are the foreground pixels
  that are not boundary, and the watershed runs on the boundary map;
* single-output models: markers are the h-maxima of the distance transform
  (each object's "centres", a saddle at least ``split_h`` px lower than both
  peaks separates two objects), and the watershed runs on ``-distance``.

Only components that contain two or more markers are split, each inside its
own bounding box; everything else is a plain connected component. This
keeps the cost proportional to the number of touching objects and the
memory to the size of the largest object, not the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from .model_io import ModelInfo


def probabilities_to_labels(
    probs: np.ndarray,
    *,
    info: ModelInfo | None = None,
    outputs: Sequence[str] | None = None,
    mode: str = "instance",
    threshold: float | None = None,
    boundary_threshold: float | None = None,
    min_size: int | None = None,
    fill_holes: bool = True,
    split: bool = True,
    split_h: float = 2.0,
) -> np.ndarray:
    """Turn probability maps into a mask or instance labels.

    Parameters
    ----------
    probs : ndarray, shape ``(C,) + spatial`` (or a 2D foreground map)
        Output of :func:`~napari_unet.predict_probabilities`.
    info : ModelInfo, optional
        Supplies output names and default thresholds / minimum size.
    outputs : list of str, optional
        Names of the channels of ``probs`` (``"foreground"``, ``"boundary"``).
    mode : {'instance', 'semantic'}
        Instance labels (1..N, unique over a whole stack) or a 0/1 mask.
    threshold : float
        Foreground probability threshold (default 0.5 or the model's).
    boundary_threshold : float
        Boundary probability above which a pixel cannot seed an object.
    min_size : int
        Objects smaller than this many pixels are removed.
    fill_holes : bool
        Fill holes inside objects.
    split : bool
        Split touching objects with a watershed (instance mode).
    split_h : float
        Distance-transform seeding only: minimum depth, in pixels, of the
        saddle between two object centres for them to be split.

    Returns
    -------
    ndarray
        ``int32`` instance labels or ``uint8`` mask with the spatial shape.
    """
    probs = np.asarray(probs)
    if probs.ndim == 2:
        probs = probs[None]
    if probs.ndim < 3:
        raise ValueError(f"Expected probabilities of shape (C, ..., Y, X), got {probs.shape}")
    if mode not in ("instance", "semantic"):
        raise ValueError(f"mode must be 'instance' or 'semantic', got {mode!r}")
    info = info or ModelInfo()
    outputs = list(outputs or info.outputs)
    if len(outputs) != probs.shape[0]:
        outputs = ["foreground", "boundary"][: probs.shape[0]] if probs.shape[0] <= 2 else (
            ["foreground"] + [f"channel_{i}" for i in range(1, probs.shape[0])]
        )
    if "foreground" not in outputs:
        raise ValueError(f"The model has no 'foreground' output (outputs: {outputs}).")
    fg_prob = probs[outputs.index("foreground")]
    bnd_prob = probs[outputs.index("boundary")] if "boundary" in outputs else None
    threshold = info.thresholds.get("foreground", 0.5) if threshold is None else threshold
    boundary_threshold = (info.thresholds.get("boundary", 0.5)
                          if boundary_threshold is None else boundary_threshold)
    min_size = info.min_size if min_size is None else int(min_size)

    spatial = fg_prob.shape
    out = np.zeros(spatial, dtype=np.uint8 if mode == "semantic" else np.int32)
    offset = 0
    for index in np.ndindex(*spatial[:-2]):
        fg = _foreground(fg_prob[index], threshold, min_size, fill_holes)
        if mode == "semantic":
            out[index] = fg
            continue
        labels = _instances(fg, None if bnd_prob is None else bnd_prob[index],
                            boundary_threshold, min_size, split, split_h)
        n = int(labels.max())
        out[index] = np.where(labels > 0, labels + offset, 0)
        offset += n
    return out


def _foreground(prob: np.ndarray, threshold: float, min_size: int, fill_holes: bool):
    fg = prob > threshold
    if fill_holes:
        fg = ndi.binary_fill_holes(fg)
    if min_size > 1:
        comps, n = ndi.label(fg)
        sizes = np.bincount(comps.ravel(), minlength=n + 1)
        small = sizes < min_size
        small[0] = False
        fg[small[comps]] = False
    return fg


def _instances(fg, bnd_prob, boundary_threshold, min_size, split, split_h) -> np.ndarray:
    from skimage.segmentation import relabel_sequential

    comps, n = ndi.label(fg)
    if n == 0 or not split:
        return comps.astype(np.int32)
    min_seed = max(3, min_size // 4)
    if bnd_prob is not None:
        seeds = fg & (bnd_prob < boundary_threshold)
        markers = _label_min_size(seeds, min_seed)
        elevation = bnd_prob
    else:
        markers, elevation = None, None

    labels = comps.astype(np.int32)
    next_id = n + 1
    if markers is not None:
        # How many markers fall in each component; only those with 2+ split.
        comp_of_marker = np.zeros(int(markers.max()) + 1, dtype=np.int64)
        comp_of_marker[markers.ravel()] = comps.ravel()
        counts = np.bincount(comp_of_marker[1:], minlength=n + 1)
        candidates = np.flatnonzero(counts >= 2)
    else:
        sizes = np.bincount(comps.ravel(), minlength=n + 1)
        candidates = np.flatnonzero(sizes >= max(2 * min_size, 16))
        candidates = candidates[candidates > 0]
    if len(candidates) == 0:
        return labels

    slices = ndi.find_objects(comps)
    for i in candidates:
        sl = _pad_slice(slices[i - 1], fg.shape, 1)
        mask = comps[sl] == i
        if markers is not None:
            sub_markers = np.where(mask, markers[sl], 0)
            sub_elev = elevation[sl]
        else:
            sub_markers, sub_elev = _distance_markers(mask, split_h, min_seed)
            if sub_markers is None:
                continue
        from skimage.segmentation import watershed

        ws = watershed(sub_elev, sub_markers, mask=mask)
        ids = np.unique(ws[mask])
        ids = ids[ids > 0]
        if len(ids) < 2:
            continue
        region = labels[sl]
        for k, marker_id in enumerate(ids):
            region[ws == marker_id] = i if k == 0 else next_id + k - 1
        next_id += len(ids) - 1

    if min_size > 1:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_size
        small[0] = False
        labels[small[labels]] = 0
    return relabel_sequential(labels)[0].astype(np.int32)


def _distance_markers(mask: np.ndarray, h: float, min_seed: int):
    from skimage.morphology import h_maxima

    dist = ndi.distance_transform_edt(mask)
    peaks = h_maxima(dist, h).astype(bool) & mask
    markers, m = ndi.label(peaks)
    if m < 2:
        return None, None
    return markers, -dist


def _label_min_size(mask: np.ndarray, min_size: int) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n and min_size > 1:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        small = sizes < min_size
        small[0] = False
        labels[small[labels]] = 0
    return labels


def _pad_slice(sl: tuple[slice, ...], shape: tuple[int, ...], pad: int) -> tuple[slice, ...]:
    return tuple(slice(max(0, s.start - pad), min(n, s.stop + pad)) for s, n in zip(sl, shape,
                                                                                  strict=True))
