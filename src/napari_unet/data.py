"""Training data: image/label pairs, targets and augmented random patches.

A training set is a list of 2D planes ``(H, W, C)`` (kept in their original
dtype, normalized patch by patch, so a large data set costs its file size in
memory, not four times more) with ``(H, W)`` instance labels. Targets are
derived from the labels after augmentation:

* ``foreground``: ``labels > 0``;
* ``boundary``: object pixels within ``boundary_width`` px of another label
  or of background. Where two nuclei touch, both rims are marked, giving a
  ``2 * boundary_width`` px gap between the watershed seeds; 2 px rims keep
  the seeds of touching nuclei apart even when the network blurs the line,
  while the ~25 px nuclei of typical 20-40x images keep solid seeds.

Folder layout read by :func:`read_dataset`::

    DATASET/images/<name>.tif   DATASET/masks/<name>.tif   [DATASET/dataset.json]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .normalize import apply_range, check_dtype, percentile_range

SUPPORTED_OUTPUTS = ("foreground", "boundary")


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


def make_targets(labels, outputs=SUPPORTED_OUTPUTS, boundary_width: int = 2) -> np.ndarray:
    """Training targets ``(H, W, len(outputs))`` (uint8 0/1) from instance labels.

    Parameters
    ----------
    labels : ndarray (H, W)
        Instance labels (0 = background).
    outputs : sequence of str
        Names of the model outputs, among ``"foreground"`` and ``"boundary"``.
    boundary_width : int
        Rim thickness in pixels of the ``"boundary"`` target.
    """
    from skimage.morphology import disk

    labels = np.asarray(labels)
    fg = labels > 0
    out = np.zeros(labels.shape + (len(outputs),), dtype=np.uint8)
    for c, name in enumerate(outputs):
        if name == "foreground":
            out[..., c] = fg
        elif name == "boundary":
            # A pixel is on a rim if a different value lies within the disk;
            # 'nearest' edges: objects cut by the patch border get no rim there.
            fp = disk(boundary_width)
            hi = ndi.maximum_filter(labels, footprint=fp, mode="nearest")
            lo = ndi.minimum_filter(labels, footprint=fp, mode="nearest")
            out[..., c] = fg & ((hi != labels) | (lo != labels))
        else:
            raise ValueError(f"Unknown output {name!r}: supported are {SUPPORTED_OUTPUTS}.")
    return out


@dataclass
class Augmentation:
    """Random patch augmentation settings (``None``/1.0 ranges disable one).

    Attributes
    ----------
    flips, rotations : bool
        Random horizontal/vertical flips and 90-degree rotations.
    scale_range : (float, float)
        Zoom factor range (log-uniform): simulates other pixel sizes.
    intensity_range : (float, float)
        Multiplier of normalized intensities.
    shift : float
        Maximum additive offset of normalized intensities.
    gamma_range : (float, float)
        Gamma applied to positive normalized intensities (half the patches).
    noise_std : float
        Maximum standard deviation of additive Gaussian noise (half the
        patches).
    """

    flips: bool = True
    rotations: bool = True
    scale_range: tuple[float, float] = (0.75, 1.33)
    intensity_range: tuple[float, float] = (0.75, 1.25)
    shift: float = 0.05
    gamma_range: tuple[float, float] = (0.7, 1.4)
    noise_std: float = 0.05

    @classmethod
    def none(cls) -> Augmentation:
        return cls(False, False, (1.0, 1.0), (1.0, 1.0), 0.0, (1.0, 1.0), 0.0)


class PatchSampler:
    """Draws augmented random patches from a list of planes.

    Half of the patches (``object_fraction``) are centred on a random object
    pixel, so sparse images still yield patches with nuclei; the rest are
    uniform, so the network also sees empty background.

    Parameters
    ----------
    planes, label_planes
        Output of :func:`training_planes`.
    patch_size : int
        Patch edge in pixels.
    outputs : sequence of str
        Target channels (see :func:`make_targets`).
    percentiles : (float, float)
        Normalization percentiles, computed per plane as at prediction time.
    augment : Augmentation or None
    """

    def __init__(self, planes, label_planes, patch_size: int, outputs=SUPPORTED_OUTPUTS, *,
                 percentiles=(1.0, 99.8), augment: Augmentation | None = None,
                 object_fraction: float = 0.5, boundary_width: int = 2):
        self.patch = int(patch_size)
        self.outputs = tuple(outputs)
        self.augment = augment or Augmentation.none()
        self.object_fraction = object_fraction
        self.boundary_width = boundary_width
        big = int(np.ceil(self.patch * max(1.0, self.augment.scale_range[1]))) + 1
        self.planes, self.labels, self.ranges, self.fg = [], [], [], []
        for img, lab in zip(planes, label_planes):
            # Ranges from the unpadded plane, exactly as prediction does.
            lo_hi = [percentile_range(img[..., k], *percentiles) for k in range(img.shape[-1])]
            self.ranges.append((np.array([r[0] for r in lo_hi]), np.array([r[1] for r in lo_hi])))
            pad = [(0, max(0, big - img.shape[0])), (0, max(0, big - img.shape[1]))]
            if any(p[1] for p in pad):
                img = np.pad(img, pad + [(0, 0)], mode="symmetric")
                lab = np.pad(lab, pad, mode="symmetric")
            self.planes.append(img)
            self.labels.append(lab)
            fg = np.flatnonzero(lab > 0)
            if len(fg) > 20_000:  # enough centres, and bounded memory
                fg = fg[:: len(fg) // 20_000 + 1]
            self.fg.append(fg.astype(np.int64))
        areas = np.array([lab.size for lab in self.labels], dtype=float)
        self.weights = areas / areas.sum()

    def sample(self, rng: np.random.Generator):
        """One ``(image (p, p, C) float32, targets (p, p, n_out) uint8)`` patch."""
        a, p = self.augment, self.patch
        i = int(rng.choice(len(self.planes), p=self.weights))
        img, lab = self.planes[i], self.labels[i]
        lo_s, hi_s = np.log(a.scale_range[0]), np.log(a.scale_range[1])
        scale = float(np.exp(rng.uniform(lo_s, hi_s))) if hi_s > lo_s else 1.0
        c = min(int(round(p * scale)), img.shape[0], img.shape[1])
        h, w = lab.shape
        if len(self.fg[i]) and rng.random() < self.object_fraction:
            y, x = np.unravel_index(self.fg[i][rng.integers(len(self.fg[i]))], lab.shape)
            y0 = rng.integers(max(0, y - c + 1), min(y, h - c) + 1)
            x0 = rng.integers(max(0, x - c + 1), min(x, w - c) + 1)
        else:
            y0, x0 = rng.integers(0, h - c + 1), rng.integers(0, w - c + 1)
        x_patch = img[y0:y0 + c, x0:x0 + c]
        l_patch = lab[y0:y0 + c, x0:x0 + c]
        if c != p:
            z = p / c
            x_patch = ndi.zoom(x_patch.astype(np.float32), (z, z, 1), order=1,
                               mode="nearest", grid_mode=True)
            l_patch = ndi.zoom(l_patch, (z, z), order=0, mode="nearest", grid_mode=True)
        x_patch = apply_range(x_patch, *self.ranges[i])
        if a.rotations:
            k = int(rng.integers(4))
            x_patch, l_patch = np.rot90(x_patch, k), np.rot90(l_patch, k)
        if a.flips and rng.random() < 0.5:
            x_patch, l_patch = x_patch[:, ::-1], l_patch[:, ::-1]
        x_patch = self._intensity(np.ascontiguousarray(x_patch), rng)
        targets = make_targets(np.ascontiguousarray(l_patch), self.outputs, self.boundary_width)
        return x_patch, targets

    def _intensity(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = self.augment
        if a.gamma_range != (1.0, 1.0) and rng.random() < 0.5:
            g = float(np.exp(rng.uniform(np.log(a.gamma_range[0]), np.log(a.gamma_range[1]))))
            pos = x > 0
            x[pos] = x[pos] ** g
        if a.intensity_range != (1.0, 1.0):
            x *= rng.uniform(*a.intensity_range)
        if a.shift:
            x += rng.uniform(-a.shift, a.shift)
        if a.noise_std and rng.random() < 0.5:
            x += rng.normal(0, rng.uniform(0, a.noise_std), x.shape).astype(np.float32)
        return x

    def batch(self, n: int, rng: np.random.Generator):
        """``n`` patches stacked: ``(n, p, p, C)`` float32, ``(n, p, p, n_out)`` float32."""
        xs, ys = zip(*(self.sample(rng) for _ in range(n)))
        return np.stack(xs), np.stack(ys).astype(np.float32)


def grid_patches(planes, label_planes, patch_size: int, outputs=SUPPORTED_OUTPUTS, *,
                 percentiles=(1.0, 99.8), max_patches: int = 256, boundary_width: int = 2):
    """Deterministic validation patches tiling the planes (no augmentation).

    Windows cover each plane on a regular grid (the last row/column flush
    with the border); at most ``max_patches`` windows, evenly subsampled.

    Returns
    -------
    x : float32 ``(N, p, p, C)``
    y : uint8 ``(N, p, p, n_out)``
    """
    sampler = PatchSampler(planes, label_planes, patch_size, outputs, percentiles=percentiles,
                           boundary_width=boundary_width)
    p = sampler.patch
    windows = []
    for i, lab in enumerate(sampler.labels):
        h, w = lab.shape
        ys = sorted({*range(0, h - p + 1, p), h - p})
        xs = sorted({*range(0, w - p + 1, p), w - p})
        windows += [(i, y, x) for y in ys for x in xs]
    if len(windows) > max_patches:
        windows = [windows[k] for k in np.linspace(0, len(windows) - 1, max_patches).astype(int)]
    xs, ys = [], []
    for i, y, x in windows:
        xs.append(apply_range(sampler.planes[i][y:y + p, x:x + p], *sampler.ranges[i]))
        ys.append(make_targets(sampler.labels[i][y:y + p, x:x + p], outputs, boundary_width))
    return np.stack(xs), np.stack(ys)
