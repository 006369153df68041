"""N-D prediction: stacks, time-lapses and channels around the 2D tiler.

The 2D model is applied plane by plane over the Y and X axes; every other
spatial axis (Z, T) is iterated. Which axis is which comes from the one
axes resolver (:func:`napari_unet.axes.resolve_axes`). Channels are selected
or combined explicitly: a 3-channel image is never silently reduced to one
channel for a 1-channel model. numpy, zarr and dask arrays are accepted; lazy
arrays are read one plane at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import engine
from .axes import Axes, resolve_axes
from .model_io import ModelInfo, resolve_model
from .normalize import check_dtype, percentile_range
from .settings import PredictionSettings, split_options
from .tiling import ProgressCallback, predict_plane
from .window_grid import check_tiling, count_windows


@dataclass(frozen=True)
class PreparedImage:
    """An image viewed as ``spatial + (C,)`` with the model's channels.

    ``data`` stays lazy (numpy view, zarr or dask array); nothing is loaded
    here. ``axes`` names the spatial axes (e.g. ``"ZYX"``), Y and X last.
    """

    data: object
    spatial_shape: tuple[int, ...]
    axes: str = ""

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
    axes: str | Axes | None = None,
    channel_axis: int | None = None,
    channels: Sequence[int] | str | None = None,
    rgb: bool = False,
) -> PreparedImage:
    """Validate an image and move/select its channels for the model.

    Parameters
    ----------
    image : array-like (numpy, dask, zarr)
        2D or N-D image.
    in_channels : int
        Channels the model reads.
    axes : str or Axes, optional
        Letters from ``TZCYX``, one per axis of ``image`` (see
        :func:`napari_unet.axes.resolve_axes`, which also gives the
        defaults: 2D ``YX``, 3D ``ZYX``, 4D ``TZYX``).
    channel_axis : int, optional
        Axis holding channels (e.g. -1 for RGB/RGBA), when ``axes`` is not
        given.
    channels : list of int or 'mean', optional
        Which channels to feed the model, in order, or ``'mean'`` to average
        all channels into one. Required when the image's channel count
        differs from the model's.
    rgb : bool
        The last axis holds RGB(A) channels.

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
    if len(shape) < 2:
        raise ValueError(f"Expected at least a 2D image (Y, X), got shape {shape}.")
    resolved = resolve_axes(shape, axes, channel_axis=channel_axis, rgb=rgb)
    data = image
    if resolved.channel_axis is not None:
        data = _moveaxis(data, resolved.channel_axis, -1)
    else:
        data = data[..., None]
        if channels not in (None, [0], (0,)):
            raise ValueError("channels= needs a channel axis (axes with 'C', or channel_axis=).")
    spatial = tuple(int(s) for s in data.shape[:-1])
    if len(spatial) < 2:
        raise ValueError(f"Expected at least a 2D image (Y, X) besides channels, got shape "
                         f"{shape} with axes {resolved.letters}.")
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
    h, w = spatial[-2:]
    if min(h, w) < 2:
        raise ValueError(f"The image planes are {h}x{w} pixels (Y x X): too small to segment; "
                         "need at least 2x2.")
    if isinstance(image, np.ndarray) and image.dtype.kind == "f" and not np.isfinite(image).any():
        raise ValueError("The image holds no finite values (all NaN or infinite): nothing to "
                         "segment.")
    return PreparedImage(data=data, spatial_shape=spatial, axes=resolved.spatial)


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


def intensity_range(image, model=None, *, axes=None, channel_axis=None, channels=None,
                    percentiles=None, info: ModelInfo | None = None):
    """The ``(lo, hi)`` normalization range of one 2D image, per model input channel.

    Same percentiles and subsample as :func:`predict_probabilities` uses per
    plane; pass the result as its ``intensity_range`` to predict a crop of
    this image with the whole image's intensity mapping.
    """
    model, info = resolve_model(model, info)
    from .model import model_channels

    prep = prepare_image(image, model_channels(model)[0], axes=axes, channel_axis=channel_axis,
                         channels=channels)
    if prep.n_planes != 1:
        raise ValueError(f"intensity_range needs one 2D image, got {prep.n_planes} planes")
    low, high = percentiles or info.percentiles
    return plane_range(prep.plane(next(iter(prep.plane_indices))), low, high)


