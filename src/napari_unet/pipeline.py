"""One call from an image to labels: predict, then post-process."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .axes import Axes, resolve_axes
from .model_io import resolve_model
from .postprocess import probabilities_to_labels
from .prediction import predict_probabilities
from .settings import LabelSettings, PredictionSettings, split_options


def segment(
    image,
    model=None,
    *,
    axes: str | Axes | None = None,
    channel_axis: int | None = None,
    channels: Sequence[int] | str | None = None,
    rgb: bool = False,
    prediction: PredictionSettings | None = None,
    labelling: LabelSettings | None = None,
    return_probabilities: bool = False,
    progress=None,
    cancel=None,
    info=None,
    **options,
):
    """Segment an image with a U-Net.

    Parameters
    ----------
    image : array-like
        2D image, stack or time-lapse, numpy, zarr or dask (see
        :func:`~napari_unet.predict_probabilities`).
    model : keras.Model, str, Path or None
        None uses the shipped default nuclei model.
    axes : str or Axes, optional
        Letters from ``TZCYX``, one per axis of ``image``. Defaults (announced
        with an :class:`~napari_unet.axes.AxesWarning`): 3D is ``ZYX``, 4D
        ``TZYX``; see :func:`~napari_unet.axes.resolve_axes`. Objects are 3D
        along ``Z`` (``instances='3d'``, the default; ``'stitch'`` or
        ``'2d'`` otherwise) and never linked along ``T``.
    channel_axis, channels, rgb
        Channel axis (instead of a ``C`` in ``axes``), which channels feed
        the model, and whether the last axis is RGB(A); see
        :func:`~napari_unet.prediction.prepare_image`.
    prediction : PredictionSettings, optional
        Tiling, batching and normalization.
    labelling : LabelSettings, optional
        Mode (instance labels or a semantic mask), thresholds, minimum size,
        3D instances and ``voxel_size`` ``(Z, Y, X)``; unset values come
        from the model's metadata.
    return_probabilities : bool
        Also return the probability maps, to re-label later without
        running the network again.
    progress, cancel
        Progress callback ``(done, total)`` and cancellation token.
    info : ModelInfo, optional
        Metadata for a Keras model passed as an object.
    **options
        Any field of :class:`~napari_unet.settings.PredictionSettings` or
        :class:`~napari_unet.settings.LabelSettings` given one by one, e.g.
        ``threshold=0.4, min_size=30, tile_size=256``.

    Returns
    -------
    labels : ndarray
        ``int32`` instance labels (unique across a stack) or ``uint8`` mask,
        with the image's spatial shape (channel axis removed).
    probabilities : ndarray, optional
        ``(C_out,) + spatial`` float32, if ``return_probabilities``.

    Examples
    --------
    >>> labels = segment(image)                               # doctest: +SKIP
    >>> labels = segment(stack, axes="TYX", threshold=0.4)    # doctest: +SKIP
    >>> labels = segment(volume, axes="ZYX", voxel_size=(1.0, 0.2, 0.2))  # doctest: +SKIP
    """
    settings = split_options(options, prediction=prediction, labelling=labelling,
                             caller="segment()")
    model, info = resolve_model(model, info)
    probs = predict_probabilities(
        image, model, axes=axes, channel_axis=channel_axis, channels=channels, rgb=rgb,
        settings=settings["prediction"], info=info, progress=progress, cancel=cancel,
    )
    # The axes predict_probabilities resolved (and announced): Z volumes get
    # 3D objects, T frames are labelled one by one.
    shape = image.shape if hasattr(image, "shape") else np.shape(image)
    letters = resolve_axes(tuple(shape), axes, channel_axis=channel_axis, rgb=rgb,
                           announce=False).spatial
    labels = probabilities_to_labels(probs, axes=letters, info=info,
                                     settings=settings["labelling"], cancel=cancel)
    return (labels, probs) if return_probabilities else labels
