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
3. Train a U-Net (base 16, depth 4, foreground + boundary outputs) with
   :func:`napari_unet.train`, validating on the validation split.
4. Evaluate on the validation split with :func:`napari_unet.segment` and the
   Otsu + watershed baseline, time the model against the base-64 reference,
   then write ``src/napari_unet/models/nuclei_default.keras`` (scores in its
   metadata) and the model card ``nuclei_default.md``.
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
    return (f"Dice {s['dice']:.3f}  F1@0.5 {s['f1']:.3f}  P {s['precision']:.3f}  "
            f"R {s['recall']:.3f}  mIoU {s['mean_matched_iou']:.3f}  "
            f"(TP {s['tp']}, FP {s['fp']}, FN {s['fn']})")


def write_card(path: Path, *, info, model, result, scores, val_names, bench, command, data,
               train_names, notes, size_mb, train_time, license_text) -> None:
    """Write the Markdown model card next to the model file."""
    u, b = scores["unet"]["all"], scores["otsu_watershed"]["all"]
    rows = "\n".join(
        f"| {name} | {scores['unet'][name]['dice']:.3f} | {scores['unet'][name]['f1']:.3f} "
        f"| {scores['otsu_watershed'][name]['dice']:.3f} "
        f"| {scores['otsu_watershed'][name]['f1']:.3f} | {scores['unet'][name]['n_true']} |"
        for name in val_names)
    best = result.history[result.best_epoch - 1]
    aug = info.training.get("augmentation") or {}
    ps = info.training["patch_size"]
    timing_line = (f"{bench['default']} s vs {bench['reference_b64']} s for the base-64 reference "
                   f"U-Net (ratio {bench['ratio']}), 512x512 image, 128 px tiles, this "
                   f"2-core CPU" if bench else "not measured")
    text = f"""# Model card: `nuclei_default.keras`

The default model of napari-unet, loaded by `napari_unet.load_model()` and used by
`napari_unet.segment(image)` when no model is given.

## Model

* U-Net (Ronneberger et al. 2015), `build_unet(in_channels=1, out_channels=2,
  base_filters={info.base_filters}, depth={info.depth})`: {model.count_params():,} parameters
  ({size_mb:.1f} MB file), 3x3 ReLU convolutions, 'same' padding.
* Outputs (sigmoid): `foreground` (nucleus pixels) and `boundary` (2 px inner rims of
  every nucleus). Instances: threshold the foreground at 0.5, seed a watershed with the
  foreground pixels whose boundary probability is below 0.5 (`probabilities_to_labels`).
* Input: one channel, normalized per 2D plane to the 1st/99.8th percentiles (done by
  `predict_probabilities`). Tiles of {info.tile_size} px.
* Prediction time: {timing_line}.

## Training data

mnfinder 1.2.3 (<https://pypi.org/project/mnfinder/>), MIT licence, Copyright 2023
Lucian DiPeso; obtained with `pip download --no-deps mnfinder==1.2.3` (wheel SHA-256
`{SHA256}`), read from the wheel as a zip file.

* Training: `mnfinder/training-data/*/images/*.tif` with `nucleus_masks/<name>.png`
  (blue channel = nucleus id): {len(train_names)} images, {info.training['n_train_planes']}
  planes. RPE1 and U2OS nuclear stain (0.645 um/px, 768x869, uint16; nuclei ~25 px
  across) and HeLa H2B-GFP / MCC13 NLS-GFP (0.358 um/px and uncalibrated, 512-1024 px,
  uint8; nuclei ~38 px across).
* Validation (model selection, early stopping and the scores below):
  `mnfinder/validation-data/`: {', '.join(val_names)}.
* `mnfinder/test-data/` was never read; it stays available for independent evaluation.
* Checks: every `.tif` is a single 2D channel (the nuclear stain; the `.png` copies
  in `images/` were ignored); masks were split into 4-connected pieces (a few masks
  reuse one id for two distant nuclei) and pieces under {MIN_FRAGMENT} px (stray
  annotation pixels) were dropped. Notes: {'; '.join(notes) if notes else 'none'}.

{data}.

## Training

```
{command}
```

* `napari_unet.train`: Adam (lr {info.training['learning_rate']}, cosine decay to 10 % over
  the planned steps or the time limit, whichever ends first),
  batch {info.training['batch_size']} of random {ps}x{ps}
  patches, half centred on a nucleus; {info.training['steps_per_epoch']} steps per epoch,
  {result.history[-1]['epoch']} epochs run (stop: {result.stopped}), best epoch
  {result.best_epoch}; training wall time {train_time / 60:.1f} min on a 2-core CPU
  (shared), seed {info.training['seed']}.
* Loss: BCE + soft Dice on the foreground, BCE on the boundary with rim pixels
  weighted {info.training['loss'].split('weight ')[-1]}.
* Augmentation: flips and 90-degree rotations; zoom {aug.get('scale_range')}
  (log-uniform); intensity x{aug.get('intensity_range')}, offset +-{aug.get('shift')};
  gamma {aug.get('gamma_range')} and Gaussian noise (sd up to {aug.get('noise_std')}) on
  half the patches.
* Best epoch on validation patches: foreground Dice {best['val_dice_foreground']:.3f},
  boundary Dice {best['val_dice_boundary']:.3f}, loss {best['val_loss']:.4f}.

## Validation scores

Whole validation images through `napari_unet.segment` (default thresholds), against
the cleaned masks. Dice = foreground Dice; F1 = instance F1 at IoU >= 0.5 (one-to-one
Hungarian matching, `napari_unet.evaluate`). Baseline: `napari_unet.baseline.otsu_watershed`
(Gaussian sigma 1, Otsu threshold, distance-transform watershed).

| Image | U-Net Dice | U-Net F1 | Otsu Dice | Otsu F1 | Nuclei |
|---|---|---|---|---|---|
{rows}
| **All (pooled)** | **{u['dice']:.3f}** | **{u['f1']:.3f}** | {b['dice']:.3f} | {b['f1']:.3f} \
| {u['n_true']} |

U-Net pooled: precision {u['precision']:.3f}, recall {u['recall']:.3f}, mean matched IoU
{u['mean_matched_iou']:.3f} (TP {u['tp']}, FP {u['fp']}, FN {u['fn']}).
Otsu baseline pooled: precision {b['precision']:.3f}, recall {b['recall']:.3f}, mean
matched IoU {b['mean_matched_iou']:.3f}.

Only three validation images: treat these numbers as a sanity check, not a benchmark.

## Intended use

2D widefield/confocal fluorescence images of nuclei (nuclear stains or nuclear-targeted
fluorescent proteins), nuclei roughly 15-60 px across, as a starting point for
segmentation in napari and for fine-tuning (`napari_unet.train(..., model=path)`).
Stacks and time-lapses are segmented plane by plane.

## Known limits

* Trained on 30 images from one lab (mnfinder): other cell types, magnifications or
  stains may need fine-tuning. Nuclei much smaller than ~12 px or larger than ~80 px
  across should be rescaled first.
* Not for brightfield, H&E or membrane/cytoplasm stains; not a 3D model.
* Micronuclei and tiny fragments (< 16 px, the default `min_size`) are not segmented;
  mitotic figures and very dense clusters are the main sources of errors.
* Objects cut by the image border are segmented like others.

## Licence

The model weights are derived from mnfinder's training data:

```
{license_text.strip()}
```
"""
    path.write_text(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path,
                        default=Path.home() / ".cache" / "napari-unet" / "wheels")
    parser.add_argument("--output", type=Path, default=MODEL_DIR / "nuclei_default.keras")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model")
    parser.add_argument("--base-filters", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=15)
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
    args = parser.parse_args(argv)
    t_start = time.time()

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
    t_train = time.time()
    result = nu.train(
        train_x, train_y, val_images=val_x, val_labels=val_y,
        base_filters=args.base_filters, depth=args.depth, outputs=tuple(args.outputs.split(",")),
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

    log("evaluating on the validation split ...")
    scores = evaluate_split(val_x, val_y, val_names, args.output)
    for method, per in scores.items():
        log(f"{method:15s} {fmt(per['all'])}")
        for name in val_names:
            log(f"    {name:45s} {fmt(per[name])}")
    bench = None if args.no_timing else timing(args.output)
    if bench:
        log(f"512x512 prediction: default {bench['default']} s, base-64 reference "
            f"{bench['reference_b64']} s, ratio {bench['ratio']}")

    command = "python scripts/train_default_model.py" + "".join(
        f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))
    model, info = nu.load_model(args.output, with_info=True)
    info.training.update({
        "command": command, "training_wall_time_s": round(train_time),
        "validation_segmentation": {m: s["all"] for m, s in scores.items()},
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
                   train_time=train_time, license_text=license_text)
        log(f"wrote {card}")
    log(f"total {(time.time() - t_start) / 60:.1f} min")
    print(json.dumps({m: s["all"] for m, s in scores.items()}, indent=1))


if __name__ == "__main__":
    main()
