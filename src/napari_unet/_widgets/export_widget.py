"""The Export training data dock widget (Plugins › napari-unet › Export training data).

Writes (image plane, corrected labels) pairs of two layers into a dataset
folder with :func:`napari_unet.export.export_pairs`: the whole layer, the
current slice, or only what the user edited. Edits are those recorded by the
shared edit trackers (:func:`._edits.tracker_for`): the Segment widget's
result layers are tracked from their creation, and this widget starts
tracking every other Labels layer as soon as it is shown.

"What counts" chooses between whole-image pairs (the default) and sparse
annotation: only the objects marked as reviewed (the Labels layer's
``features["reviewed"]``, ``index`` = label id) and the regions edited by
hand count for training, each grown by a margin
(:func:`napari_unet.counted.counted_mask`); a mask of them is written with
each pair, and planes or crops holding none are not exported.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, FileEdit, Label, LineEdit, PushButton
from napari.layers import Image, Labels
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info

from ..axes import channel_axis_between
from ..counted import counted_mask, reviewed_ids_from_features
from ..edits import edited_boxes
from ..export import Region, export_pairs, read_manifest
from ..tiff import normalize_unit
from . import _layers
from ._base import DockWidget
from ._edits import tracker_for

if TYPE_CHECKING:
    import napari

SCOPES = [("whole layer", "whole"), ("current slice", "current"),
          ("edited slices", "edited slices"),
          ("edited regions (crops around edits)", "edited regions")]
COUNTS = [("whole image", "whole"), ("reviewed and corrected regions", "reviewed")]
#: Smallest edge of an "edited regions" crop: the default training patch.
MIN_CROP = 128
#: Exports writing more pixels than this run in a worker thread.
WORKER_PIXELS = 16_000_000


class ExportError(Exception):
    """A problem with the user's inputs, shown as is."""


def channel_axis_for(image, shape) -> int | None:
    """The data channel axis of ``image`` whose removal gives ``shape``.

    The core's rule (:func:`napari_unet.axes.channel_axis_between`) with what
    the layer says: its RGB flag and its axis labels.

    Raises
    ------
    ExportError
        If no axis makes the shapes match.
    """
    try:
        return channel_axis_between(_layers.base_data(image).shape, shape, rgb=image.rgb,
                                    names=image.axis_labels)
    except ValueError as err:
        raise ExportError(f"'{image.name}': {err}") from None


def model_of(labels_layer) -> str | None:
    """Name of the model that made the first prediction of a Labels layer.

    Read from ``layer.metadata['napari_unet']['model']`` (or
    ``layer.metadata['model']``); None when the layer does not say.
    """
    meta = labels_layer.metadata or {}
    ours = meta.get("napari_unet")
    value = ours.get("model") if isinstance(ours, dict) else meta.get("model")
    return str(value) if value else None


def classes_of(labels_layer) -> list[str] | None:
    """Class names of a Labels layer painted with class values, from its
    ``features`` (a ``class`` or ``name`` column); None for instance labels."""
    from ..export import class_names_from_features

    try:
        return class_names_from_features(getattr(labels_layer, "features", None))
    except ValueError as err:
        raise ExportError(f"'{labels_layer.name}': {err}") from None


def write_export(image_data, channel_axis, labels, regions, folder, **kwargs) -> list[dict]:
    """Export ``regions``, reading only the image planes they need.

    In-memory images are passed whole (no copy). Lazy ones (dask, zarr) are
    read plane by plane and broadcast along the leading axes (no memory),
    so a region's slice index is still recorded as is.
    """
    if isinstance(image_data, np.ndarray):
        return export_pairs(image_data, labels, folder, regions=regions,
                            channel_axis=channel_axis, **kwargs)
    by_plane = defaultdict(list)
    for region in regions:
        by_plane[region.index].append(region)
    written = []
    lead_shape = labels.shape[:-2]
    for lead, group in by_plane.items():
        index = list(lead) + [slice(None)] * 2
        if channel_axis is not None:
            index.insert(channel_axis, slice(None))
        plane = np.asarray(image_data[tuple(index)])
        if channel_axis is not None:  # the channel axis is the only one left before Y, X
            plane = np.moveaxis(plane, 0 if channel_axis < len(lead) + 2 else -1, -1)
        extra = plane.shape[2:]
        written += export_pairs(np.broadcast_to(plane, lead_shape + plane.shape), labels, folder,
                                regions=group, channel_axis=-1 if extra else None, **kwargs)
    return written


