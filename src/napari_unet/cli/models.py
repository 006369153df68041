"""``napari-unet info`` and ``export-bioimageio``: model files and packages."""

from __future__ import annotations

import json
from pathlib import Path

from ._common import CLIError


def add_parser(sub) -> None:
    info = sub.add_parser("info", help="print a model's metadata")
    info.add_argument("model", metavar="MODEL", nargs="?",
                      help=".keras file (default: the shipped model)")
    info.set_defaults(func=run_info)

    bio = sub.add_parser("export-bioimageio",
                         help="write a model as a bioimage.io model package (.zip)")
    bio.add_argument("model", metavar="MODEL",
                     help=".keras file, bioimage.io package, or 'default' (the shipped model)")
    bio.add_argument("-o", "--output", required=True, help="package to write (.zip)")
    bio.add_argument("--name", help="model name (default: from the model's metadata)")
    bio.add_argument("--description", help="one paragraph describing the model")
    bio.add_argument("--author", action="append", metavar="NAME",
                     help="author name; repeat for several")
    bio.add_argument("--no-saved-model", action="store_true",
                     help="only Keras weights (no TensorFlow SavedModel, which deepImageJ needs)")
    bio.add_argument("--overwrite", action="store_true", help="replace an existing package")
    bio.set_defaults(func=run_export_bioimageio)


def run_info(args) -> int:
    from ..model_io import default_model_path, load_model

    model, info = load_model(args.model, with_info=True)
    meta = {"file": str(args.model or default_model_path()), **info.to_dict()}
    meta["parameters"] = int(model.count_params())
    print(json.dumps(meta, indent=2, default=str))
    return 0


def run_export_bioimageio(args) -> int:
    from ..bioimageio.export import export_bioimageio

    out = Path(args.output)
    if out.suffix.lower() != ".zip":
        raise CLIError(f"-o must name a .zip file: {out}")
    if out.exists() and not args.overwrite:
        raise CLIError(f"output exists (use --overwrite to replace it): {out}")
    model = None if args.model == "default" else args.model
    path = export_bioimageio(model, out, overwrite=args.overwrite, name=args.name,
                             description=args.description, authors=args.author,
                             saved_model=not args.no_saved_model)
    print(f"saved {path}")
    return 0