def predict_probabilities(
    image,
    model=None,
    *,
    axes: str | Axes | None = None,
    channel_axis: int | None = None,
    channels: Sequence[int] | str | None = None,
    rgb: bool = False,
    settings: PredictionSettings | None = None,
    info: ModelInfo | None = None,
    progress: ProgressCallback | None = None,
    cancel=None,
    **options,
) -> np.ndarray:
    """Probability maps of a U-Net over an image of any size and dimension.

    Parameters
    ----------
    image : array-like
        2D ``(Y, X)`` image or stack (Z, T, T+Z ...), numpy, zarr or dask,
        with a channel axis for multichannel/RGB data.
    model : keras.Model or str or Path, optional
        The network, a ``.keras`` file, or None for the shipped default.
    axes, channel_axis, channels, rgb
        Which axis is which, and which channels feed the model; see
        :func:`prepare_image`.
    settings : PredictionSettings, optional
        Tiling, batching, normalization and precision (defaults: 128 px tiles
        on CPUs with AMX and 256 px elsewhere, or the model's training tile if
        larger, fitted to small planes; 32 px overlap; batches of 16 windows,
        4 of 256 px; the model's percentiles; precision "auto").
    info : ModelInfo, optional
        Metadata of ``model`` when it is passed as a Keras object.
    progress : callable, optional
        ``progress(done, total)`` in windows, called at the start and after
        every batch.
    cancel : callable or threading.Event, optional
        Checked between batches; raises :class:`~napari_unet.Cancelled`.
    **options
        Fields of :class:`~napari_unet.settings.PredictionSettings` given
        one by one (``tile_size=256, overlap=32``), overriding ``settings``.

    Returns
    -------
    ndarray, float32, shape ``(C_out,) + spatial_shape``
        One probability map per model output (``info.outputs`` names them),
        over the image's axes without channels.
    """
    settings = split_options(options, prediction=settings, allowed=("prediction",),
                             caller="predict_probabilities()")["prediction"]
    model, info = resolve_model(model, info)
    from .model import model_channels, model_depth

    n_in, n_out = model_channels(model)
    prep = prepare_image(image, n_in, axes=axes, channel_axis=channel_axis, channels=channels,
                         rgb=rgb)
    multiple = 2 ** model_depth(model)
    settings = settings.resolved(info, prep.spatial_shape[-2:], multiple)
    precision = engine.resolve_precision(settings.precision)
    check_tiling(settings.tile_size, settings.overlap, multiple)
    low, high = settings.percentiles

    per_plane = count_windows(prep.spatial_shape[-2:], settings.tile_size, settings.overlap)
    total = per_plane * prep.n_planes
    done = 0
    if progress is not None:
        progress(0, total)

    def step(n):
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    fixed = (stack_range(prep, low, high)
             if settings.normalize and settings.normalize_scope == "stack" else None)
    out = np.empty((n_out,) + prep.spatial_shape, dtype=np.float32)
    for index in prep.plane_indices:
        plane = prep.plane(index)
        if not settings.normalize:
            lo, hi = 0.0, 1.0
        elif settings.intensity_range is not None:
            lo, hi = settings.intensity_range
        elif fixed is not None:
            lo, hi = fixed
        else:
            lo, hi = plane_range(plane, low, high)
        predict_plane(plane, model, lo=lo, hi=hi, tile_size=settings.tile_size,
                      overlap=settings.overlap, batch_size=settings.batch_size,
                      multiple=multiple, precision=precision, progress=step, cancel=cancel,
                      out=out[(slice(None),) + index])
    return out
