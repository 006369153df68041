"""Cancelling long runs: one exception and one way to ask a token.

Every long-running core function (prediction, post-processing of stacks,
out-of-core runs, training) takes a ``cancel`` token and checks it between
units of work (a batch of tiles, a plane, a block, a training step).
"""

from __future__ import annotations


class Cancelled(Exception):
    """Raised when a run is cancelled; no partial result is returned."""


def is_cancelled(cancel) -> bool:
    """Evaluate a cancellation token.

    Parameters
    ----------
    cancel : None, callable or Event-like
        ``None`` (never cancelled), a callable returning True when the run
        must stop, or an object with ``is_set()`` (``threading.Event``,
        ``multiprocessing.Event``).

    Returns
    -------
    bool
    """
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def check_cancelled(cancel, what: str = "Run") -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set."""
    if is_cancelled(cancel):
        raise Cancelled(f"{what} cancelled")
