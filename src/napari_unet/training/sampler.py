"""Augmented random training patches, and deterministic validation patches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..normalize import DEFAULT_PERCENTILES, apply_range, percentile_range
from .targets import make_targets, separation_weights

DEFAULT_OUTPUTS = ("foreground", "boundary")


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
    paste_probability : float
        Chance that a patch gets copy-paste packing: 2-6 annotated nuclei
        from the training planes (pixels and masks) pasted against nuclei
        of the patch, so that they touch (dense clusters are rare in the
        training images, and merges of touching nuclei the costliest error).
    """

    flips: bool = True
    rotations: bool = True
    scale_range: tuple[float, float] = (0.75, 1.33)
    intensity_range: tuple[float, float] = (0.75, 1.25)
    shift: float = 0.05
    gamma_range: tuple[float, float] = (0.7, 1.4)
    noise_std: float = 0.05
    paste_probability: float = 0.0

    @classmethod
    def strong(cls) -> Augmentation:
        """For training from a few annotated planes: more noise and intensity
        change than the default, milder zoom.

        The planes to predict are those of the painted stack, so they share
        its pixel size: wide zoom would only distort the textures (resampled
        1-px grain) and shift class edges by resampling the labels;
        ``benchmarks/bench_semantic.py`` measured the difference.
        """
        return cls(True, True, (0.85, 1.18), (0.7, 1.4), 0.1, (0.6, 1.7), 0.12)

    @classmethod
    def none(cls) -> Augmentation:
        return cls(False, False, (1.0, 1.0), (1.0, 1.0), 0.0, (1.0, 1.0), 0.0, 0.0)


