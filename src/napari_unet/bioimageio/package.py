"""Reading bioimage.io model packages safely, without TensorFlow or ``bioimageio.spec``.

A package is a zip file, a folder, or a description file (``rdf.yaml``,
``bioimageio.yaml``, ``*.bioimageio.yaml``) next to its files. The
description is parsed with ``yaml.safe_load`` (no object construction) and
checked here against what napari-unet can run: one 2D image in, one
probability map out, channels last, percentile normalization, and weights
in a format Keras loads without executing code from the package
(``keras_v3``, ``keras_hdf5``, ``tensorflow_saved_model_bundle``). Anything
else is refused with one :class:`~napari_unet.ModelFileError` naming the
reason, before any weights are read.

The spec library itself is not used: it pins exact versions of itself and
of pydantic that conflict with napari's, and the plugin must open packages
in any napari environment. Layouts of model format 0.5 and 0.4 are read.

Zip members are never extracted wholesale: a package with an absolute or
``..`` member name, or a link, is refused as a whole, and single members
are copied out with a size limit.
"""

from __future__ import annotations

import dataclasses
import math
import posixpath
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model_io import ModelFileError, ModelInfo

DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")
#: File filter for "Load model file..." dialogs.
PACKAGE_FILE_FILTER = "Models (*.keras *.zip *.yaml *.yml)"
#: Weight formats napari-unet runs, in order of preference.
SUPPORTED_WEIGHTS = ("keras_v3", "keras_hdf5", "tensorflow_saved_model_bundle")
MAX_DESCRIPTION_BYTES = 1 << 20
#: Largest single file copied out of a package (weights included).
MAX_MEMBER_BYTES = 4 << 30
MAX_MEMBERS = 100_000

_SYNONYMS = {
    "foreground": ("foreground", "fg", "mask", "foreground_probability", "probability",
                   "nuclei", "nucleus", "cells", "cell", "objects", "object", "semantic"),
    "boundary": ("boundary", "boundaries", "contour", "contours", "edge", "edges", "border",
                 "borders"),
}


# --------------------------------------------------------------------------
# Finding and opening packages
# --------------------------------------------------------------------------
def is_bioimageio_package(path) -> bool:
    """Whether ``path`` looks like a bioimage.io package (not a ``.keras`` file).

    True for a folder holding a description file, a ``.yaml``/``.yml`` file,
    and a zip file with a description file at its root. Cheap: reads at
    most a zip's table of contents.
    """
    try:
        path = Path(path)
        if path.is_dir():
            return _folder_description(path) is not None
        if path.suffix.lower() in (".yaml", ".yml"):
            return path.is_file()
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return _zip_description(zf.namelist()) is not None
    except (OSError, zipfile.BadZipFile, TypeError):
        return False
    return False


def _folder_description(folder: Path) -> Path | None:
    for name in DESCRIPTION_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.bioimageio.yaml"))
    return found[0] if len(found) == 1 else None


def _zip_description(names) -> str | None:
    for name in DESCRIPTION_NAMES:
        if name in names:
            return name
    found = sorted(n for n in names if "/" not in n and n.endswith(".bioimageio.yaml"))
    return found[0] if len(found) == 1 else None


