"""Seamless tiled inference of a fully convolutional 2D model on one plane.

How it works
------------
* Windows of ``tile_size`` pixels are laid on a grid with stride
  ``tile_size - overlap``. Window origins sit on multiples of ``2**depth``
  (16 for the reference U-Net) because max-pooling makes the network
  shift-equivariant only for such shifts; off-grid windows can never agree
  with a whole-image pass.
* Windows that run past the image read mirrored pixels (no copy of the
  padded image is ever made), so images smaller than a tile or not a multiple
  of the stride are handled the same way, then cropped back.
* Each window's prediction is multiplied by a separable cosine taper that is
  1 in its centre and falls smoothly to ~0 over ``overlap`` pixels at its
  edges; predictions and weights are summed in float32 and divided at the
  end. Because windows lie on a product grid, the weight sum is itself
  separable (``Wy(y) * Wx(x)``), so no full-size weight image is stored.
* Windows are normalized on the fly with the plane's percentile range, run
  in batches through one ``tf.function`` (not ``model.predict``, see
  :mod:`.engine` for precision and device), and the caller can watch
  progress and cancel between batches. Reading/normalizing the next batch
  and blending the last one run in two helper threads while TensorFlow
  computes.
* :func:`predict_region` predicts any rectangle of a plane with the windows
  of the *whole* plane's grid that touch it, accumulated in the same order
  and normalized by the same weight sums, so blocks computed apart (out of
  core, on other machines) equal the whole-plane result;
  :func:`predict_plane` is the region that covers the plane.

The window grid (origins, tapers, mirroring, which windows a region needs)
is :mod:`napari_unet.window_grid`; the windows shared by neighbouring
regions are kept by :class:`~napari_unet.window_cache.WindowCache`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import engine
from .cancel import Cancelled, is_cancelled
from .normalize import apply_range
from .window_cache import WindowCache
from .window_grid import (
    check_tiling,
    count_windows,  # noqa: F401  (re-exported: imported from here)
    mirror_index,
    region_input_box,
    region_windows,
    taper,  # noqa: F401  (re-exported: imported from here)
    window_starts,
    window_tapers,
)

ProgressCallback = Callable[[int, int], None]


def _read_window(plane, y0: int, x0: int, tile: int, shape, origin) -> np.ndarray:
    """A window at global ``(y0, x0)`` from ``plane``, which holds the global
    pixels from ``origin`` on; positions past the image are mirrored."""
    (h, w), (oy, ox) = shape, origin
    if y0 + tile <= h and x0 + tile <= w:
        return plane[y0 - oy:y0 - oy + tile, x0 - ox:x0 - ox + tile]
    rows = mirror_index(np.arange(y0, y0 + tile), h) - oy
    cols = mirror_index(np.arange(x0, x0 + tile), w) - ox
    return plane[np.ix_(rows, cols)]


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _weight_sum(starts, weights, n: int, tile: int) -> np.ndarray:
    s = np.zeros(n, dtype=np.float32)
    for a, wt in zip(starts, weights, strict=True):
        b = min(n, a + tile)
        s[a:b] += wt[: b - a]
    return s


# --------------------------------------------------------------------------
# Prediction on one plane, or on a region of it
# --------------------------------------------------------------------------
def predict_region(
    plane,
    model,
    *,
    region: tuple[int, int, int, int] | None = None,
    image_shape: tuple[int, int] | None = None,
    origin: tuple[int, int] = (0, 0),
    lo: np.ndarray | float = 0.0,
    hi: np.ndarray | float = 1.0,
    tile_size: int = 128,
    overlap: int = 32,
    batch_size: int = 16,
    multiple: int = 16,
    global_batches: bool = False,
    precision: str = "auto",
    cache: WindowCache | None = None,
    progress: Callable[[int], None] | None = None,
    cancel=None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Tiled, blended prediction of a region of a plane, as a whole-plane pass.

    The windows are those of the whole plane's grid (origins on multiples
    of the stride from the image origin, the same taper flags) that touch
    ``region``; each pixel accumulates them in the same order and is
    divided by the same separable weight sums as in :func:`predict_plane`,
    so a region's result equals the matching crop of the whole plane's.

    Parameters
    ----------
    plane : array-like, shape (h, w, C)
        Raw intensities of the global pixels ``origin[0]:origin[0] + h``,
        ``origin[1]:origin[1] + w``; it must hold
        :func:`~napari_unet.window_grid.region_input_box`.
    model : keras.Model
        Fully convolutional NHWC model.
    region : (y0, y1, x0, x1), optional
        Global pixels to predict; default the whole image.
    image_shape : (H, W), optional
        Size of the whole plane; default ``plane.shape[:2]``.
    origin : (int, int)
        Global position of ``plane[0, 0]``.
    lo, hi, tile_size, overlap, batch_size, multiple, precision, progress, cancel
        As in :func:`predict_plane`.
    global_batches : bool
        Run the windows in the batches a whole-plane pass uses (runs of
        ``batch_size`` windows in row-major order over the plane; windows
        outside the region get zeros and are discarded). TensorFlow's CPU
        kernels give results that depend, by ~1e-7, on a window's position
        in its batch and on the batch size; this makes the region bitwise
        equal to :func:`predict_plane`, at up to ~2x the windows.
    cache : WindowCache, optional
        Window predictions shared with neighbouring regions (ignored with
        ``global_batches``): windows found there are not run again, and
        windows later regions need are offered to it.
    out : ndarray, shape (C_out, y1 - y0, x1 - x0), float32, optional
        Where to accumulate; it is overwritten.

    Returns
    -------
    ndarray, shape (C_out, y1 - y0, x1 - x0), float32
    """
    check_tiling(tile_size, overlap, multiple)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    h, w = (int(s) for s in (image_shape or plane.shape[:2]))
    y0, y1, x0, x1 = region if region is not None else (0, h, 0, w)
    if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
        raise ValueError(f"region {region} is empty or outside the image {(h, w)}")
    by0, by1, bx0, bx1 = region_input_box((y0, y1, x0, x1), (h, w), tile_size, overlap)
    oy, ox = origin
    if by0 < oy or bx0 < ox or by1 > oy + plane.shape[0] or bx1 > ox + plane.shape[1]:
        raise ValueError(f"plane at {origin} of shape {plane.shape[:2]} does not hold the "
                         f"pixels the region needs, {(by0, by1, bx0, bx1)}")
    stride = tile_size - overlap
    ys, xs = window_starts(h, tile_size, stride), window_starts(w, tile_size, stride)
    wy, wx = window_tapers(ys, tile_size, overlap), window_tapers(xs, tile_size, overlap)
    needed = region_windows((y0, y1, x0, x1), (h, w), tile_size, overlap)
    cached = []
    if cache is not None and not global_batches:
        cached = [(ij, cache.get(ij)) for ij in needed if cache.get(ij) is not None]
        done = {ij for ij, _ in cached}
        needed = [ij for ij in needed if ij not in done]
    if global_batches:
        keep, nx = set(needed), len(xs)
        ids = sorted({(i * nx + j) // batch_size for i, j in needed})
        last = len(ys) * nx
        batches = [[divmod(g, nx) for g in range(b * batch_size, min(last, (b + 1) * batch_size))]
                   for b in ids]
    else:
        keep, batches = None, list(_batches(needed, batch_size))

    def read(batch_windows) -> np.ndarray:
        tiles = [_read_window(plane, ys[i], xs[j], tile_size, (h, w), origin)
                 if keep is None or (i, j) in keep
                 else np.zeros((tile_size, tile_size, plane.shape[-1]), plane.dtype)
                 for i, j in batch_windows]
        return apply_range(np.stack(tiles), lo, hi)

    def blend(batch_windows, pred, offsets=None) -> None:
        # ``offsets``: cached windows are the parts from (dy, dx) on.
        for k, ((i, j), p) in enumerate(zip(batch_windows, pred, strict=True)):
            if keep is not None and (i, j) not in keep:
                continue
            # The part of the window inside the region, in window coordinates.
            a0, a1 = max(y0, ys[i]) - ys[i], min(y1, ys[i] + tile_size) - ys[i]
            c0, c1 = max(x0, xs[j]) - xs[j], min(x1, xs[j] + tile_size) - xs[j]
            dy, dx = offsets[k] if offsets is not None else (0, 0)
            w2d = wy[i][a0:a1, None] * wx[j][None, c0:c1]
            acc[:, ys[i] + a0 - y0:ys[i] + a1 - y0, xs[j] + c0 - x0:xs[j] + c1 - x0] += (
                np.moveaxis(p[a0 - dy:a1 - dy, c0 - dx:c1 - dx], -1, 0) * w2d)
            if offsets is None and cache is not None and keep is None:
                cache.offer((i, j), p, (int(ys[i]), int(xs[j])))

    precision = engine.resolve_precision(precision)
    acc = out
    if acc is not None:
        acc[...] = 0
    if cached:
        if acc is None:
            acc = np.zeros((cached[0][1][0].shape[-1], y1 - y0, x1 - x0), dtype=np.float32)
        blend([ij for ij, _ in cached], [p for _, (p, _) in cached], [o for _, (_, o) in cached])
    # A pipeline: while TensorFlow computes batch k (it releases the GIL),
    # one thread reads and normalizes batch k + 1 and another blends batch
    # k - 1. Blending stays in batch order, so results do not depend on timing.
    with ThreadPoolExecutor(1, thread_name_prefix="napari-unet-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="napari-unet-blend") as blender:
        next_tiles = reader.submit(read, batches[0]) if batches else None
        blended = None
        for k, batch_windows in enumerate(batches):
            if is_cancelled(cancel):
                raise Cancelled("Prediction cancelled")
            tiles = next_tiles.result()
            if k + 1 < len(batches):
                next_tiles = reader.submit(read, batches[k + 1])
            pred = engine.run_model(model, tiles, precision)
            if acc is None:
                acc = np.zeros((pred.shape[-1], y1 - y0, x1 - x0), dtype=np.float32)
            if blended is not None:
                blended.result()  # one batch in flight: bounded memory, errors surface
            blended = blender.submit(blend, batch_windows, pred)
            if progress is not None:
                progress(len(batch_windows))
        if blended is not None:
            blended.result()

    # Separable normalization by the summed weights (see module docstring).
    acc /= _weight_sum(ys, wy, h, tile_size)[y0:y1][None, :, None]
    acc /= _weight_sum(xs, wx, w, tile_size)[x0:x1][None, None, :]
    return acc


def predict_plane(
    plane: np.ndarray,
    model,
    *,
    lo: np.ndarray | float = 0.0,
    hi: np.ndarray | float = 1.0,
    tile_size: int = 128,
    overlap: int = 32,
    batch_size: int = 16,
    multiple: int = 16,
    precision: str = "auto",
    progress: Callable[[int], None] | None = None,
    cancel=None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Tiled, blended prediction of one ``(H, W, C)`` plane.

    Parameters
    ----------
    plane : ndarray, shape (H, W, C)
        Raw intensities, any real dtype.
    model : keras.Model
        Fully convolutional NHWC model.
    lo, hi : float or array of shape (C,)
        Intensity range mapped to [0, 1] (per channel), see
        :mod:`napari_unet.normalize`.
    tile_size, overlap : int
        Window edge and overlap between neighbouring windows, in pixels.
    batch_size : int
        Windows per network call.
    multiple : int
        The model's down-sampling factor (``2**depth``).
    precision : str
        Arithmetic of the network (see :func:`napari_unet.engine.resolve_precision`).
    progress : callable, optional
        Called with the number of windows finished after each batch.
    cancel : callable or Event, optional
        Checked before each batch; when set, :class:`Cancelled` is raised.
    out : ndarray, shape (C_out, H, W), float32, optional
        Where to accumulate (e.g. one plane of a stack's result), which
        saves a copy of the result for large planes. It is overwritten.

    Returns
    -------
    ndarray, shape (C_out, H, W), float32
    """
    # The whole plane is the region: one implementation for both.
    return predict_region(plane, model, lo=lo, hi=hi, tile_size=tile_size, overlap=overlap,
                          batch_size=batch_size, multiple=multiple, precision=precision,
                          progress=progress, cancel=cancel, out=out)


def predict_whole_plane(
    plane: np.ndarray, model, *, lo=0.0, hi=1.0, multiple: int = 16, context: int = 64,
    precision: str = "auto",
) -> np.ndarray:
    """Run the model once on a whole ``(H, W, C)`` plane.

    The reference that tiled prediction must match. The plane is mirrored
    by at least ``context`` pixels at the bottom and right (like the tiler's
    windows that run past the image) and up to a multiple of ``multiple``.
    Memory grows with the image: use it for small planes and for checks.
    """
    h, w, _ = plane.shape
    hp = -(-(h + context) // multiple) * multiple
    wp = -(-(w + context) // multiple) * multiple
    rows, cols = mirror_index(np.arange(hp), h), mirror_index(np.arange(wp), w)
    padded = apply_range(plane[np.ix_(rows, cols)], lo, hi)
    pred = engine.run_model(model, padded[None], precision)[0, :h, :w]
    return np.ascontiguousarray(np.moveaxis(pred, -1, 0))
