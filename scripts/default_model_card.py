"""The model card of the shipped default model (used by train_default_model.py)."""

from __future__ import annotations

from pathlib import Path

DATASET_NOTES = {
    "validation": "mnfinder validation-data (3 real images)",
    "dense": "dense: touching clusters of validation nuclei (6 images)",
    "sparse": "sparse: isolated validation nuclei (6 images)",
}


def _row(label: str, s: dict) -> str:
    return (f"| {label} | {s['f1']:.3f} | {s['mean_f1']:.3f} | {s['merges']} | {s['splits']} "
            f"| {s['precision']:.3f} | {s['recall']:.3f} | {s['dice']:.3f} |")


def dataset_table(datasets: dict, model_key: str, previous_key: str | None) -> str:
    lines = ["| Dataset / method | F1@0.5 | mean F1 (0.5-0.9) | merges | splits | precision "
             "| recall | Dice |", "|---|---|---|---|---|---|---|---|"]
    for name, per in datasets.items():
        n = per[model_key]["n_true"]
        lines.append(_row(f"**{DATASET_NOTES.get(name, name)}, {n} nuclei**: this model",
                          per[model_key]))
        if previous_key:
            lines.append(_row("previous default model", per[previous_key]))
        lines.append(_row("Otsu + watershed", per["otsu_watershed"]))
    return "\n".join(lines)


