"""Numpy arrays between processes through :mod:`multiprocessing.shared_memory`.

A message is any mix of lists, tuples, dicts and dataclasses. Before it is
pickled, :func:`export` puts every big array in it into a named shared
memory segment and leaves a :class:`SharedArray` descriptor in its place;
the receiver turns descriptors back into arrays. Small arrays (under
:data:`MIN_SHARED_BYTES`) are simply pickled.

Lifecycle (who unlinks what): the **client** creates the segments of a
job's inputs and unlinks them when the job ends, however it ends; the
**worker** creates the segments of a job's results under names the client
chose (``<prefix>o<k>``), the client maps (or copies) them and unlinks them, and
if the worker died before handing them over, the client removes every
segment under that prefix (:func:`remove_prefix`). Nothing is left in
``/dev/shm`` after a job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import mmap
import os
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory

import numpy as np

#: Arrays smaller than this are pickled with the message.
MIN_SHARED_BYTES = 1 << 16
_SHM_FOLDER = "/dev/shm"


@dataclass(frozen=True)
class SharedArray:
    """Where an array waits in shared memory: segment name, shape, dtype."""

    name: str
    shape: tuple
    dtype: str


class Slice:
    """An array to read when the message is sent, not when it is built.

    ``np.asarray(data[index])`` runs in the client's thread, so reading a
    dask or zarr layer from disk never blocks napari's GUI thread.
    """

    def __init__(self, data, index=()):
        self.data, self.index = data, index

    def read(self) -> np.ndarray:
        return np.asarray(self.data[self.index] if self.index != () else self.data)


class Segments:
    """Shared memory segments one side opened for a job; closed (and unlinked) together."""

    def __init__(self):
        self._open: list[shared_memory.SharedMemory] = []
        self.created: list[str] = []

    def create(self, name: str, array: np.ndarray) -> SharedArray:
        """Copy ``array`` into a new segment ``name``; return its descriptor."""
        shm = shared_memory.SharedMemory(name=name, create=True, size=array.nbytes)
        self.created.append(name)
        try:
            _allocate(shm.name, array.nbytes)
            view = np.ndarray(array.shape, array.dtype, buffer=shm.buf)
            np.copyto(view, array, casting="no")
            del view
        except BaseException:
            shm.close()
            shm.unlink()
            self.created.remove(name)
            raise
        self._open.append(shm)
        return SharedArray(name, tuple(array.shape), array.dtype.str)

    def attach(self, ref: SharedArray) -> np.ndarray:
        """A view of the segment ``ref`` (valid until :meth:`close`)."""
        shm = shared_memory.SharedMemory(name=ref.name)
        self._open.append(shm)
        return np.ndarray(ref.shape, np.dtype(ref.dtype), buffer=shm.buf)

    def close(self) -> None:
        """Unmap every segment (views must be gone; a still-used one stays mapped)."""
        lingering = []
        for shm in self._open:
            try:
                shm.close()
            except BufferError:  # A view is still referenced (e.g. by a traceback).
                lingering.append(shm)
        self._open = lingering

    def unlink(self) -> None:
        """Close, and remove the segments this side created."""
        self.close()
        for name in self.created:
            remove(name)
        self.created = []


def _allocate(name: str, size: int) -> None:
    """Have the kernel allocate a new segment's pages in one call.

    ``/dev/shm`` has no transparent huge pages here, so copying into a fresh
    segment allocates its pages one fault per 4 KB: 45-185 ms for the 50 MB
    of a 2048^2 run's probabilities in a process that has just run the
    network (the slow end once the kernel's free pages have gone back to
    the host), against 42-62 ms with ``posix_fallocate`` first (measured on
    a 2-core VM; inside the Segment dock's worker the copy itself stayed at
    130-190 ms, for reasons not found yet). Where it does not exist
    or fails otherwise, the copy faults the pages in as before; a full
    ``/dev/shm`` is reported here, instead of a SIGBUS in the copy.
    """
    path = os.path.join(_SHM_FOLDER, name.lstrip("/"))
    if not hasattr(os, "posix_fallocate") or not os.path.exists(path):
        return
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise MemoryError(f"not enough shared memory in {_SHM_FOLDER} for "
                              f"{size / 2**20:.0f} MB") from err
    finally:
        os.close(fd)


def export(obj, segments: Segments, prefix: str):
    """``obj`` with big arrays (and :class:`Slice` reads) moved to shared memory.

    Segments are named ``<prefix>0``, ``<prefix>1``...
    """
    counter = iter(range(1 << 30))

    def leaf(value):
        if isinstance(value, Slice):
            value = value.read()
        if isinstance(value, np.ndarray) and value.nbytes >= MIN_SHARED_BYTES \
                and value.dtype.kind in "biufc":
            return segments.create(f"{prefix}{next(counter)}", value)
        return value

    return _walk(obj, leaf)


def attach(obj, segments: Segments):
    """``obj`` with every :class:`SharedArray` replaced by a view of its segment."""
    return _walk(obj, lambda v: segments.attach(v) if isinstance(v, SharedArray) else v)


def fetch(obj):
    """``obj`` with every :class:`SharedArray` turned into an array of its own,
    its segment unlinked.

    Where segments are files in ``/dev/shm`` (Linux), the array maps the
    segment's pages directly and its name is removed at once: no copy (the
    pages are freed when the array is), which is half the data movement of a
    run. Elsewhere the array is a copy.
    """

    def leaf(value):
        if not isinstance(value, SharedArray):
            return value
        path = os.path.join(_SHM_FOLDER, value.name.lstrip("/"))
        if os.path.isdir(_SHM_FOLDER) and os.path.exists(path):
            return _map_and_unlink(path, value)
        shm = shared_memory.SharedMemory(name=value.name)
        try:
            view = np.ndarray(value.shape, np.dtype(value.dtype), buffer=shm.buf)
            out = view.copy()
            del view
        finally:
            shm.close()
            shm.unlink()
        return out

    return _walk(obj, leaf)


def _map_and_unlink(path: str, ref: SharedArray) -> np.ndarray:
    """A writable array over the segment file at ``path``, whose name is gone."""
    dtype = np.dtype(ref.dtype)
    nbytes = int(np.prod(ref.shape, dtype=np.int64)) * dtype.itemsize
    fd = os.open(path, os.O_RDWR)
    try:
        if nbytes == 0:
            return np.zeros(ref.shape, dtype)
        buffer = mmap.mmap(fd, nbytes)  # MAP_SHARED: the worker's pages, not a copy
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        # What SharedMemory.unlink() also does: the worker registered the
        # segment with the resource tracker it shares with this process,
        # which would otherwise report it as leaked at exit.
        with contextlib.suppress(Exception):
            resource_tracker.unregister("/" + ref.name.lstrip("/"), "shared_memory")
    return np.ndarray(ref.shape, dtype, buffer=buffer)


def remove(name: str) -> bool:
    """Unlink segment ``name`` if it exists; return whether it did."""
    try:
        shm = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return False
    shm.close()
    with contextlib.suppress(FileNotFoundError):
        shm.unlink()
    return True


def remove_prefix(prefix: str) -> int:
    """Unlink every segment whose name starts with ``prefix``; return how many.

    Lists ``/dev/shm`` where there is one (Linux); elsewhere tries
    ``<prefix>0``, ``<prefix>1``... until one is missing, the order in
    which :func:`export` creates them.
    """
    if os.path.isdir(_SHM_FOLDER):
        names = [n for n in os.listdir(_SHM_FOLDER) if n.startswith(prefix)]
        return sum(remove(n) for n in names)
    n = 0
    while remove(f"{prefix}{n}"):
        n += 1
    return n


def _walk(obj, leaf):
    """Apply ``leaf`` to every value inside lists, tuples, dicts and dataclasses."""
    if type(obj) in (list, tuple):
        return type(obj)(_walk(v, leaf) for v in obj)
    if type(obj) is dict:
        return {k: _walk(v, leaf) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, (type, SharedArray)):
        changes = {}
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            old = getattr(obj, f.name)
            new = _walk(old, leaf)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(obj, **changes) if changes else obj
    return leaf(obj)
