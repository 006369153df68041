"""Adapting napari layers to the headless core, and back.

An Image layer becomes ``(data, channel_axis, channels)`` for
:func:`napari_unet.predict_probabilities`; the result becomes a Labels layer
with the image's geometry (scale, translate, rotate, shear, affine, units,
axis labels) minus any channel axis, so it overlays the image exactly.
Scopes ("current slice", "visible region") are :class:`Scope` objects over
the *label* axes (the image's axes without channels).
"""

from __future__ import annotations

import numpy as np

from ..axes import axes_from_names, channel_axis_from_names, default_axes, voxel_size_from_scale
from ..scope import Scope, whole_scope

SCOPES = ("whole layer", "current slice", "visible region")
RGB_NAMES = ("red", "green", "blue", "alpha")


# --------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------
def base_data(layer):
    """Full-resolution data of an image layer (level 0 of a multiscale)."""
    return layer.data[0] if layer.multiscale else layer.data


def data_channel_axis(layer, axis: int | None) -> int | None:
    """Channel axis in data coordinates (RGB layers: always the last axis)."""
    if layer.rgb:
        return base_data(layer).ndim - 1
    return axis


def channel_axis_choices(layer) -> list[tuple[str, int | None]]:
    """``(label, axis)`` choices for the channel-axis combo box.

    The last two axes are always Y and X (the model is 2D), so only the
    leading axes can hold channels.
    """
    if layer is None:
        return [("none", None)]
    if layer.rgb:
        return [("RGB(A) (last axis)", None)]
    labels = layer.axis_labels
    shape = base_data(layer).shape
    return [("none", None)] + [
        (f"axis {i} ({labels[i]}, {shape[i]})", i) for i in range(layer.ndim - 2)
    ]


def guess_channel_axis(layer) -> int | None:
    """A leading axis labelled like channels ('c', 'ch', 'channel'), else None."""
    if layer is None or layer.rgb:
        return None
    axis = channel_axis_from_names(layer.axis_labels)
    return axis if axis is not None and axis < layer.ndim - 2 else None


def channel_count(layer, axis: int | None) -> int:
    """Number of channels along the (data) channel axis; 1 without one."""
    axis = data_channel_axis(layer, axis) if layer is not None else None
    return 1 if axis is None else int(base_data(layer).shape[axis])


def channel_choices(layer, axis: int | None, model_in: int | None) -> list[tuple[str, object]]:
    """``(label, value)`` choices of which channels feed the model.

    ``value`` is passed as ``channels=`` to the core: None (all channels,
    only when their count matches the model), ``'mean'`` or ``[i]``.
    """
    n = channel_count(layer, axis)
    if layer is None or data_channel_axis(layer, axis) is None:
        return [("(single channel)", None)]
    names = RGB_NAMES if layer.rgb else ()
    items = []
    if model_in is None or model_in == n:
        items.append((f"all {n}", None))
    if model_in in (None, 1):
        items.append(("mean of all", "mean"))
        items += [(f"{i} ({names[i]})" if i < len(names) else str(i), [i]) for i in range(n)]
    return items or [(f"all {n} (model reads {model_in})", None)]


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------
def label_shape(layer, axis: int | None) -> tuple[int, ...]:
    """Shape of the labels for ``layer``: its data shape without channels."""
    shape = list(base_data(layer).shape)
    axis = data_channel_axis(layer, axis)
    if axis is not None:
        del shape[axis]
    return tuple(int(s) for s in shape)


def layer_geometry(layer, axis: int | None = None) -> dict:
    """Keyword arguments placing a new layer exactly over ``layer``.

    ``axis`` is a non-RGB channel axis to drop (its row and column are
    removed from every transform).
    """
    if axis is None or layer.rgb:
        return {
            "scale": layer.scale, "translate": layer.translate, "rotate": layer.rotate,
            "shear": layer.shear, "affine": layer.affine.affine_matrix,
            "units": layer.units, "axis_labels": layer.axis_labels,
        }
    keep = [i for i in range(layer.ndim) if i != axis]
    sub = np.ix_(keep, keep)
    shear = np.asarray(layer.shear)
    if shear.ndim == 1:  # Upper-triangular elements, row by row (napari's layout).
        full = np.eye(layer.ndim)
        full[np.triu_indices(layer.ndim, 1)] = shear
        shear = full[sub][np.triu_indices(len(keep), 1)]
    else:
        shear = shear[sub]
    return {
        "scale": np.asarray(layer.scale)[keep], "translate": np.asarray(layer.translate)[keep],
        "rotate": np.asarray(layer.rotate)[sub], "shear": shear,
        "affine": layer.affine.set_slice(keep).affine_matrix,
        "units": [layer.units[i] for i in keep],
        "axis_labels": [layer.axis_labels[i] for i in keep],
    }