class Package:
    """An opened package: its description and read access to its files.

    Use :func:`open_package`; call :meth:`close` (or use ``with``) when done.
    """

    def __init__(self, path: Path, rdf: dict, *, zf: zipfile.ZipFile | None = None,
                 root: Path | None = None):
        self.path, self.rdf, self._zip, self._root = path, rdf, zf, root

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    @property
    def is_zip(self) -> bool:
        return self._zip is not None

    def _member(self, source: str) -> str:
        """A description's ``source`` as a safe relative name inside the package."""
        if not isinstance(source, str) or not source.strip():
            raise refusal(self.path, "a file reference is empty or not a string")
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
            raise refusal(self.path, f"it refers to {source}, which is not inside the package, "
                          "and napari-unet never downloads model files")
        name = source.replace("\\", "/")
        if name.startswith("./"):
            name = name[2:]
        if not _safe_name(name):
            raise refusal(self.path, f"unsafe file reference {source!r} (absolute or outside "
                          "the package)")
        return posixpath.normpath(name)

    def exists(self, source: str) -> bool:
        """Whether the package holds ``source`` (a file, or a folder in a folder package)."""
        name = self._member(source)
        if self._zip is not None:
            names = self._zip.namelist()
            return name in names or any(n.startswith(name + "/") for n in names)
        return self._local(name).exists()

    def is_folder(self, source: str) -> bool:
        name = self._member(source)
        if self._zip is not None:
            return name not in self._zip.namelist() and self.exists(source)
        return self._local(name).is_dir()

    def _local(self, name: str) -> Path:
        path = (self._root / name).resolve()
        root = self._root.resolve()
        # Also catches symbolic links that lead out of the package folder.
        if path != root and root not in path.parents:
            raise refusal(self.path, f"file reference {name!r} leads outside the package")
        return path

    def local_folder(self, source: str) -> Path:
        """A folder of a folder package, checked to stay inside it."""
        return self._local(self._member(source))

    def copy_out(self, source: str, target: Path) -> Path:
        """Copy one file of the package to ``target``, at most ``MAX_MEMBER_BYTES``."""
        name = self._member(source)
        if not self.exists(source) or self.is_folder(source):
            raise refusal(self.path, f"the file {source!r} is missing from the package")
        if self._zip is not None:
            info = self._zip.getinfo(name)
            if info.file_size > MAX_MEMBER_BYTES:
                raise refusal(self.path, f"{source!r} is too large ({info.file_size} bytes)")
            with self._zip.open(info) as src, open(target, "wb") as dst:
                _copy_limited(src, dst, MAX_MEMBER_BYTES, f"{self.path}: {source!r}")
        else:
            local = self._local(name)
            if local.stat().st_size > MAX_MEMBER_BYTES:
                raise refusal(self.path, f"{source!r} is too large")
            shutil.copyfile(local, target)
        return target


def refusal(where, reason: str) -> ModelFileError:
    """The one error for a package napari-unet will not use."""
    return ModelFileError(f"Cannot use the bioimage.io package {where}: {reason}.")


def _safe_name(name: str) -> bool:
    """Relative, no ``..``, no drive letter, no empty or NUL parts."""
    if not name or name.startswith("/") or "\x00" in name or re.match(r"^[a-zA-Z]:", name):
        return False
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return bool(parts) and ".." not in parts


def _copy_limited(src, dst, limit: int, what: str) -> int:
    """Copy at most ``limit`` bytes (counted as inflated: a zip's directory can
    lie about sizes); return the number copied."""
    total = 0
    while chunk := src.read(1 << 20):
        total += len(chunk)
        if total > limit:
            raise ModelFileError(f"{what} is larger than {limit} bytes")
        dst.write(chunk)
    return total


def check_zip_members(zf: zipfile.ZipFile, where) -> None:
    """Refuse a zip with unsafe member names, links or too many members."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise refusal(where, f"too many files in a zip archive ({len(infos)})")
    for info in infos:
        name = info.filename.replace("\\", "/")
        if not _safe_name(name.rstrip("/") or "."):
            raise refusal(where, f"unsafe path {info.filename!r} in a zip archive (absolute "
                          "or '..')")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise refusal(where, f"a zip archive holds a symbolic link ({info.filename!r})")


def open_package(path) -> Package:
    """Open a package and parse its description (``yaml.safe_load``).

    Raises
    ------
    ModelFileError
        Not found, not a package, an unsafe zip, or an unreadable
        description.
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"Model file not found: {path}")
    zf = root = None
    try:
        if path.is_dir():
            description = _folder_description(path)
            if description is None:
                raise refusal(path, "the folder has no bioimage.io description (rdf.yaml or "
                              "bioimageio.yaml)")
            root = path
            raw = _read_small(description)
        elif path.suffix.lower() in (".yaml", ".yml"):
            root = path.parent
            raw = _read_small(path)
        else:
            try:
                zf = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as err:
                raise ModelFileError(f"Not a zip file: {path} ({err})") from err
            check_zip_members(zf, path)
            name = _zip_description(zf.namelist())
            if name is None:
                raise refusal(path, "it has no bioimage.io description (rdf.yaml)")
            info = zf.getinfo(name)
            if info.file_size > MAX_DESCRIPTION_BYTES:
                raise refusal(path, f"{name} is too large ({info.file_size} bytes)")
            raw = zf.read(info)
        try:
            rdf = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            first = str(err).strip().splitlines()[0]
            raise refusal(path, f"the description is not valid YAML ({first})") from err
        if not isinstance(rdf, dict):
            raise refusal(path, "the description is not a YAML mapping")
    except BaseException:
        if zf is not None:
            zf.close()
        raise
    return Package(path, rdf, zf=zf, root=root)


