"""From probability maps to semantic masks, class labels or instance labels.

Models with several classes (``ModelInfo.task == "semantic"``, a softmax
over background + K classes) give class labels 0..K: the most probable
class at each pixel (:func:`predicted_classes`); thresholds and sizes do
not apply. A one-class semantic model is thresholded like an instance
model's foreground (a 0/1 mask in semantic mode).

Post-processing is separate from the network so that thresholds and sizes
can be changed on cached probabilities (the napari widget re-labels in well
under a second) without running the U-Net again.

Instances are the connected components of the thresholded foreground, with
touching objects split by a marker-controlled watershed:

* models with a ``"boundary"`` output: markers are the foreground pixels
  that are not boundary, and the watershed runs on the boundary map;
* models with a ``"distance"`` output (per-object normalized distance):
  markers are the learned cores, with a shape prior for components left
  whole and a check that merges shallow splits back
  (:mod:`napari_unet.splitting`);
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

from .cancel import Cancelled, is_cancelled
from .model_io import ModelInfo
from .refine import _drop_small_and_relabel, _refine_objects
from .settings import LabelSettings, split_options


def probabilities_to_labels(
    probs: np.ndarray,
    *,
    axes: str | None = None,
    info: ModelInfo | None = None,
    outputs: Sequence[str] | None = None,
    settings: LabelSettings | None = None,
    cancel=None,
    **options,
) -> np.ndarray:
    """Turn probability maps into a mask or instance labels.

    Parameters
    ----------
    probs : ndarray, shape ``(C,) + spatial`` (or a 2D foreground map)
        Output of :func:`~napari_unet.predict_probabilities`.
    axes : str, optional
        Letters of the spatial axes (``"ZYX"``, ``"TYX"``, ``"TZYX"``...);
        default: 2D ``YX``, 3D ``ZYX``, 4D ``TZYX``. Along ``Z`` objects
        are 3D (``settings.instances``); ``T`` frames are always labelled
        independently.
    info : ModelInfo, optional
        Supplies output names and default thresholds / minimum size.
    outputs : list of str, optional
        Names of the channels of ``probs`` (``"foreground"``, ``"boundary"``).
    settings : LabelSettings, optional
        Mode, thresholds, minimum size, hole filling and splitting (see
        :class:`~napari_unet.settings.LabelSettings`); unset thresholds and
        minimum size come from ``info``.
    cancel : callable or threading.Event, optional
        Checked before each plane of a stack; raises
        :class:`~napari_unet.Cancelled`.
    **options
        Fields of :class:`~napari_unet.settings.LabelSettings` given one by
        one (``threshold=0.4, min_size=30``), overriding ``settings``.

    Returns
    -------
    ndarray
        ``int32`` instance labels (ids unique over a whole stack) or ``uint8``
        mask with the spatial shape.
    """
    settings = split_options(options, labelling=settings, allowed=("labelling",),
                             caller="probabilities_to_labels()")["labelling"]
    probs = np.asarray(probs)
    if probs.ndim == 2:
        probs = probs[None]
    if probs.ndim < 3:
        raise ValueError(f"Expected probabilities of shape (C, ..., Y, X), got {probs.shape}")
    info = info or ModelInfo()
    settings = settings.resolved(info)
    if info.is_semantic and probs.shape[0] > 1:
        return _class_labels(probs, cancel)
    outputs = list(outputs or info.outputs)
    if len(outputs) != probs.shape[0]:
        outputs = ["foreground", "boundary"][: probs.shape[0]] if probs.shape[0] <= 2 else (
            ["foreground"] + [f"channel_{i}" for i in range(1, probs.shape[0])]
        )
    if "foreground" not in outputs:
        raise ValueError(f"The model has no 'foreground' output (outputs: {outputs}).")
    fg_prob = probs[outputs.index("foreground")]
    bnd_prob = probs[outputs.index("boundary")] if "boundary" in outputs else None
    dist_prob = probs[outputs.index("distance")] if "distance" in outputs else None

    spatial = fg_prob.shape
    dtype = np.uint8 if settings.mode == "semantic" else np.int32

    def plane(index):
        return _label_plane(fg_prob[index], None if bnd_prob is None else bnd_prob[index],
                            settings, None if dist_prob is None else dist_prob[index])

    if len(spatial) == 2:
        return plane(())
    letters = _spatial_letters(axes, len(spatial))
    if "Z" in letters and settings.mode == "instance" and settings.instances != "2d":
        return _label_volumes(fg_prob, bnd_prob, letters, settings, cancel, dist_prob)
    out = np.zeros(spatial, dtype=dtype)
    offset = 0
    for index in np.ndindex(*spatial[:-2]):
        if is_cancelled(cancel):
            raise Cancelled("Post-processing cancelled")
        labels = plane(index)
        if settings.mode == "instance":
            offset = offset_ids(labels, offset)
        out[index] = labels
    return out


def predicted_classes(probs: np.ndarray, threshold: float = 0.5, axis: int = 0) -> np.ndarray:
    """Class labels from class probabilities along ``axis``: the argmax over
    several maps (background first), ``p > threshold`` for a single map.

    Returns
    -------
    ndarray
        ``uint8`` (``int32`` beyond 255 classes), without ``axis``.
    """
    probs = np.asarray(probs)
    if probs.shape[axis] == 1:
        return (np.take(probs, 0, axis=axis) > threshold).astype(np.uint8)
    dtype = np.uint8 if probs.shape[axis] <= 256 else np.int32
    return np.argmax(probs, axis=axis).astype(dtype)


def _class_labels(probs: np.ndarray, cancel) -> np.ndarray:
    """Argmax plane by plane (bounded temporaries, cancellable)."""
    spatial = probs.shape[1:]
    if len(spatial) == 2:
        return predicted_classes(probs)
    out = np.zeros(spatial, np.uint8 if probs.shape[0] <= 256 else np.int32)
    for index in np.ndindex(*spatial[:-2]):
        if is_cancelled(cancel):
            raise Cancelled("Post-processing cancelled")
        out[index] = predicted_classes(probs[(slice(None), *index)])
    return out


def _spatial_letters(axes, ndim: int) -> str:
    from .axes import Axes, default_axes, resolve_axes

    if axes is None:
        return default_axes(ndim)
    letters = axes.spatial if isinstance(axes, Axes) else str(axes).upper()
    letters = resolve_axes(ndim, letters, announce=False).letters
    if "C" in letters:
        raise ValueError(f"axes {letters!r}: probabilities have no channel axis")
    return letters


def _label_volumes(fg_prob, bnd_prob, letters, settings, cancel, dist_prob=None) -> np.ndarray:
    """3D labels of each Z volume (one per T frame), ids unique over all."""
    from .instances3d import label_volume

    method = "stitch" if settings.instances == "stitch" else "watershed"
    z = letters.index("Z")
    others = [n for i, n in enumerate(fg_prob.shape[:-2]) if i != z]
    out = np.zeros(fg_prob.shape, dtype=np.int32)
    offset = 0
    for rest in np.ndindex(*others):
        if is_cancelled(cancel):
            raise Cancelled("Post-processing cancelled")
        index = rest[:z] + (slice(None),) + rest[z:]
        labels = label_volume(fg_prob[index], None if bnd_prob is None else bnd_prob[index],
                              settings, voxel_size=settings.voxel_size, method=method,
                              plane_labeller=_stitch_planes_labeller(
                                  settings, None if dist_prob is None else dist_prob[index]))
        offset = offset_ids(labels, offset)
        out[index] = labels
    return out


def _stitch_planes_labeller(settings, dist_volume):
    """The 2D labelling of each plane for IoU stitching: the same as per-plane
    labels, the learned distance included (``instances='2d'``)."""

    def label(fg, bnd, z):
        return _label_plane(fg, bnd, settings, None if dist_volume is None else dist_volume[z])

    return label


def offset_ids(labels: np.ndarray, offset: int) -> int:
    """Shift the ids of ``labels`` (1..n) past ``offset``, in place.

    The one way ids are made unique across planes, tiles or runs: each new
    part's ids start after the largest id so far.

    Returns
    -------
    int
        The new largest id (``offset`` when ``labels`` is empty).
    """
    top = int(labels.max(initial=0))
    if offset and top:
        labels[labels > 0] += labels.dtype.type(offset)
    return offset + top if top else offset


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint16 when the ids fit, else int32.

    napari maps int32 labels through a slow modulo to texture values on
    every data change (~90 ms for 2048x2048); uint16 goes to the GPU as is.
    Converting before a result reaches napari keeps that off its GUI thread.
    """
    top = int(labels.max()) if labels.size else 0
    return labels.astype(np.uint16 if top < 2**16 else np.int32, copy=False)


def _label_plane(prob, bnd_prob, settings: LabelSettings, dist_prob=None) -> np.ndarray:
    min_size = settings.min_size
    labels = np.empty(prob.shape, dtype=np.int32)
    ndi.label(prob > settings.threshold, output=labels)
    n = _drop_small_and_relabel(labels, min_size)
    split = settings.split and settings.mode == "instance"
    if n and (settings.fill_holes or split):
        seeds = (bnd_prob < settings.boundary_threshold
                 if split and bnd_prob is not None else None)
        if split and dist_prob is not None:
            core = dist_prob > settings.distance_threshold
            seeds = core if seeds is None else seeds & core
        if _refine_objects(labels, n, fill_holes=settings.fill_holes, split=split, seeds=seeds,
                           elevation=bnd_prob, min_size=min_size, split_h=settings.split_h,
                           distance=dist_prob, merge_ratio=settings.merge_ratio):
            _drop_small_and_relabel(labels, min_size)
    if settings.mode == "semantic":
        return np.greater(labels, 0, out=np.empty(prob.shape, dtype=np.uint8), casting="unsafe")
    return labels


