"""One call from an image to labels: predict, then post-process."""

from __future__ import annotations

from collections.abc import Sequence


from .postprocess import probabilities_to_labels
from .prediction import predict_probabilities, resolve_model


def segment(
    image,
    model=None,
    *,
    mode: str = "instance",
    threshold: float | None = None,
    boundary_threshold: float | None = None,
    min_size: int | None = None,
    channel_axis: int | None = None,
    channels: Sequence[int] | str | None = None,
    tile_size: int | None = None,
    overlap: int = 32,
    batch_size: int = 16,
    normalize_scope: str = "plane",
    return_probabilities: bool = False,
    progress=None,
    cancel=None,
    info=None,
):
    """Segment an image with a U-Net.

    Parameters
    ----------
    image : array-like
        2D image, stack or time-lapse (see
        :func:`~napari_unet.predict_probabilities`).
    model : keras.Model, str, Path or None
        None uses the shipped default nuclei model.
    mode : {'instance', 'semantic'}
        Instance labels or a 0/1 mask.
    threshold, boundary_threshold, min_size
        Post-processing settings (defaults come from the model's metadata);
        see :func:`~napari_unet.probabilities_to_labels`.
    channel_axis, channels, tile_size, overlap, batch_size, normalize_scope
        Prediction settings; see :func:`~napari_unet.predict_probabilities`.
    return_probabilities : bool
        Also return the probability maps, to re-label later without
        running the network again.
    progress, cancel
        Progress callback ``(done, total)`` and cancellation token.
    info : ModelInfo, optional
        Metadata for a Keras model passed as an object.

    Returns
    -------
    labels : ndarray
        ``int32`` instance labels (unique across a stack) or ``uint8`` mask,
        with the image's spatial shape (channel axis removed).
    probabilities : ndarray, optional
        ``(C_out,) + spatial`` float32, if ``return_probabilities``.
    """
    model, info = resolve_model(model, info)
    probs = predict_probabilities(
        image, model, info=info, channel_axis=channel_axis, channels=channels,
        tile_size=tile_size, overlap=overlap, batch_size=batch_size,
        normalize_scope=normalize_scope, progress=progress, cancel=cancel,
    )
    labels = probabilities_to_labels(
        probs, info=info, mode=mode, threshold=threshold,
        boundary_threshold=boundary_threshold, min_size=min_size,
    )
    return (labels, probs) if return_probabilities else labels
