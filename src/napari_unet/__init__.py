"""napari-unet: U-Net segmentation for napari, with a headless core.

The core (everything importable from here) never imports napari or Qt::

    >>> import napari_unet as nu
    >>> labels = nu.segment(image)                      # shipped nuclei model
    >>> probs = nu.predict_probabilities(stack, model)  # (C_out, Z, Y, X)
    >>> labels = nu.probabilities_to_labels(probs, threshold=0.4)

TensorFlow is imported lazily, on first use, so that napari starts fast.
"""

from importlib import import_module

from ._tf_isolation import install as _isolate_tensorflow

__version__ = "0.1.0"

# Before anything imports TensorFlow: keep its LLVM from clashing with the
# OpenGL driver's in napari's process (see _tf_isolation).
_isolate_tensorflow()

_EXPORTS = {
    "build_unet": "model",
    "REFERENCE_PARAMS": "model",
    "load_model": "model_io",
    "save_model": "model_io",
    "read_model_info": "model_io",
    "default_model_path": "model_io",
    "ModelInfo": "model_io",
    "ModelFileError": "model_io",
    "predict_probabilities": "prediction",
    "prepare_image": "prediction",
    "probabilities_to_labels": "postprocess",
    "segment": "pipeline",
    "segment_zarr": "largescale",
    "segment_dask": "largescale",
    "Cancelled": "cancel",
    "normalize_percentile": "normalize",
    "percentile_range": "normalize",
    "train": "training",
    "TrainingResult": "training",
    "Augmentation": "training",
    "read_dataset": "training",
    "make_targets": "training",
    "evaluate": "metrics",
    "object_confidence": "confidence",
    "dice": "metrics",
    "match_instances": "metrics",
    "otsu_watershed": "baseline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
