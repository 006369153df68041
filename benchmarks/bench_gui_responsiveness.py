"""Does napari stay responsive while the Segment widget works on a big image?

Usage::

    python benchmarks/bench_gui_responsiveness.py [--size 2048] [--runs 2]

A 2048 x 2048 image is segmented through the widget (shipped default model
if installed, else a freshly built base-16, depth-4, 2-output U-Net) while a
50 ms QTimer in the GUI thread records the gaps between its ticks. A gap
much longer than 50 ms means the GUI thread was blocked (or starved of the
GIL) for that long. Target: no gap above 250 ms.

Run 1 is the session's first (napari creates its first result layer);
later runs are warm. By default Run is pressed once the dock says "ready"
(it loads TensorFlow and the model for a few seconds after opening);
``--press-at-once`` presses it the instant the dock opens, so the run
overlaps that loading. Then a threshold change re-labels the result from
the cached probabilities. An idle baseline first shows what the machine's
load alone does, and the time the dock takes to open (GUI blocked once) is
printed. The exit status judges every run and the re-labelling.
Without a display it re-runs itself under ``xvfb-run``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

TICK_MS = 50
TARGET_MS = 250


def _ensure_display() -> None:
    if os.environ.get("DISPLAY") or os.environ.get("NAPARI_UNET_NO_XVFB"):
        return
    if shutil.which("xvfb-run") is None:
        sys.exit("No display and no xvfb-run: install Xvfb or run from a desktop session.")
    os.environ["NAPARI_UNET_NO_XVFB"] = "1"
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1100x24", sys.executable, *sys.argv]
    os.execvp(cmd[0], cmd)


def nuclei_image(size: int, seed: int = 0):
    """A nuclei-like uint16 image: blurred bright disks on a noisy background."""
    import numpy as np
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    n = size * size // 4000
    img = np.zeros((size, size), np.float32)
    ys, xs = rng.integers(0, size, n), rng.integers(0, size, n)
    img[ys, xs] = rng.uniform(0.5, 1.0, n)
    img = ndi.grey_dilation(img, footprint=_disk(9))
    img = ndi.gaussian_filter(img, 1.5) + rng.normal(0, 0.03, img.shape).astype(np.float32)
    return (img * 4000 + 500).clip(0, 65535).astype(np.uint16)


def _disk(r: int):
    import numpy as np

    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return yy**2 + xx**2 <= r * r


class GapRecorder:
    """A QTimer in the GUI thread; records the time between its ticks."""

    def __init__(self, widget):
        from qtpy.QtCore import QTimer

        self.widget = widget
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.ticks: list[tuple[float, str]] = []

    def _tick(self):
        if self.widget is None:
            self.ticks.append((time.perf_counter(), "idle"))
            return
        run = self.widget._run
        where = "idle"
        if run is not None and run.pbar is not None:
            where = f"tiles {run.pbar.n}/{run.pbar.total}"
        elif self.widget.busy:
            where = "re-labelling"
        self.ticks.append((time.perf_counter(), where))

    def start(self):
        self.ticks = [(time.perf_counter(), "start")]
        self.timer.start()

    def stop(self):
        self.timer.stop()
        self.ticks.append((time.perf_counter(), "end"))

    def report(self, label: str, seconds: float) -> float:
        import numpy as np

        t = np.array([tick[0] for tick in self.ticks])
        gaps = np.diff(t) * 1000
        worst = np.argsort(gaps)[::-1][:3]
        over = int((gaps > TARGET_MS).sum())
        print(f"{label}: total {seconds:.2f} s | ticks {len(gaps)} | gap max {gaps.max():.0f} ms, "
              f"p99 {np.percentile(gaps, 99):.0f} ms, median {np.median(gaps):.0f} ms | "
              f"{over} gaps > {TARGET_MS} ms")
        for i in worst:
            if gaps[i] > 2 * TICK_MS:
                print(f"    {gaps[i]:.0f} ms gap ending at +{t[i + 1] - t[0]:.2f} s "
                      f"({self.ticks[i][1]} -> {self.ticks[i + 1][1]})")
        return float(gaps.max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=2, help="1 cold + (runs-1) warm runs")
    parser.add_argument("--press-at-once", action="store_true",
                        help="press Run the instant the dock opens, while it still loads "
                             "TensorFlow (worst case), instead of once it says 'ready'")
    args = parser.parse_args()
    _ensure_display()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tmp = Path(tempfile.mkdtemp(prefix="napari-unet-bench-"))
    os.environ.setdefault("NAPARI_UNET_CONFIG_DIR", str(tmp))

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_unet import default_model_path

    viewer = napari.Viewer(title="napari-unet benchmark")
    viewer.add_image(nuclei_image(args.size), name="nuclei")
    app = QApplication.instance()
    # Baseline: the same timer with nothing running shows what the machine's
    # load alone does to the GUI thread.
    baseline = GapRecorder(None)
    baseline.start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 3:
        app.processEvents()
        time.sleep(0.002)
    baseline.stop()
    baseline.report("idle baseline (no widget)", time.perf_counter() - t0)
    t0 = time.perf_counter()
    _, widget = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    app.processEvents()
    # Opening the dock blocks the GUI once (widget build, napari's first-Labels-layer
    # shaders and the activity-dock progress bar, warmed up here on purpose).
    print(f"opening the dock: {1000 * (time.perf_counter() - t0):.0f} ms (GUI thread)")
    if default_model_path().is_file():
        model = "shipped default"
    else:
        # Building it imports TensorFlow here, before any timing.
        from napari_unet import build_unet, save_model

        model = "fresh base-16 depth-4 2-output U-Net"
        widget.load_model_file(save_model(build_unet(out_channels=2, base_filters=16, depth=4),
                                          tmp / "bench.keras"))
    recorder = GapRecorder(widget)
    print(f"image {args.size}x{args.size}, model: {model}, "
          f"tile {widget.tile_size.value}, overlap {widget.overlap.value}")

    def wait_idle(timeout=1200):
        start = time.perf_counter()
        while widget.busy and time.perf_counter() - start < timeout:
            app.processEvents()
            time.sleep(0.002)
        return time.perf_counter() - start

    for _ in range(10):
        app.processEvents()
    if not args.press_at_once:
        # As a user would: the dock says "loading TensorFlow and the model…" for
        # a few seconds after it opens; Run is pressed when it says "ready".
        waited = time.perf_counter()
        while widget.status.value.startswith("loading") and time.perf_counter() - waited < 300:
            app.processEvents()
            time.sleep(0.005)
        print(f"dock ready {time.perf_counter() - waited:.1f} s after opening")
    worst = []
    for i in range(args.runs):
        recorder.start()
        t0 = time.perf_counter()
        widget.run()
        wait_idle()  # includes writing the Labels layer in the GUI thread
        for _ in range(5):  # the first draw of the new layer happens after the run
            app.processEvents()
            time.sleep(0.01)
        recorder.stop()
        print(f"  status: {widget.status.value}")
        worst.append(recorder.report(f"run {i + 1} ({'cold' if i == 0 else 'warm'})",
                                     time.perf_counter() - t0))

    recorder.start()
    t0 = time.perf_counter()
    widget.threshold.value = round(widget.threshold.value + 0.1, 2)
    time.sleep(0)
    while time.perf_counter() - t0 < 0.3 or widget.busy:  # 150 ms debounce, then work
        app.processEvents()
        time.sleep(0.002)
    recorder.stop()
    worst.append(recorder.report("threshold change (re-label from cache, incl. 150 ms debounce)",
                                 time.perf_counter() - t0))
    ok = max(worst) <= TARGET_MS
    print(f"{'PASS' if ok else 'FAIL'}: worst GUI gap {max(worst):.0f} ms (target <= "
          f"{TARGET_MS}): first run {worst[0]:.0f} ms, warm runs and re-labelling "
          f"{max(worst[1:]):.0f} ms")
    sys.stdout.flush()
    # TensorFlow and Mesa's OpenGL both carry LLVM; their static destructors
    # clash at interpreter exit (free(): invalid pointer). Skip them.
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
