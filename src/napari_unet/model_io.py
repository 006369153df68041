"""Saving and safely loading U-Net models with the metadata prediction needs.

A napari-unet model is a plain Keras 3 ``.keras`` archive (a zip file) with
one extra member, ``napari_unet.json``, holding a :class:`ModelInfo`. Keeping
the metadata inside the archive means a model is always one file: it cannot
be separated from the normalization and thresholds it was trained with.

Models are loaded with ``safe_mode=True`` and no custom objects, so a file
cannot run arbitrary code (Lambda layers and pickled functions are refused).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ._atomic import atomic_write
from .normalize import DEFAULT_PERCENTILES

METADATA_MEMBER = "napari_unet.json"
FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "nuclei_default.keras"


class ModelFileError(ValueError):
    """A model file is missing, unreadable, unsafe or not a Keras model."""


@dataclass
class ModelInfo:
    """What prediction needs to know about a model, stored with its weights.

    Attributes
    ----------
    name : str
        Human-readable model name.
    in_channels, out_channels : int
        Channels the model reads and writes.
    outputs : list of str
        Meaning of each output channel: ``"foreground"`` first, optionally
        ``"boundary"`` (object contours, used to split touching objects).
    tile_size : int
        Edge of the square training patches; the default prediction tile.
    normalization : dict
        Intensity normalization applied before the network:
        ``{"method": "percentile", "low": 1.0, "high": 99.8}`` (see
        :data:`napari_unet.normalize.DEFAULT_PERCENTILES`).
    thresholds : dict
        Default probability thresholds per output name.
    min_size : int
        Default minimum object size (pixels) for post-processing.
    base_filters, depth : int
        Architecture, for reference and for building a fresh model.
    parent : str, optional
        Name of the model this one was fine-tuned from.
    training : dict
        Free-form record of how the model was trained (data, scores, ...).
    description : str
        One paragraph for humans.
    task : {'instance', 'semantic'}
        ``"instance"``: outputs are foreground/boundary maps for countable
        objects. ``"semantic"``: outputs are class probabilities and
        prediction gives class labels 0..K. Files written before this field
        existed are instance models.
    classes : list of str
        Semantic task: the names of classes 1..K (label value = position
        + 1; 0 is background).
    class_colors : list of str
        Semantic task: a ``#rrggbb`` colour per class, aligned with
        ``classes`` (see :meth:`label_colors`).
    """

    name: str = "unet"
    in_channels: int = 1
    out_channels: int = 1
    outputs: list[str] = field(default_factory=lambda: ["foreground"])
    tile_size: int = 128
    normalization: dict[str, Any] = field(
        default_factory=lambda: {"method": "percentile", "low": DEFAULT_PERCENTILES[0],
                                 "high": DEFAULT_PERCENTILES[1]}
    )
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"foreground": 0.5, "boundary": 0.5}
    )
    min_size: int = 16
    base_filters: int | None = None
    depth: int | None = None
    parent: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    format_version: int = FORMAT_VERSION
    task: str = "instance"
    classes: list[str] = field(default_factory=list)
    class_colors: list[str] = field(default_factory=list)

    @property
    def is_semantic(self) -> bool:
        return self.task == "semantic"

    def label_colors(self) -> dict[int, str]:
        """Class label value -> colour, for a napari Labels layer (0 transparent)."""
        colors = self.class_colors or default_class_colors(len(self.classes))
        return {0: "transparent", **{i + 1: c for i, c in enumerate(colors)}}

    @property
    def percentiles(self) -> tuple[float, float]:
        """``(low, high)`` normalization percentiles (the defaults where unset)."""
        norm = self.normalization or {}
        return (float(norm.get("low", DEFAULT_PERCENTILES[0])),
                float(norm.get("high", DEFAULT_PERCENTILES[1])))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        # Unknown keys come from newer versions: keep loading, ignore them.
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_model(cls, model, **overrides) -> ModelInfo:
        """Metadata inferred from a model's shapes (for files without any)."""
        from .model import model_channels, model_depth

        cin, cout = model_channels(model)
        outputs = ["foreground", "boundary"][:cout] if cout <= 2 else [
            f"channel_{i}" for i in range(cout)
        ]
        base = None
        for layer in model.layers:
            if layer.__class__.__name__ == "Conv2D":
                base = int(layer.filters)
                break
        info = cls(name=model.name, in_channels=cin, out_channels=cout, outputs=outputs,
                   base_filters=base, depth=model_depth(model))
        return dataclasses.replace(info, **overrides)


#: Distinct colours for classes 1, 2, ... (Okabe-Ito, readable by colour-blind users).
CLASS_PALETTE = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00",
                 "#cc79a7", "#999999")


def default_class_colors(n: int) -> list[str]:
    """``n`` class colours from :data:`CLASS_PALETTE` (repeating past 8)."""
    return [CLASS_PALETTE[i % len(CLASS_PALETTE)] for i in range(n)]


def semantic_outputs(classes) -> list[str]:
    """Output names of a semantic model: ``foreground`` for one class (its
    map is thresholded like an instance model's), ``background`` + the
    class names for a softmax over several."""
    classes = list(classes)
    return ["foreground"] if len(classes) == 1 else ["background", *classes]


def default_model_path() -> Path:
    """Path of the default nuclei model shipped inside the package."""
    return Path(str(resources.files("napari_unet") / "models" / DEFAULT_MODEL_NAME))


