"""One settings object per stage: prediction, labelling, out-of-core blocks.

:func:`~napari_unet.segment`, :func:`~napari_unet.segment_zarr`, the CLI, the
napari docks and training all describe a run with these frozen dataclasses,
so a default or a range check is written once. Every public entry point also
accepts the fields as plain keywords (``segment(image, threshold=0.4)``);
:func:`split_options` sorts them into the right object.

Fields left at ``None`` mean "the model's own value" (its training tile, its
normalization percentiles, its thresholds and minimum size); ``resolved``
fills them in from a :class:`~napari_unet.ModelInfo`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace

# Re-exported: these names have always been importable from here.
from .training_settings import (
    DEFAULT,
    SEMANTIC_DEFAULTS,
    TRAINING_DEFAULTS,
    TRAINING_PRESETS,
    training_preset,
)
from .windows import (  # noqa: F401  (re-exported: importable from here)
    BATCH_PIXELS,
    BATCH_WINDOWS,
    DEFAULT_WINDOW,
    WIDE_WINDOW,
    default_batch,
    default_window,
    fit_window,
)

#: Arithmetic the network can run in (see :mod:`napari_unet.engine`).
PRECISIONS = ("auto", "float32", "bfloat16", "float16")

__all__ = [
    "BlockSettings",
    "LabelSettings",
    "PredictionSettings",
    "DEFAULT",
    "SEMANTIC_DEFAULTS",
    "TRAINING_DEFAULTS",
    "TRAINING_PRESETS",
    "default_batch",
    "default_window",
    "split_options",
    "voxel_size_tuple",
    "training_preset",
]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or (
        hasattr(value, "__index__") and not isinstance(value, bool))


@dataclass(frozen=True)
class PredictionSettings:
    """How the network runs over an image.

    Attributes
    ----------
    tile_size : int or None
        Edge of the square windows the network sees, a multiple of the
        model's down-sampling factor (16 for depth 4). None:
        :func:`default_window` (128 px on CPUs with AMX, 256 px elsewhere),
        or the model's training tile if larger, shrunk to fit the plane (see
        :func:`fit_window`).
    overlap : int
        Pixels shared by neighbouring windows, blended with a cosine taper.
    batch_size : int or None
        Windows per network call (halved automatically when a GPU runs out
        of memory). None: :func:`default_batch` (16 windows of up to 128 px,
        4 of 256 px).
    normalize : bool
        Percentile-normalize intensities, as the model was trained.
    percentiles : (float, float) or None
        ``(low, high)`` percentiles mapped to 0 and 1; None: the model's.
    normalize_scope : {'plane', 'stack'}
        Percentiles per 2D plane, or once over the whole stack.
    intensity_range : (lo, hi) or None
        A fixed intensity mapping instead of percentiles of the image itself
        (e.g. the whole plane's, when predicting a crop of it).
    precision : {'auto', 'float32', 'bfloat16', 'float16'}
        Arithmetic of the network. 'auto': bfloat16 on CPUs with native
        bf16 units (AVX-512 BF16/AMX), mixed float16 on a GPU, else float32;
        the environment variable ``NAPARI_UNET_PRECISION`` replaces 'auto'
        (see :mod:`napari_unet.engine`).
    """

    tile_size: int | None = None
    overlap: int = 32
    batch_size: int | None = None
    normalize: bool = True
    percentiles: tuple[float, float] | None = None
    normalize_scope: str = "plane"
    intensity_range: tuple | None = None
    precision: str = "auto"

    def __post_init__(self):
        if self.tile_size is not None:
            _check(_is_int(self.tile_size) and self.tile_size >= 1,
                   f"tile_size must be a positive integer, got {self.tile_size!r}")
        _check(_is_int(self.overlap) and self.overlap >= 0,
               f"overlap must be an integer >= 0, got {self.overlap!r}")
        if self.tile_size is not None:
            _check(self.overlap < self.tile_size,
                   f"overlap ({self.overlap}) must be smaller than tile_size ({self.tile_size})")
        if self.batch_size is not None:
            _check(_is_int(self.batch_size) and self.batch_size >= 1,
                   f"batch_size must be a positive integer, got {self.batch_size!r}")
        _check(self.precision in PRECISIONS,
               f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        _check(self.normalize_scope in ("plane", "stack"),
               f"normalize_scope must be 'plane' or 'stack', got {self.normalize_scope!r}")
        if self.percentiles is not None:
            low, high = (float(v) for v in self.percentiles)
            _check(0 <= low < high <= 100,
                   f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
            object.__setattr__(self, "percentiles", (low, high))

    def resolved(self, info, shape=None, multiple: int = 16) -> PredictionSettings:
        """A copy with the tile size, batch size and percentiles filled in.

        With the plane ``shape`` (Y, X) and the model's down-sampling
        ``multiple``, an unset ``tile_size`` is fitted to the plane (see
        :func:`fit_window`): a 100 px plane gets one 112 px window instead of
        a 128 px one, and ``tile_size=256`` on a 512 px plane three 192 px
        windows, not three 256 px ones that would compute 2.25x its pixels.
        """
        tile = self.tile_size or max(default_window(), int(info.tile_size))
        if self.tile_size is None and shape is not None:
            tile = fit_window(shape, tile, self.overlap, multiple)
        settings = replace(self, tile_size=int(tile),
                           batch_size=self.batch_size or default_batch(tile),
                           percentiles=self.percentiles or info.percentiles)
        _check(settings.overlap < settings.tile_size,
               f"overlap ({settings.overlap}) must be smaller than tile_size "
               f"({settings.tile_size})")
        return settings


@dataclass(frozen=True)
class LabelSettings:
    """How probability maps become a mask or instance labels.

    Attributes
    ----------
    mode : {'instance', 'semantic'} or None
        Instance labels (1..N, unique over the whole image), or semantic
        labels: a 0/1 mask, or class labels 0..K for a model with several
        classes. None: the model's task (``ModelInfo.task``).
    threshold : float or None
        Foreground probability threshold in (0, 1); None: the model's.
    boundary_threshold : float or None
        Boundary probability above which a pixel cannot seed an object.
    min_size : int or None
        Objects smaller than this many pixels are removed; None: the model's.
    fill_holes : bool
        Fill holes inside objects.
    split : bool
        Split touching objects with a watershed (instance mode).
    split_h : float
        Distance-transform seeding (single-output models, and the shape
        prior of distance models): minimum depth, in pixels, of the
        saddle between two object centres for them to be split. 3D
        instances use three times this depth, in units of the finest voxel
        edge (measured on the 3D sample, ``benchmarks/bench_3d.py``).
    instances : {'3d', 'stitch', '2d'}
        For stacks with a Z axis (instance mode): ``'3d'`` one object per
        nucleus through Z by a 3D watershed (default, best measured);
        ``'stitch'`` 2D objects linked plane to plane by IoU (cellpose's
        ``stitch_threshold``); ``'2d'`` independent objects per plane. T
        frames are always labelled independently.
    voxel_size : (float, float, float) or None
        ``(Z, Y, X)`` voxel size for 3D instances (any one unit); None:
        isotropic voxels.
    stitch_threshold : float
        ``'stitch'`` only: minimum IoU for a plane's object to continue the
        object of the plane above.
    min_volume : int or None
        3D instances: objects smaller than this many cubes of the finest
        voxel edge are removed (fragments are merged into their neighbour);
        None: 64 x ``min_size``.
    distance_threshold : float or None
        Models with a ``"distance"`` output: learned distance above which a
        pixel belongs to a nucleus core (a watershed marker); None: the
        model's.
    merge_ratio : float or None
        Models with a ``"distance"`` output: two split pieces are merged
        back when the saddle between them is higher than this fraction of
        the lower of their peaks (see :mod:`napari_unet.splitting`); lower
        values split less. None: the model's (``thresholds["merge_ratio"]``,
        else 0.6).
    """

    mode: str | None = None
    threshold: float | None = None
    boundary_threshold: float | None = None
    min_size: int | None = None
    fill_holes: bool = True
    split: bool = True
    split_h: float = 2.0
    instances: str = "3d"
    voxel_size: tuple[float, float, float] | None = None
    stitch_threshold: float = 0.3
    min_volume: int | None = None
    distance_threshold: float | None = None
    merge_ratio: float | None = None

    def __post_init__(self):
        _check(self.mode in (None, "instance", "semantic"),
               f"mode must be 'instance' or 'semantic', got {self.mode!r}")
        for name in ("threshold", "boundary_threshold", "distance_threshold"):
            value = getattr(self, name)
            if value is not None:
                _check(isinstance(value, (int, float)) and 0 < float(value) < 1,
                       f"{name} must be between 0 and 1 (exclusive), got {value!r}")
        if self.min_size is not None:
            _check(_is_int(self.min_size) and self.min_size >= 0,
                   f"min_size must be an integer >= 0, got {self.min_size!r}")
        _check(isinstance(self.split_h, (int, float)) and self.split_h > 0,
               f"split_h must be > 0, got {self.split_h!r}")
        _check(self.instances in ("3d", "stitch", "2d"),
               f"instances must be '3d', 'stitch' or '2d', got {self.instances!r}")
        if self.voxel_size is not None:
            object.__setattr__(self, "voxel_size", voxel_size_tuple(self.voxel_size))
        _check(isinstance(self.stitch_threshold, (int, float))
               and 0 < float(self.stitch_threshold) <= 1,
               f"stitch_threshold must be in (0, 1], got {self.stitch_threshold!r}")
        if self.min_volume is not None:
            _check(_is_int(self.min_volume) and self.min_volume >= 0,
                   f"min_volume must be an integer >= 0, got {self.min_volume!r}")
        if self.merge_ratio is not None:
            _check(isinstance(self.merge_ratio, (int, float)) and 0 < self.merge_ratio <= 1,
                   f"merge_ratio must be in (0, 1], got {self.merge_ratio!r}")

    def resolved(self, info) -> LabelSettings:
        """A copy with the model's thresholds and minimum size filled in."""
        thresholds = info.thresholds or {}
        task = getattr(info, "task", "instance")
        mode = self.mode or ("semantic" if task == "semantic" else "instance")
        if mode == "instance" and task == "semantic" and len(info.classes or ()) > 1:
            raise ValueError(f"Model {info.name!r} gives class labels "
                             f"({', '.join(info.classes)}), not instances: use mode 'semantic'.")
        return replace(
            self, mode=mode,
            threshold=float(thresholds.get("foreground", 0.5)
                            if self.threshold is None else self.threshold),
            boundary_threshold=float(thresholds.get("boundary", 0.5)
                                     if self.boundary_threshold is None
                                     else self.boundary_threshold),
            distance_threshold=float(thresholds.get("distance", 0.5)
                                     if self.distance_threshold is None
                                     else self.distance_threshold),
            merge_ratio=float(thresholds.get("merge_ratio", 0.6)
                              if self.merge_ratio is None else self.merge_ratio),
            min_size=int(info.min_size if self.min_size is None else self.min_size),
        )


