"""The local block pipeline of :func:`~napari_unet.largescale.segment_zarr`.

When the blocks of a zarr run on this machine one after the other (no dask
cluster, one worker), they are labelled as a pipeline rather than as dask
tasks: a thread reads the next block while the network runs on the current
one and another thread writes the previous one, each plane's windows are
computed once for all the blocks whose halos share them, and the C heap's
free memory goes back to the system between blocks.
"""

from __future__ import annotations

from .blocks import block_region, label_block, read_block, store_block


def _label_local(plan, src, ranges, keys, path, run) -> list:
    """Label every block here, as a pipeline, and return their metas.

    While the network runs on block k (TensorFlow releases the GIL), one
    thread reads block k + 1's input and another writes block k - 1 to the
    zarr store. A :class:`~napari_unet.window_cache.WindowCache` per plane
    computes each window once, although neighbouring blocks' halos share
    windows. Memory: about three blocks plus a few rows of windows; the
    heap's free memory goes back to the system after each block.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from ..cancel import Cancelled, is_cancelled
    from ..window_cache import WindowCache
    from ..window_grid import region_windows

    progress, cancel = run["progress"], run["cancel"]
    pred = plan.prediction
    caches = {}
    if not plan.blocks.exact:  # exact runs batch like the in-memory path instead
        uses: dict = {}  # plane index -> window -> [(block number, region)]
        for n, key in enumerate(keys):
            region = block_region(plan, key)[0]
            plane = uses.setdefault(key[:-2], {})
            for ij in region_windows(region, plan.shape[-2:], pred.tile_size, pred.overlap):
                plane.setdefault(ij, []).append((n, region))
        caches = {index: _PlaneCache(WindowCache(mine)) for index, mine in uses.items()}
    metas = []
    if progress is not None:
        progress(0, len(keys))
    release_free_memory()
    with ThreadPoolExecutor(1, thread_name_prefix="napari-unet-read-block") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="napari-unet-write-block") as writer, \
            tqdm(total=len(keys), desc="blocks", unit="chunk", disable=run["quiet"],
                 leave=False) as bar:
        data = reader.submit(read_block, src, plan, keys[0])
        written = None
        for n, key in enumerate(keys):
            block = data.result()
            if n + 1 < len(keys):
                data = reader.submit(read_block, src, plan, keys[n + 1])
            cache = caches.get(key[:-2])
            result = label_block(src, plan, ranges, key, data=block,
                                 cache=cache.at(n) if cache else None)
            if written is not None:
                metas.append(written.result())
            written = writer.submit(store_block, path, plan, key, result)
            del block, result
            release_free_memory()
            bar.update(1)
            if progress is not None:
                progress(n + 1, len(keys))
            if is_cancelled(cancel):
                raise Cancelled("blocks: cancelled")
        metas.append(written.result())
    return metas


def release_free_memory() -> None:
    """Hand the C heap's free memory back to the system (glibc only).

    Each block allocates and frees ~150 MB of numpy and TensorFlow buffers
    from several threads; glibc keeps much of it in per-thread arenas, so
    the process grew by ~70 MB more over a 6144^2 run than its blocks need.
    ``malloc_trim`` returns it, as dask.distributed's workers do; it costs
    about a millisecond per block and changes nothing else.
    """
    import ctypes
    import ctypes.util

    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


class _PlaneCache:
    """A plane's WindowCache, moved on to the block being labelled (its
    ``last_use`` counts blocks over all planes)."""

    def __init__(self, cache):
        self.cache = cache

    def at(self, n: int):
        while self.cache.region < n:
            self.cache.advance()
        return self.cache
