"""Training data on disk and in memory: dataset folders and 2D training planes.

A training set is a list of 2D planes ``(H, W, C)`` (kept in their original
dtype, normalized patch by patch, so a large data set costs its file size in
memory, not four times more) with ``(H, W)`` instance labels.

Folder layout read by :func:`read_dataset`::

    DATASET/images/<name>.tif   DATASET/masks/<name>.tif   [DATASET/dataset.json]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..normalize import check_dtype


@dataclass
class Dataset:
    """Image/label pairs read from disk."""

    images: list
    labels: list
    names: list[str]
    manifest: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def read_dataset(folder, *, channel_axis: int | None = None) -> Dataset:
    """Read ``folder/images/*.tif`` with their ``folder/masks/<same stem>.tif``.

    Parameters
    ----------
    folder : str or Path
        Dataset root. ``dataset.json`` there, if present, is returned as
        ``manifest`` (free-form description: name, source, licence, ...).
    channel_axis : int, optional
        Channel axis of multichannel images (validated by
        :func:`training_planes`).

    Returns
    -------
    Dataset
        Images without a mask are listed in ``skipped``.

    Raises
    ------
    ValueError
        No ``images`` folder, or no image with a mask.
    """
    import tifffile

    folder = Path(folder)
    img_dir, mask_dir = folder / "images", folder / "masks"
    if not img_dir.is_dir():
        raise ValueError(f"{folder} is not a dataset: it has no 'images' folder")
    manifest = {}
    if (folder / "dataset.json").is_file():
        manifest = json.loads((folder / "dataset.json").read_text())
    images, labels, names, skipped = [], [], [], []
    for path in sorted(p for p in img_dir.iterdir() if p.suffix.lower() in (".tif", ".tiff")):
        masks = [mask_dir / f"{path.stem}{ext}" for ext in (".tif", ".tiff")]
        mask = next((m for m in masks if m.is_file()), None)
        if mask is None:
            skipped.append(path.name)
            continue
        images.append(tifffile.imread(path))
        labels.append(tifffile.imread(mask))
        names.append(path.stem)
    if not images:
        raise ValueError(f"No image in {img_dir} has a mask of the same name in {mask_dir}")
    # Validate now, so a bad pair is reported by file name.
    for name, img, lab in zip(names, images, labels):
        try:
            training_planes([img], [lab], channel_axis=channel_axis)
        except ValueError as err:
            raise ValueError(f"{folder.name}/{name}: {err}") from None
    return Dataset(images, labels, names, manifest, skipped)


def training_planes(images, labels, *, channel_axis: int | None = None):
    """Validate image/label pairs and cut them into 2D planes.

    Parameters
    ----------
    images : array or list of arrays
        2D images or stacks ``(..., Y, X)``; with ``channel_axis`` for
        multichannel data. A single array is one image.
    labels : array or list of arrays
        Integer instance labels with each image's spatial shape.
    channel_axis : int, optional
        Axis of ``images`` holding channels.

    Returns
    -------
    planes : list of ndarray ``(H, W, C)``, original dtype
    label_planes : list of int32 ndarray ``(H, W)``

    Raises
    ------
    ValueError
        Empty input, unequal counts, shape or channel mismatches, non-integer
        labels.
    """
    if isinstance(images, np.ndarray) or hasattr(images, "dtype"):
        images, labels = [images], [labels]
    images, labels = list(images), list(labels)
    if not images:
        raise ValueError("No training images were given.")
    if len(images) != len(labels):
        raise ValueError(f"Got {len(images)} images but {len(labels)} label images.")
    planes, label_planes, n_channels = [], [], None
    for i, (img, lab) in enumerate(zip(images, labels)):
        img, lab = np.asarray(img), np.asarray(lab)
        check_dtype(img)
        if lab.dtype.kind not in "iub":
            raise ValueError(f"Labels #{i} must be integers (instance ids), got {lab.dtype}.")
        if channel_axis is not None:
            img = np.moveaxis(img, channel_axis, -1)
        else:
            img = img[..., None]
        if img.shape[:-1] != lab.shape:
            raise ValueError(f"Image #{i} has spatial shape {img.shape[:-1]} but its labels "
                             f"have shape {lab.shape}.")
        if lab.ndim < 2 or 0 in lab.shape:
            raise ValueError(f"Image #{i} must be at least 2D and non-empty, got {lab.shape}.")
        if n_channels not in (None, img.shape[-1]):
            raise ValueError(f"Image #{i} has {img.shape[-1]} channels, earlier ones "
                             f"{n_channels}.")
        n_channels = img.shape[-1]
        for idx in np.ndindex(*lab.shape[:-2]):
            planes.append(img[idx])
            label_planes.append(lab[idx].astype(np.int32))
    return planes, label_planes


def split_components(labels, min_size: int = 0) -> np.ndarray:
    """Give every connected piece of every label its own id.

    Hand-made masks sometimes reuse an id for two separate nuclei or leave a
    few stray pixels; this returns sequential ``int32`` labels where each
    4-connected component is one object, dropping pieces smaller than
    ``min_size`` pixels. Works on one 2D plane.
    """
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, dtype=np.int32)
    next_id = 1
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        comps, n = ndi.label(labels[sl] == i)
        sizes = np.bincount(comps.ravel(), minlength=n + 1)
        for k in range(1, n + 1):
            if sizes[k] >= max(min_size, 1):
                out[sl][comps == k] = next_id
                next_id += 1
    return out