@dataclass(frozen=True)
class BlockSettings:
    """How a large (zarr/dask) image is cut into blocks for out-of-core runs.

    Attributes
    ----------
    halo : int
        Context in pixels around each block for post-processing: objects up
        to this size are labelled exactly as in memory. Z stacks with 3D
        objects get the same physical distance in planes above and below
        each slab (``voxel_size``).
    block_size : int, (int, int) or None
        Output chunk edge; None: the input's Y/X chunks (or ~1024 px when
        those are very small or very large).
    exact : bool
        Batch windows as the in-memory path does: bitwise-equal
        probabilities for up to ~2x the network time.
    """

    halo: int = 64
    block_size: int | tuple[int, int] | None = None
    exact: bool = False

    def __post_init__(self):
        _check(_is_int(self.halo) and self.halo >= 0,
               f"halo must be an integer >= 0, got {self.halo!r}")
        if self.block_size is not None:
            size = ((self.block_size,) * 2 if _is_int(self.block_size)
                    else tuple(self.block_size))
            _check(len(size) == 2 and all(_is_int(b) and b >= 1 for b in size),
                   f"block_size must be a positive int or (int, int), got {self.block_size!r}")
            object.__setattr__(self, "block_size", tuple(int(b) for b in size))


def voxel_size_tuple(value) -> tuple[float, float, float]:
    """``(Z, Y, X)`` voxel size as three positive finite floats.

    Raises
    ------
    ValueError
        For anything else (wrong count, zero, negative, NaN, text).
    """
    import math

    try:
        size = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"voxel_size must be three numbers (Z, Y, X), got {value!r}") from None
    _check(len(size) == 3 and all(math.isfinite(v) and v > 0 for v in size),
           f"voxel_size must be three positive numbers (Z, Y, X), got {value!r}")
    return size


