"""Default window and batch sizes of tiled prediction, and fitting a window to a plane.

The network is trained on 128x128 patches and, being fully convolutional,
predicts on any window whose edge is a multiple of its down-sampling factor.
Which window pays depends on the CPU (see :data:`WIDE_WINDOW`), so the
default is read from the CPU's flags, never from TensorFlow, which napari's
process does not import. :class:`~napari_unet.settings.PredictionSettings`
resolves unset ``tile_size`` and ``batch_size`` with these functions.
"""

from __future__ import annotations

#: The product's tiles: the 128x128 patches the network is trained on. Default
#: windows where the CPU has AMX: with bf16 there, `segment` (instances
#: included) took 0.58x the time of the seed's batched 128 px patches on
#: 2048x2048 (benchmarks/bench_speed.py).
DEFAULT_WINDOW = 128

#: Default windows on other CPUs (AVX-512 BF16 only, or float32). With 128 px
#: windows and the seamless 32 px overlap the network recomputes 1.78x the
#: image's pixels; a Zen 4 CPU's bf16 units run the network only ~1.7x faster
#: than float32, so `segment` took 1.11-1.38x the seed's way there, against
#: 0.85-0.92x with 256 px windows (1.31x the pixels).
WIDE_WINDOW = 256

#: Most pixels per network call when ``batch_size`` is unset: 16 windows of
#: 128 px, 4 of 256 px (larger batches were no faster here and hold more
#: activations in memory).
BATCH_PIXELS = 16 * 128 * 128
#: Most windows per network call when ``batch_size`` is unset (smaller
#: windows: cancel and progress stay as fine-grained as with 128 px).
BATCH_WINDOWS = 16


def default_window(cpu_amx: bool | None = None) -> int:
    """The window edge (px) used when ``tile_size`` is unset.

    :data:`DEFAULT_WINDOW` (the 128 px training patches) on CPUs with AMX,
    :data:`WIDE_WINDOW` elsewhere. Read from the CPU's flags alone (not from
    TensorFlow, which napari's process never imports); on a GPU the larger
    windows are the faster ones anyway.
    """
    if cpu_amx is None:
        from .engine import cpu_has_amx

        cpu_amx = cpu_has_amx()
    return DEFAULT_WINDOW if cpu_amx else WIDE_WINDOW


def default_batch(tile_size: int) -> int:
    """Windows per network call for ``tile_size`` px windows: 16, or fewer so
    that a batch holds at most :data:`BATCH_PIXELS` (4 of 256 px)."""
    return max(1, min(BATCH_WINDOWS, BATCH_PIXELS // (int(tile_size) ** 2)))


def fit_window(shape, max_tile: int, overlap: int, multiple: int = 16) -> int:
    """The smallest square window that covers a plane of ``shape`` with as
    few windows as ``max_tile`` px windows would need.

    Per axis of length ``n``: ``k = ceil((n - overlap) / (max_tile - overlap))``
    windows, each stride rounded up to ``multiple``; the larger axis decides.
    Returns ``max_tile`` unchanged when the settings do not fit the model's
    grid (``check_tiling`` then reports them).
    """
    stride = max_tile - overlap
    if stride <= 0 or stride % multiple or overlap % multiple:
        return max_tile
    best = overlap + multiple
    for n in shape:
        k = max(1, -(-(int(n) - overlap) // stride))
        need = -(-(int(n) - overlap) // k)
        best = max(best, -(-need // multiple) * multiple + overlap)
    return min(max_tile, best)