def save_model(model, path, info: ModelInfo | None = None, *, overwrite: bool = False) -> Path:
    """Save a model and its metadata to one ``.keras`` file, atomically.

    Parameters
    ----------
    model : keras.Model
        The model to save.
    path : str or Path
        Destination; must end in ``.keras``.
    info : ModelInfo, optional
        Metadata; inferred from the model when omitted.
    overwrite : bool
        Replace an existing file. Off by default so that no model is ever
        replaced by accident.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"Model files must end in '.keras': {path}")
    exists = f"Model file already exists, not overwriting: {path}"
    if path.exists() and not overwrite:
        raise FileExistsError(exists)
    info = info or ModelInfo.from_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A crash never leaves a truncated model under the final name.
    with tempfile.TemporaryDirectory(prefix="napari-unet-") as scratch:
        # Keras insists on a ".keras" name: save in a private folder, then
        # publish the bytes atomically (nothing is left if we are killed).
        staged = Path(scratch) / "model.keras"
        model.save(staged)
        with zipfile.ZipFile(staged, "a") as zf:
            zf.writestr(METADATA_MEMBER, json.dumps(info.to_dict(), indent=2))
        with atomic_write(path, overwrite=overwrite, exists_message=exists) as tmp, \
                open(staged, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return path


def read_model_info(path) -> ModelInfo | None:
    """Read only the metadata of a model file (no TensorFlow needed).

    Returns None for a valid Keras archive without napari-unet metadata. For a
    bioimage.io package, the metadata it describes.
    """
    from .bioimageio.package import is_bioimageio_package

    if is_bioimageio_package(path):
        from .bioimageio.description import read_bioimageio_info

        return read_bioimageio_info(path)
    path = _check_file(path)
    try:
        with zipfile.ZipFile(path) as zf:
            if METADATA_MEMBER not in zf.namelist():
                return None
            return ModelInfo.from_dict(json.loads(zf.read(METADATA_MEMBER)))
    except (zipfile.BadZipFile, json.JSONDecodeError, TypeError, OSError) as err:
        raise ModelFileError(f"Cannot read model metadata from {path}: {err}") from err


def load_model(path=None, *, with_info: bool = False):
    """Load a model safely.

    Parameters
    ----------
    path : str or Path, optional
        A ``.keras`` file, or a bioimage.io package (zip, folder or
        description file; see :mod:`napari_unet.bioimageio`). Without it,
        the default nuclei model shipped with the package is loaded
        (offline).
    with_info : bool
        Also return the :class:`ModelInfo`.

    Returns
    -------
    keras.Model or (keras.Model, ModelInfo)

    Raises
    ------
    ModelFileError
        The file is missing, truncated, not a Keras archive, or holds
        layers that cannot be loaded safely (e.g. Lambda layers); or the
        package cannot be used (the message names why).
    """
    if path is not None:
        from .bioimageio.package import is_bioimageio_package

        if is_bioimageio_package(path):
            from .bioimageio.importer import load_bioimageio

            return load_bioimageio(path, with_info=with_info)
    if path is None:
        path = default_model_path()
        if not path.exists():
            raise ModelFileError(
                f"The default model is not installed ({path}); pass a model file instead."
            )
    path = _check_file(path)
    info = read_model_info(path)
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for bad archives.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"Cannot load model {path}: {reason}") from err
    if info is None:
        info = ModelInfo.from_model(model, name=path.stem)
    _check_consistent(model, info, path)
    return (model, info) if with_info else model


# The one cache of loaded networks in a process (CLI runs over many files,
# dask workers, the napari worker process): keyed by file identity, so a
# retrained file is reloaded; bounded, because each model holds its weights
# and traced graphs. Cached models are only ever used for inference;
# training works on a copy.
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
#: Models kept loaded per process.
CACHE_SIZE = 2


def load_model_cached(path=None):
    """``(keras_model, ModelInfo)``, loaded once per process and file version.

    Parameters
    ----------
    path : str or Path, optional
        A model file; None for the shipped default model.

    Returns
    -------
    (keras.Model, ModelInfo)
        Shared with other callers: never train or modify it in place.

    Raises
    ------
    ModelFileError
        As :func:`load_model`.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.exists():  # raises the clear "not installed" / "not found" message
        return load_model(None if path == default_model_path() else path, with_info=True)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:  # threads of one process must not load a file twice
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        loaded = load_model(path, with_info=True)
        _CACHE[key] = loaded
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return loaded


def clear_model_cache() -> None:
    """Forget every cached model (frees their memory once unreferenced)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def resolve_model(model=None, info: ModelInfo | None = None):
    """``(keras_model, ModelInfo)`` from a Keras model, a model file or None.

    Parameters
    ----------
    model : keras.Model, str, Path or None
        A model object (its metadata is ``info`` or inferred from its
        shapes), a file (loaded through :func:`load_model_cached`), or None
        for the shipped default model.
    info : ModelInfo, optional
        Metadata overriding what the file holds or the shapes say.
    """
    if model is None or isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        loaded, file_info = load_model_cached(model)
        return loaded, info or file_info
    return model, info or ModelInfo.from_model(model)


def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"Model file not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"Expected a .keras model file, got a folder: {path}")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"Not a Keras model file (expected a .keras zip archive): {path}"
        )
    return path


def _check_consistent(model, info: ModelInfo, path: Path) -> None:
    from .model import model_channels

    try:
        cin, cout = model_channels(model)
    except (AttributeError, IndexError, TypeError) as err:
        raise ModelFileError(f"{path} is not an image-to-image model") from err
    if len(model.inputs[0].shape) != 4:
        raise ModelFileError(f"{path} is not a 2D image model (input {model.inputs[0].shape})")
    if (cin, cout) != (info.in_channels, info.out_channels):
        raise ModelFileError(
            f"Metadata of {path} says {info.in_channels}->{info.out_channels} channels "
            f"but the network has {cin}->{cout}"
        )
