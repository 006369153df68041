"""State of a widget run and its progress bar in napari's activity dock."""

from __future__ import annotations

import time
import weakref

#: Minimum time between progress-bar updates: each one costs the GUI thread
#: 10-100 ms in napari's activity dock on a busy machine.
UPDATE_INTERVAL = 0.25


class RunState:
    """Everything the GUI thread remembers about the run in progress.

    Parameters
    ----------
    run_id : int
    job : Job
    target : Result or None
        The result layer written into, or None for a new layer.
    image : napari.layers.Image
    shape : tuple of int
        Shape of the full label array for the image.
    geometry : dict
        Layer keyword arguments placing results over the image.
    """

    def __init__(self, run_id, job, target, image, shape, geometry):
        self.id, self.job, self.target = run_id, job, target
        # A run only writes into its target if nobody edited it meanwhile.
        self.edit_version = target.tracker.version if target is not None else None
        self.image, self.image_name = weakref.ref(image), image.name
        self.shape, self.geometry = tuple(shape), geometry
        lead = shape[:-2] if job.region.lead is None else ()
        self.n_planes = int(_prod(lead))
        self.started = time.perf_counter()
        self.pbar = None
        self.handle = None  # the worker client's Job
        self._shown_at = 0.0
        self._description = ""

    def show_progress(self, done: int, total: int) -> None:
        """Advance the progress bar; say which plane of a stack is running."""
        pbar = self.pbar  # Updating it may process events that end the run.
        now = time.perf_counter()
        if pbar is None or (0 < done < total and now - self._shown_at < UPDATE_INTERVAL):
            return
        self._shown_at = now
        if pbar.total != total:
            pbar.total = total
        per_plane = max(1, total // self.n_planes)
        plane = min(self.n_planes, done // per_plane + 1)
        where = f": plane {plane}/{self.n_planes}" if self.n_planes > 1 else ""
        description = f"U-Net on {self.image_name}{where}"
        if description != self._description:  # Relayouts the activity dock: only on change.
            self._description = description
            pbar.set_description(description)
        if done > pbar.n:
            pbar.update(done - pbar.n)

    def close(self) -> None:
        if self.pbar is not None:
            self.pbar.close()
            self.pbar = None


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out
