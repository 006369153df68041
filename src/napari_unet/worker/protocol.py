"""What the napari process and the network worker say to each other.

One job at a time per worker. The client sends a :class:`Request` holding
one of the payloads below; the worker answers with any number of
``progress`` / ``event`` :class:`Reply` messages and exactly one final
reply: ``done`` (with the job's result), ``error`` (with the exception) or
``cancelled``. Arrays inside payloads and results travel through shared
memory (see :mod:`.shm`); the messages themselves are small pickles.

Cancellation is a shared integer, the *cancel register*: cancelling job
``n`` stores ``n`` in it, and the worker's cancel token for job ``n`` reads
"set" while it holds ``n``. A late cancel therefore never stops the next job.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

from ..model_io import ModelInfo

__all__ = [
    "BioimageioRequest",
    "Outcome",
    "RelabelRequest",
    "Reply",
    "Request",
    "SegmentRequest",
    "SegmentResult",
    "StoreRequest",
    "StoreResult",
    "TrainRequest",
    "TrainSummary",
    "WarmUp",
    "WorkerDied",
]


# --------------------------------------------------------------------------
# Payloads (client -> worker) and results (worker -> client)
# --------------------------------------------------------------------------
@dataclass
class WarmUp:
    """Import TensorFlow and, with a model, load it and trace its predictor.

    Returns the model's :class:`~napari_unet.ModelInfo` (None without a model).
    """

    model_path: str | None = None
    tile_size: int = 128
    batch_size: int = 8


@dataclass
class SegmentRequest:
    """Predict one image region and label it (see :func:`.server.segment`).

    Attributes
    ----------
    image : array
        The region as read, context included (channels kept).
    crop : tuple
        Index taking the target region out of the predicted window.
    params : dict
        ``mode``, ``threshold`` and ``min_size`` of the labelling.
    plane : array or None
        The whole plane of a cropped region: the crop is normalized with
        the plane's intensity range, so it gets the labels a whole-plane
        run would give there.
    """

    model_path: str
    image: object
    channel_axis: int | None
    channels: object
    crop: tuple
    tile_size: int | None  # None: the core's default, fitted to the image
    overlap: int
    batch_size: int | None
    params: dict
    plane: object = None


@dataclass
class SegmentResult:
    """Labels (ids from 1, uint16 when they fit) and probabilities of a region."""

    labels: object
    probs: object
    info: ModelInfo
    stats: dict = field(default_factory=dict)


@dataclass
class StoreRequest:
    """Segment a dask/zarr array out of core into a new zarr store.

    ``data`` is pickled, not copied: a zarr-backed array travels as the
    address of its store.
    """

    model_path: str
    data: object
    store: str
    channel_axis: int | None
    channels: object
    tile_size: int | None
    overlap: int
    batch_size: int | None
    params: dict


@dataclass
class StoreResult:
    """The finished store and how many objects it holds."""

    store: str
    n_objects: int
    info: ModelInfo


@dataclass
class RelabelRequest:
    """Re-label cached probabilities with new settings (no network).

    ``patches`` is a list of ``(probabilities, ModelInfo)``; the result is
    the list of their labels, each with ids from 1.
    """

    patches: list
    params: dict


@dataclass
class TrainRequest:
    """Load training data and call :func:`napari_unet.training.train`.

    Attributes
    ----------
    folders : list of str
        Exported dataset folders.
    pairs : list of (image, channel_axis, labels, name)
        Image and label arrays of napari layers.
    model : str or None
        Model file to fine-tune; None for a new U-Net.
    settings : dict
        Keyword arguments of :func:`~napari_unet.training.train`.
    """

    folders: list
    pairs: list
    model: str | None
    settings: dict


@dataclass
class TrainSummary:
    """What the dock needs of a :class:`~napari_unet.TrainingResult` (no model object)."""

    path: Path | None
    history: list
    best_score: float | None
    best_epoch: int | None
    stopped: str

    @property
    def cancelled(self) -> bool:
        return self.stopped == "cancelled"


@dataclass
class BioimageioRequest:
    """Write a model as a bioimage.io package; the result is the package's path.

    Calls :func:`napari_unet.bioimageio.export_bioimageio` with these
    arguments, never overwriting ``path``.
    """

    model: str
    path: str
    name: str | None = None
    authors: list | None = None
    saved_model: bool = True


#: The worker's name for each payload type.
KINDS = {WarmUp: "warm", SegmentRequest: "segment", StoreRequest: "store",
         RelabelRequest: "relabel", TrainRequest: "train", BioimageioRequest: "bioimageio"}


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------
@dataclass
class Request:
    """A job for the worker; ``prefix`` names the shared memory of its results."""

    job: int
    kind: str
    payload: object
    prefix: str


@dataclass
class Reply:
    """A message from the worker about job ``job``.

    ``kind`` is ``progress`` (value ``(done, total)``), ``event`` (a training
    progress dict), or a final ``done`` (the result), ``error`` (the
    exception) or ``cancelled``. ``ready`` (job 0) says the worker started.
    ``timings`` are the worker's seconds spent moving data (see :class:`Outcome`).
    """

    job: int
    kind: str
    value: object = None
    timings: dict | None = None

    @property
    def final(self) -> bool:
        return self.kind in ("done", "error", "cancelled")


# --------------------------------------------------------------------------
# Outcome of a job, as the client reports it
# --------------------------------------------------------------------------
class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a job (killed, crashed, out of memory)."""

    def __init__(self, exitcode: int | None):
        self.exitcode = exitcode
        super().__init__(
            f"The napari-unet worker process stopped unexpectedly ({describe_exit(exitcode)}). "
            "Your layers and edits are intact; the next run starts a fresh worker.")


def describe_exit(exitcode: int | None) -> str:
    """``exitcode`` of a process in words (a negative code is the killing signal)."""
    if exitcode is None:
        return "its connection closed"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = ", e.g. by the system running out of memory" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"


@dataclass
class Outcome:
    """How a job ended: with a ``value``, an ``error``, or ``cancelled``.

    Attributes
    ----------
    job, kind : int, str
    value : object
        The job's result (arrays are private copies, no shared memory).
    error : BaseException or None
        The exception raised in the worker, or :class:`WorkerDied`.
    cancelled : bool
        The job was cancelled. ``value`` may still hold what it returned (a
        cancelled training run returns its best model so far); ``killed``
        says the worker did not stop in time and was terminated.
    timings : dict
        Seconds: ``send`` (inputs into shared memory), ``worker`` (from
        sending to the final reply), ``attach`` and ``export`` (the worker
        mapping the inputs and copying out the results; part of
        ``worker``), ``receive`` (copying the results out), ``total``.
    """

    job: int
    kind: str
    value: object = None
    error: BaseException | None = None
    cancelled: bool = False
    killed: bool = False
    timings: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled
