"""``napari-unet segment``: TIFF files, folders of TIFFs and zarr arrays to labels."""

from __future__ import annotations

import sys
from pathlib import Path

from ..axes import voxel_size_from_scale
from ..settings import BATCH_PIXELS, DEFAULT_WINDOW, PRECISIONS, WIDE_WINDOW, PredictionSettings
from ._common import (
    TIFF_SUFFIXES,
    CLIError,
    ProgressBar,
    axes_letters,
    channels,
    first_line,
    is_zarr,
    non_negative_int,
    note,
    positive_int,
    probability,
    show_progress,
    voxel_size,
)


def add_parser(sub) -> None:
    defaults = PredictionSettings()
    seg = sub.add_parser("segment", help="segment TIFF files, folders or zarr arrays")
    seg.add_argument("inputs", nargs="+", metavar="INPUT")
    seg.add_argument("-o", "--output", required=True,
                     help="output folder, or the output .zarr array for one zarr input")
    seg.add_argument("--model", help=".keras model file (default: the shipped nuclei model)")
    seg.add_argument("--threshold", type=probability, help="foreground probability threshold")
    seg.add_argument("--min-size", type=non_negative_int, help="minimum object size in pixels")
    seg.add_argument("--tile-size", type=positive_int,
                     help=f"window edge in pixels (default {DEFAULT_WINDOW} on CPUs with AMX, "
                          f"{WIDE_WINDOW} elsewhere, or the model's training tile if larger; "
                          "fitted to small images)")
    seg.add_argument("--overlap", type=non_negative_int,
                     help=f"window overlap in pixels (default {defaults.overlap})")
    seg.add_argument("--batch-size", type=positive_int,
                     help=f"windows per network call (default 16, fewer for windows over "
                          f"128 px: at most {BATCH_PIXELS:,} pixels, 4 of 256 px)")
    seg.add_argument("--precision", choices=PRECISIONS,
                     help="network arithmetic (default auto: bfloat16 on CPUs with AVX-512 "
                          "BF16/AMX, float16 on a GPU, else float32; environment variable "
                          "NAPARI_UNET_PRECISION)")
    seg.add_argument("--axes", type=axes_letters,
                     help="axes of the input, e.g. YX, ZYX, TYX, YXC, TZCYX")
    seg.add_argument("--channel", type=channels, help="channel index, comma list, or 'mean'")
    seg.add_argument("--instances", choices=("3d", "stitch", "2d"), default="3d",
                     help="Z stacks: one object per nucleus through Z by a 3D watershed "
                          "(3d, default), 2D objects linked plane to plane by IoU (stitch), "
                          "or independent objects per plane (2d); T frames are never linked")
    seg.add_argument("--voxel-size", type=voxel_size, metavar="Z,Y,X",
                     help="voxel size for 3D instances (default: the file's calibration)")
    seg.add_argument("--semantic", action="store_true",
                     help="write a 0/1 mask (semantic models always write class labels)")
    seg.add_argument("--scheduler", metavar="ADDRESS",
                     help="dask.distributed scheduler address (zarr inputs)")
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    seg.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    seg.set_defaults(func=run)


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


def output_targets(inputs: list[Path], output: Path) -> list[Path]:
    """Where each input's labels go.

    ``-o X.zarr`` with a single zarr input names that output array itself;
    otherwise ``-o`` is a folder receiving ``<name>_labels.tif`` /
    ``<name>_labels.zarr``.
    """
    if len(inputs) == 1 and is_zarr(inputs[0]) and output.suffix == ".zarr":
        return [output]
    if output.exists() and not output.is_dir():
        raise CLIError(f"--output must be a folder: {output}")
    if output.suffix == ".zarr" and is_zarr(output):
        raise CLIError(f"--output {output} is a zarr array; give a folder for several inputs")
    targets = []
    for path in inputs:
        stem = path.name[: -len(path.suffix)] if path.suffix else path.name
        targets.append(output / (f"{stem}_labels.zarr" if is_zarr(path) else f"{stem}_labels.tif"))
    return targets


def parse_axes(letters: str, ndim: int) -> str:
    """Validate ``--axes`` for an array of ``ndim`` dimensions; return its letters."""
    from ..axes import resolve_axes

    try:
        return resolve_axes(ndim, letters).letters
    except ValueError as err:
        raise CLIError(f"--axes: {err}") from None


