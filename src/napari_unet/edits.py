"""Hand edits of label images: recording them, and merging new results around them.

Pure logic on arrays (no napari): the napari docks feed an :class:`EditRecord`
from a Labels layer's paint events (``napari_unet._widgets._edits``), and the
core uses it to

* keep the user's edits when a new prediction is written (:func:`compose`,
  :func:`merge_plane`): edited tiles and every object an edit touched stay
  as the user left them;
* find what to export as training data (:func:`edited_boxes`).

Edits are recorded per plane on a grid of ``tile`` x ``tile`` pixel tiles,
with the set of label ids an edit painted or painted over.
"""

from __future__ import annotations

import numpy as np

# SciPy (here and through .postprocess) is imported where it is used: the
# napari docks import this module while they open, and SciPy's import is slow.


class EditRecord:
    """Which planes, tiles and label ids of a label image were edited.

    Parameters
    ----------
    shape : tuple of int
        Shape of the label image (leading axes, then Y, X).
    tile : int
        Edge of the pixel tiles edits are recorded in.
    """

    def __init__(self, shape, tile: int = 32):
        self.shape = tuple(int(s) for s in shape)
        self.tile = int(tile)
        self.version = 0  # Bumped on every edit: a run can tell it went stale.
        self.replaced = False  # The whole array was replaced: everything is edited.
        self.touched_ids: set[int] = set()
        self._tiles: dict[tuple[int, ...], np.ndarray] = {}

    # -------------------------------------------------------------- recording
    def record_atom(self, atom) -> None:
        """Record one napari paint-history atom.

        Either a masked atom (attributes ``slice_key``, ``mask``,
        ``old_values``, ``new_value``: brush, fill, polygon) or an
        ``(indices, old_values, new_values)`` tuple (``Labels.data_setitem``).
        """
        if hasattr(atom, "slice_key"):
            starts = [s.start or 0 for s in atom.slice_key]
            if atom.mask is None:  # Every pixel of the bounding box changed.
                self.mark_box(starts, [s.stop for s in atom.slice_key])
            else:
                self.mark_pixels([c + s for c, s in zip(np.nonzero(atom.mask), starts,
                                                        strict=True)])
            old, new = np.asarray(atom.old_values), np.asarray(atom.new_value)
        else:
            indices, old, new = atom
            self.mark_pixels([np.asarray(c).ravel() for c in indices])
            old, new = np.asarray(old), np.asarray(new)
        ids = np.unique(np.concatenate([old.ravel(), new.ravel()]))
        self.touched_ids.update(int(v) for v in ids if v != 0)

    def mark_replaced(self) -> None:
        """The whole array was replaced: treat everything as edited."""
        self.replaced = True
        self.version += 1

    def _grid(self, lead: tuple[int, ...]) -> np.ndarray:
        grid_shape = (-(-self.shape[-2] // self.tile), -(-self.shape[-1] // self.tile))
        return self._tiles.setdefault(lead, np.zeros(grid_shape, bool))

    def mark_pixels(self, coords) -> None:
        """Mark the tiles holding pixels given as one index array per axis."""
        coords = [np.asarray(c, dtype=np.int64) for c in coords]
        if not coords[0].size:
            return
        ty, tx = coords[-2] // self.tile, coords[-1] // self.tile
        if len(coords) == 2:
            self._grid(())[ty, tx] = True
            return
        lead = np.stack(coords[:-2], axis=1)
        for key in np.unique(lead, axis=0):
            sel = np.all(lead == key, axis=1)
            self._grid(tuple(int(v) for v in key))[ty[sel], tx[sel]] = True

    def mark_box(self, starts, stops) -> None:
        """Mark every tile of a box on every plane it spans."""
        t = self.tile
        ys = slice(starts[-2] // t, -(-stops[-2] // t))
        xs = slice(starts[-1] // t, -(-stops[-1] // t))
        for lead in np.ndindex(*[b - a for a, b in zip(starts[:-2], stops[:-2], strict=True)]):
            key = tuple(a + k for a, k in zip(starts[:-2], lead, strict=True))
            self._grid(key)[ys, xs] = True

    def absorb(self, other: EditRecord) -> None:
        """Take over what another record of the same image holds."""
        self.replaced |= other.replaced
        self.touched_ids |= other.touched_ids
        self.version += other.version
        for lead in other.edited_planes():
            ys, xs = np.nonzero(other.plane_mask(lead, self.shape[-2:]))
            self.mark_pixels([np.full(ys.size, v) for v in lead] + [ys, xs])

    # ---------------------------------------------------------------- queries
    @property
    def edited(self) -> bool:
        return self.replaced or bool(self._tiles)

    def edited_planes(self) -> set[tuple[int, ...]]:
        return set(self._tiles)

    def tile_grid(self, lead: tuple[int, ...]) -> np.ndarray | None:
        """The boolean grid of edited tiles of one plane, or None if untouched."""
        grid = self._tiles.get(tuple(lead))
        return None if grid is None else grid.copy()

    def plane_mask(self, lead: tuple[int, ...], shape_yx: tuple[int, int]) -> np.ndarray | None:
        """Pixel mask of the edited tiles of one plane, or None if untouched."""
        if self.replaced:
            return np.ones(shape_yx, bool)
        grid = self._tiles.get(tuple(lead))
        if grid is None:
            return None
        mask = np.repeat(np.repeat(grid, self.tile, axis=0), self.tile, axis=1)
        return mask[: shape_yx[0], : shape_yx[1]]

    def snapshot(self) -> EditRecord:
        """An independent copy (e.g. for a worker while editing goes on)."""
        copy = EditRecord(self.shape, self.tile)
        copy.version, copy.replaced = self.version, self.replaced
        copy.touched_ids = set(self.touched_ids)
        copy._tiles = {k: v.copy() for k, v in self._tiles.items()}
        return copy


def merge_plane(old: np.ndarray, new: np.ndarray, edited: np.ndarray,
                touched_ids, mode: str) -> np.ndarray:
    """Combine one plane of the user's edited labels with a new result.

    Kept from ``old``: everything inside edited tiles, and every object that
    intersects them or whose id an edit touched, in full. New objects fill
    the rest, except those overlapping anything kept (the user decided what
    is there, including erased areas).

    ``new`` must already be offset so that its ids do not collide with old ones.
    """
    if mode == "semantic":
        from scipy import ndimage as ndi

        old_obj = ndi.label(old > 0)[0]
        new_obj = ndi.label(new > 0)[0]
        touched = ()
    else:
        old_obj, new_obj, touched = old, new, touched_ids
    keep_ids = set(np.unique(old_obj[edited]).tolist()) | set(touched)
    keep_ids.discard(0)
    kept = edited | (np.isin(old_obj, list(keep_ids)) if keep_ids else False)
    blocked = np.unique(new_obj[kept])
    accept = (new_obj > 0) & ~np.isin(new_obj, blocked[blocked > 0])
    out = np.where(kept, old, 0).astype(np.int32, copy=False)
    out[accept] = new[accept]
    return out


def compose(labels: np.ndarray, existing: np.ndarray | None, region, edits, mode: str,
            volume_axis: int | None = None):
    """The values to write at ``region.target`` of an existing result layer.

    Parameters
    ----------
    labels : ndarray
        New labels for the region (ids from 1, unique within the region).
    existing : ndarray or None
        The layer's full data; None for a new layer.
    region : Region
        Where ``labels`` go.
    edits : EditRecord or None
        The user's edits to keep; None to overwrite.
    mode : {'instance', 'semantic'}
    volume_axis : int, optional
        The Z axis of 3D objects in ``labels`` (a whole-layer run with 3D
        instances): an object an edit touched is kept through all its planes,
        and a new 3D object overlapping anything kept is dropped in all.

    Returns
    -------
    ndarray (int32) with the shape of ``existing[region.target]``.
    """
    if existing is None:
        return labels
    labels = labels.astype(np.int32, copy=False)
    if mode == "instance" and not region.is_whole or (edits is not None and edits.edited):
        # Ids must stay unique across the layer: shift the new ones past the old.
        labels = labels.copy()
        from .postprocess import offset_ids

        offset_ids(labels, int(existing.max()) if mode == "instance" and existing.size else 0)
    if edits is None or not edits.edited:
        return labels
    old = np.asarray(existing[region.target])
    out = labels.copy()
    full_h, full_w = existing.shape[-2:]
    if volume_axis is not None and region.lead is None and mode == "instance":
        return _compose_volumes(labels, old, out, region, edits, volume_axis)
    for plane in np.ndindex(*labels.shape[:-2]):
        lead = _plane_lead(region, plane)
        mask = edits.plane_mask(lead, (full_h, full_w))
        if mask is None:
            continue
        out[plane] = merge_plane(old[plane], labels[plane], mask[region.yx], edits.touched_ids,
                                 mode)
    return out


def _compose_volumes(labels, old, out, region, edits, z_axis: int) -> np.ndarray:
    """:func:`merge_plane` over each whole Z volume (one per T frame)."""
    full = edits.shape[-2:]
    others = [n for i, n in enumerate(labels.shape[:-2]) if i != z_axis]
    for rest in np.ndindex(*others):
        index = rest[:z_axis] + (slice(None),) + rest[z_axis:]
        edited = np.zeros(labels[index].shape, bool)
        for z in range(edited.shape[0]):
            mask = edits.plane_mask(rest[:z_axis] + (z,) + rest[z_axis:], full)
            if mask is not None:
                edited[z] = mask[region.yx]
        if edited.any() or edits.touched_ids:
            out[index] = merge_plane(old[index], labels[index], edited, edits.touched_ids,
                                     "instance")
    return out


def _plane_lead(region, plane: tuple[int, ...]) -> tuple[int, ...]:
    """Full-layer plane index of ``plane`` (an index within the region)."""
    return tuple(region.lead) if region.lead is not None else tuple(plane)


def edited_boxes(grid: np.ndarray, tile: int, shape_yx, min_size: int = 128):
    """``(y0, y1, x0, x1)`` crops covering the edited tiles of one plane.

    Nearby edited tiles are grouped (8-connected, one tile apart), each
    group's box gets one tile of margin (context for the edit) and is
    grown to at least ``min_size`` px, within the plane; overlapping boxes
    are merged, so no pixel is exported twice.
    """
    h, w = shape_yx
    from scipy import ndimage as ndi

    grown = ndi.binary_dilation(grid, structure=np.ones((3, 3), bool))
    boxes = []
    for sl in ndi.find_objects(ndi.label(grown, structure=np.ones((3, 3), int))[0]):
        box = [sl[0].start * tile, min(h, sl[0].stop * tile),
               sl[1].start * tile, min(w, sl[1].stop * tile)]
        for lo, size in ((0, h), (2, w)):
            need = min(min_size, size) - (box[lo + 1] - box[lo])
            if need > 0:
                start = min(max(0, box[lo] - need // 2), size - (box[lo + 1] - box[lo] + need))
                box[lo], box[lo + 1] = start, start + box[lo + 1] - box[lo] + need
        boxes.append(box)
    merged = True
    while merged:  # grown boxes may now overlap
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    boxes[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]),
                                max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [tuple(int(v) for v in b) for b in sorted(boxes)]
