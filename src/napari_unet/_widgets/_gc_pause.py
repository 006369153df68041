"""Keep napari's full garbage collections out of a dock's construction.

napari's process holds a large heap (Qt wrappers, evented models), so a
full (generation-2) collection holds the GIL for 110-200 ms on the 2-core
machines we measure on. Building a dock allocates enough to trigger one,
and under PyQt5 it then landed inside the dock's opening every time (285-441
ms instead of ~200). The pause below holds automatic collection off while a
dock is built, then collects once, a moment later, when the user is not
waiting on anything. It is scoped: collection is enabled again right after,
and never touched if someone else had disabled it.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

#: After the dock's first paint; the Segment dock's preload holds on longer.
RELEASE_DELAY_MS = 500

_lock = threading.Lock()
_holds = 0
_resume = False


def hold() -> None:
    """Pause automatic garbage collection until the matching :func:`release`."""
    global _holds, _resume
    with _lock:
        if _holds == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holds += 1


def release() -> None:
    """End one :func:`hold`; the last one collects once and resumes collection.

    Safe to call from any thread (the Segment dock's preload thread ends
    its hold there, so that its imports are collected too).
    """
    global _holds
    with _lock:
        if _holds == 0:
            return
        _holds -= 1
        if _holds == 0 and _resume:
            gc.collect()
            gc.enable()


def release_later(delay_ms: int = RELEASE_DELAY_MS) -> None:
    """:func:`release` from the Qt event loop, ``delay_ms`` from now (at once
    where no Qt application runs, e.g. a script importing a dock's module)."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    if QApplication.instance() is None:
        release()
    else:
        QTimer.singleShot(delay_ms, release)


@contextmanager
def held(delay_ms: int = RELEASE_DELAY_MS):
    """:func:`hold` for the block, :func:`release_later` after it."""
    hold()
    try:
        yield
    finally:
        release_later(delay_ms)
