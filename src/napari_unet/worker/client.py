"""The napari side of the worker: jobs in, progress and outcomes out.

A :class:`WorkerClient` owns one worker process and one thread, the
*dispatcher*, which does everything that could block: starting the process
(``multiprocessing``'s ``spawn`` method: a fresh interpreter that inherits
nothing of napari or Qt), copying a job's arrays into shared memory,
waiting for replies, copying results out. Jobs run one at a time, in the
order submitted. Callbacks are called in the dispatcher thread; a GUI must
hand them on to its own thread (the docks use a queued Qt signal).

Faults: a worker that dies (killed, crashed, out of memory) ends its job
with a :class:`~.protocol.WorkerDied` error, its shared memory is removed,
and the next job starts a fresh worker. A cancelled job whose worker does
not answer within :attr:`WorkerClient.cancel_grace` seconds gets its worker
terminated.
"""

from __future__ import annotations

import collections
import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import secrets
import sys
import threading
import time
import types
from multiprocessing.connection import wait

from . import shm
from .protocol import KINDS, Outcome, Reply, Request, WorkerDied

log = logging.getLogger(__name__)

#: Seconds a cancelled job's worker may take to stop before it is terminated.
CANCEL_GRACE = 1.0
_POLL = 0.05  # seconds between checks for a cancel deadline while waiting


class Job:
    """A submitted job: its callbacks, and its :class:`~.protocol.Outcome` once done.

    Attributes
    ----------
    id : int
    kind : str
    outcome : Outcome or None
        Set when the job ends (then :attr:`done` is set).
    done : threading.Event
    """

    def __init__(self, job_id, kind, payload, on_progress, on_event, on_done):
        self.id, self.kind, self.payload = job_id, kind, payload
        self.on_progress, self.on_event, self.on_done = on_progress, on_event, on_done
        self.outcome: Outcome | None = None
        self.done = threading.Event()
        self.cancel_requested: float | None = None  # time.monotonic() of cancel()

    def __repr__(self):
        return f"<Job {self.id} {self.kind}{' done' if self.done.is_set() else ''}>"


