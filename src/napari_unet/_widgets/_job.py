"""A Segment dock run: what the GUI thread snapshots, and the result it gets back.

A :class:`Job` is taken in the GUI thread when Run is pressed: the request
for the worker process (see :mod:`napari_unet.worker.protocol`) plus what
the dock needs to merge the answer into its layers. :func:`finish` runs in
the worker client's thread when the worker answers: it composes the new
labels with the target layer's hand edits, off the GUI thread, and never
raises: errors come back in :attr:`RunResult.error` so the dock turns each
into one clear notification.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..scope import Scope
from ..worker.protocol import StoreResult, WorkerDied

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One run, as read in the GUI thread."""

    model_path: Path
    region: Scope
    params: dict  # mode, threshold, min_size
    request: object  # SegmentRequest or StoreRequest for the worker
    existing: np.ndarray | None = None  # target layer data, when writing into one
    edits: object = None  # EditRecord snapshot of the target, when keeping edits
    store: Path | None = None  # zarr store of an out-of-core run (see _largescale)


@dataclass
class RunResult:
    """What a finished run gives the dock (``error`` set, or ``labels``)."""

    job: Job
    labels: object = None  # new labels of the region, ids from 1 (or the opened store)
    patch: object = None  # what to write at region.target of the target
    probs: np.ndarray | None = None  # (C_out,) + region shape
    info: object = None
    error: BaseException | None = None
    stats: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    measured: object = None  # _review_data.Measured of the patch (instance labels)


def finish(job: Job, outcome) -> RunResult:
    """Turn the worker's :class:`~napari_unet.worker.Outcome` into a :class:`RunResult`.

    Runs in the worker client's thread (so do its imports of SciPy, kept
    out of the dock's opening). An interrupted out-of-core run leaves no
    partial store behind.
    """
    try:
        if not outcome.ok:
            if job.store is not None:  # A killed worker leaves its partial store.
                from .._atomic import sweep_partials

                sweep_partials(job.store.parent)
            return RunResult(job, error=outcome.error, timings=outcome.timings)
        value = outcome.value
        if isinstance(value, StoreResult):
            import zarr

            labels = zarr.open_array(value.store, mode="r+")
            return RunResult(job, labels=labels, patch=labels, info=value.info,
                             stats={"n_objects": value.n_objects, "store": value.store},
                             timings=outcome.timings)
        labels, patch = value.labels, value.labels
        if job.existing is not None:
            from ..edits import compose
            from ..postprocess import compact_labels

            patch = compact_labels(compose(labels, job.existing, job.region, job.edits,
                                           job.params["mode"], volume_axis(job.params)))
        measured = review_measure(patch, value.probs, value.info, job.region, job.params)
        return RunResult(job, labels=labels, patch=patch, probs=value.probs, info=value.info,
                         stats=value.stats, timings=outcome.timings, measured=measured)
    except Exception as err:  # noqa: BLE001 - reported by the dock, never lost
        return RunResult(job, error=err, timings=outcome.timings)


def volume_axis(params: dict) -> int | None:
    """The Z axis of a run's labels when they are 3D objects, else None."""
    axes = params.get("axes") or ""
    if "Z" not in axes or params.get("instances", "3d") == "2d" or params["mode"] != "instance":
        return None
    return axes.index("Z")


def review_measure(labels, probs, info, region, params):
    """Confidence and boxes of instance labels for the review panel, or None.

    Runs in the worker client's thread. A failure here must not fail the
    segmentation: it is logged and the panel stays empty.
    """
    if params.get("mode") != "instance":
        return None
    from ._review_data import measure

    try:
        return measure(labels, probs, info, region)
    except Exception:  # noqa: BLE001 - the labels are fine; only their review is missing
        log.warning("napari-unet: object confidence failed", exc_info=True)
        return None


def offset_patches(labels: list, existing: np.ndarray, params: dict, whole: bool) -> list:
    """Make the ids of re-labelled patches unique across the layer (in place).

    A single whole-layer patch keeps its ids; otherwise each patch's ids
    start after the layer's (and the previous patch's) largest id.
    """
    from ..postprocess import compact_labels, offset_ids

    unique = not whole and params["mode"] == "instance"
    offset = int(existing.max()) if unique and existing.size else 0
    out = []
    for values in labels:
        if unique:
            values = values.astype(np.int32)
            offset = offset_ids(values, offset)
            values = compact_labels(values)
        out.append(values)
    return out


def describe_error(err: BaseException) -> str:
    """One user-facing sentence for an error raised by a run."""
    from ..model_io import ModelFileError

    if isinstance(err, WorkerDied):
        return str(err)
    if isinstance(err, MemoryError):
        return ("Not enough memory for this run. Try scope 'current slice' or "
                "'visible region', or close other layers.")
    if isinstance(err, ModelFileError):
        return f"Cannot use this model: {err}"
    if isinstance(err, ValueError):
        return f"Cannot segment this image: {err}"
    return f"Segmentation failed ({type(err).__name__}): {err}"
