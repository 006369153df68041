"""What every ``napari-unet`` command shares: errors, checked option types, progress."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

TIFF_SUFFIXES = (".tif", ".tiff")


class CLIError(Exception):
    """An error to report as one line, without a traceback."""


def first_line(err: BaseException) -> str:
    """The first line of an error message (or its type when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --------------------------------------------------------------------------
# Option types: argparse calls them; a bad value becomes one line on stderr.
# --------------------------------------------------------------------------
def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def probability(text: str) -> float:
    """A probability threshold, strictly between 0 and 1."""
    value = _number(float, text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value:g}")
    return value


def iou_threshold(text: str) -> float:
    value = _number(float, text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value:g}")
    return value


def fraction(text: str) -> float:
    """A fraction in [0, 1)."""
    value = _number(float, text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value:g}")
    return value


def positive_float(text: str) -> float:
    value = _number(float, text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(float, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def channels(text: str):
    """``--channel``: an index, a comma list of indices, or 'mean'."""
    if text == "mean":
        return "mean"
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an index, a comma list or 'mean', got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"channel indices must be >= 0, got {text!r}")
    return values


def voxel_size(text: str) -> tuple[float, float, float]:
    """``Z,Y,X``: three positive numbers."""
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers Z,Y,X, got {text!r}")
    values = tuple(_number(float, p) for p in parts)
    if min(values) <= 0:
        raise argparse.ArgumentTypeError(f"voxel sizes must be > 0, got {text!r}")
    return values


def axes_letters(text: str) -> str:
    letters = text.strip().upper()
    if not letters or set(letters) - set("TZCYXS"):
        raise argparse.ArgumentTypeError(f"use letters from T, Z, C, Y, X, got {text!r}")
    return letters


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------
def is_zarr(path: Path) -> bool:
    """A zarr array (a ``.zarr`` folder or one holding zarr metadata)."""
    return path.suffix == ".zarr" or (path.is_dir() and any(
        (path / m).exists() for m in (".zarray", "zarr.json", ".zgroup")))


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a person at a terminal, never in logs or pipes."""
    return not quiet and sys.stderr.isatty()


class ProgressBar:
    """A tqdm bar fed by the core's ``progress(done, total)`` callback."""

    def __init__(self, desc: str, quiet: bool, unit: str = "tile"):
        self.desc, self.quiet, self.unit, self.bar = desc, not show_progress(quiet), unit, None

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int):
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, leave=False)
        if total != self.bar.total:
            self.bar.reset(total=total)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def note(message: str) -> None:
    """One informational line on stderr (stdout stays for results)."""
    print(message, file=sys.stderr)
