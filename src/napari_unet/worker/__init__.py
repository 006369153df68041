"""A separate process that runs the network for the napari docks.

TensorFlow never enters napari's process: its import holds the GIL for
seconds, its bundled LLVM clashes with the OpenGL driver's, and an abort or
out-of-memory kill inside it would take every unsaved hand edit with it.
The docks hand their work to a :class:`WorkerClient`, which runs it in a
Python process started with :mod:`multiprocessing`'s ``spawn`` method:

* :mod:`.protocol`: the requests (warm-up, segment, out-of-core segment,
  re-label, train), their results and the outcome of a job;
* :mod:`.shm`: big arrays travel through :mod:`multiprocessing.shared_memory`,
  never pickled; small messages go over a pipe;
* :mod:`.server`: the worker's loop, plain calls into the core;
* :mod:`.client`: the napari side: starts the worker in the background,
  reports progress, cancels, and notices a worker that died.

Nothing here imports napari or Qt; the Python API and the CLI keep running
in their own process and do not use this package.
"""

from .client import Job, WorkerClient
from .protocol import Outcome, WorkerDied

__all__ = ["Job", "Outcome", "WorkerClient", "WorkerDied"]
