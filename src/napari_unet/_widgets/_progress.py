"""Progress shown inside the docks, and the state of a Segment dock run.

The docks show progress in their own bar, next to their Run/Cancel buttons,
not in napari's activity dock: napari builds that dock's machinery with the
session's first bar (0.1-0.5 s of GUI time) and relays it out on every
update (10-100 ms each on a busy machine).
"""

from __future__ import annotations

import time
import weakref

from magicgui.widgets import ProgressBar

#: Minimum time between progress-bar updates (each repaints the dock).
UPDATE_INTERVAL = 0.25


class DockProgress:
    """A progress bar for a dock: busy, counting, or idle at zero.

    Attributes
    ----------
    widget : magicgui.widgets.ProgressBar
        Add it to the dock.
    """

    def __init__(self):
        self.widget = ProgressBar(label="progress")
        self._bar = self.widget.native  # Qt's bar: a (0, 0) range shows "busy".
        self.idle()

    def busy(self) -> None:
        """Work of unknown length (starting the worker, loading a model)."""
        self._bar.setRange(0, 0)

    def show(self, done: int, total: int) -> None:
        """``done`` of ``total`` units."""
        total = max(int(total), 1)
        if self._bar.maximum() != total:
            self._bar.setRange(0, total)
        self._bar.setValue(min(int(done), total))

    def idle(self) -> None:
        self._bar.setRange(0, 1)
        self._bar.setValue(0)

    @property
    def state(self) -> tuple[int, int]:
        """``(value, maximum)``; maximum 0 while busy."""
        return self._bar.value(), self._bar.maximum()


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
    progress : DockProgress, optional
    status : magicgui.widgets.Label, optional
        Where progress is shown.
    """

    def __init__(self, run_id, job, target, image, shape, geometry, progress=None, status=None):
        self.id, self.job, self.target = run_id, job, target
        # A run only writes into its target if nobody edited it meanwhile.
        self.edit_version = target.tracker.version if target is not None else None
        self.image, self.image_name = weakref.ref(image), image.name
        self.shape, self.geometry = tuple(shape), geometry
        lead = shape[:-2] if job.region.lead is None else ()
        self.n_planes = int(_prod(lead))
        self.started = time.perf_counter()
        self.progress, self.status = progress, status
        self.handle = None  # the worker client's Job
        self._shown_at = 0.0
        self._description = ""

    def show_progress(self, done: int, total: int) -> None:
        """Advance the progress bar; say which plane of a stack is running."""
        now = time.perf_counter()
        if self.progress is None or (0 < done < total and
                                     now - self._shown_at < UPDATE_INTERVAL):
            return
        self._shown_at = now
        self.progress.show(done, total)
        per_plane = max(1, total // self.n_planes)
        plane = min(self.n_planes, done // per_plane + 1)
        where = f": plane {plane}/{self.n_planes}" if self.n_planes > 1 else ""
        description = f"U-Net on {self.image_name}{where}…"
        if description != self._description and self.status is not None:
            self._description = description
            self.status.value = description

    def close(self) -> None:
        """The run is over (its progress no longer shown)."""
        if self.progress is not None:
            self.progress.idle()
            self.progress = None


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out
