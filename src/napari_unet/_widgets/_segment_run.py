"""Runs of the Segment dock: from the Run button to the written layer.

:class:`SegmentRuns` is mixed into :class:`~.segment_widget.SegmentWidget`;
it uses the dock's controls (see :mod:`._segment_options`), its worker
client and its result list. The GUI thread only snapshots the inputs
(:func:`_job.Job`) and writes the answer into layers, over several
event-loop turns so that no single stall is long.
"""

from __future__ import annotations

import time
from pathlib import Path

from qtpy.QtCore import QTimer

from ..scope import Scope, whole_scope
from ..settings import PredictionSettings, default_batch
from ..worker.protocol import SegmentRequest, StoreRequest
from ..worker.shm import Slice
from . import _job, _largescale, _layers, _notify, _review_data
from ._models import LOAD_ENTRY
from ._progress import RunState
from ._results import write_run_result


def run_window(tile: int, info) -> tuple[int | None, int | None]:
    """Window and batch size a run sends to the worker for the dock's ``tile``.

    ``(None, None)`` while it is the model's default window: the core then
    fits the window to the image as ``segment`` does (a 512 px plane gets
    192 px windows, not 256 px ones that compute 2.25x its pixels) and
    batches it by :func:`~napari_unet.settings.default_batch`. Cancel is
    checked between batches.
    """
    default = PredictionSettings().resolved(info).tile_size if info is not None else None
    if tile == default:
        return None, None
    return int(tile), default_batch(tile)


class UserError(Exception):
    """A problem with the user's inputs, shown as is."""


class SegmentRuns:
    """The Run/Cancel behaviour of the Segment dock (a mixin)."""

    def run(self, *args) -> None:
        """Start a run with the current settings (the Run button)."""
        if self._run is not None:
            return
        try:
            job, target, image = self._make_job()
        except Exception as err:  # noqa: BLE001 - every bad input becomes a notification
            _notify.show_error(str(err) if isinstance(err, UserError)
                               else _job.describe_error(err))
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
            raise UserError("No image layer to segment: open or select an image first.")
        if self.model.value in (None, LOAD_ENTRY):
            raise UserError("Choose a model first (or 'Load model file…').")
        info = self.registry.info(self.model.value)  # Fast, clear error for a bad file.
        axis = self.channel_axis.value
        region = _layers.scope_region(self._viewer, image, axis, self.scope.value,
                                      context=max(32, int(self.overlap.value)))
        index, channel_axis = _layers.image_index(region, image, axis)
        data = _layers.base_data(image)
        shape = _layers.label_shape(image, axis)
        params = self._params()
        tile, batch = run_window(int(self.tile_size.value), info)
        tiling = dict(channel_axis=channel_axis, channels=self.channels.value,
                      tile_size=tile, overlap=int(self.overlap.value),
                      batch_size=batch, params=params)
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
        target = self._target_for(image, axis, region, params)
        job = _job.Job(model_path, region, params, request,
                       existing=None if target is None else target.layer.data,
                       edits=target.tracker.snapshot() if target and target.tracker.edited
                       else None)
        return job, target, image

    def _target_for(self, image, axis, region, params):
        """The result layer a run writes into, or None for a new layer.

        An edited layer is only written into when "keep my edits" is ticked;
        otherwise the run creates "<image> labels [2]". A layer with objects
        marked reviewed, or of another kind (class labels vs instances),
        always gets a new layer: nothing the user marked is reset.
        """
        result = self._result_for(image)
        if result is None or result.layer.data.shape != _layers.label_shape(image, axis):
            return None
        if result.params.get("mode") != params.get("mode"):
            return None
        if _review_data.has_reviewed(result.layer):
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
        _notify.show_info("Segmentation cancelled; no layer was changed.")

    def _end_run(self):
        run, self._run = self._run, None
        if run is not None:
            run.close()
        self.run_button.enabled, self.cancel_button.enabled = True, False
        self._relabel_timer.start()  # Apply settings changed during the run, if any.

    def _later(self, fn) -> None:
        """Call ``fn`` in a later event-loop turn, unless the dock is gone by then.

        The timer is a child of the dock's Qt widget, so closing the dock (or
        napari) deletes it with the dock instead of calling into dead widgets.
        """
        timer = QTimer(self.native)
        timer.setSingleShot(True)
        timer.timeout.connect(fn)
        timer.timeout.connect(timer.deleteLater)
        timer.start(1)

    def _on_done(self, run, result: _job.RunResult):
        self.last_result = result
        if run is not self._run:  # Cancelled: drop the result.
            return
        if result.error is not None:
            self._end_run()
            self.status.value = "failed"
            _notify.show_error(_job.describe_error(result.error))
            return
        # Finishing costs napari GUI time (progress bar, data upload, first
        # draw); done over separate event-loop turns so no single stall is long.
        run.close()
        self._later(lambda: self._write_result(run, result))

    def _write_result(self, run, result):
        if run is not self._run:  # Cancelled meanwhile.
            return
        try:
            layer_result = write_run_result(self._viewer, self.results, run, result,
                                            add_probs=self.add_probs.value, hidden=True)
            _review_data.update(layer_result, result.measured, result.job.params)
        except MemoryError as err:
            self._end_run()
            self.status.value = "failed"
            _notify.show_error(_job.describe_error(err))
            return
        self._later(lambda: self._show_result(run, result, layer_result))

    def _show_result(self, run, result, layer_result):
        layer_result.layer.visible = True  # The first draw of a new layer happens now.
        if run is not self._run:
            return
        self._end_run()
        # The review list (built with the first result) in its own event-loop turn.
        self._later(lambda: self.review.show(layer_result))
        n = None
        if result.job.params["mode"] == "instance":
            n = result.stats.get("n_objects")
            n = int(result.labels.max()) if n is None else n
        if result.job.store is not None:
            _notify.show_info(
                f"'{layer_result.layer.name}' is stored on disk, chunk by chunk, in "
                f"{result.job.store}; painting writes into that store. Export it "
                "or save the layer to keep it.")
            warning = _largescale.cache_warning()
            if warning:
                _notify.show_warning(warning)
        seconds = time.perf_counter() - run.started
        kind = "class labels" if getattr(result.info, "is_semantic", False) else "mask"
        self.status.value = (f"{n} objects" if n is not None else kind) + f" in {seconds:.1f} s"
