"""What every napari-unet dock widget shares."""

from __future__ import annotations

from magicgui.widgets import Container

from . import _gc_pause


class DockWidget(Container):
    """A magicgui container docked from the manifest.

    Network work goes to the worker processes (see ``_worker``); light work
    such as the Export dock's file writes runs in napari thread workers,
    kept referenced here until they finish.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari when the widget is docked from the manifest.
    """

    def __init__(self, viewer):
        # Through the subclass's construction and docking (see _gc_pause).
        _gc_pause.hold()
        _gc_pause.release_later()
        super().__init__(labels=True)
        # napari hands plugins a proxy that re-wraps every layer on access;
        # layer identity (which result belongs to which image) needs the real one.
        self._viewer = getattr(viewer, "__wrapped__", viewer)
        self._workers: set = set()  # Running workers, kept referenced until they finish.

    def _start_worker(self, worker):
        """Start a napari ``thread_worker`` (created with ``start_thread=False``)."""
        worker.finished.connect(lambda w=worker: self._workers.discard(w))
        self._workers.add(worker)
        worker.start()
        return worker
