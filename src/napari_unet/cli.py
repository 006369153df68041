"""The ``napari-unet`` command line: segment, train, evaluate, info.

Every command reports bad input as one line on stderr and a non-zero exit
status (2 for usage/input errors, 130 when interrupted), never a traceback,
and never overwrites an existing output unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out

TIFF_SUFFIXES = (".tif", ".tiff")


class CLIError(Exception):
    """An error to report as one line, without a traceback."""


# --------------------------------------------------------------------------
# Inputs and axes
# --------------------------------------------------------------------------
def is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or (path.is_dir() and any(
        (path / m).exists() for m in (".zarray", "zarr.json", ".zgroup")))


def expand_inputs(inputs: list[str]) -> list[Path]:
    """TIFF files, folders of TIFFs (sorted) and zarr arrays, in order."""
    paths = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise CLIError(f"input not found: {path}")
        if is_zarr(path):
            paths.append(path)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in TIFF_SUFFIXES)
            if not found:
                raise CLIError(f"no .tif files in folder: {path}")
            paths += found
        elif path.suffix.lower() in TIFF_SUFFIXES:
            paths.append(path)
        else:
            raise CLIError(f"unsupported input (expected .tif, a folder or .zarr): {path}")
    return paths


def parse_axes(axes: str, ndim: int) -> int | None:
    """Validate an axes string (e.g. ``ZYX``, ``TYX``, ``YXC``) and return the
    channel axis. The last two non-channel axes must be ``Y`` and ``X``."""
    axes = axes.upper().replace("S", "C")
    if len(axes) != ndim:
        raise CLIError(f"--axes {axes} has {len(axes)} letters but the image has {ndim} "
                       "dimensions")
    if len(set(axes)) != len(axes) or set(axes) - set("TZCYX"):
        raise CLIError(f"--axes {axes}: use each of T, Z, C, Y, X at most once")
    if axes.replace("C", "")[-2:] != "YX":
        raise CLIError(f"--axes {axes}: Y and X must be the last spatial axes")
    return axes.index("C") if "C" in axes else None


def read_input(path: Path):
    """``(array, axes or None, scale or None, unit or None)``; zarr stays
    lazy (dask)."""
    if is_zarr(path):
        import dask.array as da

        try:
            return da.from_zarr(str(path)), None, None, None
        except Exception as err:
            raise CLIError(f"cannot read zarr array {path}: {_first_line(err)}") from None
    import tifffile

    from .io import read_tiff_metadata

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data, axes = series.asarray(), series.axes
        meta = read_tiff_metadata(path)
    except Exception as err:
        raise CLIError(f"cannot read image {path}: {_first_line(err)}") from None
    # tifffile's axis letters: S = samples (RGB), Q/I = unknown -> leading axes.
    axes = "".join("C" if a == "S" else ("Z" if a in "QI" else a) for a in axes)
    if len(set(axes)) != len(axes) or set(axes) - set("TZCYX"):
        axes = None
    return data, axes, meta.scale, meta.unit


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def output_path(path: Path, output: Path, zarr_out: bool) -> Path:
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return output / (f"{stem}_labels.zarr" if zarr_out else f"{stem}_labels.tif")


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------
def cmd_segment(args) -> int:
    from tqdm import tqdm

    # Via the package: importing the submodule first would leave
    # ``napari_unet.segment`` bound to the module instead of the function.
    from . import segment
    from .io import write_tiff_atomic
    from .largescale import cached_model

    inputs = expand_inputs(args.inputs)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise CLIError(f"--output must be a folder: {out_dir}")
    targets = [output_path(p, out_dir, is_zarr(p)) for p in inputs]
    clash = [t for t in targets if t.exists()]
    if clash and not args.overwrite:
        raise CLIError(f"output exists (use --overwrite to replace it): {clash[0]}")
    if len(set(targets)) != len(targets):
        raise CLIError("two inputs have the same name; segment them into different folders")
    model, info = cached_model(args.model)  # loaded once for all files
    channels = _channels(args.channel)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = tqdm(list(zip(inputs, targets, strict=True)), desc="files", unit="file",
                 disable=args.quiet or len(inputs) == 1)
    for path, target in files:
        data, axes, scale, unit = read_input(path)
        if args.axes:
            channel_axis = parse_axes(args.axes, data.ndim)
            axes = args.axes.upper().replace("S", "C")
        else:
            channel_axis = axes.index("C") if axes and "C" in axes else None
        kwargs = dict(info=info, mode="semantic" if args.semantic else "instance",
                      threshold=args.threshold, min_size=args.min_size,
                      channel_axis=channel_axis, channels=channels, tile_size=args.tile_size,
                      overlap=args.overlap, batch_size=args.batch_size)
        if is_zarr(path):
            from .largescale import segment_zarr

            # The path, not the loaded model: cluster workers load it themselves.
            labels = segment_zarr(path, target, overwrite=args.overwrite,
                                  scheduler=args.scheduler, quiet=args.quiet, model=args.model,
                                  **kwargs)
            count = labels.attrs.get("n_objects", 0)
        else:
            with _progress_bar(path.name, args.quiet) as bar:
                labels = segment(data, model, progress=bar, **kwargs)
            out_axes = axes.replace("C", "") if axes and len(axes) == data.ndim else None
            spatial_scale = None
            if scale is not None:
                spatial_scale = [s for i, s in enumerate(scale) if i != channel_axis]
            write_tiff_atomic(target, labels, scale=spatial_scale, axes=out_axes,
                              unit=unit or "um", overwrite=args.overwrite)
            count = int(labels.max(initial=0))
        if not args.quiet:
            what = "mask" if args.semantic else f"{count} objects"
            tqdm.write(f"{path} -> {target} ({what})", file=sys.stderr)
    return 0


def _channels(value):
    if value is None:
        return None
    if value == "mean":
        return "mean"
    try:
        return [int(v) for v in value.split(",")]
    except ValueError:
        raise CLIError(f"--channel must be an index, a comma list or 'mean', got {value}") from None


class _progress_bar:
    """A tqdm bar fed by the core's ``progress(done, total)`` callback."""

    def __init__(self, desc: str, quiet: bool):
        self.desc, self.quiet, self.bar = desc, quiet, None

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int):
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="tile", leave=False)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def cmd_evaluate(args) -> int:
    from .metrics import evaluate

    pred, gt = _read_labels(args.prediction), _read_labels(args.ground_truth)
    if pred.shape != gt.shape:
        raise CLIError(f"shapes differ: {args.prediction} {pred.shape} vs "
                       f"{args.ground_truth} {gt.shape}")
    scores = evaluate(pred, gt, iou_threshold=args.iou)
    if args.json:
        print(json.dumps(scores, indent=2, default=float))
    else:
        print(f"Dice {scores['dice']:.4f}  F1@{args.iou:g} {scores['f1']:.4f}  "
              f"precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
              f"TP {scores['tp']} FP {scores['fp']} FN {scores['fn']}")
    return 0