def file_axes(letters: str, ndim: int) -> str | None:
    """The axes a TIFF file declares, if usable, else None.

    tifffile's letters: ``S`` = samples (RGB), ``Q``/``I`` = unknown (read as
    Z, a plain stack of planes).
    """
    from ..axes import resolve_axes

    letters = "".join("C" if a == "S" else ("Z" if a in "QI" else a) for a in letters)
    try:
        return resolve_axes(ndim, letters, announce=False).letters
    except ValueError:
        return None


def read_input(path: Path):
    """``(array, axes or None, scale or None, unit or None)``; zarr stays lazy."""
    if is_zarr(path):
        import dask.array as da

        try:
            return da.from_zarr(str(path)), None, None, None
        except Exception as err:  # noqa: BLE001 - any unreadable store: one line
            raise CLIError(f"cannot read zarr array {path}: {first_line(err)}") from None
    import tifffile

    from ..tiff import read_tiff_metadata

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data, axes = series.asarray(), series.axes
        meta = read_tiff_metadata(path)
    except Exception as err:  # noqa: BLE001 - truncated/garbage files: one line
        raise CLIError(f"cannot read image {path}: {first_line(err)}") from None
    return data, file_axes(axes, data.ndim), meta.scale, meta.unit


def resolved_axes(path: Path, data, given: str | None, from_file: str | None) -> str:
    """The axes to use for one input; announced on stderr when assumed."""
    from ..axes import default_axes

    if given:
        return parse_axes(given, data.ndim)
    if from_file:
        return from_file
    try:
        letters = default_axes(data.ndim)
    except ValueError:
        raise CLIError(f"{path.name}: cannot guess the axes of a {data.ndim}-D image; "
                       "pass --axes (letters from TZCYX)") from None
    if data.ndim > 2:
        note(f"{path.name}: reading the {'x'.join(map(str, data.shape))} image as {letters} "
             "(pass --axes to say otherwise)")
    return letters


def run(args) -> int:
    from tqdm import tqdm

    from ..model_io import load_model_cached
    from ..pipeline import segment
    from ..tiff import write_tiff_atomic

    inputs = expand_inputs(args.inputs)
    targets = output_targets(inputs, Path(args.output))
    clash = [t for t in targets if t.exists()]
    if clash and not args.overwrite:
        raise CLIError(f"output exists (use --overwrite to replace it): {clash[0]}")
    if len(set(targets)) != len(targets):
        raise CLIError("two inputs have the same name; segment them into different folders")
    model, info = load_model_cached(args.model)  # loaded once for all files
    files = tqdm(list(zip(inputs, targets, strict=True)), desc="files", unit="file",
                 disable=not show_progress(args.quiet) or len(inputs) == 1)
    for path, target in files:
        data, axes, scale, unit = read_input(path)
        axes = resolved_axes(path, data, args.axes, axes)
        options = dict(info=info, axes=axes, channels=args.channel,
                       instances=args.instances,
                       voxel_size=args.voxel_size or voxel_size_from_scale(axes, scale),
                       mode="semantic" if args.semantic else None,
                       threshold=args.threshold, min_size=args.min_size,
                       tile_size=args.tile_size, overlap=args.overlap,
                       batch_size=args.batch_size, precision=args.precision)
        target.parent.mkdir(parents=True, exist_ok=True)
        if is_zarr(path):
            from ..largescale import segment_zarr

            with ProgressBar(path.name, args.quiet, unit="block") as bar:
                # The path, not the loaded model: cluster workers load it themselves.
                labels = segment_zarr(path, target, overwrite=args.overwrite,
                                      scheduler=args.scheduler, quiet=True, progress=bar,
                                      model=args.model, **options)
            count = labels.attrs.get("n_objects", 0)
        else:
            if args.scheduler:
                raise CLIError("--scheduler applies to zarr inputs; TIFF files run here")
            with ProgressBar(path.name, args.quiet) as bar:
                labels = segment(data, model, progress=bar, **options)
            channel_axis = axes.find("C") if "C" in axes else None
            spatial_scale = None
            if scale is not None:
                spatial_scale = [s for i, s in enumerate(scale) if i != channel_axis]
            write_tiff_atomic(target, labels, scale=spatial_scale, axes=axes.replace("C", ""),
                              unit=unit or "um", overwrite=args.overwrite)
            count = int(labels.max(initial=0))
        if not args.quiet:
            what = ("class labels " + ", ".join(info.classes) if info.is_semantic
                    else "mask" if args.semantic else f"{count} objects")
            tqdm.write(f"{path} -> {target} ({what})", file=sys.stderr)
    return 0
