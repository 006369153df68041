"""3D instances of a Z stack from the per-plane probabilities of the 2D U-Net.

The network sees one plane at a time; a nucleus spans many planes. Two ways
to make one object per nucleus through Z:

* ``"watershed"`` (default, chosen by measurement on the shipped 3D sample,
  see ``benchmarks/bench_3d.py``): a 3D marker-controlled watershed of the
  whole volume. The foreground is the thresholded probability; markers are
  the h-maxima of the 3D distance transform of the *core* (foreground that
  is not boundary), computed with the voxel size (``sampling=``) so an
  anisotropic stack is measured in micrometres, not in voxels; the relief is
  the boundary probability (or the negated distance for a model without a
  boundary output).
* ``"stitch"``: the 2D objects of each plane linked to the objects of the
  plane above when their IoU reaches ``stitch_threshold`` (cellpose's
  ``stitch_threshold``), one-to-one.

Both return ``int32`` labels with ids 1..n unique over the volume. T frames
are never passed here together: each Z volume is labelled on its own.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["label_volume", "stitch_planes"]


def _spacing(voxel_size) -> tuple[float, float, float]:
    from .settings import voxel_size_tuple

    return (1.0, 1.0, 1.0) if voxel_size is None else voxel_size_tuple(voxel_size)


def label_volume(fg, bnd, settings, *, voxel_size=None, method: str = "watershed",
                 plane_labeller=None, open_faces: tuple[bool, bool] = (False, False)
                 ) -> np.ndarray:
    """3D instance labels of one ``(Z, Y, X)`` volume.

    Parameters
    ----------
    fg : ndarray, (Z, Y, X)
        Foreground probability.
    bnd : ndarray, (Z, Y, X) or None
        Boundary probability, for models that have that output.
    settings : LabelSettings
        Resolved :class:`~napari_unet.settings.LabelSettings` (thresholds,
        ``min_volume``, ``split_h``, ``stitch_threshold``).
    voxel_size : (float, float, float), optional
        ``(Z, Y, X)`` voxel size, any unit; None: isotropic.
    method : {'watershed', 'stitch'}
    plane_labeller : callable, optional
        ``f(fg_plane, bnd_plane, z) -> int32 labels``: the 2D labelling of
        plane ``z`` used by ``'stitch'``.
    open_faces : (bool, bool)
        Whether the volume continues beyond its first / last plane (a slab of
        a larger volume, :mod:`napari_unet.largescale.volume`). Objects on an
        open face are never removed as too small here: only the caller knows
        their whole size.

    Returns
    -------
    ndarray, int32, (Z, Y, X)
    """
    fg = np.asarray(fg)
    if fg.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) volume, got shape {fg.shape}")
    spacing = _spacing(voxel_size)
    if method == "stitch":
        planes = [plane_labeller(fg[z], None if bnd is None else bnd[z], z)
                  for z in range(fg.shape[0])]
        labels = stitch_planes(np.stack(planes), settings.stitch_threshold)
        from .postprocess import _drop_small_and_relabel

        _drop_small_and_relabel(labels, _min_volume(settings, spacing))
        return labels
    if method != "watershed":
        raise ValueError(f"method must be 'watershed' or 'stitch', got {method!r}")
    return _watershed_3d(fg, bnd, settings, spacing, open_faces)


def foreground_mask(fg, settings) -> np.ndarray:
    """The voxels 3D objects are made of: foreground above the threshold,
    holes filled plane by plane (the same rule in memory and out of core)."""
    mask = np.asarray(fg) > settings.threshold
    if settings.fill_holes:
        for z in range(mask.shape[0]):
            mask[z] = ndi.binary_fill_holes(mask[z])
    return mask


def _on_open_faces(labels, open_faces) -> np.ndarray:
    """Ids of the objects touching an open face of the volume."""
    faces = [labels[0]] if open_faces[0] else []
    faces += [labels[-1]] if open_faces[1] else []
    return np.unique(np.concatenate([f.ravel() for f in faces])) if faces else np.zeros(0, int)


def _watershed_3d(fg, bnd, settings, spacing, open_faces=(False, False)) -> np.ndarray:
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    from .postprocess import _drop_small_and_relabel

    mask = foreground_mask(fg, settings)
    labels = np.empty(mask.shape, np.int32)
    n = ndi.label(mask, output=labels)
    if n == 0:
        return labels
    n = _drop_small_and_relabel(labels, _min_volume(settings, spacing),
                                protect=_on_open_faces(labels, open_faces))
    if n == 0 or not settings.split:
        return labels
    mask = labels > 0
    core = mask & (bnd < settings.boundary_threshold) if bnd is not None else mask
    # Distance to the object's edge in physical units: an anisotropic stack
    # would otherwise look flattened along Z to the seeds.
    dist = ndi.distance_transform_edt(core, sampling=spacing)
    unit = min(spacing)
    # h-maxima on integers (0.01 voxel steps) avoids float plateaus.
    q = np.round(dist / unit * 100).astype(np.int32)
    # Three times the 2D depth: a 3D distance map has more shallow maxima
    # (each plane's outline noise); measured on the 3D sample, also with
    # every 2nd or 3rd plane (bench_3d.py --z-step).
    peaks = h_maxima(q, int(round(3 * settings.split_h * 100))).astype(bool) & core
    markers = np.empty(mask.shape, np.int32)
    ndi.label(peaks, output=markers, structure=np.ones((3, 3, 3), bool))
    relief = bnd if bnd is not None else -dist
    min_volume = _min_volume(settings, spacing)
    out = watershed(relief, markers, mask=mask)
    # A marker whose basin is tiny is a fragment of its neighbour (a cap
    # or a notch of a nucleus): flood again without it.
    sizes = np.bincount(out.ravel())
    small = np.flatnonzero(sizes < min_volume)
    small = np.setdiff1d(small[small > 0], _on_open_faces(out, open_faces))
    if len(small):
        markers[np.isin(markers, small)] = 0
        out = watershed(relief, markers, mask=mask)
    # Components without a marker (all boundary) stay as they are.
    orphan = mask & (out == 0)
    if orphan.any():
        extra = np.empty(mask.shape, np.int32)
        k = ndi.label(orphan, output=extra)
        if k:
            out[orphan] = extra[orphan] + out.max()
    _drop_small_and_relabel(out, min_volume, protect=_on_open_faces(out, open_faces))
    return out


def _min_volume(settings, spacing) -> int:
    """Smallest 3D object kept, in voxels of this stack.

    ``min_volume`` (default 64 x ``min_size``) counts cubes whose edge is
    the finest voxel edge, so a stack sampled twice as coarsely along Z
    keeps the same physical objects.
    """
    volume = (64 * int(settings.min_size) if settings.min_volume is None
              else int(settings.min_volume))
    cube = min(spacing) ** 3
    return max(1, int(np.ceil(volume * cube / float(np.prod(spacing)))))


def stitch_planes(planes: np.ndarray, threshold: float) -> np.ndarray:
    """Link per-plane 2D objects into 3D objects by IoU with the plane above.

    Each object of plane ``z`` takes the id of the object of plane ``z-1``
    it overlaps best (one-to-one, by IoU, highest first) when that IoU is at
    least ``threshold``; otherwise it starts a new object.

    Parameters
    ----------
    planes : ndarray, (Z, Y, X), int
        2D labels of each plane (ids need not be unique across planes).
    threshold : float
        Minimum IoU in (0, 1].

    Returns
    -------
    ndarray, int32
        Ids 1..n unique over the volume.
    """
    planes = np.asarray(planes)
    out = np.zeros(planes.shape, np.int32)
    next_id = 1
    for z in range(planes.shape[0]):
        cur = planes[z]
        ids = np.unique(cur[cur > 0])
        mapping = {}
        if z > 0 and len(ids):
            prev = out[z - 1]
            both = (cur > 0) & (prev > 0)
            if both.any():
                pairs, inter = np.unique(np.stack([cur[both], prev[both]]), axis=1,
                                         return_counts=True)
                a_cur = dict(zip(*np.unique(cur[cur > 0], return_counts=True), strict=True))
                a_prev = dict(zip(*np.unique(prev[prev > 0], return_counts=True), strict=True))
                iou = inter / np.array([a_cur[c] + a_prev[p] - i for (c, p), i
                                        in zip(pairs.T, inter, strict=True)])
                used = set()
                for k in np.argsort(-iou, kind="stable"):
                    c, p = int(pairs[0, k]), int(pairs[1, k])
                    if iou[k] < threshold:
                        break
                    if c in mapping or p in used:
                        continue
                    mapping[c] = p
                    used.add(p)
        lut = np.zeros(int(cur.max(initial=0)) + 1, np.int32)
        for c in ids:
            c = int(c)
            if c in mapping:
                lut[c] = mapping[c]
            else:
                lut[c] = next_id
                next_id += 1
        out[z] = lut[cur]
    return out
