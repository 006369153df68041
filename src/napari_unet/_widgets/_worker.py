"""The docks' worker processes, and how their callbacks reach the GUI thread.

Two workers, one per role, shared by every dock of the session:
``"segment"`` (the Segment dock: warm-up, runs, re-labelling) and
``"train"`` (the Train dock), so that a long training run never holds up
segmentation. Each is a :class:`napari_unet.worker.WorkerClient`, started in
the background when the first dock of its role opens and stopped when
napari exits.
"""

from __future__ import annotations

import atexit

from qtpy.QtCore import QObject, Signal, Slot

from ..worker import WorkerClient

ROLES = ("segment", "train")
_CLIENTS: dict[str, WorkerClient] = {}


def client(role: str) -> WorkerClient:
    """The worker client of ``role``, started (in the background) if it is not yet."""
    if role not in ROLES:
        raise ValueError(f"unknown worker role {role!r}")
    worker = _CLIENTS.get(role)
    if worker is None:
        worker = _CLIENTS[role] = WorkerClient(f"napari-unet {role} worker")
        atexit.register(worker.close, 2.0)
    worker.start()
    return worker


class Inbox(QObject):
    """Runs callables in the GUI thread, posted from any thread.

    It lives in the GUI thread (a child of the dock's widget), so Qt queues
    what the worker client's thread posts; once the dock is gone, posts are
    dropped.
    """

    posted = Signal(object)

    def __init__(self, parent):
        super().__init__(parent)
        self.posted.connect(self._deliver)

    def post(self, fn, *args) -> bool:
        """Call ``fn(*args)`` in the GUI thread, soon; False if the dock is gone."""
        try:
            self.posted.emit((fn, args))
        except RuntimeError:  # The Qt object was deleted with its dock.
            return False
        return True

    def wrap(self, fn):
        """``fn`` as a callback that runs in the GUI thread."""
        return lambda *args: self.post(fn, *args)

    @Slot(object)
    def _deliver(self, item) -> None:
        fn, args = item
        fn(*args)
