"""Percentile intensity normalization, robust to any dtype and bad values.

The network sees intensities mapped so that the ``low`` percentile goes to 0
and the ``high`` percentile to 1 (csbdeep/StarDist convention). The
percentiles are computed once per image (or plane, or whole stack) *before*
tiling, so every tile of a plane is scaled identically and tiles stitch
without seams.
"""

from __future__ import annotations

import numpy as np

#: Default ``(low, high)`` percentiles mapped to 0 and 1. Models store their
#: own in :attr:`napari_unet.ModelInfo.normalization`; this is the one place
#: the default is written.
DEFAULT_PERCENTILES = (1.0, 99.8)

#: Above this many pixels, percentiles are estimated on a regular subsample:
#: exact to well under 0.1 % of the range on microscopy images, and it keeps
#: the cost of normalizing a 8192x8192 plane to a few milliseconds.
MAX_SAMPLES = 4_000_000


def check_dtype(image) -> None:
    """Raise ValueError for dtypes that are not real-valued images."""
    dtype = np.dtype(image.dtype)
    if dtype.kind == "c":
        raise ValueError(
            f"Complex images ({dtype}) are not supported: take the magnitude or real part first."
        )
    if dtype.kind not in "biuf":
        raise ValueError(f"Unsupported image dtype {dtype}: expected an integer or float image.")


def percentile_range(data, low: float = DEFAULT_PERCENTILES[0],
                     high: float = DEFAULT_PERCENTILES[1]) -> tuple[float, float]:
    """Robust intensity range of an array, ignoring NaN and infinities.

    Parameters
    ----------
    data : array-like
        Any real array (numpy, or anything ``np.asarray`` accepts).
    low, high : float
        Percentiles in [0, 100], ``low < high``.

    Returns
    -------
    (float, float)
        ``(lo, hi)``; ``lo == hi`` for constant data, ``(0.0, 0.0)`` when
        no value is finite.
    """
    if not 0 <= low < high <= 100:
        raise ValueError(f"Need 0 <= low < high <= 100, got low={low}, high={high}")
    data = np.asarray(data)
    check_dtype(data)
    flat = data.reshape(-1)
    if flat.size > MAX_SAMPLES:
        flat = flat[:: int(np.ceil(flat.size / MAX_SAMPLES))]
    if flat.dtype.kind == "f":
        flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 0.0
    if flat.dtype == bool:
        flat = flat.astype(np.uint8)
    lo, hi = np.percentile(flat, [low, high])
    return float(lo), float(hi)


def apply_range(data, lo, hi, out_dtype=np.float32) -> np.ndarray:
    """Map ``lo -> 0`` and ``hi -> 1`` linearly; NaN becomes 0, +-inf +-10.

    ``lo`` and ``hi`` are scalars or arrays broadcasting against the last
    (channel) axis. Values outside the range are kept, not clipped (as in
    csbdeep): objects brighter than the 99.8th percentile stay brighter. A
    constant image (``hi == lo``) maps to zeros.
    """
    data = np.asarray(data)
    check_dtype(data)
    lo = np.asarray(lo, dtype=out_dtype)
    span = np.asarray(hi, dtype=out_dtype) - lo
    scale = np.divide(1, span, out=np.zeros_like(span), where=span > 0)
    out = data.astype(out_dtype, copy=True)
    out -= lo
    out *= scale
    np.nan_to_num(out, copy=False, nan=0.0, posinf=10.0, neginf=-10.0)
    return out


def normalize_percentile(data, low: float = DEFAULT_PERCENTILES[0],
                         high: float = DEFAULT_PERCENTILES[1]) -> np.ndarray:
    """Percentile-normalize an array to float32 (see :func:`percentile_range`)."""
    lo, hi = percentile_range(data, low, high)
    return apply_range(data, lo, hi)