def unique_name(layers, base: str) -> str:
    """``base``, or ``base [2]``, ``base [3]``... whichever is free."""
    names = {layer.name for layer in layers}
    if base not in names:
        return base
    n = 2
    while f"{base} [{n}]" in names:
        n += 1
    return f"{base} [{n}]"


# --------------------------------------------------------------------------
# Axes of the labels (Z stack or time-lapse)
# --------------------------------------------------------------------------
def label_axes_choices(layer, axis: int | None) -> list[tuple[str, str]]:
    """``(label, letters)`` for the label axes of ``layer`` (channels removed).

    One choice when the layer says (2D, or recognisable ``axis_labels`` such
    as ``z, y, x`` or ``t, y, x``); otherwise the readings to choose from,
    the documented default (3D: ``ZYX``, 4D: ``TZYX``) first.
    """
    if layer is None:
        return [("YX", "YX")]
    n = len(label_shape(layer, axis))
    if n == 2:
        return [("YX", "YX")]
    names = list(layer.axis_labels)  # an RGB layer's have no channel axis already
    if axis is not None and not layer.rgb:
        del names[axis]
    letters = axes_from_names(names)
    if letters is not None and "C" not in letters and len(letters) == n and \
            letters[-2:] == "YX" and len(set(letters)) == n:
        return [(f"{letters} (from the layer)", letters)]
    if n == 3:
        return [("ZYX: Z stack", "ZYX"), ("TYX: time-lapse", "TYX")]
    if n == 4:
        return [("TZYX: time-lapse of Z stacks", "TZYX"), ("ZTYX", "ZTYX")]
    try:
        return [(default_axes(n), default_axes(n))]
    except ValueError:
        return [("T" * (n - 2) + "YX", "T" * (n - 2) + "YX")]  # planes, never linked


def voxel_size(layer, axis: int | None, letters: str) -> tuple[float, float, float] | None:
    """``(Z, Y, X)`` voxel size from the layer's scale, for label axes with Z."""
    if layer is None:
        return None
    return voxel_size_from_scale(letters, layer_geometry(layer, axis)["scale"])


# --------------------------------------------------------------------------
# Scopes
# --------------------------------------------------------------------------
def scope_region(viewer, layer, axis: int | None, scope: str, context: int = 32) -> Scope:
    """The :class:`Scope` of ``layer`` selected by ``scope``.

    Raises
    ------
    ValueError
        If the view does not show the layer's Y/X plane in 2D.
    """
    shape = label_shape(layer, axis)
    whole = whole_scope(shape)
    if scope == "whole layer":
        return whole
    if scope not in SCOPES:
        raise ValueError(f"Unknown scope {scope!r}")
    # Layer axes shown on screen (world dims map to the layer's last axes).
    offset = viewer.dims.ndim - layer.ndim
    shown = [d - offset for d in viewer.dims.displayed]
    if viewer.dims.ndisplay != 2 or shown != [layer.ndim - 2, layer.ndim - 1]:
        raise ValueError(
            f"'{scope}' needs the 2D view showing the image's last two axes (Y, X); "
            "switch to 2D and reset the axis order, or choose 'whole layer'."
        )
    point = np.round(np.asarray(layer.world_to_data(viewer.dims.point), float)).astype(int)
    lead = [int(np.clip(point[i], 0, base_data(layer).shape[i] - 1))
            for i in range(layer.ndim - 2) if i != axis]
    # Axes of a 2D image are all shown: "current slice" is the whole image.
    region = Scope(tuple(lead) if lead else None, whole.yx, whole.yx, len(shape))
    if scope == "current slice":
        return region
    corners = np.asarray(layer.corner_pixels)[:, -2:]
    if not corners.any():  # Never drawn (no canvas yet): the whole plane is visible.
        return region
    h, w = shape[-2:]
    y0, x0 = np.clip(corners[0], 0, [h, w])
    y1, x1 = np.clip(corners[1] + 1, 0, [h, w])
    if y1 <= y0 or x1 <= x0:
        raise ValueError("The image is not visible in the canvas: pan or zoom to it first.")
    yx = (slice(int(y0), int(y1)), slice(int(x0), int(x1)))
    yx_read = (slice(max(0, int(y0) - context), min(h, int(y1) + context)),
               slice(max(0, int(x0) - context), min(w, int(x1) + context)))
    return Scope(region.lead, yx, yx_read, len(shape))


def image_index(region: Scope, layer, axis: int | None) -> tuple[tuple, int | None]:
    """Index into the image data for ``region`` and the sliced channel axis.

    Returns
    -------
    index : tuple
        Index over the image's data axes (channels kept whole).
    channel_axis : int or None
        Position of the channel axis in ``data[index]``.
    """
    index = list(region.read)
    axis = data_channel_axis(layer, axis)
    if axis is None:
        return tuple(index), None
    index.insert(axis, slice(None))
    # Integer indices before the channel axis remove dimensions.
    new_axis = sum(1 for k in index[:axis] if not isinstance(k, int))
    return tuple(index), new_axis
