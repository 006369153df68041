"""End-to-end throughput (Mpx/s) for a 2D image, a 3D stack and a zarr out of core.

Run::

    python benchmarks/bench_throughput.py            # 2048^2, 32x512^2, 6144^2 zarr
    python benchmarks/bench_throughput.py --quick    # 1024^2, 8x512^2, 3072^2 zarr

With the shipped model and ``segment``'s defaults, on real-looking nuclei
(the shipped 2D sample mirrored to size):

* 2D: ``segment`` on a ``--size`` square image in memory;
* 3D: ``segment`` on a ``Z x 512 x 512`` stack (ZYX, plane by plane);
* out of core: ``segment_zarr`` from a ``--zarr-size`` square uint16 zarr
  (1024 px chunks, written chunk by chunk) to a labels zarr, in a fresh
  process whose peak resident memory is sampled every 5 ms; the same
  process then times ``segment`` in memory on the same whole image (read
  into memory first: same windows, same objects).

Targets (issue 14), one ``PASS``/``FAIL`` line each: 2D >= 1.0 Mpx/s;
out-of-core throughput within 1.2x of in-memory (measured in the same
process); its peak resident memory (whole process, TensorFlow included)
<= 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import PeakRSS, load_benchmark_model, nuclei_image, verdict


def write_sample_zarr(path: Path, size: int, chunk: int = 1024) -> None:
    """A ``size``^2 uint16 zarr of the sample mirrored to size, chunk by chunk."""
    import zarr

    from napari_unet.tiling import mirror_index

    tile = nuclei_image(2048)  # mirrored sample, repeated again by mirroring
    arr = zarr.open_array(str(path), mode="w", shape=(size, size), chunks=(chunk, chunk),
                          dtype=np.uint16)
    for y in range(0, size, chunk):
        rows = mirror_index(np.arange(y, min(size, y + chunk)), tile.shape[0])
        arr[y:y + len(rows)] = tile[np.ix_(rows, mirror_index(np.arange(size), tile.shape[1]))]


def zarr_child(path: str, out: str) -> None:
    """In a fresh process: segment_zarr with peak RSS, then in-memory
    ``segment`` on the same whole image (same process, same load) for the
    ratio; prints one JSON line."""
    import dask.array  # noqa: F401 - imported before timing, like TensorFlow
    import zarr

    import napari_unet as nu

    model, info, _ = load_benchmark_model()
    nu.segment(nuclei_image(512), model, info=info)  # load TF, trace: not timed
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        labels = nu.segment_zarr(path, out, model, info=info, quiet=True)
        seconds = time.perf_counter() - t0
    # The same image in memory (same windows, same objects): only the
    # out-of-core machinery differs. Its memory is not part of the peak above.
    whole = zarr.open_array(path, mode="r")[:]
    t0 = time.perf_counter()
    in_memory_objects = int(nu.segment(whole, model, info=info).max())
    in_memory = whole.size / (time.perf_counter() - t0) / 1e6
    print(json.dumps({"seconds": seconds, "peak_mb": rss.peak / 2**20,
                      "extra_mb": rss.extra_mb, "objects": int(labels.attrs["n_objects"]),
                      "in_memory_mpx_s": in_memory, "in_memory_objects": in_memory_objects}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--depth", type=int, default=32, help="planes of the 3D stack")
    parser.add_argument("--zarr-size", type=int, default=6144)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--zarr-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.zarr_child:
        zarr_child(*args.zarr_child)
        return 0
    if args.quick:
        args.size, args.depth, args.zarr_size, args.repeat = 1024, 8, 3072, 1

    import napari_unet as nu
    from napari_unet import engine

    model, info, label = load_benchmark_model()
    print(f"model: {label}; device {engine.device_name()}; precision "
          f"{engine.resolve_precision('auto')}")
    image = nuclei_image(args.size)
    nu.segment(image[:512, :512], model, info=info)  # trace: not timed

    def rate(data, **kw):
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            nu.segment(data, model, info=info, **kw)
            best = min(best, time.perf_counter() - t0)
        return data.size / best / 1e6, best

    r2d, t2d = rate(image)
    print(f"2D {image.shape}: {r2d:.2f} Mpx/s ({t2d:.2f} s)")
    stack = np.stack([nuclei_image(512 + 16 * (z % 4))[:512, :512] for z in range(args.depth)])
    r3d, t3d = rate(stack, axes="ZYX")
    t0 = time.perf_counter()
    nu.predict_probabilities(stack, model, info=info, axes="ZYX")
    p3d = stack.size / (time.perf_counter() - t0) / 1e6
    print(f"3D {stack.shape} (ZYX, default 3D instances): {r3d:.2f} Mpx/s ({t3d:.2f} s); "
          f"probabilities alone {p3d:.2f} Mpx/s")

    with tempfile.TemporaryDirectory(prefix="napari-unet-bench-") as tmp:
        src, out = Path(tmp) / "image.zarr", Path(tmp) / "labels.zarr"
        write_sample_zarr(src, args.zarr_size)
        done = subprocess.run([sys.executable, __file__, "--zarr-child", str(src), str(out)],
                              check=True, capture_output=True, text=True)
        res = json.loads(done.stdout.strip().splitlines()[-1])
    rz = args.zarr_size**2 / res["seconds"] / 1e6
    rm = res["in_memory_mpx_s"]
    print(f"zarr out of core {args.zarr_size}^2: {rz:.2f} Mpx/s ({res['seconds']:.1f} s, "
          f"{res['objects']} objects); the same image in memory, same process, right after: "
          f"{rm:.2f} Mpx/s ({res['in_memory_objects']} objects); "
          f"peak RSS {res['peak_mb']:.0f} MB ({res['extra_mb']:.0f} MB above the loaded model)")
    lines = [
        verdict(r2d >= 1.0, f"2D {r2d:.2f} Mpx/s (target >= 1.0)"),
        verdict(rm / rz <= 1.2, f"out of core {rz:.2f} Mpx/s = in-memory / {rm / rz:.2f} "
                                "(target within 1.2x)"),
        verdict(res["peak_mb"] <= 1024,
                f"out-of-core peak RSS {res['peak_mb']:.0f} MB, whole process with TensorFlow "
                "(target <= 1024 MB)"),
    ]
    print("(timings on a shared machine are noisy)")
    return 0 if all(line.startswith("PASS") for line in lines) else 1


if __name__ == "__main__":
    raise SystemExit(main())
