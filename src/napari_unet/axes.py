"""One axes resolver: which axis of an array is T, Z, C, Y or X.

Every entry point (the Python API, the CLI, the napari docks, export and
training) asks :func:`resolve_axes`, so an array is read the same way
everywhere. Letters:

* ``T`` time: frames are independent, objects are never linked across them;
* ``Z`` depth: planes of one volume (objects may span them);
* ``C`` channels (``S``, tifffile's "samples", is read as ``C``);
* ``Y``, ``X``: the image plane, always the last two non-channel axes.

Defaults, when nothing says otherwise, are documented and announced (an
:class:`AxesWarning`), never silent: a 2D array is ``YX``, 3D ``ZYX``, 4D
``TZYX``, 5D ``TZCYX`` (ImageJ's hyperstack order). RGB(A) is only assumed
when the caller says so (``rgb=True``, e.g. from a napari layer's flag).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

__all__ = [
    "AXIS_LETTERS",
    "Axes",
    "AxesWarning",
    "axes_from_names",
    "channel_axis_between",
    "channel_axis_from_names",
    "default_axes",
    "resolve_axes",
]

AXIS_LETTERS = "TZCYX"
_DEFAULTS = {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TZCYX"}
# Axis names seen in napari layers, OME-Zarr and tifffile, mapped to letters.
_NAMES = {
    "t": "T", "time": "T", "frame": "T", "frames": "T",
    "z": "Z", "depth": "Z", "plane": "Z", "planes": "Z", "slice": "Z", "q": "Z", "i": "Z",
    "c": "C", "ch": "C", "channel": "C", "channels": "C", "s": "C", "sample": "C",
    "y": "Y", "row": "Y", "rows": "Y",
    "x": "X", "col": "X", "column": "X", "columns": "X",
}


class AxesWarning(UserWarning):
    """The axes of an array were assumed, not given: check they are right."""


@dataclass(frozen=True)
class Axes:
    """The meaning of each axis of an array.

    Attributes
    ----------
    letters : str
        One letter of ``TZCYX`` per axis, in the array's order, e.g. ``"ZYX"``
        or ``"TYXC"``.
    assumed : bool
        True when the letters are a default rather than what the caller (or
        the file, or the layer) said.
    """

    letters: str
    assumed: bool = False

    @property
    def ndim(self) -> int:
        return len(self.letters)

    @property
    def channel_axis(self) -> int | None:
        """Position of ``C``, or None."""
        return self.letters.index("C") if "C" in self.letters else None

    @property
    def spatial(self) -> str:
        """The letters without ``C``: the axes of the labels, e.g. ``"TZYX"``."""
        return self.letters.replace("C", "")

    def __contains__(self, letter: str) -> bool:
        return letter in self.letters

    def __str__(self) -> str:
        return self.letters

    def describe(self, shape) -> str:
        """``"Z=30, Y=256, X=256"`` for a shape with these axes."""
        return ", ".join(f"{a}={int(n)}" for a, n in zip(self.letters, shape, strict=True))


def default_axes(ndim: int) -> str:
    """The letters assumed for an array of ``ndim`` dimensions.

    Parameters
    ----------
    ndim : int
        2 to 5.

    Returns
    -------
    str
        ``"YX"``, ``"ZYX"``, ``"TZYX"`` or ``"TZCYX"``.

    Raises
    ------
    ValueError
        For other dimensionalities: pass ``axes`` explicitly then.
    """
    try:
        return _DEFAULTS[int(ndim)]
    except KeyError:
        raise ValueError(
            f"cannot guess the axes of a {ndim}-D array; pass axes= (letters from TZCYX, "
            f"e.g. 'TZCYX')") from None


def _check_letters(letters: str, ndim: int) -> str:
    letters = str(letters).upper().replace("S", "C")
    if len(letters) != ndim:
        raise ValueError(f"axes {letters!r} has {len(letters)} letters but the array has "
                         f"{ndim} dimensions")
    if len(set(letters)) != len(letters) or set(letters) - set(AXIS_LETTERS):
        raise ValueError(f"axes {letters!r}: use each of T, Z, C, Y, X at most once")
    if letters.replace("C", "")[-2:] != "YX":
        raise ValueError(f"axes {letters!r}: Y and X must be the last two axes other than C")
    return letters


def resolve_axes(ndim, axes=None, *, channel_axis: int | None = None, rgb: bool = False,
                 names=None, announce: bool = True, what: str = "the image") -> Axes:
    """Decide the axes of an array.

    In order of precedence: ``axes`` (letters), ``rgb`` (channels last),
    ``channel_axis``, recognisable axis ``names`` (e.g. a napari layer's
    ``axis_labels``), then the default for ``ndim`` (see :func:`default_axes`).

    Parameters
    ----------
    ndim : int or tuple of int
        Number of dimensions, or the array's shape.
    axes : str or Axes, optional
        Letters from ``TZCYX``, one per axis (``S`` is read as ``C``).
    channel_axis : int, optional
        Axis holding channels (negative values count from the end). Must
        agree with ``axes`` when both are given.
    rgb : bool
        The last axis holds RGB(A) channels.
    names : sequence of str, optional
        Axis names to recognise (``t``, ``z``, ``c``, ``time``, ...).
    announce : bool
        Emit an :class:`AxesWarning` when the axes are assumed for an array
        of three or more dimensions (a 2D array can only be ``YX``).
    what : str
        How to name the array in messages.

    Returns
    -------
    Axes

    Raises
    ------
    ValueError
        Letters that do not fit the array, or a conflicting ``channel_axis``.
    """
    shape = tuple(ndim) if isinstance(ndim, (tuple, list)) else None
    n = len(shape) if shape is not None else int(ndim)
    if n < 2:
        raise ValueError(f"{what} must have at least two dimensions (Y, X), got {n}")
    if channel_axis is not None:
        if not -n <= int(channel_axis) < n:
            raise ValueError(f"channel_axis {channel_axis} is out of range for {what} with "
                             f"{n} dimensions")
        channel_axis = int(channel_axis) % n
    if rgb:
        if channel_axis not in (None, n - 1):
            raise ValueError("an RGB image has its channels on the last axis")
        channel_axis = n - 1
    if isinstance(axes, Axes):
        axes = axes.letters
    if axes is not None:
        letters = _check_letters(axes, n)
        if channel_axis is not None and letters.find("C") != channel_axis:
            raise ValueError(f"axes {letters!r} and channel_axis={channel_axis} disagree")
        return Axes(letters)
    if names is not None:
        letters = axes_from_names(names)
        if letters is not None and len(letters) == n:
            try:
                letters = _check_letters(letters, n)
            except ValueError:
                letters = None
            if letters is not None and (channel_axis is None
                                        or letters.find("C") == channel_axis):
                return Axes(letters)
    if channel_axis is not None:
        rest = default_axes(n - 1).replace("C", "") if n - 1 >= 2 else None
        if rest is None or len(rest) != n - 1:
            raise ValueError(f"Expected at least a 2D image (Y, X) besides the channel axis; "
                             f"{what} has {n} dimensions")
        letters = rest[:channel_axis] + "C" + rest[channel_axis:]
        letters = _check_letters(letters, n)
        result = Axes(letters, assumed=n - 1 > 2)
    else:
        result = Axes(default_axes(n), assumed=n > 2)
    if announce and result.assumed:
        dims = result.describe(shape) if shape is not None else result.letters
        warnings.warn(
            f"Reading {what} as {result.letters} ({dims}); pass axes= (letters from "
            f"TZCYX, e.g. 'TYX' for a time-lapse) if that is wrong.", AxesWarning,
            stacklevel=3)
    return result


def axes_from_names(names) -> str | None:
    """Letters for axis names such as a napari layer's ``axis_labels``.

    Returns None unless every name is recognised (``"axis -1"``, napari's
    default, is not), so a partial guess never overrides the defaults.
    """
    letters = []
    for name in names:
        letter = _NAMES.get(str(name).strip().lower())
        if letter is None:
            return None
        letters.append(letter)
    return "".join(letters)


def channel_axis_from_names(names) -> int | None:
    """The axis whose name means channels (``c``, ``ch``, ``channel``...), or None."""
    found = [i for i, name in enumerate(names) if _NAMES.get(str(name).strip().lower()) == "C"]
    return found[0] if len(found) == 1 else None


def channel_axis_between(image_shape, label_shape, *, axes=None, rgb: bool = False,
                         names=None) -> int | None:
    """The image axis whose removal gives the labels' shape (a channel axis).

    The one rule used wherever an image is paired with labels (export,
    training from layers, training from dataset folders): what the image
    says about itself first (``axes`` letters, ``rgb``, a channel-like axis
    name), then any axis other than the last two whose removal makes the
    shapes equal. None when the shapes already match and nothing says the
    image has channels.

    Raises
    ------
    ValueError
        If no single axis reconciles the shapes.
    """
    image_shape, label_shape = tuple(map(int, image_shape)), tuple(map(int, label_shape))
    n = len(image_shape)
    candidates = []
    if axes is not None:
        candidates.append(resolve_axes(n, axes, announce=False).channel_axis)
    elif rgb:
        candidates.append(n - 1)
    else:
        named = channel_axis_from_names(names) if names is not None else None
        if image_shape == label_shape and named is None:
            return None
        candidates += ([named] if named is not None else []) + list(range(n - 2))
    for axis in candidates:
        if axis is None:
            if image_shape == label_shape:
                return None
            continue
        if image_shape[:axis] + image_shape[axis + 1:] == label_shape:
            return axis
    raise ValueError(f"the image {image_shape} and the labels {label_shape} do not have the "
                     "same shape (a channel axis aside)")


def voxel_size_from_scale(letters: str, scale) -> tuple[float, float, float] | None:
    """The ``(Z, Y, X)`` voxel size in a per-axis ``scale`` (a file's
    calibration, a napari layer's ``scale``) for axes ``letters`` with a Z
    axis; None without Z, or when the scale does not fit the axes or is not
    positive."""
    if scale is None or "Z" not in letters or len(scale) != len(letters):
        return None
    size = tuple(abs(float(scale[letters.index(a)])) for a in "ZYX")
    return size if min(size) > 0 else None
