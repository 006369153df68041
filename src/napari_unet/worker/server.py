"""The worker process: a loop of plain calls into the core.

:func:`main` is the target of the process the client starts. It reads one
:class:`~.protocol.Request` at a time from its pipe, runs it, and answers
(see :mod:`.protocol`). TensorFlow is imported here, on the first job that
needs it (normally the dock's warm-up), and never in napari's process.
Models come from :func:`napari_unet.model_io.load_model_cached`, the one
bounded cache of a process, so repeated runs reuse the loaded network.

The worker ends when the client says so, when its pipe closes, or when the
napari process that started it is gone.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from .. import postprocess, prediction
from ..cancel import Cancelled, check_cancelled
from ..model_io import load_model_cached
from . import shm
from .protocol import (
    BioimageioRequest,
    RelabelRequest,
    Reply,
    Request,
    SegmentRequest,
    SegmentResult,
    StoreRequest,
    StoreResult,
    TrainRequest,
    TrainSummary,
    WarmUp,
)

log = logging.getLogger(__name__)
#: Scheduling priority of the worker, below napari's (POSIX ``nice`` increment).
NICENESS = 10


class CancelToken:
    """``is_set()`` is True once the client stored this job's id in the register."""

    def __init__(self, register, job: int):
        self._register, self._job = register, job

    def is_set(self) -> bool:
        return self._register.value == self._job


def main(conn, register, initializer=None, initargs=()) -> None:
    """Serve requests from ``conn`` until told to stop (the worker process's target).

    Parameters
    ----------
    conn : multiprocessing.connection.Connection
        The worker's end of the client's pipe.
    register : multiprocessing shared integer
        The cancel register (see :mod:`.protocol`).
    initializer : callable, optional
        Called with ``initargs`` once, before the first request (as in
        :class:`concurrent.futures.ProcessPoolExecutor`).
    """
    _exit_with_parent()
    if hasattr(os, "nice"):
        # TensorFlow fills every core; napari's GUI thread must not wait for
        # a time slice behind it. Lower priority costs nothing on an idle machine.
        try:
            os.nice(NICENESS)
        except OSError:
            pass
    # TensorFlow's C++ start-up chatter would land in napari's terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if initializer is not None:
        initializer(*initargs)
    send_lock = threading.Lock()

    def send(reply: Reply) -> None:
        with send_lock:
            conn.send(reply)

    send(Reply(0, "ready", os.getpid()))

    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request is None:
            break
        _serve(request, CancelToken(register, request.job), send)
    # Everything was handed over; TensorFlow's interpreter teardown only costs
    # seconds (napari waits for its workers when it quits), so skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve(request: Request, cancel: CancelToken, send) -> None:
    """Run one request and send its final reply (never raises)."""
    inputs, outputs = shm.Segments(), shm.Segments()
    job = request.job

    def report(done, total):
        send(Reply(job, "progress", (int(done), int(total))))

    def event(data):
        send(Reply(job, "event", data))

    timings = {}
    try:
        check_cancelled(cancel, "Job")
        t0 = time.perf_counter()
        payload = shm.attach(request.payload, inputs)
        timings["attach"] = time.perf_counter() - t0
        result = HANDLERS[request.kind](payload, cancel=cancel, report=report, event=event)
        payload = None
        t0 = time.perf_counter()
        reply = Reply(job, "done", shm.export(result, outputs, request.prefix), timings)
        outputs.close()  # Unmapped here; the client unlinks them once it has copied them.
        timings["export"] = time.perf_counter() - t0
    except Cancelled:
        reply = Reply(job, "cancelled")
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the client
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        reply = Reply(job, "error", _portable(err))
    payload = result = None
    if reply.kind != "done":
        outputs.unlink()  # A result half exported: nobody else knows its segments.
    inputs.close()
    send(reply)


def _portable(err: BaseException) -> BaseException:
    """``err`` if it pickles (with the worker's traceback attached), else a RuntimeError."""
    text = "".join(traceback.format_exception(err))
    try:
        err.remote_traceback = text
        pickle.loads(pickle.dumps(err))
        err.__traceback__ = None
        return err
    except Exception:  # noqa: BLE001 - e.g. TensorFlow errors with unpicklable state
        out = RuntimeError(f"{type(err).__name__}: {err}")
        out.remote_traceback = text
        return out


