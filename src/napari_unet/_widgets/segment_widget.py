"""The Segment dock widget (Plugins › napari-unet › Segment).

The widget only adapts napari layers to the headless core: prediction,
post-processing and re-labelling run in the segmentation worker process
(:mod:`napari_unet.worker`, started when the dock opens); the GUI thread only
reads settings, creates/updates layers and shows progress and notifications.
napari's process never imports TensorFlow.

The dock is assembled from small modules: its controls, one section per
concern (:mod:`._segment_options`), runs (:mod:`._segment_run`),
re-labelling on settings changes (:mod:`._segment_relabel`) and the review
of a result's objects by confidence (:mod:`._review`, :mod:`._review_data`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from magicgui.widgets import Label
from napari.layers import Image
from qtpy.QtCore import QTimer

from ..settings import PredictionSettings, default_batch
from ..worker.protocol import WarmUp
from . import _gc_pause, _job, _layers, _models, _notify, _worker
from . import _segment_options as options
from ._base import DockWidget
from ._bioimageio import BioimageioExport
from ._models import LOAD_ENTRY, ModelRegistry
from ._progress import DockProgress, RunState
from ._results import Result
from ._segment_relabel import SegmentRelabel
from ._segment_run import SegmentRuns

if TYPE_CHECKING:
    import napari

#: Delay before preloading what napari's first Labels layer imports (ms).
PRELOAD_DELAY_MS = 250


class SegmentWidget(SegmentRuns, SegmentRelabel, DockWidget):
    """Segment an Image layer with a U-Net into a Labels layer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari when the widget is docked from the manifest.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer)
        self.registry = ModelRegistry()
        self.results: list[Result] = []
        self._run: RunState | None = None
        self._run_count = 0
        self._relabeling = self._relabel_pending = False
        self._model_value = None
        self._initializing = True
        self.last_result: _job.RunResult | None = None  # of the last finished run
        # Started (in the background) by the first dock; shared with later ones.
        self.client = _worker.client("segment")

        # Qt helpers are children of the widget, so they die with it.
        self._inbox = _worker.Inbox(self.native)
        self.bioimageio = BioimageioExport(self, self.client, self._inbox, self._export_model)
        self.progress = DockProgress()
        self.status = Label(label="", value="")
        model = options.model_section(self)  # First: the channel choices depend on it.
        labelling = options.labelling_section(self)  # Changes re-label the last result.
        self.extend([*options.input_section(self), *model, *labelling,
                     *options.tiling_section(self),
                     *options.result_section(self), *options.run_section(self),
                     self.progress.widget, self.status, *options.review_section(self)])

        # Settings changes re-label from the cache after a short pause.
        self._relabel_timer = QTimer(self.native)
        self._relabel_timer.setSingleShot(True)
        self._relabel_timer.setInterval(150)
        self._relabel_timer.timeout.connect(self._relabel)
        for w in labelling:
            w.changed.connect(lambda *_: self._relabel_timer.start())
        self.axes.changed.connect(lambda *_: options.update_stack_controls(self))
        self.image.changed.connect(self._on_image)
        self.channel_axis.changed.connect(self._update_channels)
        self.model.changed.connect(self._on_model)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        layers = self._viewer.layers
        layers.events.inserted.connect(self._on_layers_changed)
        layers.events.removed.connect(self._on_layers_changed)
        layers.selection.events.active.connect(self._on_active)
        _models.model_added.connect(self._on_model_added)  # e.g. saved by the Train widget

        self.model.value = self.registry.preferred()
        self._on_model(self.model.value)
        self._on_layers_changed()
        self._on_active()
        self._initializing = False
        self._warm_up()
        if self._model_info() is None and self.model.value == str(_models.default_model_path()):
            _notify.show_info("napari-unet: the default nuclei model is not installed; "
                              "choose 'Load model file…' in the Segment widget to use a "
                              ".keras model.")

    def _warm_up(self, quiet: bool = False) -> None:
        """Have the worker import TensorFlow and load the model now, not during a run.

        Returns at once; runs pressed meanwhile wait for it in the worker.
        """
        path = self.model.value if self._model_info() is not None else None
        tile = int(self.tile_size.value)
        request = WarmUp(path, tile, default_batch(tile))
        if quiet:
            self.client.submit(request)
            return
        self.status.value = "starting the worker (TensorFlow and the model)…"
        self.progress.busy()
        self.client.submit(request, on_done=self._inbox.wrap(lambda outcome: self._warm_done()))
        # After the dock's first paint: the import thread holds the GIL, which
        # the GUI thread needs to lay out and draw the new dock.
        QTimer.singleShot(PRELOAD_DELAY_MS, _preload_for_labels)

    def _warm_done(self) -> None:
        if self._run is None and self.status.value.startswith("starting"):
            self.progress.idle()
            self.status.value = "ready"

    # ---------------------------------------------------------------- fields
    @property
    def busy(self) -> bool:
        """True while a run (or a re-labelling) is in progress."""
        return self._run is not None or self._relabeling

    def _on_layers_changed(self, event=None):
        for result in [r for r in self.results if r.layer not in self._viewer.layers]:
            result.tracker.disconnect()
            self.results.remove(result)  # Frees its cached probabilities.
            if self.review.result is result:
                self.review.show(None)
        layers = [layer for layer in self._viewer.layers if isinstance(layer, Image)]
        current = self.image.value
        for layer in layers:  # Renames must show up in the combo box.
            layer.events.name.connect(self._on_layers_changed)
        self.image.reset_choices()
        if current in layers:
            self.image.value = current
        elif layers:
            self.image.value = layers[-1]

    def _image_choices(self, widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _channel_choices(self, widget=None):
        info = self._model_info()
        return _layers.channel_choices(self.image.value, self.channel_axis.value,
                                       info.in_channels if info else None)

    def _on_active(self, event=None):
        active = self._viewer.layers.selection.active
        ours = any(active is r.prob_layer for r in self.results)
        # Our own probability layers become active when added: do not follow them.
        if isinstance(active, Image) and active is not self.image.value and not ours:
            self.image.value = active

    def _on_image(self, layer=None):
        layer = self.image.value
        self.channel_axis.reset_choices()
        guess = _layers.guess_channel_axis(layer)
        self.channel_axis.value = guess
        self.channel_axis.visible = layer is not None and (layer.rgb or layer.ndim > 2)
        self._update_channels()
        self.review.show(self._result_for(layer) if layer is not None else None)

    def _update_channels(self, *args):
        layer = self.image.value
        axis = self.channel_axis.value
        options.update_stack_controls(self)
        self.channels.reset_choices()
        self.channels.visible = (layer is not None
                                 and _layers.data_channel_axis(layer, axis) is not None)

    def _model_info(self):
        if self.model.value in (None, LOAD_ENTRY):
            return None
        try:
            return self.registry.info(self.model.value)
        except Exception:  # noqa: BLE001 - a bad file is reported when it is chosen/run
            return None

    def _on_model(self, value=None):
        value = self.model.value
        if value == LOAD_ENTRY:
            path = self._ask_model_file()
            if path:
                self.load_model_file(path)
            else:
                self.model.value = self._model_value  # Dialog cancelled: keep the old model.
            return
        self._model_value = value
        try:
            info = self.registry.info(value)
        except Exception as err:  # noqa: BLE001
            self.model_info.value = "not available"
            if not self._initializing:
                _notify.show_warning(_job.describe_error(err))
            self._update_channels()
            return
        if info is not None:
            self.model_info.value = (f"{info.name}: {info.in_channels} → {info.out_channels} "
                                     f"channels ({', '.join(info.outputs)})")
            if info.is_semantic:  # Class labels (or a class mask): never instances.
                self.model_info.value = f"{info.name}: classes {', '.join(info.classes)}"
                self.output.value = "semantic"
            elif not self._initializing:
                self.output.value = "instance"
            self.threshold.value = float(info.thresholds.get("foreground", 0.5))
            self.min_size.value = int(info.min_size)
            self.tile_size.value = PredictionSettings().resolved(info).tile_size
            self._relabel_timer.stop()  # A model's defaults must not re-label old results.
        else:
            self.model_info.value = "no napari-unet metadata"
        self._update_channels()
        if not self._initializing:
            self._warm_up(quiet=True)  # Load the newly chosen model in the background.

    def _on_model_added(self, path: str) -> None:
        try:
            _models.relist(self.model)
        except RuntimeError:  # The Qt widget is gone (dock closed).
            _models.model_added.disconnect(self._on_model_added)

    def _ask_model_file(self) -> str | None:
        return _models.ask_model_file(self.native, "Load a U-Net model")

    def load_model_file(self, path) -> bool:
        """Select a ``.keras`` model file or a bioimage.io package; remember it as recent."""
        try:
            self.model.value = self.registry.adopt(path)
        except Exception as err:  # noqa: BLE001
            _notify.show_error(_job.describe_error(err))
            self.model.value = self._model_value
            return False
        return True

    def _export_model(self) -> str:
        """The model file "Export to bioimage.io…" writes (raises ValueError if none)."""
        if self.model.value in (None, LOAD_ENTRY):
            raise ValueError("choose a model first.")
        self.registry.info(self.model.value)  # A clear error for a missing file.
        return self.model.value

    def _params(self) -> dict:
        return options.labelling_params(self)


def _preload_for_labels() -> None:
    """Do, in a thread, the one-off work of napari's first Labels layer.

    When the first result arrives, napari imports pandas (~0.3 s) and
    scikit-image's colour conversions (for the random label colours, with
    scipy.linalg: read from disk on a cold start), and vispy builds the dash
    patterns of its line visuals, 13 patterns of 1024 steps in pure Python
    (150-250 ms here, cached for the process): all in the GUI thread, as
    one stall. Done now, while the worker starts, the first result only has
    napari's own layer set-up and drawing to do. Building a throw-away
    ``DashAtlas`` fills vispy's pattern cache; it is plain numpy, no GL.

    Automatic garbage collection stays paused until these imports are done
    (see ``_gc_pause``), then one full collection runs in this thread. A full
    collection of napari's heap holds the GIL for ~150 ms here, and the
    imports count towards the next one, which otherwise tended to fall in
    the first result's layer set-up and double that freeze.
    """
    global _preloaded
    if _preloaded:
        return
    _preloaded = True

    def load():
        try:
            _load()
        finally:
            _gc_pause.release()

    def _load():
        try:
            import pandas  # noqa: F401
        except ImportError:  # napari then does without it, or reports it itself
            pass
        from skimage.color import lab2rgb  # noqa: F401 - a dependency; loads the lazy submodule
        try:
            from vispy.visuals.line.dash_atlas import DashAtlas

            DashAtlas()
        except Exception:  # noqa: BLE001 - only a head start; napari builds it anyway
            pass

    _gc_pause.hold()  # Before the dock's own hold ends (RELEASE_DELAY_MS > PRELOAD_DELAY_MS).
    threading.Thread(target=load, daemon=True, name="napari-unet: preload").start()


_preloaded = False
