"""TIFF reading and atomic writing with physical pixel sizes (headless core).

Shared by the napari writer, the export code and the command-line interface;
it never imports napari or Qt.

Files are written as ImageJ hyperstacks when ImageJ can hold them (dtypes
uint8, uint16, int16, float32 and axes in ImageJ's TZCYX order), because Fiji
and most tools read ImageJ calibration natively; anything else (uint32 labels,
int32, float64, other axis orders) goes to OME-TIFF. :func:`read_tiff` reads the
pixel size back from either.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import tifffile

from ._atomic import atomic_write
from .axes import default_axes

__all__ = [
    "TiffMetadata",
    "normalize_unit",
    "read_tiff",
    "read_tiff_metadata",
    "smallest_int_dtype",
    "write_tiff_atomic",
]

_IMAGEJ_DTYPES = frozenset(np.dtype(t) for t in ("uint8", "uint16", "int16", "float32"))
_IMAGEJ_ORDER = "TZCYXS"

# Spellings of length units seen in napari/pint, ImageJ and OME metadata,
# mapped to one short ASCII name.
_UNIT_ALIASES = {
    "um": "um",
    "µm": "um",
    "μm": "um",  # Greek mu, not the micro sign
    "\\u00b5m": "um",  # how ImageJ escapes µ in its TIFF description
    "micron": "um",
    "microns": "um",
    "micrometer": "um",
    "micrometre": "um",
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
    "mm": "mm",
    "millimeter": "mm",
    "millimetre": "mm",
    "cm": "cm",
    "centimeter": "cm",
    "m": "m",
    "meter": "m",
    "metre": "m",
}
# ImageJ writes "micron" itself and shows it as µm; OME wants the symbol.
_IMAGEJ_UNIT = {"um": "micron"}
_OME_UNIT = {"um": "µm"}


@dataclass(frozen=True)
class TiffMetadata:
    """What :func:`read_tiff_metadata` finds in a TIFF file.

    Attributes
    ----------
    shape : tuple of int
        Shape of the first image series.
    dtype : numpy.dtype
        Its data type.
    axes : str
        Axis letters as tifffile reports them (e.g. ``"ZYX"``; ``"Q"`` or
        ``"I"`` for unnamed axes).
    scale : tuple of float or None
        Pixel size per axis (1.0 for non-spatial axes), or None when the file
        holds no physical calibration.
    unit : str or None
        Length unit of the spatial scale (``"um"``, ``"nm"``, ...), or None if
        the file does not name one.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str
    scale: tuple[float, ...] | None
    unit: str | None


def normalize_unit(unit: object) -> str | None:
    """Map a length unit (string or pint unit) to a short ASCII name.

    Parameters
    ----------
    unit : str, pint.Unit or None
        E.g. ``"micrometer"``, ``"µm"``, ``"micron"``, ``"nm"``.

    Returns
    -------
    str or None
        ``"um"``, ``"nm"``, ``"mm"``, ``"cm"`` or ``"m"``; None for None, for
        ``"pixel"`` and for units that are not lengths.
    """
    if unit is None:
        return None
    return _UNIT_ALIASES.get(str(unit).strip().lower())


def smallest_int_dtype(data: np.ndarray) -> np.dtype:
    """Smallest TIFF integer dtype that holds every value of ``data``.

    Unsigned types are preferred when there are no negative values, because
    they are what ImageJ/Fiji and most label tools expect.

    Parameters
    ----------
    data : array_like of integer or bool dtype

    Returns
    -------
    numpy.dtype
        One of uint8, uint16, uint32, uint64 (no negative values) or int8,
        int16, int32, int64.

    Raises
    ------
    TypeError
        If ``data`` is not of an integer (or bool) dtype.
    """
    data = np.asarray(data)
    if data.dtype == bool:
        return np.dtype(np.uint8)
    if not np.issubdtype(data.dtype, np.integer):
        raise TypeError(f"expected integer data, got dtype {data.dtype}")
    if data.size == 0:
        return np.dtype(np.uint8)
    lo, hi = int(data.min()), int(data.max())
    candidates = ("uint8", "uint16", "uint32", "uint64") if lo >= 0 else (
        "int8", "int16", "int32", "int64")
    for name in candidates:
        info = np.iinfo(name)
        if info.min <= lo and hi <= info.max:
            return np.dtype(name)
    raise AssertionError("unreachable: the input dtype itself fits")  # pragma: no cover


