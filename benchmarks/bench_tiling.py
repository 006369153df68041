"""Tiled prediction vs the seed's batched way, a per-tile loop and a whole-image pass.

Run::

    python benchmarks/bench_tiling.py [--model FILE] [--size 2048] [--memory-size 8192]
    python benchmarks/bench_tiling.py --quick      # 1024 px, no memory check
    python benchmarks/bench_tiling.py --sweep      # windows x overlaps: speed and seams

Prints, measured side by side in one run with the same model on the same
image: the time of ``segment`` with its defaults (overlapping windows,
blended, then instance post-processing); the main baseline, the seed's way
as a user batches it (non-overlapping 128x128 patches through ONE
``model.predict(batch, batch_size=32)``, then a threshold); as a second
line the per-tile loop (one ``model.predict`` call per patch, same
post-processing); one whole-image pass; their ratios; the seamlessness Dice
(thresholded tiled output vs whole-image output) and the peak extra
resident memory of ``segment`` on a large uint16 image (in a fresh
subprocess).

``--sweep`` measures, for the model's weights, how far each window/overlap
pair is from a whole-image pass (the effective receptive field: max
|tiled - whole| away from the image border) and how fast it runs; it is how
the defaults in ``napari_unet.settings`` were chosen.

Targets: segment <= 1.0x the seed's batched way (issue 14); Dice >= 0.995;
peak extra memory for 8192x8192 <= 1.5 GB (issue 2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
from _common import (
    PeakRSS,
    dice,
    load_benchmark_model,
    nuclei_image,
    seed_way,
    timed,
    verdict,
)


def naive_probabilities(image, model, info, tile=128):
    """The per-tile loop: non-overlapping tiles, one ``model.predict`` call each."""
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


def memory_child(size, model_path):
    """Runs in a subprocess: peak extra RSS of segment() on size x size uint16."""
    import napari_unet as nu

    model, info, _ = load_benchmark_model(model_path)
    nu.segment(nuclei_image(256), model, info=info)  # trace + warm up first
    image = nuclei_image(size)
    with PeakRSS() as rss:
        t, labels = timed(lambda: nu.segment(image, model, info=info))
    print(json.dumps({"extra_mb": rss.extra_mb, "seconds": t, "objects": int(labels.max())}))


def sweep(image, model, info, repeat: int) -> None:
    """Windows x overlaps: time, and distance to a whole-image pass."""
    import napari_unet as nu
    from napari_unet import engine
    from napari_unet.prediction import plane_range
    from napari_unet.tiling import predict_whole_plane

    precision = engine.resolve_precision("auto")
    lo, hi = plane_range(image[..., None], *info.percentiles)
    whole = predict_whole_plane(image[..., None], model, lo=lo, hi=hi, context=128,
                                precision=precision)
    thr = info.thresholds.get("foreground", 0.5)
    print(f"sweep on {image.shape}, {precision}; error measured away from the image border")
    print("window overlap batch   cost   Mpx/s   max|diff|  mean|diff|  Dice fg")
    for tile in (128, 192, 256, 384, 512):
        batch = max(1, 2**18 // tile**2)  # ~256 k pixels per call
        for overlap in (0, 16, 32, 48, 64, 96):
            if overlap >= tile // 2:
                continue
            run = lambda t=tile, o=overlap, b=batch: nu.predict_probabilities(  # noqa: E731
                image, model, info=info, tile_size=t, overlap=o, batch_size=b)
            t, probs = timed(run, repeat)
            err = np.abs(probs - whole)[:, :-128, :-128]
            print(f"{tile:6d} {overlap:7d} {batch:5d} {(tile / (tile - overlap)) ** 2:6.2f} "
                  f"{image.size / t / 1e6:7.2f} {err.max():10.2e} {err.mean():11.2e} "
                  f"{dice(probs[0] > thr, whole[0] > thr):8.5f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help=".keras file (default: the shipped model)")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--memory-size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1024 px, no memory check")
    parser.add_argument("--sweep", action="store_true", help="windows x overlaps instead")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_size, args.model)
    if args.quick:
        args.size, args.memory_size, args.repeat = min(args.size, 1024), 0, 1

    import napari_unet as nu
    from napari_unet import engine
    from napari_unet.prediction import plane_range
    from napari_unet.settings import PredictionSettings
    from napari_unet.tiling import predict_whole_plane

    model, info, label = load_benchmark_model(args.model)
    image = nuclei_image(args.size)
    print(f"model: {label} ({model.count_params():,} parameters); image {image.shape} "
          f"{image.dtype}")
    if args.sweep:
        return sweep(image[:1024, :1024], model, info, args.repeat)
    defaults = PredictionSettings().resolved(info, image.shape)
    precision = engine.resolve_precision(defaults.precision)
    # Warm up every path once so that tracing is not timed.
    nu.segment(image, model, info=info)
    seed_way(image, model, info)
    model.predict(np.zeros((1, 128, 128, 1), np.float32), verbose=0)

    t_seg = t_seed = float("inf")
    for _ in range(args.repeat):  # alternated: load on a shared machine hits both
        t, (labels, probs) = timed(
            lambda: nu.segment(image, model, info=info, return_probabilities=True))
        t_seg = min(t, t_seg)
        t, (seed_mask, seed_probs) = timed(lambda: seed_way(image, model, info))
        t_seed = min(t, t_seed)
    t_prob, _ = timed(lambda: nu.predict_probabilities(image, model, info=info), 1)
    t_loop_prob, loop = timed(lambda: naive_probabilities(image, model, info), 1)
    t_post, _ = timed(lambda: nu.probabilities_to_labels(loop, info=info), 1)
    t_loop = t_loop_prob + t_post
    lo, hi = plane_range(image[..., None], *_percentiles(info))
    t_whole, whole = timed(lambda: predict_whole_plane(image[..., None], model, lo=lo, hi=hi,
                                                       precision=precision), 1)

    thr = info.thresholds.get("foreground", 0.5)
    seam_dice = dice(probs[0] > thr, whole[0] > thr)
    seed_dice = dice(seed_mask, whole[0] > thr)
    err = np.abs(probs - whole)
    print(f"segment (defaults: window {defaults.tile_size}, overlap {defaults.overlap}, "
          f"batch {defaults.batch_size}, {precision}): {t_seg:7.2f} s "
          f"(prediction {t_prob:.2f} s + post-processing)")
    print(f"seed way (128 px patches, one batched model.predict, threshold): {t_seed:7.2f} s")
    print(f"per-tile loop (model.predict per 128 px tile, same post-processing): {t_loop:7.2f} s "
          f"(prediction {t_loop_prob:.2f} s + post-processing {t_post:.2f} s)")
    print(f"one whole-image pass (prediction only, {precision}): {t_whole:7.2f} s")
    print(f"ratio segment / seed way:     {t_seg / t_seed:5.2f}  (target <= 1.0)")
    print(f"ratio segment / per-tile loop: {t_seg / t_loop:5.2f}")
    print(f"ratio prediction / whole:     {t_prob / t_whole:5.2f}")
    print(f"seamlessness Dice tiled vs whole:  {seam_dice:.5f} (target >= 0.995); "
          f"seed way vs whole: {seed_dice:.5f}")
    print(f"|tiled - whole| probabilities: mean {err.mean():.2e}, max {err.max():.2e}")
    print(f"objects found: {labels.max()}")
    ok = [verdict(t_seg / t_seed <= 1.0, f"segment / seed way = {t_seg / t_seed:.2f} "
                                         "(target <= 1.0)"),
          verdict(seam_dice >= 0.995, f"seamless: Dice {seam_dice:.5f} (target >= 0.995)")]

    if args.memory_size:
        cmd = [sys.executable, __file__, "--memory-child", "--memory-size", str(args.memory_size)]
        if args.model:
            cmd += ["--model", args.model]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                        text=True).stdout.strip().splitlines()[-1])
        print(f"peak extra RSS of segment on {args.memory_size}x{args.memory_size} uint16: "
              f"{res['extra_mb']:.0f} MB; {res['seconds']:.1f} s, {res['objects']} objects")
        ok.append(verdict(res["extra_mb"] <= 1536, f"peak extra RSS {res['extra_mb']:.0f} MB "
                                                   "(target <= 1536 MB)"))
    print("(timings on a shared machine are noisy; ratios are measured side by side)")
    return 0 if all(line.startswith("PASS") for line in ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