def _read_small(file: Path) -> bytes:
    if file.stat().st_size > MAX_DESCRIPTION_BYTES:
        raise refusal(file, "the description is too large")
    return file.read_bytes()


# --------------------------------------------------------------------------
# What napari-unet needs from a description
# --------------------------------------------------------------------------
@dataclass
class PackageModel:
    """A package's model, as napari-unet will run it.

    Attributes
    ----------
    info : ModelInfo
        Metadata for prediction (``config.napari_unet`` if present, with the
        description's channels and normalization).
    weights_format : str
        The chosen entry of ``SUPPORTED_WEIGHTS``.
    weights_source : str
        Its file inside the package.
    input_id, output_id : str
        Tensor ids (names of a SavedModel's signature tensors).
    multiple : int
        Sizes the network accepts are multiples of this (a power of two).
    sigmoid : bool
        The description's postprocessing applies a sigmoid to the network's
        output, which napari-unet then does in the model.
    """

    info: ModelInfo
    weights_format: str
    weights_source: str
    input_id: str
    output_id: str
    multiple: int
    sigmoid: bool = False
    weights: dict[str, Any] = field(default_factory=dict)


def read_package_model(package: Package) -> PackageModel:
    """Check a package's description and derive what napari-unet runs.

    Raises
    ------
    ModelFileError
        One sentence naming why the package cannot be used.
    """
    rdf, where = package.rdf, package.path

    def refuse(reason: str):
        raise refusal(where, reason)

    if rdf.get("type", "model") != "model":
        refuse(f"it describes a {rdf.get('type')!r}, not a model")
    version = str(rdf.get("format_version", ""))
    if not re.match(r"^0\.[45]\.", version):
        refuse(f"format_version {version or '(missing)'} is not supported (0.4.x and 0.5.x are)")
    v05 = version.startswith("0.5")
    if rdf.get("run_mode"):
        refuse("it needs a custom run mode, which napari-unet cannot run")
    # Most fundamental first: weights napari-unet can load without package code.
    fmt, entry = _pick_weights(rdf.get("weights"), refuse)
    inputs, outputs = rdf.get("inputs") or [], rdf.get("outputs") or []
    if len(inputs) != 1:
        refuse(f"it has {len(inputs)} inputs; napari-unet runs models with one input image")
    if len(outputs) != 1:
        refuse(f"it has {len(outputs)} outputs; napari-unet runs models with one output")
    tin, tout = inputs[0], outputs[0]
    if not isinstance(tin, dict) or not isinstance(tout, dict):
        refuse("its inputs/outputs are not YAML mappings")
    tin_id, tout_id = _tensor_id(tin, v05, "input"), _tensor_id(tout, v05, "output")
    parse = _tensor_v05 if v05 else _tensor_v04
    in_axes, in_channels, steps, mins = parse(tin, "input", refuse)
    out_axes, out_channels, out_names = _output(tout, tin_id, v05, in_channels, refuse)
    if in_axes != "byxc" or out_axes != "byxc":
        if "z" in in_axes + out_axes:
            refuse("it is a 3D model (z axis); napari-unet runs 2D models")
        if "t" in in_axes + out_axes:
            refuse("it has a time axis; napari-unet runs 2D models")
        refuse(f"its axes are {_axes_words(in_axes)} -> {_axes_words(out_axes)}; napari-unet "
               "needs batch, y, x, channel (channels last)")
    multiple = _size_multiple(steps, mins, refuse)
    normalization = _normalization(tin, tin_id, in_channels, v05, refuse)
    sigmoid = _postprocessing(tout, refuse)
    source = entry.get("source")
    if not isinstance(source, str):
        refuse(f"its {fmt} weights name no file")
    if not package.exists(source):
        refuse(f"the {fmt} weights file {source!r} is missing from the package")

    info = _model_info(rdf, in_channels, out_channels, out_names, normalization, multiple, mins)
    return PackageModel(info=info, weights_format=fmt, weights_source=source, input_id=tin_id,
                        output_id=tout_id, multiple=multiple, sigmoid=sigmoid, weights=entry)


