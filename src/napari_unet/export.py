"""Export image/label pairs as a training dataset (headless core).

Layout of a dataset folder::

    DATASET/
        dataset.json            manifest, one entry per pair (see below)
        images/<name>_<NNNN>.tif
        masks/<name>_<NNNN>.tif same Y, X shape, integer instance labels
                                (or class ids, for semantic datasets)
        counted/<name>_<NNNN>.tif  optional, uint8 0/1: the pixels that count

Images keep their dtype; multichannel images are stored channels first
(``CYX``, as ImageJ/Fiji expect) and the manifest says so (``image_axes``).

Each pair is one 2D plane (or a rectangular region of one) because the
U-Net is 2D. ``dataset.json`` records for every pair its source layers,
slice index, region, pixel size, whether a human corrected it, and the model
that made the first prediction, so that a trained model can say what it
learnt from.

Appending never overwrites: indices continue after the highest one present,
every file is written atomically (temporary file, then rename, refusing to
replace an existing file), a pair whose second file fails is rolled back,
and the manifest is rewritten atomically last.

Sparse annotation: with ``counted=`` (see :mod:`napari_unet.counted`) each
pair also gets a mask of the pixels the user vouched for (reviewed objects,
edited regions); its manifest entry names it (``"counted"``) and training
ignores the other pixels. Without it the whole image counts (the default).

A semantic dataset (class labels: 0 background, 1..K classes) has the class
names in the manifest, ``"classes": ["organ", "vessel", ...]`` for label
values 1..K (optionally ``"class_colors"``), which training reads; every
export into the folder must agree with them.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from .tiff import smallest_int_dtype, write_tiff_atomic

MANIFEST = "dataset.json"
FORMAT = "napari-unet-dataset"
_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Region:
    """A 2D plane of a stack, optionally cropped: what one pair holds."""

    index: tuple[int, ...] = ()
    bbox: tuple[int, int, int, int] | None = None  # y0, y1, x0, x1
    hand_corrected: bool = True


def safe_name(name: str) -> str:
    """A file-name-safe version of a layer name."""
    return _NAME_RE.sub("_", str(name)).strip("._") or "pair"


def read_manifest(folder) -> dict:
    """The manifest of a dataset folder (an empty one if there is none).

    Raises
    ------
    ValueError
        If ``dataset.json`` exists but is not a napari-unet manifest: the
        caller must not overwrite it.
    """
    path = Path(folder) / MANIFEST
    if not path.exists():
        return {"format": FORMAT, "version": 1, "pairs": []}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); not touching it.") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a napari-unet dataset manifest; not touching it.")
    data.setdefault("pairs", [])
    return data


def _write_manifest(folder: Path, manifest: dict) -> None:
    with atomic_write(folder / MANIFEST, overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))


def _next_index(folder: Path, name: str, manifest: dict) -> int:
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)\.tiff?$")
    used = [-1]
    for sub in ("images", "masks", "counted"):
        if (folder / sub).is_dir():
            used += [int(m.group(1)) for p in (folder / sub).iterdir()
                     if (m := pattern.match(p.name))]
    for pair in manifest["pairs"]:
        if (m := pattern.match(Path(pair.get("image", "")).name)):
            used.append(int(m.group(1)))
    return max(used) + 1


def export_pairs(
    image,
    labels,
    folder,
    *,
    name: str,
    regions: Iterable[Region] | None = None,
    channel_axis: int | None = None,
    scale: Sequence[float] | None = None,
    unit: str | None = "um",
    source_layer: str | None = None,
    labels_layer: str | None = None,
    model: str | None = None,
    counted=None,
    classes: Sequence[str] | None = None,
    class_colors: Sequence[str] | None = None,
) -> list[dict]:
    """Write image/label pairs into a dataset folder and its manifest.

    Parameters
    ----------
    image : array-like
        The image, ``(..., Y, X)`` or with a channel axis.
    labels : array-like of int
        Labels with the image's spatial shape (no channel axis).
    folder : str or Path
        Dataset folder; created if needed, appended to if it exists.
    name : str
        Base file name of the pairs (made file-name safe).
    regions : iterable of Region, optional
        Which planes / crops to export. Default: every plane, whole.
    channel_axis : int, optional
        Channel axis of ``image`` (kept, moved last, in the exported image).
    scale : sequence of float, optional
        Pixel size of the spatial axes (napari layer ``scale``); the last
        two entries are stored.
    unit : str, optional
        Unit of ``scale``.
    source_layer, labels_layer, model : str, optional
        Provenance recorded in the manifest.
    counted : array-like of bool, optional
        Pixels that count for training, with the labels' shape
        (:func:`napari_unet.counted.counted_mask`). Written with each pair;
        pairs with no counted pixel are skipped. Default: everything counts.
    classes : sequence of str, optional
        Class labels: the names of values 1..K (e.g. from
        :func:`class_names_from_features`), stored in the manifest.
    class_colors : sequence of str, optional
        A colour per class, stored with ``classes``.

    Returns
    -------
    list of dict
        The manifest entries written.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biu":
        raise ValueError(f"Labels must be integers, got {labels.dtype}.")
    img = np.moveaxis(np.asarray(image), channel_axis, -1) if channel_axis is not None else (
        np.asarray(image))
    spatial = img.shape[:-1] if channel_axis is not None else img.shape
    if spatial != labels.shape:
        raise ValueError(f"Image spatial shape {spatial} and labels shape {labels.shape} differ.")
    if labels.ndim < 2 or 0 in labels.shape:
        raise ValueError(f"Need at least 2D, non-empty labels, got shape {labels.shape}.")
    if counted is not None:
        counted = np.asarray(counted)
        if counted.shape != labels.shape:
            raise ValueError(f"The counted mask {counted.shape} and the labels "
                             f"{labels.shape} differ in shape.")
    folder = Path(folder)
    manifest = read_manifest(folder)  # fail before writing anything
    if classes is not None:
        classes = [str(c) for c in classes]
        if manifest.get("classes") not in (None, classes):
            raise ValueError(f"{folder} holds classes {manifest['classes']}, not {classes}; "
                             f"export into another folder.")
        top = int(labels.max(initial=0))
        if top > len(classes):
            raise ValueError(f"Labels go up to {top} but only {len(classes)} classes are named.")
        manifest["classes"] = classes
        if class_colors is not None:
            manifest["class_colors"] = [str(c) for c in class_colors]
    elif manifest.get("classes"):
        # Instance ids among class labels would train as classes.
        raise ValueError(f"{folder} holds class labels ({', '.join(manifest['classes'])}); "
                         "export instance labels into another folder.")
    for sub in ("images", "masks") + (("counted",) if counted is not None else ()):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    name = safe_name(name)
    regions = list(regions) if regions is not None else [
        Region(index=i) for i in np.ndindex(*labels.shape[:-2])]
    yx_scale = [float(s) for s in scale[-2:]] if scale is not None else None
    label_dtype = smallest_int_dtype(labels)

    written = []
    index = _next_index(folder, name, manifest)
    for region in regions:
        plane_img, plane_lab = img[region.index], labels[region.index]
        plane_counted = counted[region.index] if counted is not None else None
        if region.bbox is not None:
            y0, y1, x0, x1 = region.bbox
            plane_img, plane_lab = plane_img[y0:y1, x0:x1], plane_lab[y0:y1, x0:x1]
            if plane_counted is not None:
                plane_counted = plane_counted[y0:y1, x0:x1]
        if 0 in plane_lab.shape or (plane_counted is not None and not plane_counted.any()):
            continue
        while True:  # another writer may take an index between scan and write
            stem = f"{name}_{index:04d}"
            try:
                entry = _write_pair(folder, stem, plane_img, plane_lab.astype(label_dtype),
                                    yx_scale, unit, channel_axis is not None, plane_counted)
                break
            except FileExistsError:
                index += 1
        index += 1
        entry.update(
            source_layer=source_layer, labels_layer=labels_layer,
            slice=[int(i) for i in region.index] or None,
            region=list(map(int, region.bbox)) if region.bbox is not None else None,
            scale=yx_scale, unit=unit, hand_corrected=bool(region.hand_corrected), model=model,
            n_objects=int(len(np.unique(plane_lab)) - (plane_lab == 0).any()),
            counted_fraction=(None if plane_counted is None else
                              round(float(np.count_nonzero(plane_counted)) / plane_counted.size,
                                    4)),
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        )
        written.append(entry)
        manifest["pairs"].append(entry)
    if written:
        _write_manifest(folder, manifest)
    return written


