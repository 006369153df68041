"""Loading the network of a bioimage.io package, without running package code.

* ``keras_v3``: the ``.keras`` file goes through
  :func:`napari_unet.load_model` (Keras ``safe_mode=True``, no custom
  objects: Lambda layers and unknown classes are refused).
* ``keras_hdf5``: Keras' legacy H5 loader with ``safe_mode=True`` and
  ``compile=False``, after refusing any Lambda layer found in the file's
  model configuration.
* ``tensorflow_saved_model_bundle``: loaded for inference only as a
  ``keras.layers.TFSMLayer`` inside a one-layer Keras model. A SavedModel is
  a TensorFlow graph, not Python code: loading it runs no code from the
  package, but the graph itself can contain any TensorFlow operation (file
  reads and writes included), as with any SavedModel: only open packages
  from sources you trust.

Files are copied out of the package one by one into a private temporary
folder, which is removed once the weights are in memory.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

from ..model_io import ModelFileError, ModelInfo
from .description import PackageModel, read_package_model
from .package import (
    MAX_MEMBER_BYTES,
    Package,
    _copy_limited,
    check_zip_members,
    is_bioimageio_package,
    open_package,
)


def load_bioimageio(path, *, with_info: bool = False):
    """Load the network of a bioimage.io package (zip, folder or description file).

    Parameters
    ----------
    path : str or Path
        The package.
    with_info : bool
        Also return the :class:`~napari_unet.ModelInfo` read from it.

    Returns
    -------
    keras.Model or (keras.Model, ModelInfo)
        A channels-last model mapping ``(batch, H, W, C_in)`` to
        ``(batch, H, W, C_out)`` probabilities.

    Raises
    ------
    ModelFileError
        The package cannot be used (the message names why) or its weights
        do not load.
    """
    with open_package(path) as package:
        spec = read_package_model(package)
        with tempfile.TemporaryDirectory(prefix="napari-unet-package-") as tmp:
            model = _LOADERS[spec.weights_format](package, spec, Path(tmp))
    model = _finish(model, spec, package.path)
    return (model, spec.info) if with_info else model


def _reason(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _load_keras_v3(package: Package, spec: PackageModel, tmp: Path):
    from ..model_io import load_model

    weights = package.copy_out(spec.weights_source, tmp / "weights.keras")
    if is_bioimageio_package(weights):  # a package inside a package: never recurse
        raise ModelFileError(f"{package.path}: the keras_v3 weights are not a Keras file")
    try:
        return load_model(weights)
    except ModelFileError as err:
        raise ModelFileError(f"Cannot load the keras_v3 weights of {package.path}: "
                             f"{_reason(err.__cause__ or err)}") from err


def _load_keras_hdf5(package: Package, spec: PackageModel, tmp: Path):
    import keras

    weights = package.copy_out(spec.weights_source, tmp / "weights.h5")
    _refuse_unsafe_h5(weights, package.path)
    try:
        return keras.saving.load_model(weights, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for bad files.
        raise ModelFileError(f"Cannot load the keras_hdf5 weights of {package.path}: "
                             f"{_reason(err)}") from err


def _refuse_unsafe_h5(weights: Path, where) -> None:
    """Refuse Lambda layers (marshalled Python code) before Keras reads the file."""
    import h5py

    try:
        with h5py.File(weights, "r") as f:
            config = f.attrs.get("model_config")
    except OSError as err:
        raise ModelFileError(f"{where}: the keras_hdf5 weights are not an HDF5 file") from err
    if config is None:
        raise ModelFileError(f"{where}: the keras_hdf5 file holds weights only, no model "
                             "(napari-unet never builds architectures from package code)")
    if isinstance(config, bytes):
        config = config.decode("utf-8")
    try:
        tree = json.loads(config)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{where}: unreadable model configuration in keras_hdf5") from err
    if "Lambda" in set(_class_names(tree)):
        raise ModelFileError(f"{where}: the keras_hdf5 model has a Lambda layer (Python code), "
                             "which napari-unet refuses to load")


def _class_names(node):
    if isinstance(node, dict):
        if "class_name" in node:
            yield str(node["class_name"])
        for value in node.values():
            yield from _class_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _class_names(value)


def _load_saved_model(package: Package, spec: PackageModel, tmp: Path):
    import keras

    if not package.is_zip and package.is_folder(spec.weights_source):
        folder = package.local_folder(spec.weights_source)
    else:
        archive = package.copy_out(spec.weights_source, tmp / "saved_model.zip")
        folder = tmp / "saved_model"
        _extract_zip(archive, folder, package.path)
    if not (folder / "saved_model.pb").is_file():
        raise ModelFileError(f"{package.path}: the tensorflow_saved_model_bundle has no "
                             "saved_model.pb")
    layer, errors = None, []
    for endpoint in ("serve", "serving_default"):
        try:
            layer = keras.layers.TFSMLayer(str(folder), call_endpoint=endpoint, trainable=False)
            break
        except Exception as err:  # TensorFlow raises many types for bad bundles.
            errors.append(_reason(err))
    if layer is None:
        raise ModelFileError(f"Cannot load the tensorflow_saved_model_bundle of {package.path}: "
                             f"{errors[-1]}")
    image = keras.Input((None, None, spec.info.in_channels), name="image")
    try:
        out = layer(image)
    except Exception as err:
        raise ModelFileError(f"The SavedModel of {package.path} does not take a "
                             f"(batch, y, x, {spec.info.in_channels}) float32 image: "
                             f"{_reason(err)}") from err
    if isinstance(out, dict):
        if spec.output_id in out:
            out = out[spec.output_id]
        elif len(out) == 1:
            out = next(iter(out.values()))
        else:
            raise ModelFileError(f"The SavedModel of {package.path} returns {sorted(out)}, "
                                 f"not {spec.output_id!r}")
    model = keras.Model(image, out, name="bioimageio_saved_model")
    model.napari_unet_saved_model = True
    return model


def _extract_zip(archive: Path, folder: Path, where) -> None:
    """Extract a zip member by member: safe names only, sizes counted."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise ModelFileError(f"{where}: the SavedModel bundle is not a zip file") from err
    with zf:
        check_zip_members(zf, where)
        left = MAX_MEMBER_BYTES  # for the whole bundle
        for info in zf.infolist():
            target = folder.joinpath(*[p for p in info.filename.replace("\\", "/").split("/")
                                       if p not in ("", ".")])
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                left -= _copy_limited(src, dst, left, f"{where}: the SavedModel bundle")