def _check_axes(axes: str | None, ndim: int) -> str:
    axes = default_axes(ndim) if axes is None else str(axes).upper()
    if len(axes) != ndim or len(set(axes)) != ndim:
        raise ValueError(f"axes {axes!r} do not match a {ndim}-D array (one distinct letter each)")
    return axes


def _check_scale(scale: Sequence[float] | None, ndim: int) -> tuple[float, ...] | None:
    if scale is None:
        return None
    scale = tuple(float(s) for s in scale)
    if len(scale) != ndim:
        raise ValueError(f"scale has {len(scale)} values for a {ndim}-D array")
    if not all(np.isfinite(s) and s > 0 for s in scale):
        raise ValueError(f"scale values must be finite and > 0, got {scale}")
    return scale


def _use_imagej(dtype: np.dtype, axes: str) -> bool:
    if dtype not in _IMAGEJ_DTYPES or not set(axes) <= set(_IMAGEJ_ORDER):
        return False
    positions = [_IMAGEJ_ORDER.index(a) for a in axes]
    return positions == sorted(positions)


def _write(fh, data, axes, scale, unit, compression) -> None:
    sizes = dict(zip(axes, scale, strict=True)) if scale is not None else {}
    kwargs = {"compression": compression} if compression else {}
    if _use_imagej(data.dtype, axes):
        metadata = {"axes": axes}
        if "Z" in sizes:
            metadata["spacing"] = sizes["Z"]
        if sizes and unit:
            metadata["unit"] = _IMAGEJ_UNIT.get(unit, unit)
        if "X" in sizes and "Y" in sizes:
            kwargs["resolution"] = (1.0 / sizes["X"], 1.0 / sizes["Y"])
        tifffile.imwrite(fh, data, imagej=True, metadata=metadata, **kwargs)
    else:
        metadata = {"axes": axes}
        for ax in "XYZ":
            if ax in sizes:
                metadata[f"PhysicalSize{ax}"] = sizes[ax]
                if unit:
                    metadata[f"PhysicalSize{ax}Unit"] = _OME_UNIT.get(unit, unit)
        if data.dtype.itemsize == 8 and data.dtype.kind in "iu":
            # OME has no 64-bit integer pixel type: keep the same keys in
            # tifffile's own JSON description instead.
            tifffile.imwrite(fh, data, photometric="minisblack", metadata=metadata, **kwargs)
        else:
            tifffile.imwrite(fh, data, ome=True, photometric="minisblack", metadata=metadata,
                             **kwargs)


