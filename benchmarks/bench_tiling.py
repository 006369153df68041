"""Tiled prediction vs a naive tile loop vs one whole-image pass.

Run::

    python benchmarks/bench_tiling.py [--model FILE] [--size 2048] [--memory-size 8192]

Prints, measured side by side in one run with the same model on the same
image: the time of ``segment`` with its defaults (128 px tiles, 32 px
blended overlap, batched compiled inference, then post-processing), the
time of the naive approach (non-overlapping 128x128 patches, one
``model.predict`` call each, same post-processing), the time of one
whole-image pass, their ratios, the seamlessness Dice (thresholded tiled
output vs whole-image output) and the peak extra resident memory of
``segment`` on a large uint16 image (in a fresh subprocess).

Targets (issue 2): segment <= 1.5x naive; Dice >= 0.995; peak extra memory
for 8192x8192 <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
from _common import PeakRSS, load_benchmark_model, nuclei_image, timed


def naive_probabilities(image, model, info, tile=128):
    """Non-overlapping tiles, one ``model.predict`` call per tile."""
    from napari_unet.normalize import apply_range, percentile_range

    lo, hi = percentile_range(image, *_percentiles(info))
    h, w = image.shape
    hp, wp = -(-h // tile) * tile, -(-w // tile) * tile
    padded = np.pad(apply_range(image, lo, hi), ((0, hp - h), (0, wp - w)), mode="reflect")
    out = np.zeros((info.out_channels, hp, wp), np.float32)
    for y in range(0, hp, tile):
        for x in range(0, wp, tile):
            patch = padded[None, y:y + tile, x:x + tile, None]
            out[:, y:y + tile, x:x + tile] = np.moveaxis(model.predict(patch, verbose=0)[0], -1, 0)
    return out[:, :h, :w]


def _percentiles(info):
    return info.normalization.get("low", 1.0), info.normalization.get("high", 99.8)


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


def memory_child(size, model_path):
    """Runs in a subprocess: peak extra RSS of segment() on size x size uint16."""
    import napari_unet as nu

    model, info, _ = load_benchmark_model(model_path)
    nu.segment(nuclei_image(256), model, info=info)  # trace + warm up first
    image = nuclei_image(size)
    with PeakRSS() as rss:
        t, labels = timed(lambda: nu.segment(image, model, info=info))
    print(json.dumps({"extra_mb": rss.extra_mb, "seconds": t, "objects": int(labels.max())}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help=".keras file (default: the shipped model)")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--memory-size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_size, args.model)

    import napari_unet as nu
    from napari_unet.prediction import plane_range
    from napari_unet.tiling import predict_whole_plane

    model, info, label = load_benchmark_model(args.model)
    image = nuclei_image(args.size)
    print(f"model: {label} ({model.count_params():,} parameters); image {image.shape} "
          f"{image.dtype}")
    # Warm up every path once so that tracing is not timed.
    small = image[:256, :256]
    nu.segment(small, model, info=info)
    model.predict(np.zeros((1, 128, 128, 1), np.float32), verbose=0)

    t_seg, (labels, probs) = timed(
        lambda: nu.segment(image, model, info=info, return_probabilities=True), args.repeat)
    t_prob, _ = timed(lambda: nu.predict_probabilities(image, model, info=info), args.repeat)
    t_naive_prob, naive = timed(lambda: naive_probabilities(image, model, info), 1)
    t_post, _ = timed(lambda: nu.probabilities_to_labels(naive, info=info), 1)
    t_naive = t_naive_prob + t_post
    lo, hi = plane_range(image[..., None], *_percentiles(info))
    t_whole, whole = timed(lambda: predict_whole_plane(image[..., None], model, lo=lo, hi=hi), 1)

    thr = info.thresholds.get("foreground", 0.5)
    seam_dice = dice(probs[0] > thr, whole[0] > thr)
    naive_dice = dice(naive[0] > thr, whole[0] > thr)
    err = np.abs(probs - whole)
    print(f"segment (defaults: tile 128, overlap 32, batch 16): {t_seg:7.2f} s "
          f"(prediction {t_prob:.2f} s + post-processing)")
    print(f"naive tile loop (model.predict per 128 px tile):    {t_naive:7.2f} s "
          f"(prediction {t_naive_prob:.2f} s + post-processing {t_post:.2f} s)")
    print(f"one whole-image pass (prediction only):             {t_whole:7.2f} s")
    print(f"ratio segment / naive:        {t_seg / t_naive:5.2f}  (target <= 1.5)")
    print(f"ratio prediction / naive:     {t_prob / t_naive_prob:5.2f}")
    print(f"ratio prediction / whole:     {t_prob / t_whole:5.2f}")
    print(f"seamlessness Dice tiled vs whole:  {seam_dice:.5f} (target >= 0.995); "
          f"naive vs whole: {naive_dice:.5f}")
    print(f"|tiled - whole| probabilities: mean {err.mean():.2e}, max {err.max():.2e}")
    print(f"objects found: {labels.max()}")

    if args.memory_size:
        cmd = [sys.executable, __file__, "--memory-child", "--memory-size", str(args.memory_size)]
        if args.model:
            cmd += ["--model", args.model]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                        text=True).stdout.strip().splitlines()[-1])
        print(f"peak extra RSS of segment on {args.memory_size}x{args.memory_size} uint16: "
              f"{res['extra_mb']:.0f} MB (target <= 1536 MB); {res['seconds']:.1f} s, "
              f"{res['objects']} objects")


if __name__ == "__main__":
    main()
