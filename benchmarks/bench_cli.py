"""Throughput of ``napari-unet segment`` on a folder vs ``segment`` in a Python loop.

Run::

    python benchmarks/bench_cli.py [--n 20] [--size 512] [--model FILE] [--repeat 2]

On a folder of ``n`` uint16 ``size x size`` nuclei images (crops of the
shipped sample, or synthetic blobs), prints side by side, same model:

* end to end (fresh processes; interpreter, TensorFlow and model start-up
  included in both): the console script on the folder, vs a Python script
  that loads the model once and, per file, reads the TIFF, calls
  :func:`napari_unet.segment` and writes the labels with the same writer;
* per image (in this process, after a warm-up, start-up excluded from both):
  ``napari_unet.cli.main([...])`` on the folder vs the same Python loop.

Runs are interleaved and the best of ``--repeat`` is kept, so that load from
other processes hits both sides alike. Target (issue 6): CLI throughput
within 10 % of the loop.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import nuclei_image

LOOP = """
import sys
from pathlib import Path
import tifffile
from napari_unet.tiff import write_tiff_atomic
from napari_unet.model_io import load_model_cached
from napari_unet import segment
folder, out, model = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] or None
out.mkdir(parents=True, exist_ok=True)
net, info = load_model_cached(model)
for path in sorted(folder.glob("*.tif")):
    labels = segment(tifffile.imread(path), net, info=info)
    write_tiff_atomic(out / f"{path.stem}_labels.tif", labels, overwrite=True)
"""


def make_folder(folder: Path, n: int, size: int):
    from napari_unet.tiff import write_tiff_atomic

    big = nuclei_image(size * 4)  # different crops of one large image
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        y, x = rng.integers(0, 3 * size, 2)
        write_tiff_atomic(folder / f"img{i:03d}.tif", big[y:y + size, x:x + size],
                          scale=(0.5, 0.5))


def timed_process(cmd) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--model", help=".keras file (default: the shipped model)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    import napari_unet as nu
    from napari_unet.cli import main as cli_main
    from napari_unet.model_io import load_model_cached
    from napari_unet.tiff import read_tiff

    tmp = Path(tempfile.mkdtemp(prefix="bench_cli_"))
    try:
        model_path = args.model
        if model_path is None and not nu.default_model_path().exists():
            model_path = str(nu.save_model(nu.build_unet(out_channels=2, base_filters=16),
                                           tmp / "base16.keras"))
        make_folder(tmp / "images", args.n, args.size)
        exe = Path(sys.executable).parent / "napari-unet"
        model_args = ["--model", model_path] if model_path else []
        cli_cmd = [str(exe), "segment", str(tmp / "images"), "-o", str(tmp / "cli"),
                   "--overwrite", "-q", *model_args]
        loop_cmd = [sys.executable, "-c", LOOP, str(tmp / "images"), str(tmp / "loop"),
                    model_path or ""]
        cli_e2e, loop_e2e = [], []
        for _ in range(args.repeat):  # interleaved: load hits both alike
            cli_e2e.append(timed_process(cli_cmd))
            loop_e2e.append(timed_process(loop_cmd))

        # In-process, start-up excluded: warm up both, then time them.
        net, info = load_model_cached(model_path)
        loop_ns: dict = {"__name__": "loop"}
        loop_argv = ["", str(tmp / "images"), str(tmp / "loop_in"), model_path or ""]
        cli_argv = ["segment", str(tmp / "images"), "-o", str(tmp / "cli_in"), "--overwrite",
                    "-q", *model_args]

        def run_loop():
            sys.argv, saved = loop_argv, sys.argv
            try:
                exec(LOOP, loop_ns)
            finally:
                sys.argv = saved

        def run_cli():
            assert cli_main(cli_argv) == 0

        run_loop(), run_cli()
        cli_in, loop_in = [], []
        for _ in range(args.repeat):
            for fn, times in ((run_cli, cli_in), (run_loop, loop_in)):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        same = all(np.array_equal(read_tiff(tmp / "cli_in" / p.name)[0],
                                  read_tiff(tmp / "loop_in" / p.name)[0])
                   for p in sorted((tmp / "loop_in").iterdir()))

        label = model_path or "shipped default"
        print(f"model: {label} ({net.count_params():,} parameters); {args.n} images "
              f"{args.size}x{args.size} uint16; best of {args.repeat}")
        ce, le = min(cli_e2e), min(loop_e2e)
        ci, li = min(cli_in) / args.n, min(loop_in) / args.n
        print(f"end to end (fresh process):  CLI {ce:6.1f} s   loop {le:6.1f} s   "
              f"CLI/loop {ce / le:.3f}   ({args.n / ce:.2f} vs {args.n / le:.2f} images/s)")
        print(f"per image (in process):      CLI {ci:6.3f} s   loop {li:6.3f} s   "
              f"CLI/loop {ci / li:.3f}   target <= 1.10")
        print(f"all runs (s): CLI e2e {np.round(cli_e2e, 1).tolist()}, loop e2e "
              f"{np.round(loop_e2e, 1).tolist()}, CLI in-process {np.round(cli_in, 2).tolist()},"
              f" loop in-process {np.round(loop_in, 2).tolist()}")
        print(f"identical labels from both: {same}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
