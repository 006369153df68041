"""The correction loop's payoff, and the training loop's overhead.

Run::

    python benchmarks/bench_finetune.py [--part a|b|all] [--model PATH]

(a) **Fine-tuning on corrected labels.** The 2D mnfinder sample
(``sample_data/nuclei2d.tif``, 768 x 869, 122 nuclei) has real ground truth
(``nuclei2d_labels.tif``). Its left half plays the part the user corrected:
the corrected labels there are the ground truth, exported with
:func:`napari_unet.export.export_pairs` exactly as the Export widget does,
read back with :func:`~napari_unet.read_dataset` and used to fine-tune the
model (:func:`napari_unet.train`, validation on a held-out strip of that
half). The right half is never trained on: instance F1 (IoU >= 0.5) and
foreground Dice there are measured before and after, with the model's own
post-processing settings. Caveat: this image is one of the 3 mnfinder
validation images that chose the shipped model's best epoch (never trained
on).

(b) **Training throughput.** Steps/s of :func:`napari_unet.train` against a
bare ``keras.Model.fit`` of the same model, compiled the same way, on the
same patch data set (same sampler, batch and patch size), timed from
per-step callbacks after a warm-up epoch. Runs alternate (fit, train, fit,
train, ...) so background load hits both alike. Target: train within 10 %.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO

SPLIT = 434  # columns [0, 434) are "corrected"; [434, 869) are held out


def _load_sample():
    import tifffile

    image = tifffile.imread(REPO / "sample_data" / "nuclei2d.tif")
    truth = tifffile.imread(REPO / "sample_data" / "nuclei2d_labels.tif").astype(np.int32)
    return image, truth


def _scores(labels, truth):
    import napari_unet as nu

    held = (slice(None), slice(SPLIT, None))
    e = nu.evaluate(labels[held], truth[held])
    return {k: e[k] for k in ("f1", "dice", "precision", "recall", "tp", "fp", "fn")}


def part_a(model_path: Path, work: Path, args) -> None:
    import napari_unet as nu
    from napari_unet.export import Region, export_pairs

    image, truth = _load_sample()
    n_train = len(np.unique(truth[:, :SPLIT])) - 1
    n_held = len(np.unique(truth[:, SPLIT:])) - 1
    print(f"(a) nuclei2d {image.shape}: corrected part x < {SPLIT} ({n_train} nuclei, "
          f"some cut by the split), held-out part x >= {SPLIT} ({n_held} nuclei)")
    t0 = time.perf_counter()
    before = nu.segment(image, str(model_path))
    t_predict = time.perf_counter() - t0

    # The user's correction of the left half: here, the ground truth itself.
    corrected = before.copy()
    corrected[:, :SPLIT] = truth[:, :SPLIT]
    export_pairs(image, corrected, work / "ds", name="nuclei2d", source_layer="nuclei2d",
                 regions=[Region((), (0, image.shape[0], 0, SPLIT), True)],
                 labels_layer="nuclei2d labels", model=model_path.stem)
    data = nu.read_dataset(work / "ds")
    steps = []
    t0 = time.perf_counter()
    result = nu.train(data.images, data.labels, model=model_path, epochs=args.epochs,
                      steps_per_epoch=args.steps, batch_size=args.batch,
                      patch_size=args.patch, learning_rate=args.lr, val_fraction=0.15,
                      output_path=work / "finetuned.keras", seed=0,
                      progress=lambda e: steps.append(time.perf_counter()) if
                      e["event"] == "step" else None)
    t_train = time.perf_counter() - t0
    after = nu.segment(image, str(result.path))

    s0, s1 = _scores(before, truth), _scores(after, truth)
    print(f"    fine-tuning: {args.epochs} epochs x {args.steps} steps, batch {args.batch}, "
          f"patch {args.patch}, lr {args.lr:g}: {t_train:.0f} s wall "
          f"({len(steps) / t_train:.2f} steps/s incl. compile and validation); best epoch "
          f"{result.best_epoch} (val score {result.best_score:.3f}), stopped: {result.stopped}")
    print(f"    prediction of the whole image: {t_predict:.1f} s")
    print("    held-out part        F1     Dice   precision recall  TP  FP  FN")
    for name, s in (("before (shipped)", s0), ("after fine-tuning", s1)):
        print(f"    {name:<18} {s['f1']:.3f}  {s['dice']:.3f}   {s['precision']:.3f}   "
              f"{s['recall']:.3f}  {s['tp']:>3} {s['fp']:>3} {s['fn']:>3}")
    print(f"    change: F1 {s1['f1'] - s0['f1']:+.3f}, Dice {s1['dice'] - s0['dice']:+.3f}")


def _one_run(kind: str, model, info, planes, labels, args) -> list[float]:
    """Per-step timestamps of one run (``kind`` 'fit' or 'train')."""
    import keras

    import napari_unet as nu
    from napari_unet import training
    from napari_unet.data import Augmentation, PatchSampler, training_planes

    stamps: list[float] = []
    if kind == "train":
        nu.train(planes, labels, model=model, info=info, epochs=args.tp_epochs,
                 steps_per_epoch=args.tp_steps, batch_size=args.batch, patch_size=args.patch,
                 val_fraction=0, patience=None, seed=0, jit_compile=args.jit,
                 progress=lambda e: stamps.append(time.perf_counter())
                 if e["event"] == "step" else None)
        return stamps

    # Bare fit: what train() does, minus its monitor callback.
    tplanes, tlabels = training_planes(planes, labels)
    sampler = PatchSampler(tplanes, tlabels, args.patch, tuple(info.outputs),
                           augment=Augmentation())
    net = training._uncompiled_copy(model, weights=True)
    net.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=training.make_loss(tuple(info.outputs)), jit_compile=args.jit)

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    dataset = training._patch_dataset(sampler, args.tp_steps, args.batch,
                                      np.random.default_rng(0))
    net.fit(dataset, epochs=args.tp_epochs, verbose=0, callbacks=[Stamp()])
    return stamps


def part_b(model_path: Path, args) -> None:
    import napari_unet as nu

    model, info = nu.load_model(model_path, with_info=True)
    image, truth = _load_sample()
    warm = args.tp_steps  # the first epoch (tracing, compiling) is not timed
    mean_rate = {"fit": [], "train": []}  # timed steps / their wall time
    median_rate = {"fit": [], "train": []}  # 1 / median step time: robust to load spikes
    for _ in range(args.pairs):
        for kind in ("fit", "train"):
            stamps = np.asarray(_one_run(kind, model, info, [image], [truth], args))
            times = np.diff(stamps[warm - 1:])  # epoch boundaries included
            mean_rate[kind].append(len(times) / times.sum())
            median_rate[kind].append(1 / float(np.median(times)))
    print(f"(b) throughput, {model.count_params():,}-param model, batch {args.batch}, patch "
          f"{args.patch}, jit_compile={args.jit!r}: {args.pairs} alternating pairs of runs, "
          f"{args.tp_epochs} x {args.tp_steps} steps each, epoch 1 not timed")
    for name, rates in (("mean", mean_rate), ("median-step", median_rate)):
        fit, trn = rates["fit"], rates["train"]
        pair = [t / f for t, f in zip(trn, fit, strict=True)]
        print(f"    {name:>11} steps/s  fit {statistics.median(fit):.3f} "
              f"[{', '.join(f'{r:.3f}' for r in fit)}]  train {statistics.median(trn):.3f} "
              f"[{', '.join(f'{r:.3f}' for r in trn)}]  train/fit per pair "
              f"[{', '.join(f'{r:.2f}' for r in pair)}], median {statistics.median(pair):.3f}")
    print("    target: train/fit >= 0.90")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["a", "b", "all"], default="all")
    parser.add_argument("--model", type=Path, help="model to start from (default: a copy "
                        "of the shipped model)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)  # the Train widget default
    parser.add_argument("--pairs", type=int, default=3, help="(b) fit/train run pairs")
    parser.add_argument("--tp-epochs", type=int, default=2)
    parser.add_argument("--tp-steps", type=int, default=15)
    parser.add_argument("--jit", default="auto", type=lambda v: {"true": True, "false": False}
                        .get(v.lower(), v))
    args = parser.parse_args()

    import napari_unet as nu

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # A private copy: the shipped file may be replaced while this runs.
        model_path = work / "start.keras"
        shutil.copy(args.model or nu.default_model_path(), model_path)
        info = nu.read_model_info(model_path)
        print(f"model: {args.model or 'shipped default'} ({info.name}, base "
              f"{info.base_filters}, depth {info.depth}, outputs {info.outputs})")
        if args.part in ("a", "all"):
            part_a(model_path, work, args)
        if args.part in ("b", "all"):
            part_b(model_path, args)


if __name__ == "__main__":
    main()
