"""A synthetic 3D tissue phantom with class labels, for semantic segmentation.

:func:`tissue_phantom` makes a ``(Z, Y, X)`` float32 stack and its
``uint8`` class labels (0 background and up to three classes), built so that
no single intensity threshold separates the classes:

* **background** (0): smooth, mid-dark, weak low-frequency mottling;
* **organ** (1): a large blob (an ellipsoid whose radius is modulated by 3D
  low-frequency noise, so its outline changes from plane to plane), brighter,
  with a fine isotropic grain (1 px noise);
* **vessels** (2): tubes running through the stack along a drifting,
  wavy path (their cross-section moves and changes size from plane to
  plane), darker than background, with a striped texture along X;
* **lesions** (3): a few small spheres (radius 4-9 px) inside and near the
  organ, bright with a coarse blotchy texture.

Then an **intensity drift**: a gain rising linearly from ``1 - drift`` to
``1 + drift`` along Z and a smooth offset ramp along X (scanner shading),
and **noise**: additive Gaussian noise of standard deviation ``noise``
(image values are ~0..1 before drift).

:func:`annotate_planes` keeps the labels of a few evenly spaced planes
(5 % by default) and zeroes the others: the "paint a few slices" input.
Everything is reproducible from ``seed``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Class names of :func:`tissue_phantom`, label values 1, 2, 3.
PHANTOM_CLASSES = ("organ", "vessels", "lesions")


def _smooth_noise(rng, shape, sigma) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation."""
    field = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / (field.std() + 1e-8)


def tissue_phantom(shape=(60, 192, 192), *, n_classes: int = 3, noise: float = 0.08,
                   drift: float = 0.3, seed: int = 0):
    """A textured 3D phantom and its class labels.

    Parameters
    ----------
    shape : (int, int, int)
        ``(Z, Y, X)``; Y and X at least 64.
    n_classes : {1, 2, 3}
        How many of organ, vessels, lesions are drawn.
    noise : float
        Standard deviation of the additive Gaussian noise.
    drift : float
        Relative gain change from the first to the middle plane (and to
        the last one, the other way).
    seed : int

    Returns
    -------
    image : float32 ndarray ``(Z, Y, X)``
    labels : uint8 ndarray ``(Z, Y, X)``, values 0..n_classes
    """
    if n_classes not in (1, 2, 3):
        raise ValueError(f"n_classes must be 1, 2 or 3, got {n_classes}")
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    z, y, x = np.meshgrid(np.linspace(-1, 1, nz), np.linspace(-1, 1, ny),
                          np.linspace(-1, 1, nx), indexing="ij", sparse=True)
    labels = np.zeros(shape, np.uint8)

    # Organ: a wobbly ellipsoid, elongated along Z so it spans most planes.
    wobble = _smooth_noise(rng, shape, (nz / 8, ny / 10, nx / 10))
    r = np.sqrt((z / 1.3) ** 2 + ((y + 0.1) / 0.62) ** 2 + ((x - 0.05) / 0.55) ** 2)
    organ = r < 1 + 0.18 * wobble
    labels[organ] = 1
    if n_classes >= 2:  # Vessels: two wavy tubes along Z
        for k in range(2):
            cy = 0.5 * np.sin(np.pi * (z + 0.3 * k) * 0.8 + k) + 0.15 * rng.standard_normal()
            cx = -0.55 + 1.1 * k + 0.2 * np.cos(np.pi * z * 1.3 + 2 * k)
            radius = 0.07 + 0.03 * np.sin(np.pi * z * 2 + k)
            labels[((y - cy) ** 2 + (x - cx) ** 2) < radius ** 2] = 2
    if n_classes >= 3:  # Lesions: small spheres near the organ
        zz, yy, xx = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij",
                                 sparse=True)
        for _ in range(max(4, nz // 6)):
            c = (rng.uniform(0.1, 0.9) * nz, rng.uniform(0.25, 0.75) * ny,
                 rng.uniform(0.25, 0.75) * nx)
            rad = rng.uniform(4, 9)
            labels[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < rad ** 2] = 3

    base = np.array([0.35, 0.65, 0.15, 0.85], np.float32)[: n_classes + 1]
    image = base[labels] + 0.05 * _smooth_noise(rng, shape, 6)
    grain = rng.standard_normal(shape).astype(np.float32)
    image[labels == 1] += 0.12 * grain[labels == 1]
    if n_classes >= 2:
        stripes = 0.12 * np.sin(np.arange(nx, dtype=np.float32) * 2 * np.pi / 5)
        image += (labels == 2) * np.broadcast_to(stripes, shape)
    if n_classes >= 3:
        blotch = _smooth_noise(rng, shape, 1.5)
        image[labels == 3] += 0.1 * blotch[labels == 3]
    gain = 1 + drift * np.linspace(-1, 1, nz, dtype=np.float32)[:, None, None]
    offset = 0.1 * drift * np.linspace(-1, 1, nx, dtype=np.float32)[None, None, :]
    image = image * gain + offset + noise * rng.standard_normal(shape).astype(np.float32)
    return image.astype(np.float32), labels


def annotate_planes(labels: np.ndarray, fraction: float = 0.05, *, minimum: int = 3):
    """Labels of a few evenly spaced planes; every other plane all 0.

    Returns
    -------
    sparse : ndarray, same shape and dtype as ``labels``
    planes : list of int
        Indices of the annotated planes.
    """
    n = labels.shape[0]
    k = min(n, max(minimum, int(round(fraction * n))))
    planes = sorted({int(round(i)) for i in np.linspace(0, n - 1, k + 2)[1:-1]})
    sparse = np.zeros_like(labels)
    sparse[planes] = labels[planes]
    return sparse, planes
