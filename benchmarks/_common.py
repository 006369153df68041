"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def load_benchmark_model(path=None):
    """The model to benchmark: a file, the shipped default, or (if neither
    exists) a freshly built base-16 two-output U-Net of the same cost."""
    import napari_unet as nu

    if path:
        return nu.load_model(path, with_info=True) + (str(path),)
    try:
        return nu.load_model(with_info=True) + ("shipped default",)
    except nu.ModelFileError:
        model = nu.build_unet(out_channels=2, base_filters=16, depth=4)
        return model, nu.ModelInfo.from_model(model), "untrained base-16 (no default model yet)"


def nuclei_image(size: int) -> np.ndarray:
    """A ``size x size`` uint16 nuclei image: the shipped 2D sample mirrored
    to size (real texture and density), or synthetic blobs without it."""
    sample = REPO / "sample_data" / "nuclei2d.tif"
    if sample.exists():
        import tifffile

        img = tifffile.imread(sample)
        img = np.squeeze(img)
        from napari_unet.tiling import mirror_index

        rows = mirror_index(np.arange(size), img.shape[0])
        cols = mirror_index(np.arange(size), img.shape[1])
        return np.ascontiguousarray(img[np.ix_(rows, cols)]).astype(np.uint16)
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    img = np.zeros((size, size), np.float32)
    n = size * size // 2500
    img[rng.integers(0, size, n), rng.integers(0, size, n)] = 1
    img = ndi.gaussian_filter(ndi.grey_dilation(img, size=(15, 15)), 2)
    return (img * 3000 + rng.normal(200, 20, img.shape)).clip(0, 65535).astype(np.uint16)


def timed(fn, repeat: int = 1):
    """Best wall time of ``repeat`` calls and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


class PeakRSS:
    """Samples this process's resident memory every few ms in a thread.

    With ``children``, the memory of its child processes (e.g. napari-unet's
    worker) is added in.
    """

    def __init__(self, interval: float = 0.005, children: bool = False):
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._children = children
        self.baseline = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        import psutil

        total = self._proc.memory_info().rss
        if self._children:
            for child in self._proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # ended meanwhile
                    pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self._interval)

    def __enter__(self):
        self.baseline = self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.baseline) / 2**20


def seed_way(image, model, info, *, tile: int = 128, batch_size: int = 32):
    """The seed's way, as a user would batch it: every non-overlapping
    ``tile`` patch of the percentile-normalized image through ONE
    ``model.predict(batch, batch_size=32)`` call, then a threshold.

    Returns ``(mask, probabilities)``; the mask is the foreground above the
    model's threshold (no instances: the seed stops there).
    """
    from napari_unet.normalize import apply_range, percentile_range

    lo, hi = percentile_range(image, *info.percentiles)
    h, w = image.shape
    hp, wp = -(-h // tile) * tile, -(-w // tile) * tile
    padded = np.pad(apply_range(image, lo, hi), ((0, hp - h), (0, wp - w)), mode="reflect")
    ny, nx = hp // tile, wp // tile
    patches = padded.reshape(ny, tile, nx, tile).transpose(0, 2, 1, 3).reshape(-1, tile, tile, 1)
    pred = model.predict(patches, batch_size=batch_size, verbose=0)
    c = pred.shape[-1]
    probs = pred.reshape(ny, nx, tile, tile, c).transpose(4, 0, 2, 1, 3).reshape(c, hp, wp)
    probs = probs[:, :h, :w]
    return probs[0] > info.thresholds.get("foreground", 0.5), probs


def dice(a, b) -> float:
    """Dice of two boolean masks."""
    return float(2 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum()))


def verdict(ok: bool, what: str) -> str:
    """One greppable line: ``PASS: ...`` or ``FAIL: ...``."""
    line = f"{'PASS' if ok else 'FAIL'}: {what}"
    print(line, flush=True)
    return line


def heldout_images():
    """Held-out ``(images, labels, names)``: mnfinder 1.2.3's validation split
    (never trained on; the wheel from napari-unet's cache or ``$MNFINDER_WHEEL``),
    else the shipped sample image (one of those validation images)."""
    wheel = Path(os.environ.get("MNFINDER_WHEEL", Path.home() / ".cache" / "napari-unet" /
                                "wheels" / "mnfinder-1.2.3-py3-none-any.whl"))
    if wheel.exists():
        import sys
        import zipfile

        sys.path.insert(0, str(REPO / "scripts"))
        from train_default_model import read_split

        with zipfile.ZipFile(wheel) as zf:
            images, labels, names, _ = read_split(zf, "validation-data")
        return images, labels, [f"mnfinder validation {n}" for n in names]
    import tifffile

    folder = REPO / "sample_data"
    return ([tifffile.imread(folder / "nuclei2d.tif")],
            [tifffile.imread(folder / "nuclei2d_labels.tif").astype(np.int32)],
            ["sample_data/nuclei2d.tif"])
