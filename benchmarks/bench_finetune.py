"""The correction loop's payoff, and the training loop's overhead.

Run::

    python benchmarks/bench_finetune.py [--part a|3d|b|all] [--model PATH]

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

(3d) **Fine-tuning on a few corrected planes of a 3D stack.** The 3D
sample (``sample_data/nuclei3d.tif``, cells3d nuclei, 30 x 256 x 256,
0.29 um z / 0.26 um xy: 2.5x finer pixels, so ~2.5x larger nuclei, than the
20x widefield images the shipped model learned from) has no ground truth;
``sample_data/nuclei3d_reference_labels.tif`` stands in for it: per-plane
labels made by a classical 3D pipeline that never sees the U-Net
(``scripts/make_nuclei3d_reference.py``; see ``sample_data/README.md`` for
its limits). The planes ``TRAIN_Z_3D`` (fixed before any result was seen)
play the planes a user corrected: they are exported with
:func:`~napari_unet.export.export_pairs` as the Export widget does, read
back and used to fine-tune the model with the Train widget's defaults
(validation fraction 0.15, i.e. one of the corrected planes). The whole
stack is segmented before and after; instance F1 (IoU >= 0.5), foreground
Dice and TP/FP/FN are measured on the other planes only, pooled and as a
per-plane mean, and again on the planes at least ``FAR_3D`` planes from any
corrected one (neighbouring planes, 0.29 um apart, nearly repeat the
corrected ones). The held-out planes are also split into the in-focus
middle planes and the ``EDGE_3D`` outer planes at each end, whose blurred
nucleus caps the reference outlines by a convention (half maximum) that
fine-tuning can learn; the far middle planes are the strictest test. The
classical baseline (:func:`napari_unet.baseline.otsu_watershed`, plane by
plane) is scored on the same planes for context. Run time ~5-8 min on 2
CPU cores.

(b) **Training throughput.** Steps/s of :func:`napari_unet.train` against a
bare ``keras.Model.fit`` of the same model, compiled the same way, on the
same patch data set (same sampler, batch and patch size), timed from
per-step callbacks after a warm-up epoch. Runs alternate (fit, train, fit,
train, ...) so background load hits both alike. Target: train within 10 %.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO

SPLIT = 434  # columns [0, 434) are "corrected"; [434, 869) are held out
# (3d): the "corrected" planes, spread through the 30-plane stack, chosen
# before any result was seen; and the distance (in planes) that makes a
# held-out plane "far" from them.
TRAIN_Z_3D = (4, 11, 18, 25)
FAR_3D = 3
# The outermost planes at each end show blurred, out-of-focus nucleus caps,
# where the reference's outlines are a convention (see sample_data/README.md);
# results are also split into these and the in-focus middle planes.
EDGE_3D = 4


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



def _fine_tune(args, model_path, dataset, output, **kwargs):
    """Fine-tune ``model_path`` on an exported dataset as the Train widget does.

    Returns ``(TrainingResult, step timestamps, wall seconds)``.
    """
    import napari_unet as nu

    data = nu.read_dataset(dataset)
    steps = []
    t0 = time.perf_counter()
    result = nu.train(data.images, data.labels, model=model_path, epochs=args.epochs,
                      steps_per_epoch=args.steps, batch_size=args.batch,
                      patch_size=args.patch, learning_rate=args.lr, val_fraction=0.15,
                      output_path=output, seed=0,
                      progress=lambda e: steps.append(time.perf_counter()) if
                      e["event"] == "step" else None, **kwargs)
    return result, steps, time.perf_counter() - t0

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
    result, steps, t_train = _fine_tune(args, model_path, work / "ds",
                                        work / "finetuned.keras")
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


def _load_stack():
    from napari_unet.tiff import read_tiff

    image, scale = read_tiff(REPO / "sample_data" / "nuclei3d.tif")
    reference, _ = read_tiff(REPO / "sample_data" / "nuclei3d_reference_labels.tif")
    if reference.shape != image.shape:
        raise SystemExit(f"reference {reference.shape} does not match the stack {image.shape}")
    return image, reference.astype(np.int32), scale


def _stack_scores(labels, reference, planes) -> dict:
    """Pooled scores over ``planes`` and the mean of the per-plane F1."""
    import napari_unet as nu

    planes = list(planes)
    e = nu.evaluate([labels[z] for z in planes], [reference[z] for z in planes])
    per_plane = [nu.evaluate(labels[z], reference[z])["f1"] for z in planes]
    out = {k: e[k] for k in ("f1", "dice", "precision", "recall", "tp", "fp", "fn",
                             "mean_matched_iou")}
    out["f1_plane_mean"] = float(np.mean(per_plane))
    out["per_plane"] = dict(zip(planes, per_plane, strict=True))
    return out


def part_3d(model_path: Path, work: Path, args) -> None:
    import napari_unet as nu
    from napari_unet.baseline import otsu_watershed
    from napari_unet.export import Region, export_pairs

    image, reference, scale = _load_stack()
    n_z = image.shape[0]
    train_z = sorted(args.train_z)
    held = [z for z in range(n_z) if z not in train_z]
    far = [z for z in held if min(abs(z - t) for t in train_z) >= FAR_3D]
    counts = [int(len(np.unique(reference[z])) - 1) for z in range(n_z)]
    print(f"(3d) nuclei3d {image.shape}, voxel {scale} um; reference: "
          f"nuclei3d_reference_labels.tif ({sum(counts)} plane objects, "
          f"{min(counts)}-{max(counts)} per plane; classical 3D pipeline, no ground truth)")
    print(f"    corrected planes z = {train_z} ({sum(counts[z] for z in train_z)} objects); "
          f"held out: the other {len(held)} planes ({sum(counts[z] for z in held)} objects); "
          f"far = held out and >= {FAR_3D} planes from any corrected one: z = {far} "
          f"({sum(counts[z] for z in far)} objects)")

    t0 = time.perf_counter()
    before = nu.segment(image, str(model_path), axes="ZYX", instances="2d")  # scored per plane
    t_before = time.perf_counter() - t0
    t0 = time.perf_counter()
    baseline = otsu_watershed(image)
    t_base = time.perf_counter() - t0

    export_pairs(image, reference, work / "ds3d", name="nuclei3d", source_layer="nuclei3d",
                 regions=[Region((z,), None, True) for z in train_z],
                 scale=scale, labels_layer="nuclei3d reference", model=model_path.stem)
    result, steps, t_train = _fine_tune(args, model_path, work / "ds3d",
                                        work / "finetuned3d.keras",
                                        data_description=f"nuclei3d reference planes {train_z}")
    t0 = time.perf_counter()
    after = nu.segment(image, str(result.path), axes="ZYX", instances="2d")
    t_after = time.perf_counter() - t0
    val_planes = result.info.training.get("n_val_planes")

    rows = {"baseline (Otsu+ws 2D)": baseline, "before (shipped)": before,
            "after fine-tuning": after}
    edge = [z for z in held if z < EDGE_3D or z >= n_z - EDGE_3D]
    middle = [z for z in held if z not in edge]
    far_middle = [z for z in far if z in middle]
    held_s = {k: _stack_scores(v, reference, held) for k, v in rows.items()}
    far_s = {k: _stack_scores(v, reference, far) for k, v in rows.items()}
    fit_s = {k: _stack_scores(v, reference, train_z) for k, v in rows.items()}

    print(f"    fine-tuning: {len(train_z)} planes of 256 x 256 ({len(train_z) - val_planes} "
          f"trained, {val_planes} for validation, chosen by train()'s seeded split), "
          f"{args.epochs} epochs x {args.steps} steps, batch {args.batch}, patch {args.patch}, "
          f"lr {args.lr:g}, seed 0: {t_train:.0f} s wall ({len(steps)} steps, "
          f"{len(steps) / t_train:.2f} steps/s incl. compile and validation); best epoch "
          f"{result.best_epoch} (val score {result.best_score:.3f}), stopped: {result.stopped}")
    print(f"    segmentation of the whole stack: before {t_before:.1f} s, after "
          f"{t_after:.1f} s, baseline {t_base:.1f} s; machine: {os.cpu_count()} CPU cores")
    header = ("F1     F1/plane  Dice   prec.  recall  TP   FP   FN   mIoU")
    tables = [
        (f"held-out planes ({len(held)})", held_s),
        (f"far held-out planes ({len(far)}, >= {FAR_3D} from corrected)", far_s),
        (f"held-out middle planes ({len(middle)}: z {middle[0]}-{middle[-1]}, in focus)",
         {k: _stack_scores(v, reference, middle) for k, v in rows.items()}),
        (f"held-out outer planes ({len(edge)}, blurred caps: z < {EDGE_3D} or "
         f">= {n_z - EDGE_3D})",
         {k: _stack_scores(v, reference, edge) for k, v in rows.items()}),
        (f"far middle planes ({len(far_middle)}: z {far_middle})",
         {k: _stack_scores(v, reference, far_middle) for k, v in rows.items()}),
        (f"corrected planes ({len(train_z)}, trained on: not a test)", fit_s),
    ]
    for title, table in tables:
        print(f"    {title}")
        print(f"      {'':<22} {header}")
        for name, sc in table.items():
            print(f"      {name:<22} {sc['f1']:.3f}  {sc['f1_plane_mean']:.3f}     "
                  f"{sc['dice']:.3f}  {sc['precision']:.3f}  {sc['recall']:.3f}   "
                  f"{sc['tp']:>4} {sc['fp']:>4} {sc['fn']:>4}  {sc['mean_matched_iou']:.3f}")
    b, a = held_s["before (shipped)"], held_s["after fine-tuning"]
    fb, fa = far_s["before (shipped)"], far_s["after fine-tuning"]
    print(f"    change on held-out planes: F1 {a['f1'] - b['f1']:+.3f} "
          f"(per-plane mean {a['f1_plane_mean'] - b['f1_plane_mean']:+.3f}), "
          f"Dice {a['dice'] - b['dice']:+.3f}; on far planes: F1 {fa['f1'] - fb['f1']:+.3f}, "
          f"Dice {fa['dice'] - fb['dice']:+.3f}")
    better = sum(a["per_plane"][z] > b["per_plane"][z] for z in held)
    worse = sum(a["per_plane"][z] < b["per_plane"][z] for z in held)
    print(f"    per held-out plane F1 before -> after ({better} better, {worse} worse, "
          f"{len(held) - better - worse} equal):")
    cells = [f"z{z:02d} {b['per_plane'][z]:.2f}->{a['per_plane'][z]:.2f}" for z in held]
    for i in range(0, len(cells), 6):
        print("      " + "  ".join(cells[i:i + 6]))


def _one_run(kind: str, model, info, planes, labels, args) -> list[float]:
    """Per-step timestamps of one run (``kind`` 'fit' or 'train')."""
    import keras

    import napari_unet as nu
    from napari_unet.training import Augmentation, PatchSampler, training_planes
    from napari_unet.training import loop as training

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
    parser.add_argument("--part", choices=["a", "3d", "b", "all"], default="all")
    parser.add_argument("--model", type=Path, help="model to start from (default: a copy "
                        "of the shipped model)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)  # the Train widget default
    parser.add_argument("--train-z", type=int, nargs="+", default=list(TRAIN_Z_3D),
                        help="(3d) the corrected planes (default: %(default)s)")
    parser.add_argument("--pairs", type=int, default=3, help="(b) fit/train run pairs")
    parser.add_argument("--tp-epochs", type=int, default=2)
    parser.add_argument("--tp-steps", type=int, default=15)
    parser.add_argument("--jit", default="auto", type=lambda v: {"true": True, "false": False}
                        .get(v.lower(), v))
    args = parser.parse_args()
    print("command: python " + shlex.join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]))

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
        if args.part in ("3d", "all"):
            part_3d(model_path, work, args)
        if args.part in ("b", "all"):
            part_b(model_path, args)


if __name__ == "__main__":
    main()