def _exit_with_parent() -> None:
    """End this process as soon as the process that started it is gone."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="napari-unet: parent watch").start()


# --------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------
def warm_up(req: WarmUp, **_):
    """Import TensorFlow; load and trace the model so the first run starts at once."""
    import keras  # noqa: F401 - TensorFlow's import, the worker's longest start-up step

    if req.model_path is None:
        return None
    from ..engine import run_model

    model, info = load_model_cached(req.model_path)
    run_model(model, np.zeros((req.batch_size, req.tile_size, req.tile_size,
                               info.in_channels), np.float32), "auto")  # as segment runs
    return info


def segment(req: SegmentRequest, *, cancel, report, **_) -> SegmentResult:
    """Probabilities and labels of one region (the Segment dock's in-memory run)."""
    started = time.perf_counter()
    model, info = load_model_cached(req.model_path)
    intensity_range = None
    if req.plane is not None:
        intensity_range = prediction.intensity_range(
            req.plane, model, info=info, channel_axis=req.channel_axis, channels=req.channels)
    probs = prediction.predict_probabilities(
        req.image, model, info=info, channel_axis=req.channel_axis, channels=req.channels,
        tile_size=req.tile_size, overlap=req.overlap, batch_size=req.batch_size,
        intensity_range=intensity_range, progress=report, cancel=cancel)
    probs = np.ascontiguousarray(probs[req.crop])  # Drop the context read around a crop.
    check_cancelled(cancel, "Prediction")
    labels = relabel(probs, info, req.params, cancel=cancel)
    stats = {"n_objects": int(labels.max(initial=0)) if req.params["mode"] == "instance"
             else None, "intensity_range": intensity_range,
             "seconds": time.perf_counter() - started}
    return SegmentResult(postprocess.compact_labels(labels), probs, info, stats)


def segment_store(req: StoreRequest, *, cancel, report, **_) -> StoreResult:
    """Segment a lazy array block by block into ``req.store`` (out of core)."""
    from ..largescale import segment_zarr

    model, info = load_model_cached(req.model_path)
    params = req.params
    out = segment_zarr(
        req.data, req.store, model, info=info, quiet=True, progress=report, cancel=cancel,
        mode=params["mode"], threshold=params["threshold"], min_size=params["min_size"],
        axes=_input_axes(params.get("axes"), req.channel_axis),
        instances=params.get("instances"), voxel_size=params.get("voxel_size"),
        channel_axis=req.channel_axis, channels=req.channels, tile_size=req.tile_size,
        overlap=req.overlap, batch_size=req.batch_size)
    return StoreResult(req.store, int(out.attrs.get("n_objects", 0)), info)


def relabel_patches(req: RelabelRequest, *, cancel, **_) -> list:
    """Labels of each cached probability patch with new settings (ids from 1 in each)."""
    out = []
    for probs, info in req.patches:
        check_cancelled(cancel, "Re-labelling")
        out.append(postprocess.compact_labels(relabel(probs, info, req.params, cancel=cancel)))
    return out


def _input_axes(letters, channel_axis):
    """The image's axes: the dock's label axes with ``C`` at ``channel_axis``."""
    if not letters:
        return None
    if channel_axis is None:
        return letters
    return letters[:channel_axis] + "C" + letters[channel_axis:]


def relabel(probs: np.ndarray, info, params: dict, cancel=None) -> np.ndarray:
    """Labels from probabilities with the dock's settings (``mode``, ``threshold``,
    ``min_size``; for stacks ``axes``, ``instances``, ``voxel_size``)."""
    axes = params.get("axes")
    ndim = probs.ndim - 1
    # A scoped run (one plane, a window) predicts only the last axes.
    axes = axes[-ndim:] if axes and len(axes) >= ndim else None
    return postprocess.probabilities_to_labels(
        probs, axes=axes, info=info, mode=params["mode"], threshold=params["threshold"],
        min_size=params["min_size"], instances=params.get("instances"),
        voxel_size=params.get("voxel_size"), cancel=cancel)


def train(req: TrainRequest, *, cancel, event, **_) -> TrainSummary:
    """Load the data and train; training progress goes back as events."""
    from ..training import loop
    from ..training.data import read_dataset

    images, labels, counted, parts, settings = [], [], [], [], dict(req.settings)
    for folder in req.folders:
        data = read_dataset(folder)  # channels, if any, come out last
        if settings.get("task") == "semantic" and data.manifest.get("classes"):
            named = settings.setdefault("classes", data.manifest["classes"])
            if list(named) != list(data.manifest["classes"]):
                raise ValueError(f"{Path(folder).name} names the classes "
                                 f"{data.manifest['classes']}, not {list(named)}.")
        images += [img if data.channel_axis is not None else img[..., None]
                   for img in data.images]
        labels += data.labels
        counted += data.counted  # sparse annotation: only these pixels count
        parts.append(f"{Path(folder).name} ({len(data.images)} pairs)")
    for img, axis, labs, name in req.pairs:
        img = np.asarray(img)
        images.append(img[..., None] if axis is None else np.moveaxis(img, axis, -1))
        labels.append(np.asarray(labs))
        counted.append(None)
        parts.append(f"layers {name}")
    result = loop.train(images, labels, channel_axis=-1, model=req.model, counted=counted,
                        data_description="napari: " + "; ".join(parts),
                        progress=event, cancel=cancel, **settings)
    return TrainSummary(result.path, list(result.history), result.best_score,
                        result.best_epoch, result.stopped)


def export_package(req: BioimageioRequest, **_) -> Path:
    """Write a bioimage.io package of a model file (never overwriting one)."""
    from ..bioimageio import export_bioimageio

    return export_bioimageio(req.model, req.path, overwrite=False, name=req.name,
                             authors=req.authors, saved_model=req.saved_model)


HANDLERS = {"warm": warm_up, "segment": segment, "store": segment_store,
            "relabel": relabel_patches, "train": train, "bioimageio": export_package}
