"""A simulated annotator: which objects to correct, and what a 3-minute fine-tune buys.

Run (the machine is shared: lower the priority)::

    nice -n 10 python benchmarks/bench_annotator.py [--quick] [--ks 4 8 16] [--budget S]

Images: the held-out dense set of ``_heldout.py`` (nuclei of mnfinder's
validation-data packed so that they touch, unlike the training images).
One dense image is "the user's"; F1 (IoU >= 0.5) is measured on all the
others, before and after fine-tuning the shipped model.

(1) **Correction order.** The model segments the user's image; a simulated
user, looking at the ground truth, corrects K objects, either the K least
confident (:func:`napari_unet.object_confidence`) or K random ones: the
predicted object is erased and the ground-truth nuclei under it are drawn
in. Only those regions count for training (sparse annotation,
:func:`napari_unet.counted.counted_mask`: corrected objects plus a margin);
the model is fine-tuned for a fixed time budget with the ``quick`` preset's
settings. Target: confidence order reaches random order's gain with at most
half the corrected objects.

(2) **One corrected image, 3 minutes.** The whole user's image is corrected
(its ground truth) and the model fine-tuned with ``train(preset='quick')``
as ``napari-unet train --preset quick`` does; the wall time from loading the
model to the saved result is reported. Target: +0.03 F1 on the other images.

Times are wall-clock on whatever else the machine runs: say so with figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _heldout import dense_set, validation_split


def correct(labels, truth, ids):
    """The labels after a user fixed the objects ``ids`` from the ground truth.

    Returns the corrected labels and the pixels that count for training.
    """
    from napari_unet.counted import counted_mask

    out = labels.copy()
    edited = np.isin(labels, ids)
    gt_ids = np.unique(truth[edited])
    gt_ids = gt_ids[gt_ids > 0]
    out[edited] = 0
    new_ids = np.arange(1, len(gt_ids) + 1) + int(labels.max())
    for g, n in zip(gt_ids, new_ids, strict=True):
        out[truth == g] = n
    return out, counted_mask(out, new_ids, edited)


def f1_on(model, info, images, truths) -> float:
    import napari_unet as nu

    preds = [nu.segment(im, model, info=info) for im in images]
    return nu.evaluate(preds, truths)["f1"]


def fine_tune(image, labels, counted, budget, seed=0, **kwargs):
    """``(TrainingResult, steps run)`` of a quick-preset fine-tune of the shipped model."""
    import napari_unet as nu
    from napari_unet.model_io import default_model_path

    steps = []
    res = nu.train([image], [labels], counted=counted, model=default_model_path(),
                   preset="quick", time_limit=budget, seed=seed,
                   progress=lambda e: steps.append(1) if e["event"] == "step" else None,
                   **kwargs)
    return res, len(steps)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="K in (4, 16), 45 s budget, part (2) with a 60 s budget")
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--budget", type=float, help="fine-tuning seconds per run of (1) "
                        "(default: the quick preset's)")
    parser.add_argument("--random-seeds", type=int, default=1, help="random orders averaged")
    parser.add_argument("--user-image", type=int, default=0, help="index of the user's image")
    parser.add_argument("--part", choices=["1", "2", "all"], default="all")
    args = parser.parse_args(argv)

    import napari_unet as nu
    from napari_unet.metrics import best_overlap
    from napari_unet.model_io import default_model_path
    from napari_unet.settings import TRAINING_PRESETS

    quick = TRAINING_PRESETS["quick"]
    budget = args.budget or (45.0 if args.quick else quick["time_limit"])
    ks = [4, 16] if args.quick else sorted(args.ks)
    t0 = time.perf_counter()
    images, truths, _ = validation_split()
    dense = dense_set(images, truths, per_image=2)
    user_img, user_gt = dense[args.user_image]
    others = [d for i, d in enumerate(dense) if i != args.user_image]
    eval_imgs, eval_gts = [d[0] for d in others], [d[1] for d in others]
    model, info = nu.load_model(with_info=True)
    before = f1_on(model, info, eval_imgs, eval_gts)
    labels, probs = nu.segment(user_img, model, info=info, return_probabilities=True)
    conf = nu.object_confidence(labels, probs, outputs=info.outputs)
    ids = np.array(sorted(conf, key=conf.get))
    wrong = {int(i) for i, iou in zip(*best_overlap(labels, user_gt)[:2],
                                      strict=True) if iou < 0.5}
    print(f"user's image: dense #{args.user_image} {user_img.shape}, {len(ids)} objects, "
          f"{len(wrong)} wrong (IoU < 0.5); F1 on the other {len(others)} images before: "
          f"{before:.3f}  [{time.perf_counter() - t0:.0f} s]")

    if args.part in ("1", "all"):
        print(f"(1) correct K objects, fine-tune {budget:.0f} s (quick preset settings), "
              "F1 on the other images")
        print(f"    {'K':>3s} {'order':>10s} {'wrong fixed':>11s} {'F1':>6s} {'gain':>7s} "
              f"{'steps':>5s}")
        gains = {}
        for k in ks:
            orders = [("confidence", ids[:k])] + [
                (f"random{s}" if args.random_seeds > 1 else "random",
                 np.random.default_rng(s).permutation(ids)[:k])
                for s in range(args.random_seeds)]
            for name, chosen in orders:
                corrected, counted = correct(labels, user_gt, chosen)
                res, steps = fine_tune(user_img, corrected, [counted], budget, val_fraction=0)
                f1 = f1_on(res.model, res.info, eval_imgs, eval_gts)
                gains.setdefault((k, name.rstrip("0123456789")), []).append(f1 - before)
                print(f"    {k:3d} {name:>10s} {len(wrong & set(chosen.tolist())):11d} "
                      f"{f1:6.3f} {f1 - before:+7.3f} {steps:5d}  "
                      f"[{time.perf_counter() - t0:.0f} s]", flush=True)
        for k in ks:
            rand = np.mean(gains[(k, "random")])
            half = [kk for kk in ks if kk <= k // 2]
            if half:
                c = np.mean(gains[(max(half), "confidence")])
                print(f"    confidence order with K={max(half)} gains {c:+.3f}; random with "
                      f"K={k} gains {rand:+.3f}: {'met' if c >= rand else 'not met'}")

    if args.part in ("2", "all"):
        limit = 60.0 if args.quick else quick["time_limit"]
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            res = nu.train([user_img], [user_gt], model=default_model_path(),
                           preset="quick", time_limit=limit, seed=0,
                           output_path=Path(tmp) / "tuned.keras")
            wall = time.perf_counter() - t
            tuned, tuned_info = nu.load_model(res.path, with_info=True)
        after = f1_on(tuned, tuned_info, eval_imgs, eval_gts)
        print(f"(2) one corrected image, train(preset='quick', time_limit={limit:.0f}): "
              f"{wall:.0f} s wall (model load to saved file), {len(res.history)} epochs, "
              f"stopped: {res.stopped}")
        print(f"    F1 on the other {len(others)} images {before:.3f} -> {after:.3f} "
              f"({after - before:+.3f}; target +0.03: "
              f"{'met' if after - before >= 0.03 else 'not met'})")
    print(f"[{time.perf_counter() - t0:.0f} s total]")


if __name__ == "__main__":
    main()
