"""Export a napari-unet model as a bioimage.io model package (spec 0.5).

The package is a zip file holding

* ``rdf.yaml``: the model description, format ``model 0.5.12`` (the format
  of ``bioimageio.spec`` 0.5.12, which the current ``bioimageio.core`` 0.11
  implements; newer 0.5.x validators update it on load);
* ``model.keras``: the original weights (``keras_v3``), and
  ``tf_saved_model.zip``: the same network as a TensorFlow SavedModel
  (``tensorflow_saved_model_bundle``), because deepImageJ (Fiji) runs
  SavedModels but not Keras files; ``bioimageio.core`` (ilastik, Python)
  runs both;
* test input and output tensors (``.npy``): a crop of the shipped 2D sample
  image and napari-unet's own prediction on it, so that ``bioimageio test``
  checks that the package reproduces napari-unet; the same as TIFF sample
  tensors for humans;
* a cover image, the model card as documentation, the licence, authors,
  citations, the training data, and the :class:`~napari_unet.ModelInfo`
  under ``config.napari_unet`` so that importing the package back restores
  thresholds and minimum size.

The description (built by :mod:`.rdf`) is written as plain YAML, not with ``bioimageio.spec``'s
classes: the spec library pins exact versions (``bioimageio.core`` 0.11
needs ``bioimageio.spec`` 0.5.12, which fails on pydantic >= 2.14, the
version napari installs), and export must work in any napari environment.
The tests validate and test-run exported packages with the zoo's own tools
(``scripts/bioimageio_check.sh`` makes their environment).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from ..model_io import ModelFileError, ModelInfo, default_model_path, load_model, save_model
from .rdf import INPUT_ID, OUTPUT_ID, build_description

DESCRIPTION_FILE = "rdf.yaml"
#: Edge of the test tensors (cut from the sample image), in pixels.
TEST_SIZE = 256


def export_bioimageio(
    model=None,
    path=None,
    *,
    info: ModelInfo | None = None,
    overwrite: bool = False,
    name: str | None = None,
    description: str | None = None,
    authors=None,
    test_image=None,
    saved_model: bool = True,
) -> Path:
    """Write a model as a bioimage.io model package (a ``.zip`` file).

    Parameters
    ----------
    model : str, Path, keras.Model or None
        A ``.keras`` file, a bioimage.io package with Keras weights, a Keras
        model (with ``info``), or None / ``"default"`` for the shipped
        nuclei model.
    path : str or Path
        The package to write; must end in ``.zip``. Written atomically.
    info : ModelInfo, optional
        Metadata of ``model`` when it is a Keras object (inferred if
        omitted); replaces the file's metadata otherwise.
    overwrite : bool
        Replace an existing ``path``.
    name, description : str, optional
        Human-readable name (letters, digits, spaces and ``_+-()``; other
        characters become ``_``) and one paragraph; default from ``info``.
    authors : list of str or dict, optional
        Authors of the model: names, or dicts with the spec's author fields
        (``name``, ``affiliation``, ``email``, ``github_user``, ``orcid``).
        Default: the napari-unet developers for the shipped model and its
        fine-tuned descendants, else an "unknown author" placeholder.
    test_image : array-like, optional
        2D image ``(Y, X)`` or ``(Y, X, C)`` to cut the test tensors from;
        default the shipped sample ``nuclei2d.tif``.
    saved_model : bool
        Also include TensorFlow SavedModel weights (for deepImageJ).

    Returns
    -------
    Path
        The written package.

    Raises
    ------
    ModelFileError
        The model cannot be loaded or exported.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    ValueError
        ``path`` does not end in ``.zip``, or a bad author or test image.
    """
    if path is None:
        raise ValueError("Pass the package path to write, e.g. 'my_model.zip'.")
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise ValueError(f"A bioimage.io package must be a .zip file: {path}")
    exists = f"Package already exists, not overwriting: {path}"
    if path.exists() and not overwrite:
        raise FileExistsError(exists)

    keras_model, info, keras_file, is_default = _resolve_model(model, info)
    with tempfile.TemporaryDirectory(prefix="napari-unet-bioimageio-") as tmp:
        files = _stage_files(Path(tmp), keras_model, info, keras_file, is_default, test_image,
                             saved_model)
        rdf = build_description(files, keras_model, info, is_default=is_default, name=name,
                                description=description, authors=authors)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, overwrite=overwrite, exists_message=exists) as tmp_zip:
            _write_zip(tmp_zip, rdf, files)
    return path


# --------------------------------------------------------------------------
# The model and its files
# --------------------------------------------------------------------------
def _resolve_model(model, info):
    """``(keras_model, info, .keras file or None, is_default)``."""
    if model is None or (isinstance(model, str) and model == "default"):
        model = default_model_path()
    if isinstance(model, (str, Path)):
        source = Path(model)
        keras_model, file_info = load_model(source, with_info=True)
        if getattr(keras_model, "napari_unet_saved_model", False):
            raise ModelFileError(
                f"{source} has only TensorFlow SavedModel weights, which napari-unet cannot "
                "re-export; export a package with keras_v3 or keras_hdf5 weights instead.")
        keras_file = source if source.suffix == ".keras" and source.is_file() else None
        is_default = keras_file is not None and _same_file(keras_file, default_model_path())
        return keras_model, info or file_info, keras_file, is_default
    if not hasattr(model, "inputs") or not hasattr(model, "save"):
        raise ModelFileError(f"Expected a .keras file, a package or a Keras model, got {model!r}")
    return model, info or ModelInfo.from_model(model), None, False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _stage_files(staging, keras_model, info, keras_file, is_default, test_image, saved_model):
    """Write every file of the package into ``staging`` (a private temp folder)."""
    import tifffile

    files = {"weights": staging / "model.keras"}
    if keras_file is not None:
        shutil.copyfile(keras_file, files["weights"])
    else:
        save_model(keras_model, files["weights"], info)
    if saved_model:
        files["saved_model"] = _write_saved_model(keras_model, staging)
    test_in, test_out = make_test_tensors(keras_model, info, test_image)
    files["test_input"] = staging / "test_input.npy"
    files["test_output"] = staging / "test_output.npy"
    np.save(files["test_input"], test_in)
    np.save(files["test_output"], test_out)
    # Sample tensors: the same arrays as images for humans (YX(C) TIFFs).
    files["sample_input"] = staging / "sample_input.tif"
    files["sample_output"] = staging / "sample_output.tif"
    tifffile.imwrite(files["sample_input"], test_in[0, ..., 0] if test_in.shape[-1] == 1
                     else test_in[0])
    tifffile.imwrite(files["sample_output"], test_out[0])
    files["cover"] = staging / "cover.png"
    _write_cover(files["cover"], test_in[0], test_out[0], info)
    files["documentation"] = staging / "README.md"
    card = (default_model_path().with_suffix(".md").read_text(encoding="utf-8")
            if is_default else model_card(info))
    files["documentation"].write_text(card, encoding="utf-8")
    return files


def _write_saved_model(keras_model, staging: Path) -> Path:
    """The network as a zipped TensorFlow SavedModel (the spec's layout).

    Its ``serve`` and ``serving_default`` signatures take ``image`` (NHWC
    float32) and return ``{"probabilities": ...}``: ``bioimageio.core``
    reads outputs from a dict, and the names match the description's tensor
    ids. A bare ``tf.Module`` holds the variables once (a Keras export
    stores them twice, doubling the file).
    """
    import tensorflow as tf

    cin = int(keras_model.inputs[0].shape[-1])
    module = tf.Module()
    module.weights_ = [w.value for w in keras_model.weights]

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, cin), tf.float32,
                                                name=INPUT_ID)])
    def serve(image):
        return {OUTPUT_ID: tf.cast(keras_model(image, training=False), tf.float32)}

    module.serve = serve
    folder = staging / "tf_saved_model"
    tf.saved_model.save(module, str(folder),
                        signatures={"serving_default": serve.get_concrete_function()})
    target = staging / "tf_saved_model.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(folder).as_posix())
    return target


def make_test_tensors(keras_model, info: ModelInfo, image=None) -> tuple[np.ndarray, np.ndarray]:
    """Test input ``(1, Y, X, C)`` and napari-unet's prediction ``(1, Y, X, C_out)``.

    The input is a centred crop of ``image`` (default: the shipped sample
    ``nuclei2d.tif``) of at most 256 px with a size the model accepts, as
    float32 raw intensities; the output is
    :func:`~napari_unet.predict_probabilities` on it with one window covering
    the crop: exactly the network applied to the percentile-normalized crop,
    which is what ``bioimageio.core`` computes from the description.
    """
    from ..model import model_channels, model_depth
    from ..prediction import predict_probabilities

    cin = model_channels(keras_model)[0]
    if image is None:
        from importlib.resources import as_file

        from .._sample_data import sample_path
        from ..tiff import read_tiff

        with as_file(sample_path("nuclei2d.tif")) as sample:
            image = read_tiff(sample)[0]
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], cin, axis=-1)
    if image.ndim != 3 or image.shape[-1] != cin:
        raise ValueError(f"The test image must be (Y, X) or (Y, X, {cin}), got {image.shape}")
    multiple = 2 ** model_depth(keras_model)
    size = min(TEST_SIZE, min(image.shape[:2]) // multiple * multiple)
    if size < multiple:
        raise ValueError(f"The test image {image.shape[:2]} is smaller than {multiple} pixels")
    y0, x0 = ((n - size) // 2 for n in image.shape[:2])
    crop = np.ascontiguousarray(image[y0:y0 + size, x0:x0 + size], dtype=np.float32)
    # float32 always: consumers (bioimageio.core, deepImageJ) run the weights in
    # float32 and must reproduce these outputs to ~1e-5, which bf16 would miss.
    probs = predict_probabilities(crop, keras_model, info=info, channel_axis=-1,
                                  tile_size=size, overlap=0, precision="float32")
    return crop[None], np.ascontiguousarray(np.moveaxis(probs, 0, -1)[None])


def _write_cover(target: Path, image: np.ndarray, probs: np.ndarray, info: ModelInfo) -> None:
    """A 2:1 PNG: the normalized input left, the prediction over it right."""
    import imageio.v3 as iio

    from ..normalize import normalize_percentile

    gray = np.clip(normalize_percentile(image.mean(axis=-1), *info.percentiles), 0, 1)
    left = np.repeat(gray[..., None], 3, axis=-1)
    right = left * 0.5
    right[..., 1] = np.maximum(right[..., 1], probs[..., 0])  # first output in green
    if probs.shape[-1] > 1:  # second (boundary) in magenta
        right[..., 0] = np.maximum(right[..., 0], probs[..., 1])
        right[..., 2] = np.maximum(right[..., 2], probs[..., 1])
    cover = (np.concatenate([left, right], axis=1) * 255).round().astype(np.uint8)
    iio.imwrite(target, cover, extension=".png")


def model_card(info: ModelInfo) -> str:
    """A Markdown model card generated from a model's metadata."""
    training = info.training if isinstance(info.training, dict) else {}
    kind = "softmax class" if len(info.classes or []) > 1 else "sigmoid"
    lines = [
        f"# Model card: {info.name}", "",
        info.description or "A U-Net trained or fine-tuned with napari-unet.", "",
        "## Model", "",
        f"* U-Net (Ronneberger et al. 2015) built by napari-unet: base {info.base_filters} "
        f"filters, depth {info.depth}, 3x3 ReLU convolutions, 'same' padding.",
        f"* Input: {info.in_channels} channel(s), normalized per image and channel to the "
        f"{info.percentiles[0]:g}th/{info.percentiles[1]:g}th percentiles.",
        f"* Outputs ({kind} probabilities): {', '.join(info.outputs)}.",
        f"* Post-processing in napari-unet: thresholds {info.thresholds}, minimum object "
        f"size {info.min_size} px.",
    ]
    if info.parent:
        lines.append(f"* Fine-tuned from: {info.parent}"
                     + (" (trained on mnfinder 1.2.3 data, MIT licence)."
                        if info.parent == "nuclei_default" else "."))
    lines += ["", "## Training", ""]
    keys = ("data", "epochs", "best_epoch", "batch_size", "patch_size", "learning_rate",
            "loss", "stopped")
    lines += [f"* {k.replace('_', ' ')}: {training[k]}" for k in keys if k in training]
    if not training:
        lines.append("Not recorded.")
    lines += ["", "## Validation", ""]
    best = training.get("best_scores")
    if isinstance(best, dict) and best:
        lines += [f"* {k}: {v:.4g}" if isinstance(v, float) else f"* {k}: {v}"
                  for k, v in best.items()]
        lines.append(f"* validation data: {training.get('validation', 'not recorded')}")
    else:
        lines.append("No validation scores recorded; validate on your own annotated images.")
    lines += ["", "## Use", "",
              "Open the package in napari-unet (*Load model file...*), or run it with "
              "bioimageio.core, ilastik or deepImageJ.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# The description
# --------------------------------------------------------------------------
def _write_zip(target: Path, rdf: dict, files: dict) -> None:
    import yaml

    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr(DESCRIPTION_FILE, yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True))
        for file in files.values():
            zf.write(file, file.name)