def _tensor_id(tensor: dict, v05: bool, default: str) -> str:
    return str(tensor.get("id" if v05 else "name") or tensor.get("id") or tensor.get("name")
               or default)


_AXIS_WORDS = {"b": "batch", "y": "y", "x": "x", "c": "channel", "z": "z", "t": "time",
               "i": "index"}


def _axes_words(axes: str) -> str:
    return ", ".join(_AXIS_WORDS.get(a, a) for a in axes) or "(none)"


def _tensor_v05(tensor: dict, what: str, refuse):
    """``(axes letters, channels, {axis: step}, {axis: min})`` of a 0.5 input."""
    letters, channels, steps, mins = "", 1, {}, {}
    axes = tensor.get("axes")
    if not isinstance(axes, list) or not axes:
        refuse(f"its {what} has no axes")
    for axis in axes:
        if not isinstance(axis, dict):
            refuse(f"an {what} axis is not a mapping")
        kind = axis.get("type")
        if kind == "batch":
            letters += "b"
        elif kind == "channel":
            names = axis.get("channel_names") or []
            channels = len(names) if names else int(axis.get("size") or 1)
            letters += "c"
        elif kind == "space":
            ident = str(axis.get("id", "x")).lower()
            letters += ident if ident in ("x", "y", "z") else "?"
            size = axis.get("size")
            if isinstance(size, dict) and "step" in size:
                steps[ident], mins[ident] = int(size["step"]), int(size.get("min", 1))
            elif isinstance(size, int):
                refuse(f"its {what} has a fixed size of {size} px along {ident}; napari-unet "
                       "needs a fully convolutional model (sizes given by min and step)")
            else:
                refuse(f"the {what} size along {ident} is not a min/step size")
        elif kind == "time":
            letters += "t"
        else:
            letters += "i"
    return letters, channels, steps, mins


def _tensor_v04(tensor: dict, what: str, refuse):
    axes = str(tensor.get("axes", "")).lower()
    shape = tensor.get("shape")
    if not axes:
        refuse(f"its {what} has no axes")
    steps, mins, channels = {}, {}, 1
    if isinstance(shape, dict) and "min" in shape and "step" in shape:
        smin, sstep = list(shape["min"]), list(shape["step"])
        if len(smin) != len(axes) or len(sstep) != len(axes):
            refuse(f"its {what} shape does not match its axes {axes}")
        for a, m, s in zip(axes, smin, sstep, strict=True):
            if a in "xyz":
                if not s:
                    refuse(f"its {what} has a fixed size of {m} px along {a}; napari-unet "
                           "needs a fully convolutional model (sizes given by min and step)")
                steps[a], mins[a] = int(s), int(m)
            elif a == "c":
                channels = int(m)
    elif isinstance(shape, list) and len(shape) == len(axes):
        if any(a in "xyz" for a in axes):
            refuse(f"its {what} has a fixed shape {shape}; napari-unet needs a fully "
                   "convolutional model (sizes given by min and step)")
    else:
        refuse(f"its {what} shape is missing or does not match its axes")
    if "c" in axes and isinstance(shape, list):
        channels = int(shape[axes.index("c")])
    return axes, channels, steps, mins


