"""What a widget run does off the GUI thread: plain calls into the core.

A :class:`Job` is a snapshot of everything a run needs, taken in the GUI
thread when Run is pressed; :func:`run_job` executes it in a worker thread
and never raises: errors come back in :attr:`Outcome.error` so the widget
can turn each into one clear notification (napari would otherwise also
report the raw exception).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import postprocess, prediction
from ..cancel import Cancelled
from ..edits import compose
from ..postprocess import offset_ids
from ..scope import Scope
from ._largescale import segment_to_store
from ._warmup import ensure_tensorflow


@dataclass
class Job:
    """Inputs of one run (all read in the GUI thread)."""

    model_path: Path
    registry: object
    data: object  # the image's full-resolution array (numpy, dask, zarr)
    index: tuple  # index of the region in ``data``
    channel_axis: int | None  # in ``data[index]``
    channels: object
    region: Scope
    tile_size: int
    overlap: int
    batch_size: int
    params: dict  # mode, threshold, min_size
    existing: np.ndarray | None = None  # target layer data, when writing into one
    edits: object = None  # EditSnapshot of the target, when keeping edits
    store: Path | None = None  # zarr store of an out-of-core run (see _largescale)
    plane_index: tuple | None = None  # whole plane of a cropped region, for its intensity range


@dataclass
class Outcome:
    """Result of :func:`run_job` (exactly one of ``error`` / ``labels`` is set)."""

    job: Job
    labels: np.ndarray | None = None  # new labels of the region, ids from 1
    patch: np.ndarray | None = None  # what to write at region.target of the target
    probs: np.ndarray | None = None  # (C_out,) + region shape
    info: object = None
    error: BaseException | None = None
    stats: dict = field(default_factory=dict)


def run_job(job: Job, cancel, report: Callable[[int, int], None]) -> Outcome:
    """Predict, post-process and compose one run. Runs in a worker thread."""
    try:
        ensure_tensorflow()  # imported outside Qt's thread pool (see _warmup)
        if job.store is not None:
            labels, n = segment_to_store(job, cancel, report)
            return Outcome(job, labels=labels, patch=labels, info=job.registry.info(
                job.model_path), stats={"n_objects": n, "store": job.store})
        model, info = job.registry.load(job.model_path)
        image = job.data[job.index]
        # A crop is normalized like the whole plane, so it gets the labels a
        # whole-plane run would give there (not those of a re-scaled crop).
        intensity_range = None if job.plane_index is None else prediction.intensity_range(
            job.data[job.plane_index], model, info=info, channel_axis=job.channel_axis,
            channels=job.channels)
        probs = prediction.predict_probabilities(
            image, model, info=info, channel_axis=job.channel_axis, channels=job.channels,
            tile_size=job.tile_size, overlap=job.overlap, batch_size=job.batch_size,
            intensity_range=intensity_range, progress=report, cancel=cancel,
        )
        # Drop the context read around a visible region.
        probs = np.ascontiguousarray(probs[job.region.crop])
        if cancel.is_set():
            raise Cancelled("Prediction cancelled")
        labels = relabel(probs, info, job.params, cancel=cancel)
        patch = compose(labels, job.existing, job.region, job.edits, job.params["mode"])
        return Outcome(job, labels=compact(labels), patch=compact(patch), probs=probs,
                       info=info)
    except BaseException as err:  # noqa: BLE001 - reported by the widget, never lost
        if isinstance(err, (KeyboardInterrupt, SystemExit)):
            raise
        return Outcome(job, error=err)


def relabel(probs: np.ndarray, info, params: dict, cancel=None) -> np.ndarray:
    """Labels from cached probabilities with the widget's current settings."""
    return postprocess.probabilities_to_labels(
        probs, info=info, mode=params["mode"], threshold=params["threshold"],
        min_size=params["min_size"], cancel=cancel,
    )


def compact(labels: np.ndarray) -> np.ndarray:
    """Labels as uint16 when the ids fit, else int32.

    napari maps int32 labels through a slow modulo to texture values on
    every data change (~90 ms for 2048x2048); uint16 goes to the GPU as is.
    Converting here keeps that work off the GUI thread.
    """
    top = int(labels.max()) if labels.size else 0
    return labels.astype(np.uint16 if top < 2**16 else np.int32, copy=False)


def relabel_patches(patches, existing: np.ndarray, params: dict):
    """New values for each cached ``(region, probs, info)`` of an unedited layer.

    Returns a list of ``(region, values)``; ids stay unique across patches.
    """
    out = []
    whole = len(patches) == 1 and patches[0][0].is_whole
    offset = 0 if whole or params["mode"] == "semantic" else int(existing.max())
    for region, probs, info in patches:
        labels = relabel(probs, info, params)
        if offset:
            offset = offset_ids(labels, offset)
        out.append((region, compact(labels)))
    return out


def describe_error(err: BaseException) -> str:
    """One user-facing sentence for an error raised by a run."""
    from ..model_io import ModelFileError

    if isinstance(err, MemoryError):
        return ("Not enough memory for this run. Try scope 'current slice' or "
                "'visible region', or close other layers.")
    if isinstance(err, ModelFileError):
        return f"Cannot use this model: {err}"
    if isinstance(err, ValueError):
        return f"Cannot segment this image: {err}"
    return f"Segmentation failed ({type(err).__name__}): {err}"
