"""``napari-unet evaluate``: scores of labels against a ground truth."""

from __future__ import annotations

import json
from pathlib import Path

from ._common import CLIError, first_line, iou_threshold, is_zarr


def add_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help="Dice, instance F1, merges and splits of labels "
                                           "vs ground truth")
    ev.add_argument("prediction", metavar="PRED")
    ev.add_argument("ground_truth", metavar="GT")
    ev.add_argument("--iou", type=iou_threshold, default=0.5, help="IoU threshold for a match")
    ev.add_argument("--3d", dest="objects_3d", action="store_true",
                    help="match stacks as 3D objects (default: plane by plane)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=run_evaluate)


def read_labels(path):
    """Integer labels from a TIFF file or a zarr array."""
    path = Path(path)
    if not path.exists():
        raise CLIError(f"file not found: {path}")
    try:
        if is_zarr(path):
            import zarr

            data = zarr.open_array(str(path), mode="r")[...]
        else:
            from ..tiff import read_tiff

            data = read_tiff(path)[0]
    except Exception as err:  # noqa: BLE001 - truncated/garbage files: one line
        raise CLIError(f"cannot read {path}: {first_line(err)}") from None
    if data.dtype.kind not in "biu":
        raise CLIError(f"{path} does not hold integer labels (dtype {data.dtype})")
    return data


def run_evaluate(args) -> int:
    from ..metrics import evaluate

    pred, gt = read_labels(args.prediction), read_labels(args.ground_truth)
    if pred.shape != gt.shape:
        raise CLIError(f"shapes differ: {args.prediction} {pred.shape} vs "
                       f"{args.ground_truth} {gt.shape}")
    scores = evaluate(pred, gt, iou_threshold=args.iou, per_plane=not args.objects_3d)
    if args.json:
        print(json.dumps(scores, indent=2, default=float))
    else:
        print(f"Dice {scores['dice']:.4f}  F1@{args.iou:g} {scores['f1']:.4f}  "
              f"mean F1 (IoU 0.5-0.9) {scores['mean_f1']:.4f}  "
              f"precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
              f"TP {scores['tp']} FP {scores['fp']} FN {scores['fn']}  "
              f"merges {scores['merges']} splits {scores['splits']}")
    return 0
