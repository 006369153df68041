"""``napari-unet evaluate``: scores of labels against a ground truth."""

from __future__ import annotations

import json
from pathlib import Path

from ._common import CLIError, first_line, iou_threshold, is_zarr


def add_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help="Dice, instance F1, merges and splits of labels "
                                           "vs ground truth (per-class Dice and IoU for "
                                           "class labels)")
    ev.add_argument("prediction", metavar="PRED")
    ev.add_argument("ground_truth", metavar="GT")
    ev.add_argument("--iou", type=iou_threshold, default=0.5, help="IoU threshold for a match")
    ev.add_argument("--3d", dest="objects_3d", action="store_true",
                    help="match stacks as 3D objects (default: plane by plane)")
    ev.add_argument("--semantic", action="store_true",
                    help="the labels are class ids: report per-class Dice and IoU")
    ev.add_argument("--model", metavar="MODEL",
                    help="a semantic .keras model: its class names (implies --semantic)")
    ev.add_argument("--classes", metavar="A,B,...", help="class names of labels 1, 2, ...")
    ev.add_argument("--annotated-planes", action="store_true",
                    help="score only the planes where the ground truth has a label")
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


def class_names(args) -> list[str] | None:
    """Class names from ``--classes`` or a semantic ``--model`` (no TensorFlow)."""
    if args.classes:
        return [c.strip() for c in args.classes.split(",")]
    if not args.model:
        return None
    from ..model_io import ModelFileError, read_model_info

    try:
        info = read_model_info(args.model)
    except ModelFileError as err:
        raise CLIError(first_line(err)) from None
    if info is None or not info.is_semantic:
        raise CLIError(f"--model: {args.model} is not a semantic model")
    return list(info.classes)


def run_evaluate(args) -> int:
    from ..metrics import class_scores, evaluate

    pred, gt = read_labels(args.prediction), read_labels(args.ground_truth)
    if pred.shape != gt.shape:
        raise CLIError(f"shapes differ: {args.prediction} {pred.shape} vs "
                       f"{args.ground_truth} {gt.shape}")
    names = class_names(args)
    if args.semantic or names is not None:
        scores = class_scores(pred, gt, len(names) if names else None, names=names,
                              ignore_unlabelled_planes=args.annotated_planes)
        if args.json:
            print(json.dumps(scores, indent=2, default=float))
            return 0
        for name, d, i in zip(scores["classes"], scores["dice"], scores["iou"], strict=True):
            print(f"{name:<16} Dice {d:.4f}  IoU {i:.4f}")
        print(f"{'mean':<16} Dice {scores['mean_dice']:.4f}  IoU {scores['mean_iou']:.4f}")
        return 0
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
