"""Screenshot of napari with the Segment widget after a run, for the docs.

Usage::

    python scripts/screenshot.py [--output docs/screenshot.png]

Without a display it re-runs itself under ``xvfb-run``. It loads
``sample_data/nuclei2d.tif`` (or a synthetic nuclei-like image if absent),
docks Plugins › napari-unet › Segment, runs it with the shipped default
model (or a freshly built tiny U-Net if the default is not installed) and
saves the whole window.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ensure_display() -> None:
    if os.environ.get("DISPLAY") or os.environ.get("NAPARI_UNET_NO_XVFB"):
        return
    if shutil.which("xvfb-run") is None:
        sys.exit("No display and no xvfb-run: install Xvfb or run from a desktop session.")
    os.environ["NAPARI_UNET_NO_XVFB"] = "1"  # The child must not re-exec again.
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1100x24", sys.executable, *sys.argv]
    os.execvp(cmd[0], cmd)


def load_image():
    """``(data, scale, name)``: the 2D nuclei sample, or a synthetic stand-in."""
    import numpy as np

    path = ROOT / "sample_data" / "nuclei2d.tif"
    if path.is_file():
        import tifffile

        with tifffile.TiffFile(path) as tif:
            data = tif.asarray()
            x_res = tif.pages[0].tags.get("XResolution")
            pixel = x_res.value[1] / x_res.value[0] if x_res else 1.0
        return data, (pixel, pixel), "nuclei"
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512]
    img = np.zeros((512, 512), np.float32)
    for cy, cx, r in zip(rng.uniform(20, 492, 60), rng.uniform(20, 492, 60),
                         rng.uniform(8, 16, 60), strict=True):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(0.5, 1.0)
    img = ndi.gaussian_filter(img, 1.5) + rng.normal(0, 0.03, img.shape)
    return (img * 4000 + 500).clip(0, 65535).astype(np.uint16), (1.0, 1.0), "nuclei"


def model_path(tmp: Path) -> Path | None:
    """None to use the installed default, else a tiny fresh model file."""
    from napari_unet import build_unet, default_model_path, save_model

    if default_model_path().is_file():
        return None
    return save_model(build_unet(out_channels=2, base_filters=8, depth=3), tmp / "tiny.keras")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = parser.parse_args()
    _ensure_display()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import imageio.v3 as iio
    import napari
    from qtpy.QtWidgets import QApplication

    tmp = Path(tempfile.mkdtemp(prefix="napari-unet-shot-"))
    os.environ.setdefault("NAPARI_UNET_CONFIG_DIR", str(tmp))  # Leave the user's list alone.
    data, scale, name = load_image()
    viewer = napari.Viewer(title="napari-unet")
    viewer.window.resize(1500, 950)
    import numpy as np

    limits = tuple(float(v) for v in np.percentile(data, (1, 99.8)))  # A visible stain.
    viewer.add_image(data, name=name, scale=scale, units=("um", "um"), colormap="gray",
                     contrast_limits=limits)
    _, widget = viewer.window.add_plugin_dock_widget("napari-tiled-unet", "Segment")
    custom = model_path(tmp)
    if custom is not None:
        widget.load_model_file(custom)
    app = QApplication.instance()

    start = time.perf_counter()
    widget.run()
    while widget.busy and time.perf_counter() - start < 600:
        app.processEvents()
        time.sleep(0.02)
    print(f"segmented in {time.perf_counter() - start:.1f} s: {widget.status.value}")
    viewer.reset_view()
    for _ in range(20):  # Let the canvas and the dock settle before grabbing.
        app.processEvents()
        time.sleep(0.02)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.output, viewer.screenshot(canvas_only=False, flash=False))
    print(f"wrote {args.output}")
    viewer.close()


if __name__ == "__main__":
    main()