class PatchSampler:
    """Draws augmented random patches from a list of planes.

    Half of the patches (``object_fraction``) are centred on a random object
    pixel, so sparse images still yield patches with nuclei; the rest are
    uniform, so the network also sees empty background.

    Sparse annotation (``counted``): patches are centred on counted pixels
    only (half of them on counted object pixels), planes are drawn in
    proportion to their counted area, and the targets get one more channel,
    the pixel weight (1 where the pixel counts), for the loss.

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
    counted : list of (bool ndarray or None), optional
        Per plane, the pixels that count (None: all); see
        :func:`~napari_unet.training.data.counted_planes`. Targets then get
        one more channel, the counted mask.
    object_fraction : float
        Fraction of patches centred on an object pixel.
    boundary_width : int
        Rim thickness of the ``"boundary"`` target.
    separation : (float, float) or None
        ``(w0, sigma)`` of the U-Net paper's separation-border weight map
        (:func:`~napari_unet.training.targets.separation_weights`), appended
        to the targets as the last channel; None: no weight map.
    targets : callable, optional
        ``targets(label_patch) -> (p, p, n_out)``; instance targets
        (:func:`make_targets`) by default, class targets for semantic runs.
    balance_classes : bool
        Class labels: object-centred patches pick a class uniformly, then a
        pixel of it, so rare classes are seen as often as common ones (and
        no nuclei are pasted).
    """

    def __init__(self, planes, label_planes, patch_size: int, outputs=DEFAULT_OUTPUTS, *,
                 percentiles=DEFAULT_PERCENTILES, augment: Augmentation | None = None,
                 object_fraction: float = 0.5, boundary_width: int = 2, counted=None,
                 separation: tuple[float, float] | None = None, targets=None,
                 balance_classes: bool = False):
        self.patch = int(patch_size)
        self.make_targets = targets or (
            lambda lab: make_targets(lab, self.outputs, self.boundary_width))
        self.outputs = tuple(outputs)
        self.augment = augment or Augmentation.none()
        self.object_fraction = object_fraction
        self.boundary_width = boundary_width
        self.separation = separation
        big = int(np.ceil(self.patch * max(1.0, self.augment.scale_range[1]))) + 1
        self.sparse = counted is not None
        counted = counted if self.sparse else [None] * len(planes)
        if len(counted) != len(planes):
            raise ValueError(f"{len(counted)} counted masks for {len(planes)} planes")
        self.planes, self.labels, self.ranges, self.fg = [], [], [], []
        self.counted, self.centres = [], []
        for img, lab, cnt in zip(planes, label_planes, counted, strict=True):
            # Ranges from the unpadded plane, exactly as prediction does.
            lo_hi = [percentile_range(img[..., k], *percentiles) for k in range(img.shape[-1])]
            self.ranges.append((np.array([r[0] for r in lo_hi]), np.array([r[1] for r in lo_hi])))
            pad = [(0, max(0, big - img.shape[0])), (0, max(0, big - img.shape[1]))]
            if self.sparse and cnt is None:
                cnt = np.ones(lab.shape, bool)
            if any(p[1] for p in pad):
                img = np.pad(img, pad + [(0, 0)], mode="symmetric")
                lab = np.pad(lab, pad, mode="symmetric")
                # Mirrored padding is not annotated: it does not count.
                cnt = None if cnt is None else np.pad(cnt, pad, constant_values=False)
            self.planes.append(img)
            self.labels.append(lab)
            self.counted.append(cnt)
            fg = _balanced_centres(lab) if balance_classes else (
                _centres(lab > 0 if cnt is None else (lab > 0) & cnt))
            self.fg.append(fg)
            self.centres.append(None if cnt is None else _centres(cnt))
        areas = np.array([lab.size if cnt is None else len(np.flatnonzero(cnt))
                          for lab, cnt in zip(self.labels, self.counted, strict=True)], float)
        if not areas.sum():
            raise ValueError("No pixel counts for training: the counted masks are empty.")
        self.weights = areas / areas.sum()
        # Pasting nuclei is for instance labels; class labels never paste.
        self.bank = (_nucleus_bank(planes, label_planes, self.ranges)
                     if self.augment.paste_probability > 0 and not balance_classes else [])

    def sample(self, rng: np.random.Generator):
        """One ``(image (p, p, C) float32, targets (p, p, n_out) uint8)`` patch."""
        a, p = self.augment, self.patch
        i = int(rng.choice(len(self.planes), p=self.weights))
        img, lab = self.planes[i], self.labels[i]
        lo_s, hi_s = np.log(a.scale_range[0]), np.log(a.scale_range[1])
        scale = float(np.exp(rng.uniform(lo_s, hi_s))) if hi_s > lo_s else 1.0
        c = min(int(round(p * scale)), img.shape[0], img.shape[1])
        h, w = lab.shape
        centres = None
        if len(self.fg[i]) and rng.random() < self.object_fraction:
            centres = self.fg[i]
        elif self.centres[i] is not None:
            centres = self.centres[i]
        if centres is not None:
            y, x = np.unravel_index(centres[rng.integers(len(centres))], lab.shape)
            y0 = rng.integers(max(0, y - c + 1), min(y, h - c) + 1)
            x0 = rng.integers(max(0, x - c + 1), min(x, w - c) + 1)
        else:
            y0, x0 = rng.integers(0, h - c + 1), rng.integers(0, w - c + 1)
        x_patch = img[y0:y0 + c, x0:x0 + c]
        l_patch = lab[y0:y0 + c, x0:x0 + c]
        cnt = self.counted[i]
        w_patch = None if cnt is None else cnt[y0:y0 + c, x0:x0 + c].astype(np.uint8)
        if c != p:
            z = p / c
            x_patch = ndi.zoom(x_patch.astype(np.float32), (z, z, 1), order=1,
                               mode="nearest", grid_mode=True)
            l_patch = ndi.zoom(l_patch, (z, z), order=0, mode="nearest", grid_mode=True)
            if w_patch is not None:
                w_patch = ndi.zoom(w_patch, (z, z), order=0, mode="nearest", grid_mode=True)
        x_patch = apply_range(x_patch, *self.ranges[i])
        if a.rotations:
            k = int(rng.integers(4))
            x_patch, l_patch = np.rot90(x_patch, k), np.rot90(l_patch, k)
            w_patch = None if w_patch is None else np.rot90(w_patch, k)
        if a.flips and rng.random() < 0.5:
            x_patch, l_patch = x_patch[:, ::-1], l_patch[:, ::-1]
            w_patch = None if w_patch is None else w_patch[:, ::-1]
        x_patch, l_patch = np.ascontiguousarray(x_patch), np.ascontiguousarray(l_patch)
        # Copy-paste needs fully annotated patches: pasted nuclei would touch
        # unannotated ones in sparse annotation.
        if self.bank and w_patch is None and rng.random() < a.paste_probability:
            paste_cluster(x_patch, l_patch, self.bank, rng, zoom=p / c)
        x_patch = self._intensity(x_patch, rng)
        return x_patch, self.targets(l_patch, w_patch)

    def targets(self, labels: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
        """Target channels of a label patch, then the counted mask (sparse
        annotation) and the separation weight map, when there are any."""
        parts = [self.make_targets(labels)]
        if counted is not None:
            parts.append(counted[..., None].astype(np.float32))
        if self.separation is not None:
            parts.append(separation_weights(labels, *self.separation)[..., None])
        return np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

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
        """``n`` patches stacked: ``(n, p, p, C)`` float32, ``(n, p, p, n_out[+1])`` float32."""
        xs, ys = zip(*(self.sample(rng) for _ in range(n)), strict=True)
        return np.stack(xs), np.stack(ys).astype(np.float32)


def _centres(mask: np.ndarray, limit: int = 20_000) -> np.ndarray:
    """Flat indices of ``mask`` pixels, at most ~``limit`` (bounded memory)."""
    idx = np.flatnonzero(mask)
    if len(idx) > limit:
        idx = idx[:: len(idx) // limit + 1]
    return idx.astype(np.int64)


def _balanced_centres(labels: np.ndarray, per_class: int = 5_000) -> np.ndarray:
    """Equally many centre pixels of each class present (repeated if fewer)."""
    parts = [np.resize(_centres(labels == c, per_class), per_class)
             for c in np.unique(labels) if c > 0]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def grid_patches(planes, label_planes, patch_size: int, outputs=DEFAULT_OUTPUTS, *,
                 percentiles=DEFAULT_PERCENTILES, max_patches: int = 256, boundary_width: int = 2,
                 counted=None, separation: tuple[float, float] | None = None, targets=None):
    """Deterministic validation patches tiling the planes (no augmentation).

    Windows cover each plane on a regular grid (the last row/column flush
    with the border); at most ``max_patches`` windows, evenly subsampled.
    With ``counted`` (sparse annotation), windows without a counted pixel
    are left out and ``y`` ends with the pixel-weight channel.

    Returns
    -------
    x : float32 ``(N, p, p, C)``
    y : float32 ``(N, p, p, n_out)``, then the counted mask with ``counted``
        and the weight map with ``separation``
    """
    sampler = PatchSampler(planes, label_planes, patch_size, outputs, percentiles=percentiles,
                           boundary_width=boundary_width, counted=counted,
                           separation=separation, targets=targets)
    p = sampler.patch
    windows = []
    for i, lab in enumerate(sampler.labels):
        h, w = lab.shape
        ys = sorted({*range(0, h - p + 1, p), h - p})
        xs = sorted({*range(0, w - p + 1, p), w - p})
        cnt = sampler.counted[i]
        windows += [(i, y, x) for y in ys for x in xs
                    if cnt is None or cnt[y:y + p, x:x + p].any()]
    if len(windows) > max_patches:
        windows = [windows[k] for k in np.linspace(0, len(windows) - 1, max_patches).astype(int)]
    xs, ys = [], []
    for i, y, x in windows:
        xs.append(apply_range(sampler.planes[i][y:y + p, x:x + p], *sampler.ranges[i]))
        cnt = None if not sampler.sparse else sampler.counted[i][y:y + p, x:x + p]
        ys.append(sampler.targets(sampler.labels[i][y:y + p, x:x + p], cnt))
    return np.stack(xs), np.stack(ys)


def _nucleus_bank(planes, label_planes, ranges, max_per_plane: int = 200):
    """Normalized pixel crops and masks of whole annotated nuclei (not cut by
    the plane's border), for copy-paste packing."""
    bank = []
    for img, lab, rng_ in zip(planes, label_planes, ranges, strict=True):
        boxes = ndi.find_objects(lab)
        h, w = lab.shape
        kept = 0
        for i, box in enumerate(boxes, start=1):
            if box is None or kept >= max_per_plane:
                continue
            ys, xs = box
            if ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w:
                continue
            mask = lab[box] == i
            if mask.sum() < 30:
                continue
            bank.append((apply_range(img[box], *rng_).astype(np.float32), mask))
            kept += 1
    return bank


def paste_cluster(image: np.ndarray, labels: np.ndarray, bank, rng: np.random.Generator, *,
                  zoom: float = 1.0, n_range: tuple[int, int] = (2, 6)) -> None:
    """Paste 2-6 nuclei from ``bank`` against nuclei of the patch, in place.

    Each pasted nucleus is placed at a random angle next to an object of the
    patch (an earlier pasted one included), at 0.8-0.95 of the sum of their
    radii: the two touch along a short border, the pasted one in front.
    ``zoom`` rescales the crops like the patch was rescaled.
    """
    p0, p1 = image.shape[:2]
    for _ in range(int(rng.integers(n_range[0], n_range[1] + 1))):
        crop, mask = bank[int(rng.integers(len(bank)))]
        if zoom != 1.0:
            crop = ndi.zoom(crop, (zoom, zoom, 1), order=1, mode="nearest", grid_mode=True)
            mask = ndi.zoom(mask, (zoom, zoom), order=0, mode="nearest", grid_mode=True)
        k = int(rng.integers(4))
        crop, mask = np.rot90(crop, k), np.rot90(mask, k)
        if not mask.any():
            continue
        ids = np.unique(labels)
        ids = ids[ids > 0]
        my, mx = np.argwhere(mask).mean(axis=0)
        r_new = np.sqrt(mask.sum() / np.pi)
        if len(ids):
            target = labels == ids[int(rng.integers(len(ids)))]
            cy, cx = np.argwhere(target).mean(axis=0)
            r_old = np.sqrt(target.sum() / np.pi)
            angle = rng.uniform(0, 2 * np.pi)
            dist = (r_old + r_new) * rng.uniform(0.8, 0.95)
            cy, cx = cy + dist * np.sin(angle), cx + dist * np.cos(angle)
        else:
            cy, cx = rng.uniform(0, p0), rng.uniform(0, p1)
        y0, x0 = int(round(cy - my)), int(round(cx - mx))
        # Clip the crop to the patch.
        sy0, sx0 = max(0, -y0), max(0, -x0)
        sy1, sx1 = min(mask.shape[0], p0 - y0), min(mask.shape[1], p1 - x0)
        if sy1 <= sy0 or sx1 <= sx0:
            continue
        m = mask[sy0:sy1, sx0:sx1]
        dst = (slice(y0 + sy0, y0 + sy1), slice(x0 + sx0, x0 + sx1))
        if np.count_nonzero(labels[dst][m]) > 0.15 * m.sum():
            continue  # would hide most of a neighbour: nuclei touch, not stack
        image[dst][m] = crop[sy0:sy1, sx0:sx1][m]
        labels[dst][m] = labels.max() + 1
