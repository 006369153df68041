"""What the Train widget runs off the GUI thread, and where its models go.

Plain functions over the core, no Qt: :func:`run_training` loads the data
(dataset folders, layer arrays) and calls :func:`napari_unet.training.train`;
it never raises, so the widget can turn every error into one notification.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ..paths import models_dir
from ..training import loop as training
from ..training.data import read_dataset
from ._warmup import ensure_tensorflow

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


# --------------------------------------------------------------------------
# What runs in the worker thread
# --------------------------------------------------------------------------
@dataclass
class TrainJob:
    """Inputs of one run, read in the GUI thread when Start is pressed."""

    folders: list
    layer_pairs: list  # (image data, channel axis, labels copy, "image + labels")
    model: str | None  # model file to fine-tune, or None for a new U-Net
    settings: dict  # keyword arguments of training.train


def run_training(job: TrainJob, progress, cancel):
    """Load the data and train; returns a TrainingResult or the exception."""
    try:
        ensure_tensorflow()  # imported outside Qt's thread pool (see _warmup)
        images, labels, parts = [], [], []
        for folder in job.folders:
            data = read_dataset(folder)  # channels, if any, come out last
            images += [img if data.channel_axis is not None else img[..., None]
                       for img in data.images]
            labels += data.labels
            parts.append(f"{Path(folder).name} ({len(data.images)} pairs)")
        for data, axis, labs, name in job.layer_pairs:
            img = np.asarray(data)
            images.append(img[..., None] if axis is None else np.moveaxis(img, axis, -1))
            labels.append(labs)
            parts.append(f"layers {name}")
        return training.train(images, labels, channel_axis=-1, model=job.model,
                              data_description="napari: " + "; ".join(parts),
                              progress=progress, cancel=cancel, **job.settings)
    except Exception as err:  # noqa: BLE001 - reported by the widget, never lost
        return err


def describe(err: BaseException) -> str:
    """One user-facing sentence for an error raised by a training run."""
    if isinstance(err, MemoryError):
        return ("Training failed: not enough memory. Lower the batch size or the patch size, "
                "or train on fewer or smaller images.")
    if isinstance(err, (ValueError, OSError)):  # bad data/settings, model or file errors
        return f"Training failed: {err}"
    return f"Training failed ({type(err).__name__}): {err}"