class ExportWidget(DockWidget):
    """Export image / corrected labels pairs as a training dataset.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari when the widget is docked from the manifest.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer)
        self._auto_name = ""
        self.image = ComboBox(label="image", nullable=True, choices=lambda w: [
            (la.name, la) for la in self._viewer.layers if isinstance(la, Image)])
        self.label_layer = ComboBox(label="labels", nullable=True, choices=lambda w: [
            (la.name, la) for la in self._viewer.layers if isinstance(la, Labels)])
        self.folder = FileEdit(label="dataset folder", mode="d")
        self.base_name = LineEdit(label="base name")
        self.scope = ComboBox(label="export", choices=SCOPES, value="edited slices")
        self.counts = ComboBox(label="what counts", choices=COUNTS, value="whole",
                               tooltip="Sparse annotation: train only on the objects marked "
                                       "as reviewed and the regions corrected by hand")
        self.export_button = PushButton(text="Export")
        self.status = Label(value="")
        self.extend([self.image, self.label_layer, self.folder, self.base_name, self.scope,
                     self.counts, self.export_button, self.status])
        self.image.changed.connect(self._on_image)
        self.export_button.changed.connect(self.export)
        self._viewer.layers.events.inserted.connect(self._on_inserted)
        for layer in self._viewer.layers:
            self._on_inserted(layer=layer)
        self._on_image()

    # ---------------------------------------------------------------- fields
    def _on_inserted(self, event=None, layer=None):
        layer = layer if layer is not None else event.value
        if isinstance(layer, Labels):
            tracker_for(layer)  # edits are recorded from now on
        self.image.reset_choices()
        self.label_layer.reset_choices()
        if isinstance(layer, Labels):
            self.label_layer.value = layer
        elif isinstance(layer, Image) and self.image.value is None:
            self.image.value = layer

    def _on_image(self, *args):
        name = self.image.value.name if self.image.value is not None else ""
        if self.base_name.value in ("", self._auto_name):  # the user's own name is kept
            self.base_name.value = name
        self._auto_name = name

    # ---------------------------------------------------------------- export
    def export(self, *args):
        """Export with the current settings (the Export button).

        Returns
        -------
        list of dict, napari worker or None
            The manifest entries written (small exports), the worker doing
            a large one, or None after an error (shown as a notification).
        """
        try:
            plan = self._plan()
        except (ExportError, ValueError, OSError) as err:
            show_error(f"Nothing exported: {err}")
            return None
        if plan["pixels"] <= WORKER_PIXELS:
            return self._finish(self._run(plan))
        plan["labels"] = np.array(plan["labels"])  # frozen: edits go on meanwhile
        worker = thread_worker(self._run, start_thread=False)(plan)
        worker.returned.connect(self._finish)
        self.export_button.enabled = False
        self.status.value = "exporting…"
        return self._start_worker(worker)

    def _plan(self) -> dict:
        """Everything an export needs, checked before anything is written."""
        image, labels_layer = self.image.value, self.label_layer.value
        if image is None or labels_layer is None:
            raise ExportError("choose an image layer and a labels layer first.")
        labels = _layers.base_data(labels_layer)
        if labels.ndim < 2:
            raise ExportError(f"the labels '{labels_layer.name}' are not an image.")
        axis = channel_axis_for(image, labels.shape)
        folder = self._folder()
        counted = (self._counted(labels_layer, labels) if self.counts.value == "reviewed"
                   else None)
        regions = self._regions(image, axis, labels_layer, labels.shape, counted)
        scale = [float(s) for s in labels_layer.scale[-2:]]
        unit = normalize_unit(labels_layer.units[-1])
        name = self.base_name.value.strip() or image.name
        pixels = sum(((r.bbox[1] - r.bbox[0]) * (r.bbox[3] - r.bbox[2])) if r.bbox else
                     int(np.prod(labels.shape[-2:])) for r in regions)
        return {"image_data": _layers.base_data(image), "channel_axis": axis, "labels": labels,
                "regions": regions, "folder": folder, "pixels": pixels,
                "kwargs": {"name": name, "scale": scale, "unit": unit,
                           "source_layer": image.name, "labels_layer": labels_layer.name,
                           "model": model_of(labels_layer), "counted": counted,
                           "classes": classes_of(labels_layer)}}

    def _folder(self) -> Path:
        text = self.folder.line_edit.value.strip()
        if not text:
            raise ExportError("choose a dataset folder first.")
        folder = Path(text).expanduser()
        if folder.exists() and not folder.is_dir():
            raise ExportError(f"{folder} is a file, not a folder.")
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ExportError(f"cannot write to {existing}.")
        read_manifest(folder)  # a foreign dataset.json is refused now, not half-way
        return folder

    @staticmethod
    def _counted(labels_layer, labels) -> np.ndarray:
        """The pixels that count: reviewed objects and edited regions, with a margin."""
        tracker = tracker_for(labels_layer, create=False)
        reviewed = reviewed_ids_from_features(getattr(labels_layer, "features", None))
        counted = np.zeros(labels.shape, bool)
        for plane in np.ndindex(*labels.shape[:-2]):
            edited = tracker.plane_mask(plane, labels.shape[-2:]) if tracker else None
            if reviewed or edited is not None:
                counted[plane] = counted_mask(np.asarray(labels[plane]), reviewed, edited)
        if not counted.any():
            raise ExportError(f"nothing in '{labels_layer.name}' is marked as reviewed or was "
                              "edited: choose 'whole image' under 'what counts'.")
        return counted

    def _regions(self, image, axis, labels_layer, shape, counted=None) -> list[Region]:
        tracker = tracker_for(labels_layer, create=False)
        lead_shape = tuple(shape[:-2])
        all_planes = list(np.ndindex(*lead_shape))
        if tracker is not None and tracker.replaced:
            edited = set(all_planes)  # the whole array was replaced by hand
        else:
            edited = {p for p in (tracker.edited_planes() if tracker else ())
                      if len(p) == len(lead_shape) and all(0 <= i < n for i, n in
                                                          zip(p, lead_shape, strict=True))}
        scope = self.scope.value
        if scope == "whole":
            return [Region(p, None, p in edited) for p in all_planes]
        if scope == "current":
            try:
                region = _layers.scope_region(self._viewer, image, axis, "current slice")
            except ValueError as err:
                raise ExportError(str(err)) from None
            lead = tuple(region.lead) if region.lead is not None else ()
            return [Region(lead, None, lead in edited)]
        if counted is not None:  # sparse: the planes and crops holding counted pixels
            return self._counted_regions(counted, edited, all_planes)
        if not edited:
            raise ExportError(f"nothing in '{labels_layer.name}' was edited since it was "
                              "opened (edits are tracked while this widget or the Segment "
                              "widget is open).")
        if scope == "edited slices" or tracker.replaced:
            return [Region(p, None, True) for p in sorted(edited)]
        regions = []
        for plane in sorted(edited):
            mask = tracker.plane_mask(plane, shape[-2:])
            grid = mask[::tracker.tile, ::tracker.tile]  # one pixel per tile
            regions += [Region(plane, box, True)
                        for box in edited_boxes(grid, tracker.tile, shape[-2:], MIN_CROP)]
        return regions

    def _counted_regions(self, counted, edited, all_planes) -> list[Region]:
        """Edited slices / regions of a sparse export: those holding counted pixels."""
        planes = [p for p in all_planes if counted[p].any()]
        if self.scope.value == "edited slices":
            return [Region(p, None, p in edited) for p in planes]
        tile, (h, w) = 32, counted.shape[-2:]
        regions = []
        for plane in planes:
            padded = np.pad(counted[plane], ((0, -h % tile), (0, -w % tile)))
            grid = padded.reshape(padded.shape[0] // tile, tile, -1, tile).any(axis=(1, 3))
            regions += [Region(plane, box, plane in edited)
                        for box in edited_boxes(grid, tile, (h, w), MIN_CROP)]
        return regions

    @staticmethod
    def _run(plan) -> object:
        try:
            return write_export(plan["image_data"], plan["channel_axis"], plan["labels"],
                                plan["regions"], plan["folder"], **plan["kwargs"])
        except Exception as err:  # noqa: BLE001 - reported, never lost
            return err

    def _finish(self, written):
        self.export_button.enabled = True
        if isinstance(written, BaseException):
            self.status.value = "failed"
            show_error(f"Export failed: {written}")
            return None
        if not written:
            self.status.value = "nothing to export"
            show_error("Nothing exported: the selected planes are empty" + (
                " or hold nothing reviewed or corrected." if self.counts.value == "reviewed"
                else "."))
            return written
        corrected = sum(e["hand_corrected"] for e in written)
        folder = Path(self.folder.line_edit.value).expanduser()
        sparse = ("; only reviewed and corrected regions count"
                  if written[0].get("counted") else "")
        self.status.value = f"{len(written)} pairs written"
        show_info(f"Exported {len(written)} pairs ({corrected} hand-corrected{sparse}) to "
                  f"{folder}: "
                  f"{written[0]['image']} … {written[-1]['image']}")
        return written