_LOADERS = {
    "keras_v3": _load_keras_v3,
    "keras_hdf5": _load_keras_hdf5,
    "tensorflow_saved_model_bundle": _load_saved_model,
}


def _finish(model, spec: PackageModel, where):
    """Append the package's sigmoid, record the size step, check the shapes."""
    import keras

    from ..model import model_channels
    from ..model_io import _check_consistent

    if spec.sigmoid:
        image = keras.Input((None, None, spec.info.in_channels), name="image")
        out = keras.layers.Activation("sigmoid", name="package_sigmoid")(model(image))
        wrapped = keras.Model(image, out, name=f"{model.name}_sigmoid")
        wrapped.napari_unet_saved_model = getattr(model, "napari_unet_saved_model", False)
        model = wrapped
    # The tiler puts windows on this grid; pooling layers may not tell it.
    model.napari_unet_depth = spec.multiple.bit_length() - 1
    try:
        cin, cout = model_channels(model)
    except (AttributeError, IndexError, TypeError) as err:
        raise ModelFileError(f"{where} is not an image-to-image model") from err
    info: ModelInfo = spec.info
    if (cin, cout) != (info.in_channels, info.out_channels):
        raise ModelFileError(f"The description of {where} says {info.in_channels}->"
                             f"{info.out_channels} channels but the network has {cin}->{cout}")
    _check_consistent(model, info, Path(where))
    return model
