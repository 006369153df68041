"""segment with its defaults vs the seed's batched way, side by side in one run.

Run::

    python benchmarks/bench_speed.py            # 2048x2048, ~2 min
    python benchmarks/bench_speed.py --quick    # 1024x1024, fewer repeats

On a real-looking nuclei image (the shipped 2D sample mirrored to size)
with the shipped model, it times, alternating the two so that load on a
shared machine hits both alike (best of ``--repeat``):

* the seed's way: all non-overlapping 128x128 patches through ONE
  ``model.predict(batch, batch_size=32)`` call, then a threshold (a mask,
  no instances);
* ``segment(image)`` with its defaults: overlapping windows blended
  seamlessly (128 px on CPUs with AMX, 256 px elsewhere), precision
  'auto', instance labels;
* ``segment`` with the other window size, as information.

Then checks seamlessness (tiled vs one whole-image pass, same precision)
and bf16 against float32 on held-out images (mnfinder validation split, or
the shipped sample). Prints one ``PASS``/``FAIL`` line per target (issue 14):
segment <= 1.0x the seed way; >= 1.0 Mpx/s; seamless Dice >= 0.995;
bf16 F1 and Dice within 0.005 of float32.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import dice, heldout_images, load_benchmark_model, nuclei_image, seed_way, verdict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help=".keras file (default: the shipped model)")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1024 px, 2 repeats")
    parser.add_argument("--window", type=int, default=None,
                        help="also time segment with windows of this size, side by side "
                             "(information, not a target; default: 128 px where the "
                             "default window is 256 px, else 256; 0: skip)")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.repeat = min(args.size, 1024), min(args.repeat, 2)

    import napari_unet as nu
    from napari_unet import engine
    from napari_unet.prediction import plane_range
    from napari_unet.settings import PredictionSettings
    from napari_unet.tiling import predict_whole_plane

    model, info, label = load_benchmark_model(args.model)
    image = nuclei_image(args.size)
    mpx = image.size / 1e6
    defaults = PredictionSettings().resolved(info, image.shape)
    precision = engine.resolve_precision(defaults.precision)
    print(f"model: {label}; image {image.shape} {image.dtype}; device {engine.device_name()}; "
          f"segment defaults: window {defaults.tile_size}, overlap {defaults.overlap}, "
          f"batch {defaults.batch_size}, precision {defaults.precision} -> {precision}")

    # Warm up (trace) both paths on the full image once: not timed.
    seed_way(image, model, info)
    nu.segment(image, model, info=info)
    if args.window is None:
        args.window = 128 if defaults.tile_size == 256 else 256
    big = dict(tile_size=args.window) if args.window else None
    if big:
        nu.segment(image, model, info=info, **big)
    t_seed = t_seg = t_big = float("inf")
    for _ in range(args.repeat):  # alternate: machine load hits all alike
        t0 = time.perf_counter()
        seed_mask, _ = seed_way(image, model, info)
        t_seed = min(t_seed, time.perf_counter() - t0)
        t0 = time.perf_counter()
        labels, probs = nu.segment(image, model, info=info, return_probabilities=True)
        t_seg = min(t_seg, time.perf_counter() - t0)
        if big:
            t0 = time.perf_counter()
            nu.segment(image, model, info=info, **big)
            t_big = min(t_big, time.perf_counter() - t0)
    ratio = t_seg / t_seed
    print(f"seed way (128 px patches, one model.predict, threshold): {t_seed:6.2f} s "
          f"({mpx / t_seed:.2f} Mpx/s)")
    print(f"segment defaults (seamless, instance labels):           {t_seg:6.2f} s "
          f"({mpx / t_seg:.2f} Mpx/s), {int(labels.max())} objects")
    print(f"ratio segment / seed way: {ratio:.2f}")
    if big:
        print(f"(not a default) segment with {args.window} px windows:  {t_big:6.2f} s "
              f"({mpx / t_big:.2f} Mpx/s), ratio {t_big / t_seed:.2f}")

    # Seamlessness: the tiled result against one whole-image pass.
    crop = image[:1024, :1024]
    lo, hi = plane_range(crop[..., None], *info.percentiles)
    whole = predict_whole_plane(crop[..., None], model, lo=lo, hi=hi, context=128,
                                precision=precision)
    tiled = nu.predict_probabilities(crop, model, info=info)
    thr = info.thresholds.get("foreground", 0.5)
    seam = dice(tiled[0] > thr, whole[0] > thr)
    seed_seam = dice(seed_way(crop, model, info)[0], whole[0] > thr)
    err = np.abs(tiled - whole)[:, :-64, :-64]  # the image's mirrored border aside
    print(f"tiled vs whole-image pass ({crop.shape[0]} px crop): foreground Dice {seam:.5f} "
          f"(seed way: {seed_seam:.5f}); max |diff| {err.max():.2e}, mean {err.mean():.2e}")

    # bf16 vs float32 on held-out images.
    images, truths, names = heldout_images()
    scores = {}
    for prec in ("float32", "bfloat16"):
        preds = [nu.segment(im, model, info=info, precision=prec) for im in images]
        scores[prec] = nu.evaluate(preds, truths)
        s = scores[prec]
        print(f"{prec:8s} on {len(images)} held-out image(s): F1@0.5 {s['f1']:.4f}, "
              f"Dice {s['dice']:.4f} (TP {s['tp']}, FP {s['fp']}, FN {s['fn']})")
    print("  held-out: " + "; ".join(names))
    d_f1 = abs(scores["bfloat16"]["f1"] - scores["float32"]["f1"])
    d_dice = abs(scores["bfloat16"]["dice"] - scores["float32"]["dice"])

    lines = [
        verdict(ratio <= 1.0, f"segment / seed way = {ratio:.2f} (target <= 1.0)"),
        verdict(mpx / t_seg >= 1.0, f"segment {mpx / t_seg:.2f} Mpx/s (target >= 1.0)"),
        verdict(seam >= 0.995, f"seamless: Dice tiled vs whole {seam:.5f} (target >= 0.995)"),
        verdict(max(d_f1, d_dice) <= 0.005,
                f"bf16 vs float32: |dF1| {d_f1:.4f}, |dDice| {d_dice:.4f} (target <= 0.005)"),
    ]
    print("(timings on a shared machine are noisy; the ratio is measured side by side)")
    return 0 if all(line.startswith("PASS") for line in lines) else 1


if __name__ == "__main__":
    raise SystemExit(main())
