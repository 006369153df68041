"""Where the Train dock's models go, and how its errors read.

Training itself runs in the training worker process
(:class:`napari_unet.worker.protocol.TrainRequest`).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from ..paths import models_dir
from ..worker.protocol import WorkerDied

#: Below this many steps, XLA compilation costs more than it saves.
JIT_MIN_STEPS = 100


def default_output_path(parent: str | None, base_filters: int = 16, now=None) -> Path:
    """A new, unused model file in :func:`models_dir`.

    ``<parent>_ft_<YYYYmmdd-HHMMSS>.keras`` when fine-tuning (an earlier
    ``_ft_`` suffix of the parent is dropped, so generations do not pile
    up), ``unet_b<width>_<stamp>.keras`` from scratch; ``_v2``, ``_v3``…
    if taken.
    """
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    if parent is None:
        stem = f"unet_b{base_filters}_{stamp}"
    else:
        base = re.sub(r"_ft_\d{8}-\d{6}(_v\d+)?$", "", Path(parent).stem)
        stem = f"{base}_ft_{stamp}"
    folder = models_dir()
    path, n = folder / f"{stem}.keras", 2
    while path.exists():
        path, n = folder / f"{stem}_v{n}.keras", n + 1
    return path


def describe(err: BaseException) -> str:
    """One user-facing sentence for an error raised by a training run."""
    if isinstance(err, WorkerDied):
        return f"Training stopped: {err}"
    if isinstance(err, MemoryError):
        return ("Training failed: not enough memory. Lower the batch size or the patch size, "
                "or train on fewer or smaller images.")
    if isinstance(err, (ValueError, OSError)):  # bad data/settings, model or file errors
        return f"Training failed: {err}"
    return f"Training failed ({type(err).__name__}): {err}"
