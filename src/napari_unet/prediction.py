"""N-D prediction: stacks, time-lapses and channels around the 2D tiler.

The 2D model is applied plane by plane over the last two spatial axes;
every leading axis (Z, T, ...) is iterated. A channel axis, if any, is named
explicitly, and channels are selected or combined explicitly: a 3-channel
image is never silently reduced to one channel for a 1-channel model.
numpy and dask arrays are both accepted; a dask array is computed one plane
at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .model_io import ModelInfo
from .normalize import check_dtype, percentile_range
from .tiling import ProgressCallback, count_windows, predict_plane


@dataclass(frozen=True)
class PreparedImage:
    """An image viewed as ``spatial + (C,)`` with the model's channels.

    ``data`` stays lazy (numpy view or dask array); nothing is loaded here.
    """

    data: object
    spatial_shape: tuple[int, ...]

    @property
    def plane_indices(self):
        return np.ndindex(*self.spatial_shape[:-2])

    @property
    def n_planes(self) -> int:
        return int(np.prod(self.spatial_shape[:-2], dtype=int))

    def plane(self, index: tuple[int, ...]) -> np.ndarray:
        """One ``(H, W, C)`` plane as a numpy array (computes dask lazily)."""
        return np.asarray(self.data[index])


def _channel_count_error(n_image: int, n_model: int) -> ValueError:
    return ValueError(
        f"The image has {n_image} channels but the model reads {n_model}: "
        f"select {n_model} with channels=[...]"
        + (" or combine them with channels='mean'" if n_model == 1 else "")
        + "."
    )


def prepare_image(
    image,
    in_channels: int,
    *,
    channel_axis: int | None = None,
    channels: Sequence[int] | str | None = None,
) -> PreparedImage:
    """Validate an image and move/select its channels for the model.

    Parameters
    ----------
    image : array-like (numpy, dask, zarr)
        2D or N-D image. Without ``channel_axis`` it is single-channel and
        its last two axes are Y and X.
    in_channels : int
        Channels the model reads.
    channel_axis : int, optional
        Axis holding channels (e.g. -1 for RGB/RGBA).
    channels : list of int or 'mean', optional
        Which channels to feed the model, in order, or ``'mean'`` to average
        all channels into one. Required when the image's channel count
        differs from the model's.

    Raises
    ------
    ValueError
        With a message saying what is wrong and how to fix it.
    """
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        image = np.asarray(image)
    check_dtype(image)
    shape = tuple(int(s) for s in image.shape)
    if 0 in shape:
        raise ValueError(f"The image is empty (shape {shape}).")
    data = image
    if channel_axis is not None:
        if not -len(shape) <= channel_axis < len(shape):
            raise ValueError(f"channel_axis {channel_axis} is out of range for shape {shape}.")
        data = _moveaxis(data, channel_axis, -1)
    else:
        data = data[..., None]
        if channels not in (None, [0], (0,)):
            raise ValueError("channels= needs channel_axis= to say which axis holds channels.")
    spatial = tuple(int(s) for s in data.shape[:-1])
    if len(spatial) < 2:
        raise ValueError(
            f"Expected at least a 2D image (Y, X), got shape {shape}"
            + (f" with channel_axis={channel_axis}" if channel_axis is not None else "")
            + "."
        )
    n = int(data.shape[-1])
    if isinstance(channels, str):
        if channels != "mean":
            raise ValueError(f"channels must be a list of indices or 'mean', got {channels!r}")
        if in_channels != 1:
            raise ValueError(f"channels='mean' gives 1 channel but the model reads {in_channels}.")
        data = data.astype(np.float32).mean(axis=-1, keepdims=True)
    elif channels is not None:
        channels = [int(c) for c in channels]
        bad = [c for c in channels if not -n <= c < n]
        if bad:
            raise ValueError(f"Channel index {bad[0]} is out of range: the image has {n} channels.")
        if len(channels) != in_channels:
            raise _channel_count_error(len(channels), in_channels)
        if channels != list(range(n)):
            data = data[..., channels]
    elif n != in_channels:
        raise _channel_count_error(n, in_channels)
    return PreparedImage(data=data, spatial_shape=spatial)


def _moveaxis(data, source, dest):
    if type(data).__module__.startswith("dask"):
        import dask.array as da

        return da.moveaxis(data, source, dest)
    return np.moveaxis(np.asarray(data), source, dest)


def stack_range(prep: PreparedImage, low: float, high: float):
    """Per-channel percentile range over a whole (possibly lazy) stack.

    Samples at most ~64 evenly spaced planes, so huge dask stacks are not
    read in full just to estimate two numbers.
    """
    idx = list(prep.plane_indices)
    step = max(1, len(idx) // 64)
    planes = np.stack([prep.plane(i) for i in idx[::step]])
    c = planes.shape[-1]
    ranges = [percentile_range(planes[..., k], low, high) for k in range(c)]
    return np.array([r[0] for r in ranges]), np.array([r[1] for r in ranges])


def plane_range(plane: np.ndarray, low: float, high: float):
    """Per-channel percentile range of one ``(H, W, C)`` plane."""
    ranges = [percentile_range(plane[..., k], low, high) for k in range(plane.shape[-1])]
    return np.array([r[0] for r in ranges]), np.array([r[1] for r in ranges])


def intensity_range(image, model=None, *, channel_axis=None, channels=None,
                    percentiles=None, info: ModelInfo | None = None):
    """The ``(lo, hi)`` normalization range of one 2D image, per model input channel.

    Same percentiles and subsample as :func:`predict_probabilities` uses per
    plane; pass the result as its ``intensity_range`` to predict a crop of
    this image with the whole image's intensity mapping.
    """
    model, info = resolve_model(model, info)
    from .model import model_channels

    prep = prepare_image(image, model_channels(model)[0], channel_axis=channel_axis,
                         channels=channels)
    if prep.n_planes != 1:
        raise ValueError(f"intensity_range needs one 2D image, got {prep.n_planes} planes")
    low, high = percentiles or (info.normalization.get("low", 1.0),
                                info.normalization.get("high", 99.8))
    return plane_range(prep.plane(next(iter(prep.plane_indices))), low, high)


def predict_probabilities(
    image,
    model=None,
    *,
    channel_axis: int | None = None,
    channels: Sequence[int] | str | None = None,
    tile_size: int | None = None,
    overlap: int = 32,
    batch_size: int = 16,
    normalize: bool = True,
    percentiles: tuple[float, float] | None = None,
    normalize_scope: str = "plane",
    intensity_range=None,
    info: ModelInfo | None = None,
    progress: ProgressCallback | None = None,
    cancel=None,
) -> np.ndarray:
    """Probability maps of a U-Net over an image of any size and dimension.

    Parameters
    ----------
    image : array-like
        2D ``(Y, X)`` image or stack ``(..., Y, X)`` (Z, T, T+Z ...), numpy
        or dask; with ``channel_axis`` for multichannel/RGB data.
    model : keras.Model or str or Path, optional
        The network, a ``.keras`` file, or None for the shipped default.
    channel_axis, channels
        See :func:`prepare_image`.
    tile_size : int, optional
        Window edge in pixels; defaults to the model's training tile (128).
    overlap : int
        Overlap between neighbouring windows (blended with a cosine taper).
    batch_size : int
        Windows per network call. 16 is a good CPU default at 128 px.
    normalize : bool
        Percentile-normalize intensities (as the model was trained).
    percentiles : (low, high), optional
        Defaults to the model's metadata (1, 99.8).
    normalize_scope : {'plane', 'stack'}
        Compute percentiles per 2D plane (robust to bleaching over time) or
        once over the whole stack (preserves intensity trends).
    intensity_range : (lo, hi), optional
        Map ``lo`` to 0 and ``hi`` to 1 in every plane instead of computing
        percentiles from ``image``; e.g. :func:`intensity_range` of the whole
        plane when ``image`` is a crop of it, so that the crop is predicted
        as it would be in the whole image.
    info : ModelInfo, optional
        Metadata of ``model`` when it is passed as a Keras object.
    progress : callable, optional
        ``progress(done, total)`` in windows, called at the start and after
        every batch.
    cancel : callable or threading.Event, optional
        Checked between batches; raises :class:`~napari_unet.Cancelled`.

    Returns
    -------
    ndarray, float32, shape ``(C_out,) + spatial_shape``
        One probability map per model output (``info.outputs`` names them).
    """
    model, info = resolve_model(model, info)
    from .model import model_channels, model_depth

    n_in, n_out = model_channels(model)
    prep = prepare_image(image, n_in, channel_axis=channel_axis, channels=channels)
    tile_size = int(tile_size or info.tile_size)
    multiple = 2 ** model_depth(model)
    if normalize_scope not in ("plane", "stack"):
        raise ValueError(f"normalize_scope must be 'plane' or 'stack', got {normalize_scope!r}")
    low, high = percentiles or (info.normalization.get("low", 1.0),
                                info.normalization.get("high", 99.8))

    per_plane = count_windows(prep.spatial_shape[-2:], tile_size, overlap)
    total = per_plane * prep.n_planes
    done = 0
    if progress is not None:
        progress(0, total)

    def step(n):
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    fixed = stack_range(prep, low, high) if normalize and normalize_scope == "stack" else None
    out = np.empty((n_out,) + prep.spatial_shape, dtype=np.float32)
    for index in prep.plane_indices:
        plane = prep.plane(index)
        if not normalize:
            lo, hi = 0.0, 1.0
        elif intensity_range is not None:
            lo, hi = intensity_range
        elif fixed is not None:
            lo, hi = fixed
        else:
            lo, hi = plane_range(plane, low, high)
        predict_plane(plane, model, lo=lo, hi=hi, tile_size=tile_size, overlap=overlap,
                      batch_size=batch_size, multiple=multiple, progress=step, cancel=cancel,
                      out=out[(slice(None),) + index])
    return out


_DEFAULT_CACHE: dict = {}


def resolve_model(model, info: ModelInfo | None = None):
    """Return ``(keras_model, ModelInfo)`` from a model, a path or None.

    The shipped default model is loaded once per process (segmenting a
    folder image by image must not reload it each time); it is only ever
    used for inference, never trained in place.
    """
    from .model_io import default_model_path, load_model

    if model is None:
        key = str(default_model_path())
        if key not in _DEFAULT_CACHE:
            _DEFAULT_CACHE[key] = load_model(None, with_info=True)
        loaded, file_info = _DEFAULT_CACHE[key]
        return loaded, info or file_info
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        loaded, file_info = load_model(model, with_info=True)
        return loaded, info or file_info
    return model, info or ModelInfo.from_model(model)
