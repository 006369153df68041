"""Training data on disk and in memory: dataset folders and 2D training planes.

A training set is a list of 2D planes ``(H, W, C)`` (kept in their original
dtype, normalized patch by patch, so a large data set costs its file size in
memory, not four times more) with ``(H, W)`` instance labels.

Folder layout read by :func:`read_dataset`::

    DATASET/images/<name>.tif   DATASET/masks/<name>.tif   [DATASET/dataset.json]
    [DATASET/counted/<name>.tif]  sparse annotation: nonzero pixels count

Without a counted mask every pixel of a pair counts.
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
    """Image/label pairs read from disk.

    Attributes
    ----------
    images : list of ndarray
        Images with their channels, if any, on the last axis.
    labels : list of ndarray
        Integer labels with each image's spatial shape.
    names : list of str
        File stems.
    manifest : dict
        ``dataset.json``, if present.
    skipped : list of str
        Images without a mask.
    counted : list of (ndarray of bool or None)
        Per pair, the pixels that count for training (``counted/<stem>.tif``,
        sparse annotation), or None where all of them count.
    """

    images: list
    labels: list
    names: list[str]
    manifest: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    counted: list = field(default_factory=list)

    @property
    def sparse(self) -> bool:
        """Whether some pair counts only part of its pixels."""
        return any(c is not None for c in self.counted)

    @property
    def channel_axis(self) -> int | None:
        """-1 when the images have channels (always last), else None."""
        return -1 if self.images and self.images[0].ndim > self.labels[0].ndim else None


def read_dataset(folder, *, channel_axis: int | None = None) -> Dataset:
    """Read ``folder/images/*.tif`` with their ``folder/masks/<same stem>.tif``.

    Each image's channel axis is found in this order: ``channel_axis`` if
    given, the pair's ``image_axes`` in ``dataset.json`` (what
    :func:`napari_unet.export.export_pairs` writes, e.g. ``"CYX"``), the
    axes the TIFF file declares (RGB samples, ImageJ channels), then the one
    axis whose removal gives the mask's shape
    (:func:`napari_unet.axes.channel_axis_between`). Channels are moved last,
    so a dataset exported by the napari dock trains without extra flags.

    Parameters
    ----------
    folder : str or Path
        Dataset root. ``dataset.json`` there, if present, is returned as
        ``manifest`` (free-form description: name, source, licence, ...).
    channel_axis : int, optional
        Channel axis of the image *files*, overriding what they declare.

    Returns
    -------
    Dataset
        Images without a mask are listed in ``skipped``.

    Raises
    ------
    ValueError
        No ``images`` folder, no image with a mask, a pair whose shapes do not
        match, or images that disagree about having channels.
    """
    import tifffile

    from ..axes import channel_axis_between

    folder = Path(folder)
    img_dir, mask_dir = folder / "images", folder / "masks"
    if not img_dir.is_dir():
        raise ValueError(f"{folder} is not a dataset: it has no 'images' folder")
    manifest = {}
    if (folder / "dataset.json").is_file():
        try:
            manifest = json.loads((folder / "dataset.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{folder / 'dataset.json'} is not valid JSON: {err}") from None
    declared = {Path(p.get("image", "")).stem: p.get("image_axes")
                for p in (manifest.get("pairs") or []) if isinstance(p, dict)}
    images, labels, names, skipped, counted = [], [], [], [], []
    for path in sorted(p for p in img_dir.iterdir() if p.suffix.lower() in (".tif", ".tiff")):
        masks = [mask_dir / f"{path.stem}{ext}" for ext in (".tif", ".tiff")]
        mask = next((m for m in masks if m.is_file()), None)
        if mask is None:
            skipped.append(path.name)
            continue
        try:
            with tifffile.TiffFile(path) as tif:
                img, file_axes = tif.series[0].asarray(), tif.series[0].axes
            lab = tifffile.imread(mask)
            counted_file = folder / "counted" / f"{path.stem}.tif"
            count = tifffile.imread(counted_file) > 0 if counted_file.is_file() else None
        except Exception as err:  # noqa: BLE001 - any unreadable file: one clear message
            raise ValueError(f"{folder.name}/{path.name}: cannot read the pair ({err})") from None
        axes = declared.get(path.stem)
        names_hint = None if axes else _tiff_channel_names(file_axes, img.ndim)
        try:
            axis = channel_axis if channel_axis is not None else channel_axis_between(
                img.shape, lab.shape, axes=axes, names=names_hint)
        except ValueError as err:
            raise ValueError(f"{folder.name}/{path.stem}: {err}") from None
        if count is not None and count.shape != lab.shape:
            raise ValueError(f"{folder.name}/counted/{path.stem}.tif: shape {count.shape} "
                             f"differs from its mask's {lab.shape}")
        images.append(img if axis is None else np.moveaxis(img, axis, -1))
        labels.append(lab)
        names.append(path.stem)
        counted.append(count)
    if not images:
        raise ValueError(f"No image in {img_dir} has a mask of the same name in {mask_dir}")
    if len({img.ndim - lab.ndim for img, lab in zip(images, labels, strict=True)}) > 1:
        raise ValueError(f"{folder.name}: some images have channels and others do not")
    # Validate now, so a bad pair is reported by file name.
    for name, img, lab in zip(names, images, labels, strict=True):
        try:
            training_planes([img], [lab], channel_axis=-1 if img.ndim > lab.ndim else None)
        except ValueError as err:
            raise ValueError(f"{folder.name}/{name}: {err}") from None
    return Dataset(images, labels, names, manifest, skipped, counted)


def _tiff_channel_names(file_axes: str, ndim: int):
    """Axis names for :func:`~napari_unet.axes.channel_axis_between` from the
    letters tifffile reports, when they say where channels are (else None)."""
    letters = "".join("C" if a == "S" else a for a in file_axes)
    return list(letters) if "C" in letters and len(letters) == ndim else None


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
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
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


def counted_planes(counted, labels) -> list:
    """Cut per-image counted masks into planes, as :func:`training_planes` cuts labels.

    Parameters
    ----------
    counted : list of (array of bool or None), or None
        Per image, the pixels that count for training (sparse annotation),
        or None where all of them count.
    labels : list of arrays
        The label images, for their shapes.

    Returns
    -------
    list of (bool ndarray (H, W) or None), one per plane; None when nothing
    is sparse.
    """
    if isinstance(labels, np.ndarray) or hasattr(labels, "dtype"):
        labels = [labels]
        counted = [counted] if counted is not None and not isinstance(counted, list) else counted
    if counted is None or all(c is None for c in counted):
        return None
    if len(counted) != len(labels):
        raise ValueError(f"Got {len(counted)} counted masks for {len(labels)} label images.")
    planes = []
    for i, (cnt, lab) in enumerate(zip(counted, labels, strict=True)):
        shape = np.shape(lab)
        if cnt is not None:
            cnt = np.asarray(cnt).astype(bool)
            if cnt.shape != shape:
                raise ValueError(f"Counted mask #{i} has shape {cnt.shape} but its labels "
                                 f"have shape {shape}.")
        for idx in np.ndindex(*shape[:-2]):
            planes.append(None if cnt is None else cnt[idx])
    return planes


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
