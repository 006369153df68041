#!/usr/bin/env python
"""Fit the weights of :func:`napari_unet.object_confidence` and write them into confidence.py.

    python scripts/fit_confidence.py [--model PATH] [--dry-run]

The shipped (or given) model segments every image of mnfinder 1.2.3's
``training-data/`` (read from the pinned wheel, as
``scripts/train_default_model.py`` does; ``validation-data/`` and
``test-data/`` are never read here). Each predicted object is labelled
*wrong* when no ground-truth nucleus matches it at IoU >= 0.5, and a
logistic regression (Newton's method with a small L2 penalty, numpy only)
learns P(object is right) from :func:`napari_unet.confidence.object_features`.
The weights replace ``WEIGHTS`` in ``src/napari_unet/confidence.py`` with
the command and the fit's figures in a comment.

Re-run it whenever the default model is retrained: its errors, and so the
weights, change with it. Held-out figures: ``benchmarks/bench_confidence.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIDENCE = ROOT / "src" / "napari_unet" / "confidence.py"
#: L2 penalty on the feature weights (not the intercept), per object.
L2 = 1e-3


def train_script():
    """``scripts/train_default_model.py`` as a module (wheel reading)."""
    spec = importlib.util.spec_from_file_location(
        "train_default_model", ROOT / "scripts" / "train_default_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mnfinder_split(split: str, cache: Path | None = None):
    """``(images, labels, names)`` of one mnfinder split ('training-data' or
    'validation-data'; the script refuses anything else)."""
    tdm = train_script()
    wheel = tdm.fetch_wheel(cache or Path.home() / ".cache" / "napari-unet" / "wheels")
    with zipfile.ZipFile(wheel) as zf:
        images, labels, names, _ = tdm.read_split(zf, split)
    return images, labels, names


def object_table(images, truths, model, info):
    """Features and 'wrong' flags of every predicted object of ``images``.

    Returns
    -------
    feats : ndarray (n_objects, n_features)
    wrong : ndarray of bool
        No ground-truth object matches at IoU >= 0.5.
    per_image : list of (labels, probabilities, ids, confidence-ready features)
    """
    import napari_unet as nu
    from napari_unet.confidence import object_features
    from napari_unet.metrics import best_overlap

    feats, wrong, per_image = [], [], []
    for image, truth in zip(images, truths, strict=True):
        labels, probs = nu.segment(image, model, info=info, return_probabilities=True)
        ids, f = object_features(labels, probs, outputs=info.outputs)
        pid, iou, _ = best_overlap(labels, truth)
        assert np.array_equal(ids, pid)
        feats.append(f)
        wrong.append(iou < 0.5)
        per_image.append((labels, probs, ids, f))
    return np.concatenate(feats), np.concatenate(wrong), per_image


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iters: int = 50) -> np.ndarray:
    """Weights (intercept first) of P(y=1 | x) by Newton's method with an L2 penalty."""
    x1 = np.hstack([np.ones((len(x), 1)), x.astype(np.float64)])
    w = np.zeros(x1.shape[1])
    penalty = np.full(x1.shape[1], l2 * len(x))
    penalty[0] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(x1 @ w, -30, 30)))
        grad = x1.T @ (p - y) + penalty * w
        hess = (x1 * (p * (1 - p))[:, None]).T @ x1 + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def write_weights(weights, comment: str, path: Path = CONFIDENCE) -> None:
    """Replace the ``WEIGHTS = (...)`` block of confidence.py, atomically."""
    from napari_unet._atomic import atomic_write
    from napari_unet.confidence import FEATURES

    names = ("intercept",) + FEATURES
    body = "".join(f"    {w:+.4f},  # {n}\n" for w, n in zip(weights, names, strict=True))
    block = "".join(f"#: {line}\n" if line else "#:\n" for line in comment.splitlines())
    text = path.read_text()
    new, n = re.subn(r"#: Logistic weights.*?\nWEIGHTS = \(\n.*?\n\)\n",
                     lambda m: f"{block}WEIGHTS = (\n{body})\n", text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{path}: no 'WEIGHTS = (...)' block after '#: Logistic weights'")
    with atomic_write(path, overwrite=True) as tmp:
        tmp.write_text(new)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()

    import napari_unet as nu
    from napari_unet.confidence import FEATURES
    from napari_unet.metrics import auroc

    model, info = nu.load_model(args.model, with_info=True)
    images, truths, names = mnfinder_split("training-data")
    feats, wrong, _ = object_table(images, truths, model, info)
    weights = fit_logistic(feats, ~wrong)
    x1 = np.hstack([np.ones((len(feats), 1)), feats])
    confidence = 1 / (1 + np.exp(-(x1 @ weights)))
    fit_auroc = auroc(-confidence, wrong)
    seconds = time.perf_counter() - t0
    model_name = args.model.name if args.model else "the shipped nuclei_default.keras"
    command = "python scripts/fit_confidence.py" + "".join(
        f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))
    comment = (
        "Logistic weights (intercept first, then one per feature) turning the\n"
        "features into P(object is right). Fitted by\n"
        f"``{command}`` ({time.strftime('%Y-%m-%d')}):\n"
        f"{model_name} on the {len(images)} mnfinder 1.2.3 training-data images,\n"
        f"{len(wrong)} predicted objects, {int(wrong.sum())} wrong (no ground-truth match at\n"
        f"IoU 0.5); AUROC on these (training) objects {fit_auroc:.3f}. Held-out figures:\n"
        "benchmarks/bench_confidence.py.")
    print(f"{len(images)} images, {len(wrong)} objects, {int(wrong.sum())} wrong; "
          f"training AUROC {fit_auroc:.3f}; {seconds:.0f} s")
    for name, w in zip(("intercept",) + FEATURES, weights, strict=True):
        print(f"  {name:18s} {w:+.4f}")
    if not args.dry_run:
        write_weights(weights, comment)
        print(f"wrote {CONFIDENCE}")


if __name__ == "__main__":
    main()
