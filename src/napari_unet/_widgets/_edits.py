"""Tracking hand edits of a result layer, and merging new results around them.

Edits are recorded from napari's own events, never guessed by diffing:

* ``layer.events.paint`` fires after every brush stroke, eraser stroke,
  fill and polygon, with ``value`` = the history atoms: a
  ``_MaskedPaintAtom`` (``slice_key``, ``mask``, ``old_values``,
  ``new_value``) or a ``(indices, old_values, new_values)`` tuple.
* ``layer.events.data`` fires when the whole array is replaced. The widget
  suspends the tracker around its own writes, so any other replacement is
  the user's (or another plugin's) and marks the whole layer as edited.

What is kept: the edited planes, the edited ``tile`` x ``tile`` pixel tiles
of each plane, and every label id an edit painted or painted over.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager

import numpy as np
from scipy import ndimage as ndi


class EditTracker:
    """Records which planes, tiles and label ids the user edited.

    Parameters
    ----------
    layer : napari.layers.Labels
        The result layer to watch.
    tile : int
        Edge of the pixel tiles edits are recorded in.
    """

    def __init__(self, layer, tile: int = 32):
        self.layer = layer
        self.tile = tile
        self.version = 0  # Bumped on every edit: a run can tell it went stale.
        self.replaced = False
        self.touched_ids: set[int] = set()
        self._tiles: dict[tuple[int, ...], np.ndarray] = {}
        self._suspended = 0
        layer.events.paint.connect(self._on_paint)
        layer.events.data.connect(self._on_data)
        _register(self)  # findable by other widgets: tracker_for(layer)

    def disconnect(self) -> None:
        self.layer.events.paint.disconnect(self._on_paint)
        self.layer.events.data.disconnect(self._on_data)

    @contextmanager
    def suspended(self):
        """Ignore data events while the widget itself writes to the layer."""
        self._suspended += 1
        try:
            yield
        finally:
            self._suspended -= 1

    # ----------------------------------------------------------------- events
    def _on_data(self, event=None) -> None:
        if not self._suspended:
            self.replaced = True
            self.version += 1

    def _on_paint(self, event) -> None:
        for atom in event.value:
            self._record(atom)
        self.version += 1

    def _record(self, atom) -> None:
        if hasattr(atom, "slice_key"):  # _MaskedPaintAtom (paint, fill, polygon)
            starts = [s.start or 0 for s in atom.slice_key]
            if atom.mask is None:  # Every pixel of the bounding box changed.
                self._mark_box(starts, [s.stop for s in atom.slice_key])
            else:
                self._mark_pixels([c + s for c, s in zip(np.nonzero(atom.mask), starts,
                                                         strict=True)])
            old, new = np.asarray(atom.old_values), np.asarray(atom.new_value)
        else:  # (indices, old_values, new_values) from Labels.data_setitem
            indices, old, new = atom
            self._mark_pixels([np.asarray(c).ravel() for c in indices])
            old, new = np.asarray(old), np.asarray(new)
        ids = np.unique(np.concatenate([old.ravel(), new.ravel()]))
        self.touched_ids.update(int(v) for v in ids if v != 0)

    def _grid(self, lead: tuple[int, ...]) -> np.ndarray:
        shape = self.layer.data.shape
        grid_shape = (-(-shape[-2] // self.tile), -(-shape[-1] // self.tile))
        return self._tiles.setdefault(lead, np.zeros(grid_shape, bool))

    def _mark_pixels(self, coords) -> None:
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

    def _mark_box(self, starts, stops) -> None:
        """Mark every tile of a box on every plane it spans."""
        t = self.tile
        ys = slice(starts[-2] // t, -(-stops[-2] // t))
        xs = slice(starts[-1] // t, -(-stops[-1] // t))
        for lead in np.ndindex(*[b - a for a, b in zip(starts[:-2], stops[:-2], strict=True)]):
            key = tuple(a + k for a, k in zip(starts[:-2], lead, strict=True))
            self._grid(key)[ys, xs] = True

    # ---------------------------------------------------------------- queries
    @property
    def edited(self) -> bool:
        return self.replaced or bool(self._tiles)

    def edited_planes(self) -> set[tuple[int, ...]]:
        return set(self._tiles)

    def plane_mask(self, lead: tuple[int, ...], shape_yx: tuple[int, int]) -> np.ndarray | None:
        """Pixel mask of the edited tiles of one plane, or None if untouched."""
        if self.replaced:
            return np.ones(shape_yx, bool)
        grid = self._tiles.get(tuple(lead))
        if grid is None:
            return None
        mask = np.repeat(np.repeat(grid, self.tile, axis=0), self.tile, axis=1)
        return mask[: shape_yx[0], : shape_yx[1]]

    def snapshot(self) -> EditSnapshot:
        """An immutable copy for a worker thread."""
        return EditSnapshot(self.version, self.replaced, frozenset(self.touched_ids),
                            {k: v.copy() for k, v in self._tiles.items()}, self.tile)


class EditSnapshot(EditTracker):
    """Frozen edit record handed to a worker thread (no layer, no events)."""

    def __init__(self, version, replaced, touched_ids, tiles, tile):  # noqa: D107
        self.version, self.replaced, self.touched_ids = version, replaced, touched_ids
        self._tiles, self.tile, self.layer = tiles, tile, None


# --------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------
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


def compose(labels: np.ndarray, existing: np.ndarray | None, region, edits, mode: str):
    """The values to write at ``region.target`` of an existing result layer.

    Parameters
    ----------
    labels : ndarray
        New labels for the region (ids from 1, unique within the region).
    existing : ndarray or None
        The layer's full data; None for a new layer.
    region : Region
        Where ``labels`` go.
    edits : EditTracker or EditSnapshot or None
        The user's edits to keep; None to overwrite.
    mode : {'instance', 'semantic'}

    Returns
    -------
    ndarray (int32) with the shape of ``existing[region.target]``.
    """
    if existing is None:
        return labels
    labels = labels.astype(np.int32, copy=False)
    if mode == "instance" and not region.is_whole or (edits is not None and edits.edited):
        # Ids must stay unique across the layer: shift the new ones past the old.
        offset = int(existing.max()) if mode == "instance" and existing.size else 0
        labels = np.where(labels > 0, labels + offset, 0).astype(np.int32, copy=False)
    if edits is None or not edits.edited:
        return labels
    old = np.asarray(existing[region.target])
    out = labels.copy()
    full_h, full_w = existing.shape[-2:]
    for plane in np.ndindex(*labels.shape[:-2]):
        lead = _plane_lead(region, plane)
        mask = edits.plane_mask(lead, (full_h, full_w))
        if mask is None:
            continue
        out[plane] = merge_plane(old[plane], labels[plane], mask[region.yx], edits.touched_ids,
                                 mode)
    return out


def _plane_lead(region, plane: tuple[int, ...]) -> tuple[int, ...]:
    """Full-layer plane index of ``plane`` (an index within the region)."""
    return tuple(region.lead) if region.lead is not None else tuple(plane)


# --------------------------------------------------------------------------
# Registry: one tracker per layer, findable from any widget
# --------------------------------------------------------------------------
# Keyed weakly by layer. Values are either trackers started by tracker_for()
# (owned here; they hold their layer weakly, so nothing leaks) or weak
# references to trackers a widget created and owns (e.g. a Result's).
_TRACKERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _RegistryTracker(EditTracker):
    """A tracker started by :func:`tracker_for`: holds its layer weakly."""

    @property
    def layer(self):
        return self._layer_ref()

    @layer.setter
    def layer(self, value):
        self._layer_ref = weakref.ref(value)

    def disconnect(self) -> None:
        if self.layer is not None:
            super().disconnect()


def tracker_for(layer, create: bool = True, tile: int = 32) -> EditTracker | None:
    """The edit tracker of a Labels layer, shared by all widgets.

    Parameters
    ----------
    layer : napari.layers.Labels
    create : bool
        Start tracking ``layer`` if nothing tracks it yet (edits made
        before that are unknown).
    tile : int
        Tile edge of a newly started tracker.

    Returns
    -------
    EditTracker or None
        None only if ``create`` is False and the layer is not tracked.
    """
    tracker = _lookup(layer)
    if tracker is None and create:
        tracker = _RegistryTracker(layer, tile)  # registers itself
    return tracker


def _lookup(layer) -> EditTracker | None:
    entry = _TRACKERS.get(layer)
    return entry() if isinstance(entry, weakref.ref) else entry


def _register(tracker: EditTracker) -> None:
    """Make ``tracker`` the one :func:`tracker_for` returns for its layer.

    A widget's own tracker replaces one started by :func:`tracker_for`,
    taking over what it recorded; it must, since only the widget's tracker
    is suspended around the widget's own writes. Between two widget-owned
    trackers, the first (while alive) stays registered.
    """
    layer = tracker.layer
    old = _lookup(layer)
    if old is not None and old is not tracker:
        if not isinstance(old, _RegistryTracker) or isinstance(tracker, _RegistryTracker):
            return
        tracker.replaced |= old.replaced
        tracker.touched_ids |= old.touched_ids
        tracker.version += old.version
        shape = layer.data.shape[-2:]
        for lead in old.edited_planes():
            ys, xs = np.nonzero(old.plane_mask(lead, shape))
            tracker._mark_pixels([np.full(ys.size, v) for v in lead] + [ys, xs])
        old.disconnect()
    owned = isinstance(tracker, _RegistryTracker)
    _TRACKERS[layer] = tracker if owned else weakref.ref(tracker)
