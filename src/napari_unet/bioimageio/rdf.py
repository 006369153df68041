"""The bioimage.io description (``rdf.yaml``, model format 0.5) of a napari-unet model.

:func:`build_description` turns a model's :class:`~napari_unet.ModelInfo` and
the staged files into the description dict: axes, the percentile
normalization as preprocessing, the meaning of each output, weights entries,
citations, training data, authors and napari-unet's own config.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from pathlib import Path

import numpy as np

from ..model_io import ModelFileError, ModelInfo

FORMAT_VERSION = "0.5.12"
#: Tensor ids in the description (lower-case identifiers, as the spec wants).
INPUT_ID = "image"
OUTPUT_ID = "probabilities"
LICENSE = "BSD-3-Clause"
GIT_REPO = "https://github.com/napari-unet/napari-unet"
DEFAULT_AUTHORS = ("napari-unet developers",)
UNKNOWN_AUTHOR = "Unknown author (exported with napari-unet)"

UNET_CITATION = {
    "text": "Ronneberger O., Fischer P., Brox T. U-Net: Convolutional Networks for Biomedical "
            "Image Segmentation. MICCAI 2015, LNCS 9351, 234-241.",
    "doi": "10.1007/978-3-319-24574-4_28",
}
MNFINDER_CITATION = {
    "text": "DiPeso L. mnfinder 1.2.3: nucleus and micronucleus images with masks "
            "(training data of the default napari-unet model), MIT licence.",
    "url": "https://pypi.org/project/mnfinder/1.2.3/",
}
MNFINDER_DATASET = {
    "name": "mnfinder nuclei training data",
    "description": "Training and validation images of the PyPI package mnfinder 1.2.3 "
                   "(RPE1, U2OS, HeLa H2B-GFP, MCC13 NLS-GFP nuclei) with nucleus masks, "
                   "read from the wheel's training-data/ and validation-data/ folders.",
    "authors": [{"name": "Lucian DiPeso"}],
    "cite": [MNFINDER_CITATION],
    "license": "MIT",
    "tags": ["nuclei", "fluorescence-light-microscopy", "2d"],
    "source": "https://pypi.org/project/mnfinder/1.2.3/",
    "format_version": "0.3.4",
    "type": "dataset",
}
_OUTPUT_MEANING = {"foreground": "foreground (object pixels)",
                   "boundary": "boundary (object contours, splits touching objects)",
                   "distance": "distance (per-object normalized distance to the border; "
                               "its maxima seed the split of touching objects)"}



def build_description(files: dict, keras_model, info: ModelInfo, *, is_default: bool = False,
                      name=None, description=None, authors=None) -> dict:
    """The model description (``rdf.yaml`` content) of a staged package.

    ``files`` maps ``weights``, ``saved_model`` (optional), ``test_input``,
    ``test_output``, ``cover`` and ``documentation`` to the staged files;
    the description names them by file name, with their SHA-256.
    """
    import keras

    from ..model import model_depth

    norm = info.normalization
    if norm.get("method", "percentile") != "percentile":
        raise ModelFileError(f"Cannot export normalization {norm!r}: only percentile "
                             "normalization has a bioimage.io equivalent here.")
    multiple = 2 ** model_depth(keras_model)
    from_default = is_default or info.parent == "nuclei_default"
    space_in = [{"type": "space", "id": a, "size": {"min": multiple, "step": multiple}}
                for a in ("y", "x")]
    space_out = [{"type": "space", "id": a, "size": {"tensor_id": INPUT_ID, "axis_id": a}}
                 for a in ("y", "x")]
    rdf = {
        "format_version": FORMAT_VERSION,
        "type": "model",
        "name": _name(name or f"napari-unet {info.name}"),
        "description": (description or info.description
                        or f"U-Net from napari-unet. {_output_description(info)}")[:1024],
        "authors": _authors(authors, from_default),
        "cite": [UNET_CITATION] + ([MNFINDER_CITATION] if from_default else []),
        "license": LICENSE,
        "git_repo": GIT_REPO,
        "tags": ["unet", "2d", "tensorflow", "keras", "napari-unet", "segmentation",
                 "instance-segmentation" if "boundary" in info.outputs
                 else "semantic-segmentation"]
        + (["nuclei", "fluorescence-light-microscopy"] if from_default else []),
        "covers": [_file(files["cover"])],
        "documentation": _file(files["documentation"]),
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "inputs": [{
            "id": INPUT_ID,
            "description": "Raw 2D image (any intensity range), channels last.",
            "axes": [{"type": "batch"}, *space_in,
                     {"type": "channel",
                      "channel_names": [f"channel{i}" for i in range(info.in_channels)]}],
            "test_tensor": _file(files["test_input"]),
            "sample_tensor": _file(files["sample_input"]),
            "data": {"type": "float32"},
            "preprocessing": [
                {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                # Percentiles per sample and channel: napari-unet's normalization.
                {"id": "scale_range", "kwargs": {
                    "axes": ["y", "x"], "min_percentile": float(info.percentiles[0]),
                    "max_percentile": float(info.percentiles[1])}},
                {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
            ],
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": _output_description(info)[:128],
            "axes": [{"type": "batch"}, *space_out,
                     {"type": "channel",
                      "channel_names": [_identifier(o) for o in info.outputs]}],
            "test_tensor": _file(files["test_output"]),
            "sample_tensor": _file(files["sample_output"]),
            "data": {"type": "float32", "range": [0.0, 1.0]},
        }],
        "weights": _weights(files, keras),
        "config": _config(keras_model, info),
    }
    data = _training_data(info, is_default, files["documentation"])
    if data is not None:
        rdf["training_data"] = data
    return rdf


def _training_data(info: ModelInfo, is_default: bool, documentation: Path) -> dict | None:
    """The training data as an inline dataset description, if known.

    Its documentation is the model card, which details the data.
    """
    doc = _file(documentation)
    if is_default:
        return dict(MNFINDER_DATASET, documentation=doc)
    data = (info.training or {}).get("data") if isinstance(info.training, dict) else None
    if not data:
        return None
    parent = (" The model was fine-tuned from the default napari-unet model, trained on "
              "mnfinder 1.2.3 (MIT)." if info.parent == "nuclei_default" else "")
    return {"name": _name(f"{info.name} training data"),
            "description": f"{data}.{parent}"[:1024], "documentation": doc,
            "format_version": MNFINDER_DATASET["format_version"], "type": "dataset"}


def _file(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"source": path.name, "sha256": digest.hexdigest()}


def _weights(files: dict, keras) -> dict:
    import tensorflow as tf

    backend = keras.backend.backend()
    backend_version = tf.__version__ if backend == "tensorflow" else _module_version(backend)
    weights = {"keras_v3": {**_file(files["weights"]), "keras_version": keras.__version__,
                            "backend": [backend, backend_version]}}
    if "saved_model" in files:
        weights["tensorflow_saved_model_bundle"] = {
            **_file(files["saved_model"]), "parent": "keras_v3",
            "tensorflow_version": tf.__version__,
            "comment": "Converted from the keras_v3 weights by napari-unet; signatures "
                       "'serve' and 'serving_default' map 'image' to 'probabilities'.",
        }
    return weights


def _module_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - a backend without metadata
        return "0"


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", str(name)).strip("_") or "channel"
    return ident if not ident[0].isdigit() else f"c{ident}"


def _output_description(info: ModelInfo) -> str:
    return "Sigmoid probabilities per channel: " + "; ".join(
        _OUTPUT_MEANING.get(o, o) for o in info.outputs)


def _name(text: str) -> str:
    # The spec allows letters, digits, spaces and _+-() in 5 to 128 characters.
    name = re.sub(r"[^A-Za-z0-9_+\-() ]", "_", text).strip()[:64]
    return name if len(name) >= 5 else f"napari-unet {name}".strip()


def _authors(authors, from_default: bool) -> list[dict]:
    if not authors:
        authors = list(DEFAULT_AUTHORS) if from_default else [UNKNOWN_AUTHOR]
    allowed = {"name", "affiliation", "email", "github_user", "orcid"}
    out = []
    for author in authors:
        fields = {"name": author} if isinstance(author, str) else dict(author)
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"Unknown author fields {sorted(unknown)}; use {sorted(allowed)}")
        # The spec forbids slashes in names.
        fields["name"] = str(fields.get("name") or "").replace("/", "-").strip()
        if not fields["name"]:
            raise ValueError(f"An author needs a name, got {author!r}")
        out.append({k: str(v) for k, v in fields.items() if v})
    return out


def _config(keras_model, info: ModelInfo) -> dict:
    training = info.training if isinstance(info.training, dict) else {}
    details = {k: v for k, v in {
        "training_epochs": training.get("epochs"),
        "training_batch_size": training.get("batch_size"),
        "initial_learning_rate": training.get("learning_rate"),
        "loss_function": training.get("loss"),
        "optimizer": "Adam" if training else None,
    }.items() if v is not None}
    return {
        "bioimageio": {
            "architecture_type": "U-Net 2D",
            "architecture_description": (
                f"napari_unet.build_unet(in_channels={info.in_channels}, "
                f"out_channels={info.out_channels}, base_filters={info.base_filters}, "
                f"depth={info.depth})"),
            "task": "segmentation",
            "model_parameter_count": int(keras_model.count_params()),
            "training": details,
        },
        # Read back by napari-unet's importer: thresholds, min_size, outputs, ...
        "napari_unet": _yaml_safe(info.to_dict()),
    }


def _yaml_safe(value):
    """Plain YAML values: tuples to lists, numpy scalars to Python, the rest to str."""
    if isinstance(value, dict):
        return {str(k): _yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
