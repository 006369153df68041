"""Whole-layer runs on dask/zarr-backed layers too large to hold in memory.

Such a layer goes through the same block scheme as the CLI and
:func:`napari_unet.segment_zarr`: chunk by chunk with a halo, the labels
written to a zarr store on disk, and the result layer backed by that store
(napari reads only what it shows; painting writes into the store). Nothing
of the image or of its probabilities is ever held whole in memory.

Stores go to :func:`napari_unet.paths.results_dir`; the notification after
a run says where, and warns when the stores there grow large. The run
itself happens in the worker process (:class:`~napari_unet.worker.protocol.StoreRequest`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from ..paths import results_dir

#: Whole-layer runs on lazy data above this many label pixels go out of
#: core. In memory, a run needs ~16 bytes per pixel (probabilities, labels,
#: post-processing): 2**26 px (an 8192 x 8192 plane) is ~1 GiB.
OUT_OF_CORE_PIXELS = 2**26


def is_lazy(data) -> bool:
    """True for dask and zarr arrays (anything napari does not hold as numpy)."""
    return not isinstance(data, np.ndarray) and (
        hasattr(data, "__dask_graph__") or type(data).__module__.startswith("zarr"))


def wants_out_of_core(data, region, label_shape) -> bool:
    """Whether a run on ``data[region]`` should go through the block path."""
    if not is_lazy(data) or not region.is_whole:
        return False
    return int(np.prod(label_shape, dtype=np.int64)) > OUT_OF_CORE_PIXELS


def new_store_path(image_name: str) -> Path:
    """A fresh ``<image>-labels-<time>.zarr`` path (never an existing one)."""
    stem = re.sub(r"[^\w.-]+", "_", image_name).strip("._") or "image"
    folder = results_dir()
    base = f"{stem}-labels-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = folder / f"{base}.zarr", 1
    while path.exists():
        k += 1
        path = folder / f"{base}-{k}.zarr"
    return path


def cache_warning() -> str | None:
    """A warning when the result stores take more than :data:`~napari_unet.cache.WARN_BYTES`."""
    from .. import cache

    size = cache.cache_size()
    if size <= cache.WARN_BYTES:
        return None
    return (f"napari-unet's result stores in {results_dir()} take {cache.format_bytes(size)}. "
            "Run 'napari-unet cache list' to see them and 'napari-unet cache clean' to "
            "free the space (export or save the layers you want to keep first).")