def _read_labels(path):
    """Integer labels from a TIFF file or a zarr array."""
    path = Path(path)
    if not path.exists():
        raise CLIError(f"file not found: {path}")
    try:
        if is_zarr(path):
            import zarr

            data = zarr.open_array(str(path), mode="r")[...]
        else:
            from .io import read_tiff

            data = read_tiff(path)[0]
    except Exception as err:
        raise CLIError(f"cannot read {path}: {_first_line(err)}") from None
    if data.dtype.kind not in "biu":
        raise CLIError(f"{path} does not hold integer labels (dtype {data.dtype})")
    return data


def cmd_info(args) -> int:
    from .model_io import default_model_path, load_model

    model, info = load_model(args.model, with_info=True)
    meta = {"file": str(args.model or default_model_path()), **info.to_dict()}
    meta["parameters"] = int(model.count_params())
    print(json.dumps(meta, indent=2, default=str))
    return 0


def cmd_train(args) -> int:
    from tqdm import tqdm

    from .data import read_dataset
    from .training import train

    out = Path(args.output)
    if out.suffix != ".keras":
        raise CLIError(f"-o must name a .keras file: {out}")
    if out.exists() and not args.overwrite:
        raise CLIError(f"output exists (use --overwrite to replace it): {out}")
    images, labels, names = [], [], []
    for folder in args.datasets:
        if not Path(folder).is_dir():
            raise CLIError(f"dataset folder not found: {folder}")
        ds = read_dataset(folder, channel_axis=args.channel_axis)
        images += ds.images
        labels += ds.labels
        names.append(str(folder))
    bar = None

    def progress(state):
        # train() reports event='step' after every step and event='epoch'
        # (loss, val_loss/val_score when validating, improved) after each epoch.
        nonlocal bar
        if args.quiet:
            return
        if state["event"] == "step":
            if bar is None:
                bar = tqdm(total=state["steps"], unit="step", leave=False,
                           desc=f"epoch {state['epoch']}/{state['epochs']}")
            bar.set_postfix(loss=f"{state['loss']:.4f}", refresh=False)
            bar.update(1)
        elif state["event"] == "epoch":
            if bar is not None:
                bar.close()
                bar = None
            val = (f"  val_loss {state['val_loss']:.4f}  val_score {state['val_score']:.4f}"
                   if "val_score" in state else "")
            print(f"epoch {state['epoch']}/{state['epochs']}: loss {state['loss']:.4f}{val}"
                  f"{'  (best, saved)' if state.get('improved') else ''}", file=sys.stderr)

    try:
        result = train(images, labels, model=args.base_model, base_filters=args.base_filters,
                       channel_axis=args.channel_axis, epochs=args.epochs,
                       steps_per_epoch=args.steps, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, patch_size=args.patch_size,
                       val_fraction=args.val_fraction, augment=not args.no_augment,
                       time_limit=args.time_limit, output_path=out, overwrite=args.overwrite,
                       data_description=", ".join(names), progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if result.path is None:
        raise CLIError(f"no model saved: training stopped ({result.stopped}) before an epoch "
                       "completed")
    score = "n/a" if result.best_score is None else f"{result.best_score:.4f}"
    print(f"saved {result.path} (best score {score} at epoch {result.best_epoch}; "
          f"{result.stopped})")
    return 0


def cmd_export_bioimageio(args) -> int:
    from .bioimageio.export import export_bioimageio

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


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-unet", description="U-Net segmentation of microscopy images, headless.")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment TIFF files, folders or zarr arrays")
    seg.add_argument("inputs", nargs="+", metavar="INPUT")
    seg.add_argument("-o", "--output", required=True, help="output folder")
    seg.add_argument("--model", help=".keras model file (default: the shipped nuclei model)")
    seg.add_argument("--threshold", type=float, help="foreground probability threshold")
    seg.add_argument("--min-size", type=int, help="minimum object size in pixels")
    seg.add_argument("--tile-size", type=int, help="tile edge in pixels (default 128)")
    seg.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    seg.add_argument("--batch-size", type=int, default=16)
    seg.add_argument("--axes", help="axes of the input, e.g. YX, ZYX, TYX, YXC, TZCYX")
    seg.add_argument("--channel", help="channel index, comma list, or 'mean'")
    seg.add_argument("--semantic", action="store_true", help="write a 0/1 mask")
    seg.add_argument("--scheduler", metavar="ADDRESS",
                     help="dask.distributed scheduler address (zarr inputs)")
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    seg.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    seg.set_defaults(func=cmd_segment)

    tr = sub.add_parser("train", help="train or fine-tune on exported datasets")
    tr.add_argument("datasets", nargs="+", metavar="DATASET")
    tr.add_argument("-o", "--output", required=True, help="new .keras model file")
    tr.add_argument("--from", dest="base_model", help="model to fine-tune (default: new U-Net)")
    tr.add_argument("--base-filters", type=int, default=16, help="width of a new U-Net")
    tr.add_argument("--epochs", type=int, default=30)
    tr.add_argument("--steps", type=int, default=100, help="steps per epoch")
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--learning-rate", type=float, default=1e-3)
    tr.add_argument("--patch-size", type=int, default=128, help="training patch edge")
    tr.add_argument("--val-fraction", type=float, default=0.15)
    tr.add_argument("--time-limit", type=float, help="stop after this many seconds")
    tr.add_argument("--channel-axis", type=int, help="channel axis of multichannel images")
    tr.add_argument("--no-augment", action="store_true")
    tr.add_argument("--overwrite", action="store_true")
    tr.add_argument("-q", "--quiet", action="store_true")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="Dice and instance F1 of labels vs ground truth")
    ev.add_argument("prediction", metavar="PRED")
    ev.add_argument("ground_truth", metavar="GT")
    ev.add_argument("--iou", type=float, default=0.5, help="IoU threshold for a match")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    info = sub.add_parser("info", help="print a model's metadata")
    info.add_argument("model", metavar="MODEL", nargs="?",
                      help=".keras file (default: the shipped model)")
    info.set_defaults(func=cmd_info)

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
    bio.set_defaults(func=cmd_export_bioimageio)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``napari-unet`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .model_io import ModelFileError
    from .tiling import Cancelled

    try:
        return args.func(args)
    except (CLIError, ModelFileError, ValueError, OSError, MemoryError) as err:
        # OSError: missing/locked files, full disks, unreachable schedulers.
        print(f"napari-unet {args.command}: error: {_first_line(err)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print(f"napari-unet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
