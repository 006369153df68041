"""Recording a Labels layer's hand edits from napari's own events.

The bookkeeping itself (tiles, touched ids, merging) is the core's
:class:`napari_unet.edits.EditRecord`; this module only connects it to a
layer:

* ``layer.events.paint`` fires after every brush stroke, eraser stroke,
  fill and polygon, with ``value`` = the history atoms;
* ``layer.events.data`` fires when the whole array is replaced. The widget
  suspends the tracker around its own writes, so any other replacement is
  the user's (or another plugin's) and marks the whole layer as edited.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager

from ..edits import EditRecord


class EditTracker(EditRecord):
    """An :class:`~napari_unet.edits.EditRecord` fed by a Labels layer's events.

    Parameters
    ----------
    layer : napari.layers.Labels
        The layer to watch.
    tile : int
        Edge of the pixel tiles edits are recorded in.
    """

    def __init__(self, layer, tile: int = 32):
        super().__init__(layer.data.shape, tile)
        self.layer = layer
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

    def _on_data(self, event=None) -> None:
        if not self._suspended:
            self.mark_replaced()

    def _on_paint(self, event) -> None:
        for atom in event.value:
            self.record_atom(atom)
        self.version += 1


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
        tracker.absorb(old)
        old.disconnect()
    owned = isinstance(tracker, _RegistryTracker)
    _TRACKERS[layer] = tracker if owned else weakref.ref(tracker)