def _write_pair(folder, stem, image, labels, scale, unit, has_channels, counted=None) -> dict:
    mask_path = folder / "masks" / f"{stem}.tif"
    image_path = folder / "images" / f"{stem}.tif"
    counted_path = folder / "counted" / f"{stem}.tif"
    if image_path.exists() or (counted is not None and counted_path.exists()):
        raise FileExistsError(image_path)
    write_tiff_atomic(mask_path, labels, scale=scale, unit=unit)
    written = [mask_path]
    try:
        if counted is not None:
            write_tiff_atomic(counted_path, counted.astype(np.uint8), scale=scale, unit=unit)
            written.append(counted_path)
        # Channels first on disk (C, Y, X): the order ImageJ/Fiji expect.
        write_tiff_atomic(image_path, np.moveaxis(image, -1, 0) if has_channels else image,
                          scale=(1.0, *scale) if has_channels and scale else scale, unit=unit,
                          axes="CYX" if has_channels else "YX")
    except BaseException:
        for path in written:  # never leave half a pair behind
            path.unlink()
        raise
    return {"image": f"images/{stem}.tif", "mask": f"masks/{stem}.tif",
            "counted": f"counted/{stem}.tif" if counted is not None else None,
            "shape": list(labels.shape), "image_dtype": str(image.dtype),
            "image_axes": "CYX" if has_channels else "YX"}


def class_names_from_features(features) -> list[str] | None:
    """Class names for label values 1..K from a Labels layer's ``features``.

    ``features`` is a table (pandas DataFrame or dict of columns) with a
    ``class`` (or ``class_name``) column (other columns, e.g. a ``name``
    per instance, do not make labels classes) and
    optionally the label value (``index``, ``label`` or ``value``; else the
    row number is the value). Returns None without a name column, and the
    names of 1..K (value 0 is background) otherwise.

    Raises
    ------
    ValueError
        A value in 1..K has no name.
    """
    columns = dict(features) if features is not None else {}
    if hasattr(features, "to_dict"):
        columns = {k: list(v.values()) for k, v in features.to_dict().items()}
    name_col = next((c for c in ("class", "class_name") if c in columns), None)
    if name_col is None or not len(columns[name_col]):
        return None
    names = [str(n) for n in columns[name_col]]
    value_col = next((c for c in ("index", "label", "value") if c in columns), None)
    values = [int(v) for v in columns[value_col]] if value_col else list(range(len(names)))
    by_value = {v: n for v, n in zip(values, names, strict=True) if v > 0}
    if not by_value:
        return None
    top = max(by_value)
    missing = [v for v in range(1, top + 1) if v not in by_value]
    if missing:
        raise ValueError(f"The layer's features name no class for label {missing[0]}.")
    return [by_value[v] for v in range(1, top + 1)]
