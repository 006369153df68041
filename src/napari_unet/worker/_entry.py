"""The worker process's entry point, light to import.

``multiprocessing`` needs the target function in napari's process to name
it for the new interpreter. Naming this one instead of
:func:`.server.main` keeps the server's imports (the core's SciPy and
scikit-image modules, ~0.15 s of CPU) out of napari's process, where they
ran in a background thread, holding the GIL, while the first dock opened.
"""

from __future__ import annotations


def main(*args, **kwargs) -> None:
    """Run :func:`.server.main` (imported here, in the worker)."""
    from .server import main as serve

    serve(*args, **kwargs)
