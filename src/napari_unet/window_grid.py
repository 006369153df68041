"""The grid of windows that tiled prediction lays on a plane.

Window origins along each axis (a stride of ``tile_size - overlap`` from the
image origin, so that windows stay on the model's pooling grid), their 1D
blending tapers, symmetric mirroring of positions past the image, the check
of a tile size and overlap against a model, and which windows (and which
input pixels) a region of the plane needs. Pure numpy; the prediction itself
is :mod:`napari_unet.tiling`.
"""

from __future__ import annotations

import numpy as np


def mirror_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Map any integer positions into ``[0, n)`` by symmetric mirroring.

    Works for every ``n >= 1`` (a 1-pixel axis maps everything to 0), unlike
    ``np.pad(mode="reflect")``, which needs ``n >= 2`` and a pad < n.
    """
    period = 2 * n
    m = np.mod(idx, period)
    return np.where(m < n, m, period - 1 - m)


def window_starts(length: int, tile: int, stride: int) -> np.ndarray:
    """Origins of the windows covering ``[0, length)`` along one axis."""
    if length <= tile:
        return np.array([0])
    n = int(np.ceil((length - tile) / stride)) + 1
    return np.arange(n) * stride


def taper(tile: int, overlap: int, *, first: bool = False, last: bool = False,
          margin: float = 0.25) -> np.ndarray:
    """1D blending weight of one window along one axis.

    The weight is 0 on the outer ``margin * overlap`` pixels of each side
    (where the window lacks context), rises with a raised cosine across the
    middle of the overlap and is 1 elsewhere. Neighbouring windows' ramps
    overlap symmetrically, so every pixel is covered with a positive weight
    sum. A window at the start (``first``) or end (``last``) of the image
    is not tapered on that side: no other window covers those pixels.
    """
    w = np.ones(tile, dtype=np.float32)
    if overlap <= 0:
        return w
    skip = int(round(margin * overlap))
    width = overlap - 2 * skip
    ramp = np.zeros(overlap, dtype=np.float32)
    ramp[skip:skip + width] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(width) + 0.5) / width)
    ramp[skip + width:] = 1.0
    if not first:
        w[:overlap] = ramp
    if not last:
        w[tile - overlap:] = np.minimum(w[tile - overlap:], ramp[::-1])
    return w


def check_tiling(tile_size: int, overlap: int, multiple: int) -> None:
    """Validate tile size and overlap for a model that downsamples by ``multiple``."""
    if tile_size < multiple or tile_size % multiple:
        raise ValueError(
            f"tile_size must be a positive multiple of {multiple} for this model, got {tile_size}"
        )
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must be in [0, tile_size), got {overlap}")
    if (tile_size - overlap) % multiple:
        raise ValueError(
            f"tile_size - overlap must be a multiple of {multiple} so windows stay on the "
            f"model's pooling grid; got {tile_size} - {overlap}"
        )


def count_windows(shape: tuple[int, int], tile_size: int, overlap: int) -> int:
    """Number of windows :func:`~napari_unet.tiling.predict_plane` runs on a plane of ``shape``."""
    stride = tile_size - overlap
    return len(window_starts(shape[0], tile_size, stride)) * len(
        window_starts(shape[1], tile_size, stride)
    )


def window_tapers(starts: np.ndarray, tile: int, overlap: int) -> list[np.ndarray]:
    """1D weights of the windows at ``starts`` (first/last not tapered outwards)."""
    n = len(starts)
    return [taper(tile, overlap, first=i == 0, last=i == n - 1) for i in range(n)]


def _touching(starts: np.ndarray, tile: int, a: int, b: int) -> np.ndarray:
    """Indices of the windows that overlap ``[a, b)``."""
    return np.flatnonzero((starts < b) & (starts + tile > a))


def region_input_box(region, image_shape, tile_size: int, overlap: int) -> tuple[int, ...]:
    """Bounding box ``(y0, y1, x0, x1)`` of the pixels that the windows
    touching ``region`` read, mirrored positions past the image included.

    Reading this box (e.g. from a lazy array) is enough to predict
    ``region`` with :func:`~napari_unet.tiling.predict_region`; it extends at most one tile
    beyond the region.
    """
    box = []
    for a, b, n in ((region[0], region[1], image_shape[0]), (region[2], region[3], image_shape[1])):
        starts = window_starts(n, tile_size, tile_size - overlap)
        idx = _touching(starts, tile_size, a, b)
        pos = mirror_index(np.arange(starts[idx[0]], starts[idx[-1]] + tile_size), n)
        box += [int(pos.min()), int(pos.max()) + 1]
    return tuple(box)


def region_windows(region, image_shape, tile_size: int, overlap: int) -> list[tuple[int, int]]:
    """Grid indices ``(i, j)`` of the whole plane's windows that touch
    ``region`` (``(y0, y1, x0, x1)``), in the order they are run."""
    stride = tile_size - overlap
    ys = window_starts(image_shape[0], tile_size, stride)
    xs = window_starts(image_shape[1], tile_size, stride)
    return [(int(i), int(j)) for i in _touching(ys, tile_size, region[0], region[1])
            for j in _touching(xs, tile_size, region[2], region[3])]
