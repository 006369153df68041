"""How well low object confidence flags wrong objects, on held-out images.

Run::

    nice -n 10 python benchmarks/bench_confidence.py [--model PATH] [--dense-per-image 2]

The model segments held-out images (``_heldout.py``): mnfinder's
validation-data and a dense set packed from its nuclei. Every predicted
object is *wrong* when no ground-truth nucleus matches it at IoU >= 0.5
(false positives, merges, splits, badly cut outlines). The score is the
AUROC of ``1 - object_confidence`` for finding the wrong objects (0.5 =
chance, 1 = every wrong object ranks below every right one); target >= 0.80.
Single features are shown beside it for context. The weights were fitted on
mnfinder's training-data only (``scripts/fit_confidence.py``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _heldout import dense_set, fit_script, validation_split


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    parser.add_argument("--dense-per-image", type=int, default=2,
                        help="dense images made from each validation image")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()

    import napari_unet as nu
    from napari_unet.confidence import FEATURES, WEIGHTS
    from napari_unet.metrics import auroc

    fit = fit_script()
    model, info = nu.load_model(args.model, with_info=True)
    images, truths, _ = validation_split()
    dense = dense_set(images, truths, per_image=args.dense_per_image)
    sets = {"mnfinder validation": (images, truths),
            "dense (packed validation nuclei)": tuple(map(list, zip(*dense, strict=True)))}
    w = np.asarray(WEIGHTS)
    pooled_conf, pooled_wrong = [], []
    print(f"model: {args.model or 'shipped default'}; wrong = no ground-truth match at IoU 0.5")
    print(f"{'set':34s} {'images':>6s} {'objects':>7s} {'wrong':>5s} {'F1':>6s} {'AUROC':>6s}")
    single = {}
    for name, (imgs, gts) in sets.items():
        feats, wrong, per_image = fit.object_table(imgs, gts, model, info)
        conf = 1 / (1 + np.exp(-(w[0] + feats @ w[1:])))
        f1 = nu.evaluate([p[0] for p in per_image], gts)["f1"]
        print(f"{name:34s} {len(imgs):6d} {len(wrong):7d} {int(wrong.sum()):5d} {f1:6.3f} "
              f"{auroc(-conf, wrong):6.3f}")
        pooled_conf.append(conf)
        pooled_wrong.append(wrong)
        single[name] = [auroc(-feats[:, k], wrong) for k in range(len(FEATURES))]
    conf, wrong = np.concatenate(pooled_conf), np.concatenate(pooled_wrong)
    total = auroc(-conf, wrong)
    print(f"{'pooled':34s} {'':6s} {len(wrong):7d} {int(wrong.sum()):5d} {'':6s} {total:6.3f}"
          f"   target >= 0.80: {'met' if total >= 0.80 else 'NOT met'}")
    print("single features (AUROC of the feature's low values; < 0.5: high values flag "
          "errors):")
    for k, feature in enumerate(FEATURES):
        print(f"  {feature:18s} " + "  ".join(f"{s[k]:.3f}" for s in single.values()))
    print(f"[{time.perf_counter() - t0:.0f} s]")


if __name__ == "__main__":
    main()
