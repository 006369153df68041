"""The Segment dock's review panel: check the least trusted objects first.

After a run, the objects of the current result are listed by confidence,
lowest first (see :mod:`._review_data`). Clicking one centres and zooms
the viewer on it (on its plane, for stacks) and selects its label for
painting; "Mark reviewed" flags the selected objects and "Next unreviewed"
jumps to the least trusted object not yet reviewed. Colouring by
confidence (red: low, green: high) swaps the layer's colormap, restored
when unticked.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import CheckBox, Container, Label, PushButton, Select

from . import _review_data

#: Objects listed at most (lowest confidence first); the rest are counted.
MAX_LISTED = 2000
#: The object's box takes about this fraction of the view after a click.
VIEW_FRACTION = 0.25


class ReviewPanel:
    """Review controls for one result at a time.

    Parameters
    ----------
    viewer : napari.viewer.Viewer

    Attributes
    ----------
    widgets : list
        The panel's magicgui widgets, for the dock to add.
    result : Result or None
        The result under review.
    """

    def __init__(self, viewer):
        self._viewer = viewer
        self.result = None
        self._rows: list[tuple[int, float, bool]] = []  # sorted (id, confidence, reviewed)
        self._saved_colormap = None  # (layer, colormap) while coloured by confidence
        # Its controls are built with the first result: opening the dock
        # (a blocking menu action) need not pay for a panel that has nothing to show.
        self.widget = Container(labels=True)
        self.widget.margins = (0, 0, 0, 0)
        self.widgets = [self.widget]
        self._built = False

    def _build(self) -> None:
        self.summary = Label(label="review", value="")
        self.objects = Select(label="objects", choices=self._choices)
        self.objects.native.setMaximumHeight(160)
        self.mark_button = PushButton(text="Mark reviewed")
        self.next_button = PushButton(text="Next unreviewed")
        self.colour = CheckBox(text="colour by confidence", value=False)
        buttons = Container(widgets=[self.mark_button, self.next_button], layout="horizontal",
                            labels=False)
        buttons.margins = (0, 0, 0, 0)
        self.widget.extend([self.summary, self.objects, buttons, self.colour])
        self.objects.changed.connect(self._on_pick)
        self.mark_button.changed.connect(lambda *_: self.mark_reviewed())
        self.next_button.changed.connect(lambda *_: self.next_unreviewed())
        self.colour.changed.connect(lambda *_: self._apply_colours())
        self._built = True

    # ----------------------------------------------------------------- state
    def show(self, result) -> None:
        """Review ``result`` (None: nothing); refreshes the list from its layer."""
        if result is not self.result:
            self._restore_colours()
        if result is not None and not self._built:
            self._build()
        self.result = result
        if self._built:
            self._reload()
            self._apply_colours()

    def _reload(self) -> None:
        result = self.result
        if result is None or result.layer not in self._viewer.layers:
            self.result, self._rows = None, []
        else:
            t = _review_data.table(result.layer)
            order = np.lexsort((t["index"], t["confidence"]))
            self._rows = [(int(t["index"][k]), float(t["confidence"][k]), bool(t["reviewed"][k]))
                          for k in order]
        with self.objects.changed.blocked():
            selected = [v for v in self.objects.value if any(v == r[0] for r in self._rows)]
            # magicgui matches old and new entries one by one (quadratic: ~50 ms
            # for 1000 objects, in the GUI thread); the entries' text changes
            # with each result anyway, so start from an empty list (half that).
            self.objects.native.clear()
            self.objects.reset_choices()
            self.objects.value = selected
        n, done = len(self._rows), sum(r[2] for r in self._rows)
        if self.result is None:
            self.summary.value = "no result yet"
        elif not n:
            self.summary.value = "no objects with a confidence"
        else:
            more = f" (the {MAX_LISTED} least confident listed)" if n > MAX_LISTED else ""
            self.summary.value = f"{n} objects, {done} reviewed{more}"
        enabled = bool(n)
        for w in (self.mark_button, self.next_button, self.colour):
            w.enabled = enabled

    def _choices(self, widget=None):
        return [(_entry(i, c, r), i) for i, c, r in self._rows[:MAX_LISTED]]

    @property
    def rows(self) -> list[tuple[int, float, bool]]:
        """``(id, confidence, reviewed)`` of the listed objects, lowest confidence first."""
        return list(self._rows)

    # --------------------------------------------------------------- actions
    def _on_pick(self, value) -> None:
        if len(value) == 1:
            self.focus(value[0])

    def focus(self, label: int) -> None:
        """Centre and zoom on object ``label``, on its plane, and select its label."""
        result = self.result
        if result is None or not self._built:
            return
        layer = result.layer
        box = result.boxes.get(int(label))
        if box is not None:
            focus_box(self._viewer, layer, box)
        layer.selected_label = int(label)
        self._viewer.layers.selection.active = layer
        with self.objects.changed.blocked():
            self.objects.value = [int(label)]

    def mark_reviewed(self, labels=None) -> None:
        """Mark ``labels`` (default: the selected objects) as reviewed."""
        if self.result is None or not self._built:
            return
        labels = list(self.objects.value if labels is None else labels)
        if labels:
            _review_data.set_reviewed(self.result.layer, labels)
            self._reload()

    def next_unreviewed(self) -> int | None:
        """Go to the least confident object not yet reviewed; its id, or None if none is left."""
        for label, _, reviewed in self._rows:
            if not reviewed:
                self.focus(label)
                return label
        return None

    # --------------------------------------------------------------- colours
    def _apply_colours(self) -> None:
        if not self._built or not self.colour.value or self.result is None or not self._rows:
            self._restore_colours()
            return
        from napari.utils.colormaps import DirectLabelColormap

        layer = self.result.layer
        if self._saved_colormap is None:
            self._saved_colormap = (layer, layer.colormap)
        colors = {None: np.array([0.6, 0.6, 0.6, 1.0]), 0: np.zeros(4)}
        colors.update({i: confidence_colour(c) for i, c, _ in self._rows})
        layer.colormap = DirectLabelColormap(color_dict=colors)

    def _restore_colours(self) -> None:
        if self._saved_colormap is not None:
            layer, colormap = self._saved_colormap
            self._saved_colormap = None
            layer.colormap = colormap


def confidence_colour(value: float) -> np.ndarray:
    """RGBA from red (0) through yellow (0.5) to green (1)."""
    v = float(np.clip(value, 0, 1))
    return np.array([min(1.0, 2 * (1 - v)), min(1.0, 2 * v), 0.0, 1.0])


def _entry(label: int, confidence: float, reviewed: bool) -> str:
    return f"#{label}   {confidence:.2f}" + ("   ✓ reviewed" if reviewed else "")


def focus_box(viewer, layer, box) -> None:
    """Centre the view on a box of ``layer`` (data coordinates) and zoom onto it.

    The planes of the non-displayed axes are moved to the box's centre, so
    an object of a stack is shown on its own plane.
    """
    lo = np.array([b[0] for b in box], dtype=float)
    hi = np.array([b[1] for b in box], dtype=float) - 1
    centre = np.asarray(layer.data_to_world((lo + hi) / 2), dtype=float)
    size = np.abs(np.asarray(layer.data_to_world(hi + 1), dtype=float)
                  - np.asarray(layer.data_to_world(lo), dtype=float))
    offset = viewer.dims.ndim - layer.ndim  # layer axes are the viewer's last ones
    displayed = [d - offset for d in viewer.dims.displayed if d >= offset]
    for axis in range(layer.ndim):
        if axis not in displayed:
            viewer.dims.set_point(axis + offset, centre[axis])
    # Zoom relative to the view that fits everything (public API only).
    viewer.reset_view()
    extent = viewer.layers.extent.world
    span = max(float(extent[1][d + offset] - extent[0][d + offset]) for d in displayed)
    obj = max(float(size[d]) for d in displayed)
    factor = span * VIEW_FRACTION / max(obj, 1e-9)
    viewer.camera.zoom = viewer.camera.zoom * min(max(factor, 1.0), 64.0)
    viewer.camera.center = tuple(centre[d] for d in displayed)
