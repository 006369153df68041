"""Preparing a training run's inputs for :func:`~napari_unet.training.loop.train`.

The model a run starts from (loaded from a file or taken as an object,
refused when its weights cannot be fine-tuned, and copied uncompiled so the
original stays intact), the validation data held out of the training planes
(whole planes, or a strip of a single plane), and the ``PyDataset`` that
feeds ``keras.Model.fit`` random batches of augmented patches.
"""

from __future__ import annotations

from pathlib import Path

from ..model_io import ModelFileError, ModelInfo
from .sampler import PatchSampler


def _resolve_start(model, info):
    """``(keras_model or None, parent ModelInfo or None, parent name)``."""
    if model is None:
        return None, None, None
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from ..model_io import load_model

        loaded, parent = load_model(model, with_info=True)
        _check_trainable(loaded, model)
        return loaded, parent, parent.name or Path(model).stem
    _check_trainable(model, model.name)
    parent = info if info is not None else ModelInfo.from_model(model)
    return model, parent, parent.name or model.name


def _check_trainable(model, where) -> None:
    """Refuse a model whose weights are a frozen TensorFlow SavedModel (a zoo import)."""
    if getattr(model, "napari_unet_saved_model", False):
        raise ModelFileError(
            f"{where} has only TensorFlow SavedModel weights, which cannot be fine-tuned. "
            "Start from a .keras model, or a bioimage.io package with keras_v3 or "
            "keras_hdf5 weights.")


def _uncompiled_copy(model, weights: bool = False):
    """A new model with ``model``'s architecture (and weights), not compiled.

    Rebuilt from the config rather than ``clone_model``, which would replay
    the original's compile() and fail on unregistered custom losses.
    """
    copy = model.__class__.from_config(model.get_config())
    if weights:
        copy.set_weights(model.get_weights())
    return copy


def _split_validation(planes, labels, fraction: float, rng, counted=None):
    """Hold out whole planes, or a strip of a single plane.

    Returns train planes, labels, counted; validation planes, labels,
    counted; and how validation was split (counted lists are None when
    ``counted`` is).
    """
    n = len(planes)
    cnt = counted if counted is not None else [None] * n
    if n >= 2:
        n_val = min(n - 1, max(1, int(round(fraction * n))))
        val = sorted(rng.choice(n, n_val, replace=False).tolist())
        train = [i for i in range(n) if i not in val]
        parts = [[seq[i] for i in idx] for idx in (train, val) for seq in (planes, labels, cnt)]
        mode = "held-out planes"
    else:
        img, lab = planes[0], labels[0]
        axis = 0 if lab.shape[0] >= lab.shape[1] else 1
        cut = int(round(lab.shape[axis] * (1 - fraction)))
        if not 0 < cut < lab.shape[axis]:
            raise ValueError("The single training image is too small to split off validation "
                             "data; give val_images or set val_fraction=0.")
        a, b = [slice(None)] * 2, [slice(None)] * 2
        a[axis], b[axis] = slice(0, cut), slice(cut, None)
        parts = [[None if x is None else x[tuple(s)]] for s in (a, b)
                 for x in (img, lab, cnt[0])]
        mode = "held-out strip of the image"
    if counted is None:
        parts[2] = parts[5] = None
    return (*parts, mode)


def _counts(counted) -> bool:
    """Whether some pixel of these planes counts (None: all of them do)."""
    return counted is None or any(c is None or c.any() for c in counted)


def _patch_dataset(sampler: PatchSampler, steps: int, batch_size: int, rng):
    import keras

    class PatchDataset(keras.utils.PyDataset):
        """``steps`` random batches per epoch; one RNG, used by one thread."""

        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)

        def __len__(self):
            return steps

        def __getitem__(self, index):
            return sampler.batch(batch_size, rng)

    return PatchDataset()
