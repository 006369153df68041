"""Live training curve for the Train widget: a small matplotlib canvas.

Points arrive many times a second; drawing a figure takes tens of
milliseconds, so redraws are coalesced: every update (re)arms one
single-shot timer and the canvas is drawn at most once per ``interval``.
Until the first point arrives the axes are hidden behind a short text
(empty axes would show meaningless ticks). Everything here runs in the GUI
thread.
"""

from __future__ import annotations

import math

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer

LOSS_COLOR, VAL_LOSS_COLOR, SCORE_COLOR = "#4aa3df", "#f0a030", "#5fd35f"
NO_TRAINING = "No training yet.\nThe loss curve appears here\nonce training starts."
WAITING = "Loading data and the model…\nThe curve starts with the first step."


class TrainingPlot:
    """Training loss per step, validation loss and score per epoch.

    The x axis counts epochs (a step of epoch ``e`` sits at
    ``e - 1 + step / steps``); the score (mean validation Dice, 0-1) has its
    own axis on the right.

    Parameters
    ----------
    parent : QWidget, optional
        Owner of the canvas and of the redraw timer.
    interval : int
        Minimum milliseconds between two redraws.
    colors : (str, str), optional
        Background and text colours (napari's theme).
    """

    def __init__(self, parent=None, interval: int = 300, colors=("#262930", "#f0f1f2")):
        background, text = colors
        self.figure = Figure(figsize=(3.2, 2.2), dpi=90, facecolor=background,
                             layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setParent(parent)
        self.canvas.setMinimumHeight(170)
        self.ax = self.figure.add_subplot()
        self.ax_score = self.ax.twinx()
        for ax in (self.ax, self.ax_score):
            ax.set_facecolor(background)
            ax.tick_params(colors=text, labelsize=7)
            for spine in ax.spines.values():
                spine.set_color(text)
        self.ax.set_xlabel("epoch", color=text, fontsize=8)
        self.ax.set_ylabel("loss", color=text, fontsize=8)
        self.ax_score.set_ylabel("val. score", color=SCORE_COLOR, fontsize=8)
        (self._loss_line,) = self.ax.plot([], [], lw=0.8, color=LOSS_COLOR, label="loss")
        (self._val_line,) = self.ax.plot([], [], "o-", ms=3, lw=1, color=VAL_LOSS_COLOR,
                                         label="val. loss")
        (self._score_line,) = self.ax_score.plot([], [], "s-", ms=3, lw=1, color=SCORE_COLOR,
                                                 label="val. score")
        self.ax.legend(handles=[self._loss_line, self._val_line, self._score_line],
                       fontsize=6, loc="upper right", facecolor=background, labelcolor=text,
                       framealpha=0.6)
        self._note = self.figure.text(0.5, 0.5, NO_TRAINING, ha="center", va="center",
                                      color=text, fontsize=8)
        self.steps: list[tuple[float, float]] = []
        self.epochs: list[tuple[float, float | None, float | None]] = []
        self.draws = 0
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval)
        self._timer.timeout.connect(self.redraw)
        self._show_axes(False)

    @property
    def note(self) -> str | None:
        """The text shown instead of the axes, or None when the curve is shown."""
        return self._note.get_text() if self._note.get_visible() else None

    def clear(self, note: str = WAITING) -> None:
        """Forget all points (a new run starts); show ``note`` until the first arrives."""
        self.steps.clear()
        self.epochs.clear()
        self._note.set_text(note)
        self.redraw()

    def _show_axes(self, show: bool) -> None:
        for ax in (self.ax, self.ax_score):
            ax.set_visible(show)
        self._note.set_visible(not show)

    def add(self, event: dict) -> None:
        """Add one progress dict of :func:`napari_unet.train` (step or epoch)."""
        if event.get("event") == "step":
            x = event["epoch"] - 1 + event["step"] / max(1, event.get("steps") or 1)
            if math.isfinite(event.get("loss", math.nan)):
                self.steps.append((x, float(event["loss"])))
        elif event.get("event") == "epoch":
            self.epochs.append((float(event["epoch"]), event.get("val_loss"),
                                event.get("val_score")))
        else:
            return
        if not self._timer.isActive():  # coalesce: one draw per interval at most
            self._timer.start()

    def redraw(self) -> None:
        """Draw now (also called by the throttling timer)."""
        self._timer.stop()
        self._show_axes(bool(self.steps or self.epochs))
        self._loss_line.set_data(*_columns(self.steps, 2))
        val = [(x, v) for x, v, _ in self.epochs if v is not None]
        score = [(x, s) for x, _, s in self.epochs if s is not None]
        self._val_line.set_data(*_columns(val, 2))
        self._score_line.set_data(*_columns(score, 2))
        for ax in (self.ax, self.ax_score):
            ax.relim()
            ax.autoscale_view()
        if score:
            self.ax_score.set_ylim(0, 1)
        self.canvas.draw_idle()
        self.draws += 1


def _columns(points, n):
    return tuple(list(col) for col in zip(*points, strict=True)) if points else ([],) * n
