"""napari-unet: U-Net segmentation for napari, with a headless core.

The core (everything importable from here) never imports napari or Qt::

    >>> import napari_unet as nu
    >>> labels = nu.segment(image)                      # shipped nuclei model
    >>> probs = nu.predict_probabilities(stack, model)  # (C_out, Z, Y, X)
    >>> labels = nu.probabilities_to_labels(probs, threshold=0.4)

TensorFlow is imported lazily, on first use; importing the package changes
nothing else in the process. The napari docks run the network in a separate
worker process (:mod:`napari_unet.worker`), so napari never imports TensorFlow.
"""

from importlib import import_module

__version__ = "0.1.0"

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
