#!/usr/bin/env python
"""Build the held-out dense and sparse nuclei evaluation sets.

    python scripts/make_dense_eval.py            # -> data/dense_eval/{dense,sparse}/
    python scripts/make_dense_eval.py --source training --output data/dense_tune

Both sets are assembled from the annotated nuclei of mnfinder 1.2.3's
``validation-data/`` (read from the pinned wheel, see
``scripts/train_default_model.py``); no training step sees these images.
``test-data/`` is never read. ``--source training`` builds the same kind of
sets from ``training-data/`` nuclei instead: a *tuning* set on which
post-processing parameters may be selected, so that the held-out sets are
only ever used to report. For each source image:

1. a clean background canvas is made: nucleus pixels (dilated 4 px) are
   replaced by pixels drawn at random from the image's own background;
2. its whole nuclei (not cut by the border), pixels and masks, are pasted
   onto that canvas:

   * ``dense``: in touching clusters of 3-8 nuclei, each pasted against a
     random member of its cluster at 0.8-0.95 of the sum of their radii
     (at most 10 % of a neighbour hidden); clusters never touch each other;
   * ``sparse``: alone, at least 6 px from any other nucleus.

Everything is drawn from fixed seeds: the sets are the same on every run.
Files: ``images/<name>.tif`` (the source dtype), ``labels/<name>.tif``
(uint16 ids) and ``manifest.json`` (sources, SHA-256 of the wheel, counts).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = 2  # images per validation image and set


def _train_script():
    spec = importlib.util.spec_from_file_location(
        "train_default_model", ROOT / "scripts" / "train_default_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nuclei_of(image: np.ndarray, labels: np.ndarray, min_area: int = 30):
    """``(pixels, mask)`` crops of the whole nuclei of one image."""
    h, w = labels.shape
    out = []
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        ys, xs = box
        if ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w:
            continue
        mask = labels[box] == i
        if mask.sum() >= min_area:
            out.append((image[box].copy(), mask))
    return out


def background(image: np.ndarray, labels: np.ndarray, rng) -> np.ndarray:
    """``image`` with its nuclei replaced by samples of its own background."""
    cover = ndi.binary_dilation(labels > 0, iterations=4)
    out = image.copy()
    out[cover] = rng.choice(image[~cover], size=int(cover.sum()))
    return out


def _place(canvas_lab, image, crop, mask, y0, x0, new_id, *, max_hidden=0.1,
           keep_away=None) -> bool:
    """Paste ``crop`` at ``(y0, x0)`` unless it leaves the canvas, hides more
    than ``max_hidden`` of a pixel neighbour or touches ``keep_away``."""
    h, w = canvas_lab.shape
    mh, mw = mask.shape
    if y0 < 1 or x0 < 1 or y0 + mh > h - 1 or x0 + mw > w - 1:
        return False
    dst = (slice(y0, y0 + mh), slice(x0, x0 + mw))
    under = canvas_lab[dst][mask]
    if keep_away is not None and keep_away[dst][mask].any():
        return False
    hidden = under[under > 0]
    if hidden.size:
        ids, counts = np.unique(hidden, return_counts=True)
        areas = ndi.sum_labels(canvas_lab > 0, canvas_lab, ids)
        if np.any(counts > max_hidden * areas):
            return False
    image[dst][mask] = crop[mask]
    canvas_lab[dst][mask] = new_id
    return True


def dense_image(canvas, nuclei, rng, n_target: int):
    """Touching clusters of nuclei pasted on ``canvas``."""
    image = canvas.copy()
    lab = np.zeros(canvas.shape, np.uint16)
    next_id, tries = 1, 0
    while next_id <= n_target and tries < 50 * n_target:
        tries += 1
        others = ndi.binary_dilation(lab > 0, iterations=3)  # clusters stay apart
        cluster = np.zeros(canvas.shape, np.uint16)
        size = int(rng.integers(3, 9))
        members = []
        for _ in range(6 * size):
            if len(members) == size or next_id > n_target:
                break
            crop, mask = nuclei[int(rng.integers(len(nuclei)))]
            k = int(rng.integers(4))
            crop, mask = np.rot90(crop, k), np.rot90(mask, k)
            my, mx = np.argwhere(mask).mean(axis=0)
            r_new = np.sqrt(mask.sum() / np.pi)
            if members:
                anchor = members[int(rng.integers(len(members)))]
                cy, cx = np.argwhere(cluster == anchor).mean(axis=0)
                r_old = np.sqrt(np.count_nonzero(cluster == anchor) / np.pi)
                angle = rng.uniform(0, 2 * np.pi)
                dist = (r_old + r_new) * rng.uniform(0.8, 0.95)
                cy, cx = cy + dist * np.sin(angle), cx + dist * np.cos(angle)
            else:
                cy, cx = rng.uniform(0, canvas.shape[0]), rng.uniform(0, canvas.shape[1])
            trial_img, trial_lab = image.copy(), cluster.copy()
            if _place(trial_lab, trial_img, crop, mask, int(round(cy - my)),
                      int(round(cx - mx)), next_id, keep_away=others):
                image, cluster = trial_img, trial_lab
                members.append(next_id)
                next_id += 1
        lab[cluster > 0] = cluster[cluster > 0]
    return image, _relabel(lab)


def sparse_image(canvas, nuclei, rng, n_target: int, gap: int = 6):
    """Isolated nuclei pasted on ``canvas``, ``gap`` px apart at least."""
    image = canvas.copy()
    lab = np.zeros(canvas.shape, np.uint16)
    next_id, tries = 1, 0
    while next_id <= n_target and tries < 50 * n_target:
        tries += 1
        crop, mask = nuclei[int(rng.integers(len(nuclei)))]
        k = int(rng.integers(4))
        crop, mask = np.rot90(crop, k), np.rot90(mask, k)
        y0 = int(rng.integers(0, canvas.shape[0] - mask.shape[0]))
        x0 = int(rng.integers(0, canvas.shape[1] - mask.shape[1]))
        near = ndi.binary_dilation(lab > 0, iterations=gap) if next_id > 1 else None
        if _place(lab, image, crop, mask, y0, x0, next_id, keep_away=near):
            next_id += 1
    return image, _relabel(lab)


def _relabel(lab: np.ndarray) -> np.ndarray:
    """Ids 1..n; pieces of a nucleus cut by a later paste become separate
    objects only if they are disconnected (then the small piece is dropped)."""
    from napari_unet.training import split_components

    return split_components(lab, min_size=30).astype(np.uint16)


def touching_fraction(lab: np.ndarray) -> float:
    """Fraction of nuclei that touch another one (8-connectivity)."""
    lab = lab.astype(np.int64)
    hi = ndi.maximum_filter(lab, size=3)
    lo = ndi.minimum_filter(np.where(lab > 0, lab, lab.max() + 1), size=3)
    touching = (lab > 0) & ((hi > lab) | (lo < lab))
    return len(np.unique(lab[touching])) / max(int(lab.max()), 1)


def main(argv=None) -> None:
    import tifffile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path,
                        default=Path.home() / ".cache" / "napari-unet" / "wheels")
    parser.add_argument("--output", type=Path, default=ROOT / "data" / "dense_eval")
    parser.add_argument("--source", choices=("validation", "training"), default="validation",
                        help="mnfinder split whose nuclei are used (training: a tuning set)")
    args = parser.parse_args(argv)
    tdm = _train_script()
    wheel_path = tdm.fetch_wheel(args.cache_dir)
    split = f"{args.source}-data"
    with zipfile.ZipFile(wheel_path) as wheel:
        images, labels, names, _ = tdm.read_split(wheel, split)
    manifest = {"source": f"mnfinder 1.2.3 {split} (wheel sha256 {tdm.SHA256})",
                "built_by": "scripts/make_dense_eval.py", "sets": {}}
    for kind in ("dense", "sparse"):
        (args.output / kind / "images").mkdir(parents=True, exist_ok=True)
        (args.output / kind / "labels").mkdir(parents=True, exist_ok=True)
        manifest["sets"][kind] = []
    for k, (image, lab, name) in enumerate(zip(images, labels, names, strict=True)):
        nuclei = nuclei_of(image, lab)
        for v in range(VARIANTS):
            rng = np.random.default_rng([k, v])
            canvas = background(image, lab, rng)
            stem = f"{name.split('/')[0]}_{Path(name).stem}_{v}"
            n = int(lab.max())
            for kind, make, count in (("dense", dense_image, int(1.3 * n) + 8),
                                      ("sparse", sparse_image, max(8, n // 2))):
                img, gt = make(canvas, nuclei, np.random.default_rng([k, v, len(kind)]), count)
                tifffile.imwrite(args.output / kind / "images" / f"{stem}.tif", img)
                tifffile.imwrite(args.output / kind / "labels" / f"{stem}.tif", gt)
                entry = {"name": stem, "from": name, "nuclei": int(gt.max()),
                         "touching_fraction": round(touching_fraction(gt), 3)}
                manifest["sets"][kind].append(entry)
                print(kind, entry, flush=True)
    (args.output / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
