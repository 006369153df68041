"""``napari-unet train``: fine-tune (or train from scratch) on exported datasets."""

from __future__ import annotations

import sys
from pathlib import Path

from ..settings import TRAINING_PRESETS
from ._common import CLIError, fraction, positive_float, positive_int, show_progress

#: ``--from`` values that are not files.
DEFAULT, SCRATCH = "default", "scratch"


def add_parser(sub) -> None:
    tr = sub.add_parser("train", help="fine-tune the shipped model (or another, or a new "
                                      "U-Net) on exported datasets")
    tr.add_argument("datasets", nargs="+", metavar="DATASET")
    tr.add_argument("-o", "--output", required=True, help="new .keras model file")
    tr.add_argument("--from", dest="base_model", default=DEFAULT, metavar="MODEL",
                    help="model to fine-tune: 'default' (the shipped model, the default), a "
                         ".keras file, or 'scratch' for a new U-Net")
    tr.add_argument("--task", choices=("instance", "semantic"),
                    help="instance: countable objects; semantic: labels are class ids, planes "
                         "without labels are ignored (default: the --from model's task, "
                         "instance from scratch)")
    tr.add_argument("--classes", metavar="A,B,...",
                    help="semantic: names of classes 1, 2, ... (default: the datasets' "
                         "manifest, else class_1..K)")
    tr.add_argument("--base-filters", type=positive_int, default=16,
                    help="width of a new U-Net (with --from scratch)")
    tr.add_argument("--preset", choices=sorted(TRAINING_PRESETS),
                    help="a named set of the settings below; 'quick': fine-tune on one "
                         "corrected image within 3 minutes on 2 CPU cores "
                         f"({_describe(TRAINING_PRESETS['quick'])}); flags given override it")
    # Defaults None: an unset flag takes the preset's value, else train()'s default.
    tr.add_argument("--epochs", type=positive_int, help="(default 30; semantic from scratch 100)")
    tr.add_argument("--steps", type=positive_int,
                    help="steps per epoch (default 100; semantic from scratch 40)")
    tr.add_argument("--batch-size", type=positive_int,
                    help="(default 8; semantic from scratch 4)")
    tr.add_argument("--learning-rate", type=positive_float,
                    help="(default 0.001; semantic from scratch 0.002)")
    tr.add_argument("--patch-size", type=positive_int,
                    help="training patch edge (default 128; semantic from scratch 96)")
    tr.add_argument("--val-fraction", type=fraction, default=0.15)
    tr.add_argument("--time-limit", type=positive_float, help="stop after this many seconds")
    tr.add_argument("--channel-axis", type=int,
                    help="channel axis of the image files (default: what the files and "
                         "dataset.json say)")
    tr.add_argument("--no-augment", action="store_true")
    tr.add_argument("--overwrite", action="store_true")
    tr.add_argument("-q", "--quiet", action="store_true")
    tr.set_defaults(func=run)


def _describe(preset: dict) -> str:
    return (f"{preset['time_limit']:.0f} s, epochs of {preset['steps_per_epoch']} steps, batch "
            f"{preset['batch_size']}")


def start_model(value: str):
    """The ``model=`` argument of :func:`napari_unet.train` for a ``--from`` value."""
    if value == SCRATCH:
        return None
    if value == DEFAULT:
        from ..model_io import default_model_path

        return default_model_path()
    path = Path(value)
    if not path.is_file():
        raise CLIError(f"--from: model file not found: {path} (or use 'default' or 'scratch')")
    return path


def class_option(args, manifest_classes: list, base):
    """Class names for a semantic run: ``--classes``, else the manifests'."""
    task = args.task
    if task is None and base is not None:
        from ..model_io import read_model_info

        info = read_model_info(base)
        task = info.task if info is not None else "instance"
    if args.classes:
        if task != "semantic":
            raise CLIError("--classes needs --task semantic (or a semantic --from model)")
        return [c.strip() for c in args.classes.split(",")]
    if task != "semantic" or not manifest_classes:
        return None
    if any(c != manifest_classes[0] for c in manifest_classes):
        raise CLIError(f"the datasets name different classes: {manifest_classes}")
    return manifest_classes[0]


def run(args) -> int:
    from tqdm import tqdm

    from ..training.data import read_dataset
    from ..training.loop import train

    out = Path(args.output)
    if out.suffix != ".keras":
        raise CLIError(f"-o must name a .keras file: {out}")
    if out.exists() and not args.overwrite:
        raise CLIError(f"output exists (use --overwrite to replace it): {out}")
    if out.parent.exists() and not out.parent.is_dir():
        raise CLIError(f"-o: {out.parent} is not a folder")
    base = start_model(args.base_model)
    images, labels, counted, names, with_channels = [], [], [], [], set()
    manifest_classes = []
    for folder in args.datasets:
        if not Path(folder).is_dir():
            raise CLIError(f"dataset folder not found: {folder}")
        ds = read_dataset(folder, channel_axis=args.channel_axis)  # channels come out last
        images += ds.images
        labels += ds.labels
        counted += ds.counted  # sparse annotation: only these pixels count
        names.append(str(folder))
        with_channels.add(ds.channel_axis is not None)
        if ds.manifest.get("classes"):
            manifest_classes.append(list(ds.manifest["classes"]))
    if len(with_channels) > 1:
        raise CLIError("some datasets have multichannel images and others do not")
    classes = class_option(args, manifest_classes, base)
    bar = None

    def progress(state):
        # train() reports event='step' after every step and event='epoch'
        # (loss, val_loss/val_score when validating, improved) after each epoch.
        nonlocal bar
        if args.quiet:
            return
        if state["event"] == "step" and show_progress(args.quiet):
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

    if not args.quiet:
        start = "a new U-Net" if base is None else f"{Path(base).name}"
        sparse = sum(c is not None for c in counted)
        print(f"training from {start} on {len(images)} images"
              f"{f' (preset {args.preset})' if args.preset else ''}"
              f"{f' ({sparse} sparsely annotated)' if sparse else ''}", file=sys.stderr)
    try:
        given = {"epochs": args.epochs, "steps_per_epoch": args.steps,
                 "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                 "patch_size": args.patch_size, "time_limit": args.time_limit}
        # Flags left unset are not passed: train() fills them from the preset or its defaults.
        result = train(images, labels, model=base, base_filters=args.base_filters,
                       task=args.task, classes=classes,
                       channel_axis=-1 if True in with_channels else None,
                       **{k: v for k, v in given.items() if v is not None},
                       preset=args.preset, val_fraction=args.val_fraction,
                       augment=not args.no_augment, output_path=out, overwrite=args.overwrite,
                       data_description=", ".join(names), progress=progress,
                       counted=counted)
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