def _output(tout: dict, in_id: str, v05: bool, in_channels: int, refuse):
    """``(axes letters, channels, channel names)`` of the output, checked to
    have the input's height and width."""
    names: list[str] = []
    if v05:
        letters, channels = "", 1
        for axis in tout.get("axes") or []:
            if not isinstance(axis, dict):
                refuse("an output axis is not a mapping")
            kind = axis.get("type")
            if kind == "batch":
                letters += "b"
            elif kind == "channel":
                names = [str(n) for n in axis.get("channel_names") or []]
                channels = len(names) or int(axis.get("size") or 1)
                letters += "c"
            elif kind == "space":
                ident = str(axis.get("id", "x")).lower()
                letters += ident if ident in ("x", "y", "z") else "?"
                size = axis.get("size")
                same = (isinstance(size, dict) and str(size.get("tensor_id")) == in_id
                        and str(size.get("axis_id")) == ident and not size.get("offset"))
                if ident in ("x", "y") and not same:
                    refuse(f"its output size along {ident} is not the input's")
            else:
                letters += "t" if kind == "time" else "i"
        return letters, channels, names
    axes = str(tout.get("axes", "")).lower()
    shape = tout.get("shape")
    channels = 1
    if isinstance(shape, dict):
        if str(shape.get("reference_tensor")) != in_id:
            refuse("its output size is not given relative to the input")
        scale, offset = list(shape.get("scale", [])), list(shape.get("offset", []))
        if len(scale) != len(axes) or (offset and len(offset) != len(axes)):
            refuse("its output shape does not match its axes")
        offset = offset or [0] * len(axes)
        for a, s, o in zip(axes, scale, offset, strict=True):
            if a in "xy" and (s != 1 or o != 0):
                refuse(f"its output size along {a} is not the input's")
            if a == "c":
                channels = int(round((s or 0) * in_channels + 2 * o))
    elif isinstance(shape, list) and "c" in axes:
        channels = int(shape[axes.index("c")])
    return axes, channels, names


def _size_multiple(steps: dict, mins: dict, refuse) -> int:
    if set(steps) != {"y", "x"}:
        return 1  # axes are refused by the caller
    multiple = math.lcm(steps["y"], steps["x"])
    if multiple < 1 or multiple & (multiple - 1):
        refuse(f"its size step {multiple} is not a power of two")
    if any(m % multiple for m in mins.values()):
        refuse(f"its minimum sizes {mins} are not multiples of its size step {multiple}")
    return multiple


def _proc_name(op: dict) -> str:
    return str(op.get("id") or op.get("name") or "")


def _normalization(tin: dict, tin_id: str, channels: int, v05: bool, refuse) -> dict:
    """The package's preprocessing as napari-unet's percentile normalization."""
    found = None
    for op in tin.get("preprocessing") or []:
        if not isinstance(op, dict):
            refuse("a preprocessing step is not a mapping")
        name, kwargs = _proc_name(op), op.get("kwargs") or {}
        if name == "ensure_dtype":
            # Before the normalization it only states the raw data's type; after it,
            # what the network receives, and napari-unet feeds float32.
            dtype = str(kwargs.get("dtype", "float32"))
            if found is not None and not dtype.startswith("float"):
                refuse(f"its network input is cast to {dtype}; napari-unet feeds float32")
        elif name == "scale_range" and found is None:
            found = kwargs
        else:
            refuse(f"its preprocessing {name!r} is not supported; napari-unet normalizes "
                   "with percentiles (scale_range)")
    if found is None:
        refuse("it has no percentile normalization (scale_range) in its preprocessing, which "
               "napari-unet always applies")
    mode = str(found.get("mode", "per_sample"))
    axes = found.get("axes")
    axes = [str(a).lower() for a in (axes if isinstance(axes, list) else list(str(axes or "")))]
    if not axes and not v05:
        axes = ["y", "x", "c"]  # format 0.4 without axes: the whole sample
    if (mode != "per_sample" or (v05 and found.get("axes") is None)
            or "batch" in axes or "b" in axes):
        refuse("its percentiles are dataset statistics; napari-unet computes them per image")
    if not {"x", "y"} <= set(axes):
        refuse(f"its percentiles are taken along {axes}, not over each image (y, x)")
    if channels > 1 and ({"c", "channel"} & set(axes)):
        refuse("its percentiles are shared by all channels; napari-unet normalizes each "
               "channel on its own")
    ref = found.get("reference_tensor")
    if ref not in (None, tin_id):
        refuse(f"its normalization uses another tensor ({ref})")
    low = float(found.get("min_percentile", 0.0))
    high = float(found.get("max_percentile", 100.0))
    if not 0 <= low < high <= 100:
        refuse(f"its percentiles {low}, {high} are not 0 <= low < high <= 100")
    return {"method": "percentile", "low": low, "high": high}


