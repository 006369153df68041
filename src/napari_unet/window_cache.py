"""A cache of window predictions shared by neighbouring regions of a plane.

Out of core, each block is predicted with a halo of context, so the windows
of the plane's grid along block faces touch several blocks.
:class:`WindowCache` keeps each such window's prediction (only the part later
regions cover) from its first use to its last, so that
:func:`~napari_unet.tiling.predict_region` computes every window once.
"""

from __future__ import annotations

import numpy as np


class WindowCache:
    """Window predictions shared by neighbouring regions of one plane.

    Out of core, blocks plus their halo overlap, so the same windows touch
    several blocks. Given, for each window, the regions (numbered in
    processing order, with their ``(y0, y1, x0, x1)`` boxes) that need it,
    the cache keeps a window's prediction from its first use to its last,
    and no longer, and only the part of it that later regions cover: each
    window is computed once, and memory holds only the parts of windows
    along the faces of regions still to come (a few rows of windows).
    """

    def __init__(self, uses: dict):
        self._uses = uses  # (i, j) -> [(region number, region box), ...]
        self._last_use = {ij: max(n for n, _ in u) for ij, u in uses.items()}
        self._store: dict = {}
        self.region = 0

    def get(self, ij):
        """``(prediction, (dy, dx))``: the kept part of the window and its
        offset in the window, or None."""
        return self._store.get(ij)

    def offer(self, ij, pred: np.ndarray, start: tuple[int, int] = (0, 0)) -> None:
        """Keep the part of window ``ij`` (at global ``start``) that later regions need."""
        later = [box for n, box in self._uses.get(ij, ()) if n > self.region]
        if not later:
            return
        (y, x), (th, tw) = start, pred.shape[:2]
        a0 = max(0, min(b[0] for b in later) - y)
        a1 = min(th, max(b[1] for b in later) - y)
        c0 = max(0, min(b[2] for b in later) - x)
        c1 = min(tw, max(b[3] for b in later) - x)
        # A copy: not a view of the whole batch.
        self._store[ij] = (np.array(pred[a0:a1, c0:c1]), (a0, c0))

    def advance(self) -> None:
        """The current region is done: forget windows no later region needs."""
        self._store = {ij: p for ij, p in self._store.items()
                       if self._last_use[ij] > self.region}
        self.region += 1

    def nbytes(self) -> int:
        """Memory held by the kept predictions."""
        return sum(p.nbytes for p, _ in self._store.values())

    def __len__(self) -> int:
        return len(self._store)