def write_tiff_atomic(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    scale: Sequence[float] | None = None,
    axes: str | None = None,
    unit: str | None = "um",
    overwrite: bool = False,
    compression: str | None = "zlib",
) -> Path:
    """Write ``data`` to a TIFF file atomically, with its pixel size.

    The file is written to a hidden temporary file in the destination folder
    and moved into place only once complete, so readers never see a partial
    file and an interrupted write leaves the previous file (if any) intact.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, usually ending in ``.tif``/``.tiff``. Its folder must
        exist.
    data : array_like
        Array to write, in its own dtype (nothing is converted).
    scale : sequence of float, optional
        Pixel size along each axis of ``data`` (as napari's layer ``scale``).
        The Z, Y and X entries are stored; others are ignored.
    axes : str, optional
        One letter per axis of ``data`` from ``TZCYX`` (e.g. ``"CZYX"``).
        Default: :func:`napari_unet.axes.default_axes`.
    unit : str, optional
        Length unit of ``scale`` (``"um"``, ``"nm"``, ... or a pint unit name
        such as ``"micrometer"``). Not written if None or not a length.
    overwrite : bool
        If False (default), raise :class:`FileExistsError` rather than replace
        an existing file, including one created while this call was writing.
    compression : str or None
        Lossless TIFF compression (default ``"zlib"``, readable by Fiji,
        napari and tifffile without extra codecs); None for none.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If ``axes`` or ``scale`` do not match ``data``.

    Notes
    -----
    ImageJ hyperstacks are written when ImageJ supports the dtype and axis
    order, OME-TIFF otherwise; :func:`read_tiff` reads both.
    """
    path = Path(path)
    data = np.asarray(data)
    axes = _check_axes(axes, data.ndim)
    scale = _check_scale(scale, data.ndim)
    unit = normalize_unit(unit)
    with atomic_write(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        # A file object with a real name: tifffile wants one.
        _write(fh, data, axes, scale, unit, compression)
    return path


def _pixel_size_from_resolution(page) -> tuple[float | None, float | None]:
    tags = page.tags
    out = []
    for name in ("XResolution", "YResolution"):
        tag = tags.get(name)
        if tag is None:
            out.append(None)
            continue
        num, den = tag.value
        res = Fraction(num, den) if den else Fraction(0)
        out.append(float(1 / res) if res > 0 else None)
    return out[0], out[1]


def _metadata(tif: tifffile.TiffFile) -> TiffMetadata:
    series = tif.series[0]
    axes = series.axes
    sizes: dict[str, float] = {}
    unit = None
    if tif.is_ome or tif.is_shaped:
        if tif.is_ome:
            import xml.etree.ElementTree as ET

            root = ET.fromstring(tif.ome_metadata)
            pixels = next((el.attrib for el in root.iter() if el.tag.endswith("}Pixels")), {})
        else:
            pixels = (tif.shaped_metadata or [{}])[0]
        for ax in "XYZ":
            value = pixels.get(f"PhysicalSize{ax}")
            if value is not None:
                sizes[ax] = float(value)
                # OME's default unit is the micrometre.
                unit = unit or normalize_unit(pixels.get(f"PhysicalSize{ax}Unit", "µm"))
    elif tif.is_imagej:
        ij = tif.imagej_metadata or {}
        x, y = _pixel_size_from_resolution(tif.pages.first)
        # ImageJ stores 1 px/unit when uncalibrated, so X/Y only count with a unit.
        unit = normalize_unit(ij.get("unit"))
        if unit or (x, y) != (1.0, 1.0):
            if x is not None:
                sizes["X"] = x
            if y is not None:
                sizes["Y"] = y
        if "spacing" in ij:
            sizes["Z"] = float(ij["spacing"])
    if not sizes and not tif.is_imagej:
        # Plain TIFF: resolution tags in pixels per centimetre (as Bio-Formats
        # writes them). Per-inch values are a print resolution (72 dpi...),
        # not a microscope calibration, so they are ignored.
        page = tif.pages.first
        x, y = _pixel_size_from_resolution(page)
        if int(page.resolutionunit) == 3 and x and y:
            sizes.update(X=x * 1e4, Y=y * 1e4)  # cm -> um
            unit = "um"
    scale = tuple(sizes.get(ax, 1.0) for ax in axes) if sizes else None
    return TiffMetadata(tuple(series.shape), series.dtype, axes, scale, unit)


def read_tiff_metadata(path: str | os.PathLike) -> TiffMetadata:
    """Read the shape, dtype, axes and pixel size of a TIFF file's first series.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    TiffMetadata
    """
    with tifffile.TiffFile(path) as tif:
        return _metadata(tif)


def read_tiff(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Read a TIFF file's first series and its pixel size.

    Parameters
    ----------
    path : str or os.PathLike
        An ImageJ hyperstack, an OME-TIFF or a plain TIFF.

    Returns
    -------
    data : numpy.ndarray
        The pixels, in the file's dtype and axis order.
    scale : tuple of float or None
        Pixel size per axis of ``data`` (Z spacing and Y/X pixel size where
        known, 1.0 elsewhere; see :func:`read_tiff_metadata` for the unit), or
        None if the file holds no physical calibration.
    """
    with tifffile.TiffFile(path) as tif:
        meta = _metadata(tif)
        data = tif.series[0].asarray()
    return data, meta.scale