def write_card(path: Path, *, info, model, result, scores, val_names, bench, command, data,
               train_names, notes, size_mb, train_time, license_text, datasets, model_key,
               previous_key, min_fragment, sha256) -> None:
    """Write the Markdown model card next to the model file."""
    u = scores["unet"]["all"]
    rows = "\n".join(
        f"| {name} | {scores['unet'][name]['dice']:.3f} | {scores['unet'][name]['f1']:.3f} "
        f"| {scores['unet'][name]['merges']} | {scores['unet'][name]['splits']} "
        f"| {scores['otsu_watershed'][name]['dice']:.3f} "
        f"| {scores['otsu_watershed'][name]['f1']:.3f} | {scores['unet'][name]['n_true']} |"
        for name in val_names)
    best = result.history[result.best_epoch - 1]
    tr = info.training
    aug = tr.get("augmentation") or {}
    ps = tr["patch_size"]
    w0, sigma = tr.get("separation") or (None, None)
    timing_line = (f"{bench['default']} s vs {bench['reference_b64']} s for the base-64 reference "
                   f"U-Net (ratio {bench['ratio']}), 512x512 image, 128 px tiles, this "
                   f"2-core CPU (shared, noisy)" if bench else "not measured")
    steps = sum(1 for _ in result.history) * tr["steps_per_epoch"]
    text = f"""# Model card: `nuclei_default.keras`

The default model of napari-unet, loaded by `napari_unet.load_model()` and used by
`napari_unet.segment(image)` when no model is given.

## Model

* U-Net (Ronneberger et al. 2015), `build_unet(in_channels=1, out_channels=3,
  base_filters={info.base_filters}, depth={info.depth})`: {model.count_params():,} parameters
  ({size_mb:.1f} MB file), 3x3 ReLU convolutions, 'same' padding.
* Outputs (sigmoid): `foreground` (nucleus pixels), `boundary` (2 px inner rims of every
  nucleus plus the background pixels between two nuclei) and `distance` (per-nucleus
  distance to its border, normalized to 1 at its centre).
* Instances (`probabilities_to_labels`): threshold the foreground at
  {info.thresholds.get('foreground', 0.5)}; in each connected component, markers are the
  pixels with distance > {info.thresholds.get('distance')} and boundary < 0.5; the watershed
  floods the inverted distance. A component left with one marker gets a shape prior
  (h-maxima, h = 2 px, of its own distance transform). Adjacent pieces are merged back
  when the saddle between them is higher than `merge_ratio`
  (default {info.thresholds.get('merge_ratio', 0.6)}) times the lower of their two peaks,
  which keeps
  elongated and lobed nuclei whole (`napari_unet.splitting`). Objects under
  {info.min_size} px are dropped.
  The distance threshold, merge ratio and minimum size were selected by the mean F1
  over the validation split and dense/sparse tuning sets packed from training nuclei
  (`scripts/make_dense_eval.py --source training`).
* Input: one channel, normalized per 2D plane to the 1st/99.8th percentiles (done by
  `predict_probabilities`). Trained on tiles of {info.tile_size} px (prediction windows:
  128 px on CPUs with AMX, 256 px elsewhere; see the README's Tiling).
* Prediction time: {timing_line}.

## Training data

mnfinder 1.2.3 (<https://pypi.org/project/mnfinder/>), MIT licence, Copyright 2023
Lucian DiPeso; obtained with `pip download --no-deps mnfinder==1.2.3` (wheel SHA-256
`{sha256}`), read from the wheel as a zip file.

* Training: `mnfinder/training-data/*/images/*.tif` with `nucleus_masks/<name>.png`
  (blue channel = nucleus id): {len(train_names)} images, {tr['n_train_planes']}
  planes. RPE1 and U2OS nuclear stain (0.645 um/px, 768x869, uint16; nuclei ~25 px
  across) and HeLa H2B-GFP / MCC13 NLS-GFP (0.358 um/px and uncalibrated, 512-1024 px,
  uint8; nuclei ~38 px across).
* Validation (model selection, early stopping, post-processing defaults and the scores
  below): `mnfinder/validation-data/`: {', '.join(val_names)}.
* `mnfinder/test-data/` was never read; it stays available for independent evaluation.
  No other training data was added in this round.
* Checks: every `.tif` is a single 2D channel (the nuclear stain; the `.png` copies
  in `images/` were ignored); masks were split into 4-connected pieces (a few masks
  reuse one id for two distant nuclei) and pieces under {min_fragment} px (stray
  annotation pixels) were dropped. Notes: {'; '.join(notes) if notes else 'none'}.

{data}.

## Training

```
{command}
```

* `napari_unet.train`: Adam (lr {tr['learning_rate']}, cosine decay to 10 % over
  the planned steps or the time limit, whichever ends first),
  batch {tr['batch_size']} of random {ps}x{ps}
  patches, half centred on a nucleus; {tr['steps_per_epoch']} steps per epoch,
  {result.history[-1]['epoch']} epochs run ({steps} steps; stop: {result.stopped}), best epoch
  {result.best_epoch}; training wall time {train_time / 60:.1f} min on a 2-core CPU
  (shared with other jobs), seed {tr['seed']}.
* Loss: BCE + soft Dice on the foreground; BCE on the boundary with boundary pixels
  weighted {tr['loss'].split('weight ')[-1].split(',')[0]}; BCE against the soft target on
  the distance. Foreground and boundary BCE are multiplied by the U-Net paper's
  separation-border weight map, 1 + w0 exp(-(d1 + d2)^2 / 2 sigma^2) on background
  (w0 = {w0}, sigma = {sigma} px), so that the pixels between touching nuclei dominate.
* Augmentation: flips and 90-degree rotations; zoom {aug.get('scale_range')}
  (log-uniform); intensity x{aug.get('intensity_range')}, offset +-{aug.get('shift')};
  gamma {aug.get('gamma_range')} and Gaussian noise (sd up to {aug.get('noise_std')}) on
  half the patches; copy-paste packing on {aug.get('paste_probability')} of the patches:
  2-6 annotated training nuclei (pixels and masks) pasted against nuclei of the patch so
  that they touch (at most 15 % of a neighbour hidden).
* Best epoch on validation patches: foreground Dice {best['val_dice_foreground']:.3f},
  boundary Dice {best['val_dice_boundary']:.3f}, distance Dice (> 0.5)
  {best.get('val_dice_distance', float('nan')):.3f}, loss {best['val_loss']:.4f}.

## Scores

Whole images through `napari_unet.segment` (default settings) against the cleaned masks,
pooled per dataset (`napari_unet.evaluate`; `python benchmarks/bench_accuracy.py`).
F1 = instance F1 at IoU >= 0.5 (one-to-one Hungarian matching); mean F1 over IoU
0.5, 0.55, ..., 0.9; merges = predicted objects covering two or more true nuclei that
each lie at least half inside them; splits = true nuclei covered by two or more
predicted objects each at least half inside them; Dice = foreground Dice. Baseline:
`napari_unet.otsu_watershed` (Gaussian sigma 1, Otsu threshold, distance-transform
watershed). The dense and sparse sets (`scripts/make_dense_eval.py`) are built from
validation nuclei pasted on a background made from the same image: touching clusters
of 3-8 nuclei (97-100 % of the nuclei touch another one), or isolated nuclei. They are
held out from training and from every selection: the post-processing defaults were
selected on the real validation images and on tuning sets packed the same way from
training nuclei, never on these sets.

{dataset_table(datasets, model_key, previous_key)}

Per validation image:

| Image | U-Net Dice | U-Net F1 | merges | splits | Otsu Dice | Otsu F1 | Nuclei |
|---|---|---|---|---|---|---|---|
{rows}
| **All (pooled)** | **{u['dice']:.3f}** | **{u['f1']:.3f}** | {u['merges']} | {u['splits']} \
| {scores['otsu_watershed']['all']['dice']:.3f} | {scores['otsu_watershed']['all']['f1']:.3f} \
| {u['n_true']} |

Only three validation images, and synthetic packing for the dense set: treat these
numbers as a sanity check, not a benchmark.

## Intended use

2D widefield/confocal fluorescence images of nuclei (nuclear stains or nuclear-targeted
fluorescent proteins), nuclei roughly 15-60 px across, as a starting point for
segmentation in napari and for fine-tuning (`napari_unet.train(..., model=path)`).
Z stacks are predicted plane by plane and labelled as 3D objects; time-lapses frame by frame.

## Known limits and failure modes

* Trained on 30 images from one lab (mnfinder): other cell types, magnifications or
  stains may need fine-tuning. Nuclei much smaller than ~12 px or larger than ~80 px
  across should be rescaled first.
* Not for brightfield, H&E or membrane/cytoplasm stains; not a 3D model.
* Micronuclei and small fragments (< {info.min_size} px, the model's `min_size`) are not
  segmented; bright debris and unannotated micronuclei of 40-500 px are the main false
  positives on the validation images.
* Two nuclei pressed together along a long straight border (no neck, no visible line)
  can still merge: raise `merge_ratio` (e.g. 0.6) to split more. Strongly lobed,
  kidney-shaped or mitotic nuclei can be split in two: lower it (e.g. 0.3).
* Dense clusters: touching nuclei whose learned centre stays under the distance
  threshold can merge with a neighbour (the dense-set merges above). A lower
  `distance_threshold` merges less and splits isolated nuclei more; the default was
  selected on the validation split and the training-derived tuning sets.
* Z stacks labelled as 3D instances (`instances='3d'`) use the foreground and boundary
  outputs only; the distance output serves 2D planes (and `instances='2d'`).
* Objects cut by the image border are segmented like others.

## Licence

The model weights are derived from mnfinder's training data:

```
{license_text.strip()}
```
"""
    path.write_text(text)