class WorkerClient:
    """Runs jobs in a worker process (see the module docstring).

    Parameters
    ----------
    name : str
        Name of the process and thread (shown by ``ps``/debuggers).
    initializer : callable, optional
        Called in the worker, with ``initargs``, before its first job (a
        module-level function of an importable module, not of ``__main__``).
    initargs : tuple
    cancel_grace : float
        Seconds a cancelled job may run on before its worker is terminated.
    """

    def __init__(self, name: str = "napari-unet worker", *, initializer=None, initargs=(),
                 cancel_grace: float = CANCEL_GRACE):
        self.name = name
        self.initializer, self.initargs = initializer, tuple(initargs)
        self.cancel_grace = float(cancel_grace)
        self._ctx = multiprocessing.get_context("spawn")
        self._register = self._ctx.RawValue("q", 0)  # The cancel register (see .protocol).
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._current: Job | None = None
        self._pending = 0  # jobs submitted and not finished
        self._closed = False
        #: Prefix of every shared memory segment of this client's jobs.
        self.shm_prefix = f"nu{os.getpid():x}{secrets.token_hex(3)}"
        #: Jobs submitted, by kind (e.g. ``submitted['segment']``).
        self.submitted: collections.Counter = collections.Counter()
        #: Worker processes started so far.
        self.processes_started = 0
        #: Seconds from starting the last worker process until it was ready for jobs.
        self.startup_seconds: float | None = None
        self._spawned_at = 0.0

    # ------------------------------------------------------------------ state
    @property
    def pid(self) -> int | None:
        """Process id of the running worker, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.exitcode is None else None

    @property
    def busy(self) -> bool:
        """True while a job runs or waits."""
        return self._pending > 0

    # ------------------------------------------------------------------- API
    def start(self) -> None:
        """Start the worker in the background (returns at once; idempotent)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this worker client is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._dispatch, daemon=True,
                                                name=f"{self.name} dispatcher")
                self._thread.start()

    def submit(self, payload, *, on_progress=None, on_event=None, on_done=None) -> Job:
        """Queue a job; start the worker if needed. Returns at once.

        Parameters
        ----------
        payload : one of the requests of :mod:`.protocol`
            Arrays in it (and :class:`.shm.Slice` reads) go through shared memory.
        on_progress : callable, optional
            ``on_progress(done, total)``.
        on_event : callable, optional
            ``on_event(dict)`` (training progress).
        on_done : callable, optional
            ``on_done(outcome)``, exactly once.
        """
        kind = KINDS[type(payload)]
        job = Job(next(self._ids), kind, payload, on_progress, on_event, on_done)
        self.start()
        with self._lock:
            self.submitted[kind] += 1
            self._pending += 1
        self._queue.put(job)
        return job

    def cancel(self, job: Job) -> None:
        """Ask ``job`` to stop; terminate the worker if it has not within :attr:`cancel_grace`."""
        with self._lock:
            if job.done.is_set() or job.cancel_requested is not None:
                return
            job.cancel_requested = time.monotonic()
            if self._current is job:
                self._register.value = job.id

    def close(self, timeout: float = 5.0) -> None:
        """Cancel the current job, stop the worker and the dispatcher thread."""
        with self._lock:
            self._closed = True
            thread, current = self._thread, self._current
        if current is not None:
            self.cancel(current)
        self._queue.put(None)
        if thread is None:
            return
        thread.join(timeout)
        proc = self._proc
        if thread.is_alive() and proc is not None:
            proc.kill()  # The dispatcher notices, ends the job and exits.
            thread.join(timeout)

    # ------------------------------------------------------------ dispatcher
    def _dispatch(self) -> None:
        try:
            self._ensure_process()
        except Exception:  # noqa: BLE001 - the first job reports it
            log.debug("napari-unet: starting the worker failed", exc_info=True)
        while True:
            job = self._queue.get()
            if job is None:
                break
            with self._lock:
                self._current = job
                cancelled = job.cancel_requested is not None
            try:
                outcome = (Outcome(job.id, job.kind, cancelled=True) if cancelled
                           else self._run(job))
            except Exception as err:  # noqa: BLE001 - a dispatcher bug must not hang the dock
                log.exception("napari-unet: worker job %s failed in the client", job.id)
                outcome = Outcome(job.id, job.kind, error=err)
            with self._lock:
                self._current = None
            job.outcome = outcome
            _call(job.on_done, outcome)
            with self._lock:
                self._pending -= 1
            job.done.set()
        self._stop_process()

    def _ensure_process(self):
        proc = self._proc
        if proc is not None and proc.exitcode is None:
            return
        self._forget_process()
        from ._entry import main  # The server's imports happen in the worker only.

        ours, theirs = self._ctx.Pipe()
        self._spawned_at = time.perf_counter()
        proc = self._ctx.Process(target=main, name=self.name, daemon=True,
                                 args=(theirs, self._register, self.initializer, self.initargs))
        _start_without_main(proc)
        theirs.close()  # Only the worker holds it now: its death closes the pipe.
        self._proc, self._conn = proc, ours
        self.processes_started += 1

    def _run(self, job: Job) -> Outcome:
        prefix = f"{self.shm_prefix}_{job.id}_"
        timings = {}
        try:
            self._ensure_process()
        except Exception as err:  # noqa: BLE001
            return Outcome(job.id, job.kind, error=RuntimeError(
                f"Could not start the napari-unet worker process: {err}"))
        inputs = shm.Segments()
        t0 = time.perf_counter()
        try:
            try:
                payload = shm.export(job.payload, inputs, prefix + "i")
                request = Request(job.id, job.kind, payload, prefix + "o")
                timings["send"] = time.perf_counter() - t0
                try:
                    self._conn.send(request)
                except (pickle.PicklingError, TypeError, AttributeError) as err:
                    raise ValueError(
                        "This data cannot be sent to the worker process (it cannot be "
                        f"pickled: {err}). Load it as a numpy, dask or zarr array.") from err
            except (BrokenPipeError, EOFError, ConnectionError):
                return self._died(job, self._proc, timings)
            except Exception as err:  # noqa: BLE001 - bad input, no memory for a copy...
                return Outcome(job.id, job.kind, error=err, timings=timings)
            inputs.close()  # The worker maps them itself; unlinked when the job ends.
            return self._wait(job, timings)
        finally:
            inputs.unlink()
            # Results of a worker that died, or that could not be copied out.
            shm.remove_prefix(prefix + "o")
            timings["total"] = time.perf_counter() - t0

    def _wait(self, job: Job, timings: dict) -> Outcome:
        conn, proc = self._conn, self._proc
        sent = time.perf_counter()
        while True:
            ready = wait([conn, proc.sentinel], _POLL)
            if conn in ready:
                try:
                    reply = conn.recv()
                except (EOFError, OSError):
                    return self._died(job, proc, timings)
                if isinstance(reply, Reply) and reply.kind == "ready":
                    self.startup_seconds = time.perf_counter() - self._spawned_at
                if not isinstance(reply, Reply) or reply.job != job.id:
                    continue  # Start-up, or a stale message of an earlier job.
                if reply.kind == "progress":
                    _call(job.on_progress, *reply.value)
                elif reply.kind == "event":
                    _call(job.on_event, reply.value)
                elif reply.final:
                    timings["worker"] = time.perf_counter() - sent
                    return self._final(job, reply, timings)
                continue  # Read everything the worker sent before looking at its state.
            if proc.sentinel in ready:
                return self._died(job, proc, timings)
            with self._lock:
                asked = job.cancel_requested
                if asked is not None and self._register.value != job.id:
                    self._register.value = job.id  # Cancelled while being dequeued.
            if asked is not None and time.monotonic() - asked > self.cancel_grace:
                log.info("napari-unet: the worker did not stop within %.1f s; terminating it",
                         self.cancel_grace)
                self._stop_process(0)
                return Outcome(job.id, job.kind, cancelled=True, killed=True, timings=timings)

    def _final(self, job: Job, reply: Reply, timings: dict) -> Outcome:
        timings.update(reply.timings or {})
        if reply.kind == "cancelled":
            return Outcome(job.id, job.kind, cancelled=True, timings=timings)
        if reply.kind == "error":
            err = reply.value
            remote = getattr(err, "remote_traceback", None)
            if remote:
                log.debug("napari-unet worker job %s failed:\n%s", job.id, remote)
            return Outcome(job.id, job.kind, error=err, timings=timings)
        t0 = time.perf_counter()
        try:
            value = shm.fetch(reply.value)
        except Exception as err:  # noqa: BLE001 - e.g. no memory for the copy
            return Outcome(job.id, job.kind, error=err, timings=timings)
        timings["receive"] = time.perf_counter() - t0
        if job.cancel_requested is not None:  # Stopped early (training), or just finished.
            return Outcome(job.id, job.kind, value=value, cancelled=True, timings=timings)
        return Outcome(job.id, job.kind, value=value, timings=timings)

    def _died(self, job: Job, proc, timings: dict) -> Outcome:
        proc.join(2)
        exitcode = proc.exitcode
        if self._proc is proc:
            self._stop_process(0)
        log.warning("napari-unet: the worker process died (exit code %s)", exitcode)
        if job.cancel_requested is not None:
            return Outcome(job.id, job.kind, cancelled=True, killed=True, timings=timings)
        return Outcome(job.id, job.kind, error=WorkerDied(exitcode), timings=timings)

    def _stop_process(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit, then terminate (and kill) it if it does not."""
        proc, conn = self._proc, self._conn
        if proc is None:
            return
        if proc.exitcode is None and timeout > 0:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
            proc.join(timeout)
        if proc.exitcode is None:
            proc.terminate()
            proc.join(1)
        if proc.exitcode is None:
            proc.kill()
            proc.join(1)
        self._forget_process()

    def _forget_process(self) -> None:
        conn, self._conn, self._proc = self._conn, None, None
        if conn is not None:
            conn.close()


def _start_without_main(proc) -> None:
    """Start ``proc`` so that the new interpreter does not run napari's main script.

    The ``spawn`` method re-runs the parent's ``__main__`` module in the child
    (to find functions defined there): a napari script without an ``if
    __name__ == "__main__":`` guard would open a second viewer in the worker,
    which needs nothing from ``__main__``. So an empty stand-in is in
    ``sys.modules`` for the moment ``start`` records what the child prepares.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        proc.start()
    finally:
        sys.modules["__main__"] = main


def _call(callback, *args) -> None:
    """Call a user callback; its failure is logged, never fatal to the dispatcher."""
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:  # noqa: BLE001
        log.exception("napari-unet: a worker callback failed")
