"""The Segment dock widget (Plugins › napari-unet › Segment).

The widget only adapts napari layers to the headless core: prediction,
post-processing and re-labelling run in the segmentation worker process
(:mod:`napari_unet.worker`, started when the dock opens); the GUI thread only
reads settings, creates/updates layers and shows progress and notifications.
napari's process never imports TensorFlow.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, FloatSlider, Label, PushButton, SpinBox
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer

from ..scope import Scope, whole_scope
from ..settings import DEFAULT_WINDOW, PredictionSettings
from ..worker.protocol import RelabelRequest, SegmentRequest, StoreRequest, WarmUp
from ..worker.shm import Slice
from . import _job, _largescale, _layers, _models, _worker
from ._base import DockWidget
from ._models import LOAD_ENTRY, ModelRegistry
from ._progress import DockProgress, RunState
from ._results import Result, write_region, write_run_result

if TYPE_CHECKING:
    import napari

#: Tiles per network call: small batches keep progress and cancel prompt.
BATCH_SIZE = PredictionSettings().batch_size
OUTPUTS = [("instance labels", "instance"), ("semantic mask", "semantic")]


class SegmentWidget(DockWidget):
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

        # Choices are callables: napari calls reset_choices() on docked widgets,
        # which would otherwise restore the initial (empty) lists.
        self.image = ComboBox(label="image", choices=self._image_choices, nullable=True)
        self.channel_axis = ComboBox(label="channel axis", choices=lambda w: (
            _layers.channel_axis_choices(self.image.value)))
        self.model = ComboBox(label="model", choices=lambda w: self.registry.choices())
        self.channels = ComboBox(label="channels", choices=self._channel_choices)
        self.model_info = Label(label="")
        self.output = ComboBox(label="output", choices=OUTPUTS, value="instance")
        self.threshold = FloatSlider(label="threshold", min=0.05, max=0.95, step=0.05,
                                     value=0.5)
        self.min_size = SpinBox(label="min size (px)", min=0, max=1_000_000, value=16)
        self.tile_size = SpinBox(label="tile size", min=32, max=2048, step=16,
                                 value=DEFAULT_WINDOW)
        self.overlap = SpinBox(label="tile overlap", min=0, max=512, step=16, value=32)
        self.scope = ComboBox(label="scope", choices=list(_layers.SCOPES))
        self.add_probs = CheckBox(text="also add probability map", value=False)
        self.keep_edits = CheckBox(text="keep my edits (re-predict untouched areas)",
                                   value=False)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = DockProgress()
        self.status = Label(label="", value="")
        self.extend([self.image, self.channel_axis, self.channels, self.model, self.model_info,
                     self.output, self.threshold, self.min_size, self.tile_size, self.overlap,
                     self.scope, self.add_probs, self.keep_edits, self.run_button,
                     self.cancel_button, self.progress.widget, self.status])

        # Qt helpers are children of the widget, so they die with it.
        self._inbox = _worker.Inbox(self.native)
        # Settings changes re-label from the cache after a short pause.
        self._relabel_timer = QTimer(self.native)
        self._relabel_timer.setSingleShot(True)
        self._relabel_timer.setInterval(150)
        self._relabel_timer.timeout.connect(self._relabel)
        for w in (self.threshold, self.min_size, self.output):
            w.changed.connect(lambda *_: self._relabel_timer.start())
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
            show_info("napari-unet: the default nuclei model is not installed; "
                      "choose 'Load model file…' in the Segment widget to use a .keras model.")

    def _warm_up(self, quiet: bool = False) -> None:
        """Have the worker import TensorFlow and load the model now, not during a run.

        Returns at once; runs pressed meanwhile wait for it in the worker.
        """
        path = self.model.value if self._model_info() is not None else None
        request = WarmUp(path, int(self.tile_size.value), BATCH_SIZE)
        if quiet:
            self.client.submit(request)
            return
        self.status.value = "starting the worker (TensorFlow and the model)…"
        self.progress.busy()
        self.client.submit(request, on_done=self._inbox.wrap(lambda outcome: self._warm_done()))
        _preload_for_labels()

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

    def _update_channels(self, *args):
        layer = self.image.value
        axis = self.channel_axis.value
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
                show_warning(_job.describe_error(err))
            self._update_channels()
            return
        if info is not None:
            self.model_info.value = (f"{info.name}: {info.in_channels} → {info.out_channels} "
                                     f"channels ({', '.join(info.outputs)})")
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
        """Select a ``.keras`` model file and remember it as recently used."""
        try:
            self.model.value = self.registry.adopt(path)
        except Exception as err:  # noqa: BLE001
            show_error(_job.describe_error(err))
            self.model.value = self._model_value
            return False
        return True

    def _params(self) -> dict:
        return {"mode": self.output.value, "threshold": round(float(self.threshold.value), 4),
                "min_size": int(self.min_size.value)}

    # -------------------------------------------------------------------- run
    def run(self, *args) -> None:
        """Start a run with the current settings (the Run button)."""
        if self._run is not None:
            return
        try:
            job, target, image = self._make_job()
        except Exception as err:  # noqa: BLE001 - every bad input becomes a notification
            show_error(_job.describe_error(err) if not isinstance(err, _UserError) else str(err))
            return
        self._run_count += 1
        axis = self.channel_axis.value
        run = RunState(self._run_count, job, target, image, _layers.label_shape(image, axis),
                       _layers.layer_geometry(image, axis), self.progress, self.status)
        self._run = run
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.progress.busy()  # Until the worker reports its first batch.
        self.status.value = f"U-Net on {image.name}: waiting for the worker and the model…"
        inbox = self._inbox

        def done(outcome, run=run):  # In the worker client's thread: merge edits there.
            inbox.post(self._on_done, run, _job.finish(run.job, outcome))

        run.handle = self.client.submit(
            job.request, on_progress=inbox.wrap(lambda d, t, run=run: self._on_progress(run, d, t)),
            on_done=done)

    def _make_job(self):
        image = self.image.value
        if image is None:
            raise _UserError("No image layer to segment: open or select an image first.")
        if self.model.value in (None, LOAD_ENTRY):
            raise _UserError("Choose a model first (or 'Load model file…').")
        self.registry.info(self.model.value)  # Fast, clear error for a missing/bad file.
        axis = self.channel_axis.value
        region = _layers.scope_region(self._viewer, image, axis, self.scope.value,
                                      context=max(32, int(self.overlap.value)))
        index, channel_axis = _layers.image_index(region, image, axis)
        data = _layers.base_data(image)
        shape = _layers.label_shape(image, axis)
        params = self._params()
        tiling = dict(channel_axis=channel_axis, channels=self.channels.value,
                      tile_size=int(self.tile_size.value), overlap=int(self.overlap.value),
                      batch_size=BATCH_SIZE, params=params)
        model_path = Path(self.model.value)
        if _largescale.wants_out_of_core(data, region, shape):
            store = _largescale.new_store_path(image.name)  # Always a new, zarr-backed layer.
            request = StoreRequest(str(model_path), data, str(store), **tiling)
            return _job.Job(model_path, region, params, request, store=store), None, image
        whole = whole_scope(shape)
        plane = None
        if region.yx_read != whole.yx:  # A crop: normalize it like its whole plane.
            plane_index, _ = _layers.image_index(
                Scope(region.lead, whole.yx, whole.yx, region.ndim), image, axis)
            plane = Slice(data, plane_index)
        # Read in the worker client's thread: a lazy layer may come from disk.
        request = SegmentRequest(str(model_path), Slice(data, index), crop=region.crop,
                                 plane=plane, **tiling)
        target = self._target_for(image, axis, region)
        job = _job.Job(model_path, region, params, request,
                       existing=None if target is None else target.layer.data,
                       edits=target.tracker.snapshot() if target and target.tracker.edited
                       else None)
        return job, target, image

    def _target_for(self, image, axis, region):
        """The result layer a run writes into, or None for a new layer.

        An edited layer is only written into when "keep my edits" is ticked;
        otherwise the run creates "<image> labels [2]".
        """
        result = self._result_for(image)
        if result is None or result.layer.data.shape != _layers.label_shape(image, axis):
            return None
        if result.tracker.edited and not self.keep_edits.value:
            return None
        return result

    def _result_for(self, image):
        for result in reversed(self.results):
            if result.image() is image and result.layer in self._viewer.layers:
                return result
        return None

    def _on_progress(self, run, done, total):
        if run is self._run:
            run.show_progress(done, total)

    def cancel(self, *args) -> None:
        """Stop the run: the worker stops at its next batch; nothing is written."""
        run = self._run
        if run is None:
            return
        self.client.cancel(run.handle)
        self._end_run()  # The GUI is free at once; the result, if any, is ignored.
        self.status.value = "cancelled"
        show_info("Segmentation cancelled; no layer was changed.")

    def _end_run(self):
        run, self._run = self._run, None
        if run is not None:
            run.close()
        self.run_button.enabled, self.cancel_button.enabled = True, False
        self._relabel_timer.start()  # Apply settings changed during the run, if any.

    def _on_done(self, run, result: _job.RunResult):
        self.last_result = result
        if run is not self._run:  # Cancelled: drop the result.
            return
        if result.error is not None:
            self._end_run()
            self.status.value = "failed"
            show_error(_job.describe_error(result.error))
            return
        # Finishing costs napari GUI time (progress bar, data upload, first
        # draw); done over separate event-loop turns so no single stall is long.
        run.close()
        QTimer.singleShot(1, lambda: self._write_result(run, result))

    def _write_result(self, run, result):
        if run is not self._run:  # Cancelled meanwhile.
            return
        try:
            layer_result = write_run_result(self._viewer, self.results, run, result,
                                            add_probs=self.add_probs.value, hidden=True)
        except MemoryError as err:
            self._end_run()
            self.status.value = "failed"
            show_error(_job.describe_error(err))
            return
        QTimer.singleShot(1, lambda: self._show_result(run, result, layer_result))

    def _show_result(self, run, result, layer_result):
        layer_result.layer.visible = True  # The first draw of a new layer happens now.
        if run is not self._run:
            return
        self._end_run()
        n = None
        if result.job.params["mode"] == "instance":
            n = result.stats.get("n_objects")
            n = int(result.labels.max()) if n is None else n
        if result.job.store is not None:
            show_info(f"'{layer_result.layer.name}' is stored on disk, chunk by chunk, in "
                      f"{result.job.store}; painting writes into that store. Export it "
                      "or save the layer to keep it.")
            warning = _largescale.cache_warning()
            if warning:
                show_warning(warning)
        seconds = time.perf_counter() - run.started
        self.status.value = (f"{n} objects" if n is not None else "mask") + f" in {seconds:.1f} s"

    # ---------------------------------------------------------------- relabel
    def _relabel(self):
        """Re-label the current image's result from cached probabilities (in the worker)."""
        result = self._result_for(self.image.value) if self.image.value is not None else None
        if result is None or not result.patches or self._run is not None:
            return
        params = self._params()
        if params == result.params:
            return
        if result.tracker.edited:
            if result.warned_version != result.tracker.version:
                result.warned_version = result.tracker.version
                show_warning(f"'{result.layer.name}' has hand edits, so the new settings were "
                             "not applied to it. Press Run to write a new layer, or tick 'keep "
                             "my edits' to re-predict around your edits.")
            return
        if self._relabeling:
            self._relabel_pending = True
            return
        self._relabeling = True
        stamp = (result.tracker.version, result.generation)
        patches = list(result.patches)
        whole = len(patches) == 1 and patches[0][0].is_whole
        existing = result.layer.data
        inbox = self._inbox

        def done(outcome):  # In the worker client's thread: make ids unique there.
            values = None
            if outcome.ok:
                try:
                    values = _job.offset_patches(outcome.value, existing, params, whole)
                except Exception as err:  # noqa: BLE001
                    outcome.error = err
            inbox.post(self._relabel_finished, result, stamp, params, patches, values,
                       outcome.error)

        self.client.submit(RelabelRequest([(probs, info) for _, probs, info in patches],
                                          params), on_done=done)

    def _relabel_finished(self, result, stamp, params, patches, values, error):
        try:
            if error is not None:
                show_error(_job.describe_error(error))
            elif values is not None:
                self._apply_relabel(result, stamp, params,
                                    [(p[0], v) for p, v in zip(patches, values, strict=True)])
        finally:
            self._relabel_done()

    def _apply_relabel(self, result, stamp, params, values):
        if (result.tracker.version, result.generation) != stamp:
            return  # Edited, or rewritten by a run, while re-labelling: never overwrite.
        if result.layer not in self._viewer.layers:
            return
        if self._run is not None and self._run.target is result:
            return  # A run is about to rewrite this layer with the same settings.
        for region, labels in values:
            write_region(result.layer, result.tracker, region, labels)
        result.params = params

    def _relabel_done(self):
        self._relabeling = False
        if self._relabel_pending:
            self._relabel_pending = False
            self._relabel()


class _UserError(Exception):
    """A problem with the user's inputs, shown as is."""


def _preload_for_labels() -> None:
    """Import, in a thread, what napari's first Labels layer imports (pandas, ~0.3 s).

    napari imports it in the GUI thread when a first Labels layer is added,
    i.e. when the first result arrives; done now, that stall is gone.
    """
    if "pandas" in sys.modules:
        return

    def load():
        try:
            import pandas  # noqa: F401
        except ImportError:  # napari then does without it, or reports it itself
            pass

    threading.Thread(target=load, daemon=True, name="napari-unet: preload").start()