_KINDS = {"prediction": PredictionSettings, "labelling": LabelSettings,
          "blocks": BlockSettings}


def split_options(options: dict, *, prediction: PredictionSettings | None = None,
                  labelling: LabelSettings | None = None,
                  blocks: BlockSettings | None = None, allowed=("prediction", "labelling"),
                  caller: str = "this function") -> dict:
    """Sort keyword options into settings objects.

    Parameters
    ----------
    options : dict
        Keyword arguments named like fields of the settings classes, e.g.
        ``{"threshold": 0.4, "tile_size": 256}``; ``None`` values are ignored
        (they mean "default"), so CLI arguments can be passed through as is.
    prediction, labelling, blocks : settings objects, optional
        Starting points that the options override.
    allowed : tuple of str
        Which kinds of settings the caller takes.
    caller : str
        Name used in the error message for an unknown option.

    Returns
    -------
    dict
        ``{"prediction": PredictionSettings, "labelling": ..., ...}`` for
        each allowed kind.

    Raises
    ------
    TypeError
        For an option no allowed settings class has.
    ValueError
        For an option out of range.
    """
    given = {"prediction": prediction, "labelling": labelling, "blocks": blocks}
    out = {}
    remaining = {k: v for k, v in options.items() if v is not None}
    for kind in allowed:
        cls = _KINDS[kind]
        names = {f.name for f in fields(cls)}
        mine = {k: remaining.pop(k) for k in list(remaining) if k in names}
        base = given[kind] if given[kind] is not None else cls()
        out[kind] = dataclasses.replace(base, **mine) if mine else base
    if remaining:
        name = sorted(remaining)[0]
        raise TypeError(f"{caller} got an unexpected keyword argument {name!r}")
    return out
