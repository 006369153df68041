"""Out-of-core segmentation of a large zarr image: peak memory and time.

Run::

    python benchmarks/bench_largescale.py [--size 16384] [--chunk 1024] [--model FILE]

Writes a ``size x size`` uint16 zarr of synthetic nuclei chunk by chunk to a
temporary folder (never holding it in memory), segments it with
:func:`napari_unet.segment_zarr` (local scheduler, one block at a time) and
prints, measured in the same run: the peak resident memory of the process
(sampled every 5 ms; absolute, and above the baseline after TensorFlow and
the model are loaded), the wall time of each phase, the throughput, and, for
sizes under 16384, the time extrapolated to 16384 x 16384 (linear in the
number of blocks; memory does not grow with the image).

Target (issue 6): peak resident memory < 2 GB for 16384 x 16384.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import PeakRSS

TARGET = 16384


def write_nuclei_zarr(path: Path, size: int, chunk: int, seed: int = 0):
    """A uint16 zarr of blurred blobs (~1 nucleus per 1500 px2, some touching),
    rendered chunk by chunk with a margin so that blobs cross chunks seamlessly."""
    import zarr
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    n = size * size // 1500
    centres = rng.integers(0, size, (n, 2))
    radius = rng.integers(3, 7, n)  # blob radius before blurring
    arr = zarr.open_array(str(path), mode="w", shape=(size, size), chunks=(chunk, chunk),
                          dtype="uint16")
    margin = 24
    for y0 in range(0, size, chunk):
        for x0 in range(0, size, chunk):
            ya, xa = y0 - margin, x0 - margin
            h, w = min(size, y0 + chunk) - y0, min(size, x0 + chunk) - x0
            ext = np.zeros((h + 2 * margin, w + 2 * margin), np.float32)
            inside = ((centres[:, 0] >= ya) & (centres[:, 0] < ya + ext.shape[0])
                      & (centres[:, 1] >= xa) & (centres[:, 1] < xa + ext.shape[1]))
            for r in range(3, 7):
                pts = centres[inside & (radius == r)]
                seeds = np.zeros_like(ext, bool)
                seeds[pts[:, 0] - ya, pts[:, 1] - xa] = True
                disk = np.hypot(*np.mgrid[-r:r + 1, -r:r + 1]) <= r
                ext = np.maximum(ext, ndi.binary_dilation(seeds, disk))
            ext = ndi.gaussian_filter(ext, 1.5)[margin:margin + h, margin:margin + w]
            noise = np.random.default_rng([seed, y0, x0]).normal(200, 20, ext.shape)
            arr[y0:y0 + h, x0:x0 + w] = (ext * 3000 + noise).clip(0, 65535).astype(np.uint16)
    return arr


def benchmark_model(path, tmp: Path):
    """``(model path or None for the shipped default, description)``."""
    import napari_unet as nu

    if path:
        return str(path), str(path)
    if nu.default_model_path().exists():
        return None, f"shipped default ({nu.default_model_path().name})"
    model = nu.build_unet(out_channels=2, base_filters=16, depth=4)
    return str(nu.save_model(model, tmp / "base16.keras")), "untrained base-16 2-output U-Net"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=TARGET)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--model", help=".keras file (default: the shipped model)")
    parser.add_argument("--workdir", default=tempfile.gettempdir(),
                        help="where the temporary zarr arrays go")
    parser.add_argument("--keep", action="store_true", help="keep the zarr arrays")
    args = parser.parse_args()

    import napari_unet as nu
    from napari_unet.model_io import load_model_cached
    from napari_unet.tiling import count_windows

    tmp = Path(tempfile.mkdtemp(prefix="bench_largescale_", dir=args.workdir))
    try:
        model_path, label = benchmark_model(args.model, tmp)
        model, info = load_model_cached(model_path)
        tile = info.tile_size
        # Trace and warm up outside the measurement.
        small = write_nuclei_zarr(tmp / "warm.zarr", 512, 256)
        nu.segment_zarr(small, tmp / "warm_labels.zarr", model_path, quiet=True)

        t0 = time.perf_counter()
        write_nuclei_zarr(tmp / "image.zarr", args.size, args.chunk)
        t_write = time.perf_counter() - t0
        disk = sum(f.stat().st_size for f in (tmp / "image.zarr").rglob("*") if f.is_file())
        print(f"model: {label} ({model.count_params():,} parameters), tile {tile}")
        print(f"image: {args.size} x {args.size} uint16 zarr, chunks {args.chunk}, "
              f"{args.size ** 2 * 2 / 2**30:.2f} GiB raw, {disk / 2**30:.2f} GiB on disk "
              f"(written chunk-wise in {t_write:.0f} s)")

        with PeakRSS() as rss:
            t0 = time.perf_counter()
            out = nu.segment_zarr(tmp / "image.zarr", tmp / "labels.zarr", model_path,
                                  quiet=False)
            t_seg = time.perf_counter() - t0
        per_axis = -(-args.size // args.chunk)
        blocks = per_axis * per_axis
        mpx = args.size ** 2 / 1e6
        print(f"segment_zarr: {t_seg:.1f} s for {mpx:.0f} Mpx ({mpx / t_seg:.2f} Mpx/s, "
              f"{t_seg / blocks:.2f} s per {args.chunk} px block, {blocks} blocks); "
              f"{out.attrs['n_objects']} objects")
        print(f"in-memory tiling of the same plane would run "
              f"{count_windows((args.size, args.size), tile, 32):,} windows")
        print(f"peak RSS: {rss.peak / 2**30:.2f} GiB absolute "
              f"(baseline {rss.baseline / 2**30:.2f} GiB with TensorFlow and the model "
              f"loaded; +{rss.extra_mb:.0f} MiB during the run); target < 2 GiB")
        if args.size < TARGET:
            factor = (-(-TARGET // args.chunk)) ** 2 / blocks  # blocks at the target size
            print(f"extrapolated to {TARGET} x {TARGET}: ~{t_seg * factor / 60:.0f} min "
                  f"({factor:.0f}x the blocks; time is linear in blocks, memory is not: it "
                  f"depends on the block size, plus O(objects) for the merge tables)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