def _postprocessing(tout: dict, refuse) -> bool:
    sigmoid = False
    for op in tout.get("postprocessing") or []:
        if not isinstance(op, dict):
            refuse("a postprocessing step is not a mapping")
        name = _proc_name(op)
        if name == "sigmoid" and not sigmoid:
            sigmoid = True
        elif name == "ensure_dtype" and str((op.get("kwargs") or {}).get(
                "dtype", "float32")).startswith("float"):
            continue
        else:
            refuse(f"its postprocessing {name!r} is not supported; napari-unet expects "
                   "probabilities (optionally after a sigmoid)")
    return sigmoid


def _pick_weights(weights, refuse) -> tuple[str, dict]:
    if not isinstance(weights, dict) or not weights:
        refuse("it has no weights")
    present = [k for k, v in weights.items() if v]
    for fmt in SUPPORTED_WEIGHTS:
        if isinstance(weights.get(fmt), dict):
            return fmt, weights[fmt]
    torch = [k for k in present if k in ("pytorch_state_dict", "torchscript")]
    what = ", ".join(present)
    if "pytorch_state_dict" in present:
        refuse(f"it has only {what} weights (PyTorch, with Python architecture code); "
               f"napari-unet runs {', '.join(SUPPORTED_WEIGHTS)} and never runs package code")
    if torch:
        refuse(f"it has only {what} weights (PyTorch); napari-unet runs "
               f"{', '.join(SUPPORTED_WEIGHTS)}")
    refuse(f"it has only {what} weights; napari-unet runs {', '.join(SUPPORTED_WEIGHTS)}")
    raise AssertionError  # pragma: no cover - refuse() raised


def _model_info(rdf, in_channels, out_channels, out_names, normalization, multiple,
                mins) -> ModelInfo:
    config = rdf.get("config") if isinstance(rdf.get("config"), dict) else {}
    ours = config.get("napari_unet")
    base = ModelInfo.from_dict(ours) if isinstance(ours, dict) else ModelInfo(
        name=_plain_name(rdf), description=str(rdf.get("description") or ""),
        training={"source": "bioimage.io package", "original_outputs": out_names,
                  "format_version": str(rdf.get("format_version"))},
        depth=int(math.log2(multiple)), thresholds={},
    )
    outputs = list(base.outputs) if isinstance(ours, dict) else _output_names(out_names,
                                                                              out_channels)
    if len(outputs) != out_channels:
        outputs = _output_names(out_names, out_channels)
    tile = max(base.tile_size, *(m for m in mins.values()), multiple)
    tile = -(-tile // multiple) * multiple
    thresholds = base.thresholds or {o: 0.5 for o in outputs if o in ("foreground", "boundary")}
    return dataclasses.replace(base, in_channels=in_channels, out_channels=out_channels,
                               outputs=outputs, normalization=normalization, tile_size=tile,
                               thresholds=thresholds)


def _plain_name(rdf) -> str:
    return str(rdf.get("name") or "bioimageio_model").strip()


def _output_names(names: list[str], channels: int) -> list[str]:
    """napari-unet's output names from a zoo model's channel names.

    Post-processing needs a ``foreground`` (and optionally ``boundary``)
    channel: common synonyms are mapped, and a single channel is taken as
    the foreground. Other names are kept (``channel_<i>`` if missing).
    """
    names = list(names) if len(names) == channels else [f"channel_{i}" for i in range(channels)]
    out = []
    for name in names:
        key = name.lower()
        mapped = next((k for k, syn in _SYNONYMS.items() if key in syn and k not in out), name)
        out.append(mapped)
    if "foreground" not in out and channels == 1:
        out = ["foreground"]
    return out


def read_bioimageio_info(path) -> ModelInfo:
    """The :class:`~napari_unet.ModelInfo` of a package, without loading weights.

    Raises
    ------
    ModelFileError
        The package cannot be used, with the reason.
    """
    with open_package(path) as package:
        return read_package_model(package).info
