"""Does the Segment widget keep a zarr-backed stack out of memory?

Usage::

    python benchmarks/bench_widget_largescale.py [--shape 16,1024,1024] [--chunk 512]

A uint16 nuclei stack is written to a zarr store and opened in napari as a
dask array (napari itself reads only the slice on screen). The widget then
segments the whole layer twice, each in a fresh process, side by side:

* **out of core**: the widget's block path (what a layer above
  ``_largescale.OUT_OF_CORE_PIXELS`` takes), labels written to a zarr store;
* **in memory**: the same layer forced through the in-memory path.

Printed: the peak resident memory each run adds over the viewer with
TensorFlow and the model loaded (napari's process and the dock's worker
process together), the input's size, the ratio, and the time.
Without a display it re-runs itself under ``xvfb-run``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def child(mode: str, store: str, results: str) -> dict:
    os.environ["NAPARI_UNET_RESULTS_DIR"] = results
    import dask.array as da
    import napari
    import numpy as np
    from _common import PeakRSS
    from qtpy.QtWidgets import QApplication

    from napari_unet._widgets import _largescale

    _largescale.OUT_OF_CORE_PIXELS = 0 if mode == "out of core" else np.inf
    viewer = napari.Viewer()
    viewer.add_image(da.from_zarr(store), name="stack")
    app = QApplication.instance()
    _, widget = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Segment")
    while widget.status.value != "ready":  # The worker loads TensorFlow and the model.
        app.processEvents()
        time.sleep(0.01)
    for _ in range(20):
        app.processEvents()
    with PeakRSS(children=True) as rss:
        t0 = time.perf_counter()
        widget.run()
        while widget.busy:
            app.processEvents()
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
    layer = viewer.layers["stack labels"]
    return {"extra_mib": rss.extra_mb, "baseline_gib": rss.baseline / 2**30,
            "seconds": seconds, "status": widget.status.value,
            "backing": type(layer.data).__module__.split(".")[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="16,1024,1024")
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(*args.child)), flush=True)
        return 0
    if not os.environ.get("DISPLAY"):
        if shutil.which("xvfb-run") is None:
            sys.exit("No display and no xvfb-run: install Xvfb.")
        os.execvp("xvfb-run", ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24",
                               sys.executable, *sys.argv])

    import numpy as np
    import zarr
    from _common import nuclei_image

    shape = tuple(int(n) for n in args.shape.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="napari-unet-bench-"))
    try:
        plane = nuclei_image(shape[-1])[: shape[-2]]
        arr = zarr.open_array(str(tmp / "stack.zarr"), mode="w", shape=shape, dtype=np.uint16,
                              chunks=(1, args.chunk, args.chunk))
        for z in range(shape[0]):  # shifted copies: every plane differs
            arr[z] = np.roll(plane, 37 * z, axis=1)
        size_mib = np.prod(shape) * 2 / 2**20
        print(f"stack {shape} uint16 ({size_mib:.0f} MiB), zarr chunks (1, {args.chunk}, "
              f"{args.chunk}); shipped default model; command: {' '.join(sys.argv)}")
        out = {}
        for mode in ("out of core", "in memory"):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(tmp / "stack.zarr"),
                 str(tmp / f"results-{mode.replace(' ', '-')}")],
                capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if not lines:
                print(proc.stdout[-2000:], proc.stderr[-3000:])
                return 1
            out[mode] = r = json.loads(lines[-1][7:])
            print(f"{mode:>12}: +{r['extra_mib']:.0f} MiB peak over the loaded viewer "
                  f"({r['baseline_gib']:.2f} GiB), {r['seconds']:.1f} s, labels backed by "
                  f"{r['backing']}, {r['status']}")
        ratio = out["out of core"]["extra_mib"] / max(out["in memory"]["extra_mib"], 1)
        print(f"out-of-core / in-memory extra memory: {ratio:.2f} "
              f"(input {size_mib:.0f} MiB); time ratio "
              f"{out['out of core']['seconds'] / out['in memory']['seconds']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
