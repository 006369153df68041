"""npe2 writer: save a Labels layer as an integer TIFF with its pixel size.

Reached from napari's File > Save Selected Layer(s) when one Labels layer is
selected and the name ends in .tif/.tiff. The file itself is written by the
headless :func:`napari_unet.io.write_tiff_atomic`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .tiff import normalize_unit, smallest_int_dtype, write_tiff_atomic

__all__ = ["write_labels"]

_EXTENSIONS = (".tif", ".tiff")


def _spatial_unit(units: Any) -> str | None:
    # napari gives one pint unit per axis ("pixel" unless set). A TIFF holds a
    # single length unit, so use it only when all axes agree on a length.
    if units is None:
        return None
    if isinstance(units, str):
        return normalize_unit(units)
    names = {normalize_unit(u) for u in units}
    return names.pop() if len(names) == 1 else None


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write a napari Labels layer to a TIFF file.

    The labels keep an integer dtype: the smallest of uint8/uint16/uint32
    (int8... for negative ids) that holds every id, so files stay small and
    open in Fiji. The layer's ``scale`` (and unit, if set) is stored in the
    ImageJ or OME metadata, and the file is written atomically.

    Parameters
    ----------
    path : str
        Destination; ``.tif`` is appended unless it ends in ``.tif``/``.tiff``.
        An existing file is replaced (napari's save dialog has already asked).
    data : array_like
        The layer data (for a multiscale layer, the list of levels: the full
        resolution level is written).
    meta : dict
        The layer state from napari (``scale``, ``units``, ``multiscale``, ...).

    Returns
    -------
    list of str
        The path written.

    Raises
    ------
    TypeError
        If the data are not integers (e.g. float probabilities): labels are
        never written as floats.
    """
    if meta.get("multiscale"):
        data = data[0]
    arr = np.asarray(data)
    if arr.dtype != bool and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            f"napari-unet can only save integer label images as TIFF, but layer "
            f"{meta.get('name', '')!r} has dtype {arr.dtype}. Convert it to integers "
            "first (e.g. threshold probabilities into labels), or save it as an image."
        )
    arr = arr.astype(smallest_int_dtype(arr), copy=False)

    if not path.lower().endswith(_EXTENSIONS):
        path = f"{path}.tif"
    unit = _spatial_unit(meta.get("units"))
    scale = meta.get("scale")
    if scale is not None and unit is None and all(float(s) == 1.0 for s in scale):
        scale = None  # uncalibrated layer: write no calibration rather than "1 um"
    written = write_tiff_atomic(path, arr, scale=scale, unit=unit, overwrite=True)
    return [os.fspath(written)]
