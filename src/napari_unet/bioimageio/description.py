"""What napari-unet needs from a bioimage.io model description.

:func:`read_package_model` checks an opened package's description
(:mod:`.package` opens it safely) against what napari-unet can run and
derives the :class:`~napari_unet.ModelInfo`, the weights to load and the
tensor names; anything else is refused with one
:class:`~napari_unet.ModelFileError` naming the reason.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..model_io import ModelInfo
from .package import SUPPORTED_WEIGHTS, Package, open_package, refusal

_SYNONYMS = {
    "foreground": ("foreground", "fg", "mask", "foreground_probability", "probability",
                   "nuclei", "nucleus", "cells", "cell", "objects", "object", "semantic"),
    "boundary": ("boundary", "boundaries", "contour", "contours", "edge", "edges", "border",
                 "borders"),
}


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
