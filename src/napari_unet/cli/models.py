"""``napari-unet info``: what a model file holds."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    info = sub.add_parser("info", help="print a model's metadata")
    info.add_argument("model", metavar="MODEL", nargs="?",
                      help=".keras file (default: the shipped model)")
    info.set_defaults(func=run_info)


def run_info(args) -> int:
    from ..model_io import default_model_path, load_model

    model, info = load_model(args.model, with_info=True)
    meta = {"file": str(args.model or default_model_path()), **info.to_dict()}
    meta["parameters"] = int(model.count_params())
    print(json.dumps(meta, indent=2, default=str))
    return 0
