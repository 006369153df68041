"""Result layers the widget owns: their edit trackers and cached probabilities."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np

from ..scope import Scope
from . import _notify
from ._edits import EditTracker
from ._layers import unique_name


@dataclass(eq=False)  # Identity semantics: holds arrays and layers.
class Result:
    """A Labels layer written by the widget.

    Attributes
    ----------
    image : weakref to the source Image layer
    layer : napari.layers.Labels
    tracker : EditTracker
        The user's edits of ``layer``.
    patches : list of (Scope, probabilities, ModelInfo)
        Cached network outputs, so settings changes re-label without
        running the network.
    params : dict
        Post-processing settings the layer's labels currently reflect.
    geometry : dict
        Keyword arguments that place layers over the image.
    prob_layer : napari.layers.Image or None
    boxes : dict
        ``{label: ((start, stop), ...)}`` of the objects listed for review
        (see :mod:`._review_data`).
    """

    image: weakref.ref
    layer: object
    tracker: EditTracker
    geometry: dict
    params: dict = field(default_factory=dict)
    patches: list = field(default_factory=list)
    prob_layer: object = None
    warned_version: int = -1
    generation: int = 0  # Bumped by every run written: stale re-labels are dropped.
    boxes: dict = field(default_factory=dict)

    def cache(self, region: Scope, probs: np.ndarray, info) -> None:
        """Remember ``probs`` of ``region``, folding it into a cached patch.

        A region strictly inside a cached patch updates that patch in place
        (a re-run of one slice of a stack); patches inside the new region,
        or equal to it, are dropped. Keeps one copy of the probabilities per
        pixel; later patches win where they overlap.
        """
        kept = []
        for old_region, old_probs, old_info in self.patches:
            # The same region again (a re-run) replaces the patch: no 50 MB copy
            # in the GUI thread for a 2048^2 image, and the new run's model info.
            if (_contains(old_region, region) and not _contains(region, old_region)
                    and old_probs.shape[0] == probs.shape[0]):
                old_probs[(slice(None),) + _relative(old_region, region)] = probs
                return
            if not _contains(region, old_region):
                kept.append((old_region, old_probs, old_info))
        self.patches = kept + [(region, probs, info)]


def _contains(outer: Scope, inner: Scope) -> bool:
    if outer.lead is not None and outer.lead != inner.lead:
        return False
    return all(o.start <= i.start and i.stop <= o.stop
               for o, i in zip(outer.yx, inner.yx, strict=True))


def _relative(outer: Scope, inner: Scope) -> tuple:
    """Index of ``inner.target`` inside arrays shaped like ``outer.target``."""
    lead = () if outer.lead is not None else (
        tuple(inner.lead) if inner.lead is not None else (Ellipsis,))
    yx = tuple(slice(i.start - o.start, i.stop - o.start)
               for o, i in zip(outer.yx, inner.yx, strict=True))
    return lead + yx


def write_run_result(viewer, results: list, run, outcome, *, add_probs: bool,
                     hidden: bool = False) -> Result:
    """Write a finished run into its target layer, or a new one; return its Result.

    The target is abandoned for a new layer if the user removed or edited it
    during the run: the composed patch was computed against older data.
    With ``hidden``, a new layer starts invisible (the caller shows it in a
    later event-loop turn, splitting napari's layer set-up from its first
    draw).
    """
    job, region = outcome.job, outcome.job.region
    target = run.target
    if target is not None and (target.layer not in viewer.layers
                               or target.tracker.version != run.edit_version):
        _notify.show_warning(f"'{target.layer.name}' changed during the run; the new result was "
                     "added as a new layer so that no edit is lost.")
        target = None
    if target is None:
        labels = outcome.labels  # uint16 or int32, never uint8 (see write_region)
        name = unique_name(viewer.layers, f"{run.image_name} labels")
        # Provenance, read back by the Export widget into dataset.json.
        meta = {"napari_unet": {"model": getattr(outcome.info, "name", None),
                                "model_path": str(job.model_path)}}
        layer = viewer.add_labels(full_array(run.shape, region, labels), name=name,
                                  metadata=meta, visible=not hidden, **run.geometry,
                                  **class_layer_options(outcome.info))
        target = Result(run.image, layer, EditTracker(layer), run.geometry)
        results.append(target)
    else:
        write_region(target.layer, target.tracker, region, outcome.patch)
    target.params = dict(job.params)
    target.generation += 1
    if outcome.probs is None:  # Out of core: no probabilities were kept.
        return target
    target.cache(region, outcome.probs, outcome.info)
    if add_probs:
        _write_probabilities(viewer, target, region, outcome, run.image_name)
    return target


def class_layer_options(info) -> dict:
    """``features`` (class names) and a colour per class for the Labels layer
    of a semantic model with named classes; nothing for other models."""
    if info is None or not getattr(info, "is_semantic", False) or not info.classes:
        return {}
    from napari.utils.colormaps import DirectLabelColormap

    names = ["background", *info.classes]
    colors = {None: "transparent", **info.label_colors()}
    return {"features": {"index": list(range(len(names))), "class": names},
            "colormap": DirectLabelColormap(color_dict=colors)}


def _write_probabilities(viewer, result: Result, region: Scope, outcome, image_name: str):
    from napari.layers import Image

    outputs = list(outcome.info.outputs)
    if outputs and outputs[0] == "background":  # Class model: P(any class).
        fg = 1 - outcome.probs[0]
    else:
        fg = outcome.probs[outputs.index("foreground") if "foreground" in outputs else 0]
    layer, shape = result.prob_layer, result.layer.data.shape
    if layer is not None and layer in viewer.layers and layer.data.shape == shape:
        write_region(layer, None, region, fg)
        return
    name = unique_name(viewer.layers, f"{image_name} probabilities")
    index = viewer.layers.index(result.layer)
    result.prob_layer = Image(full_array(shape, region, fg), name=name, colormap="magma",
                              contrast_limits=(0, 1), blending="additive", **result.geometry)
    viewer.add_layer(result.prob_layer)
    # Below the labels, so objects stay visible.
    viewer.layers.move(viewer.layers.index(result.prob_layer), index)


def write_region(layer, tracker: EditTracker, region: Scope, values: np.ndarray) -> None:
    """Write ``values`` at ``region.target`` of a Labels or Image layer.

    A whole-layer result replaces the data (one event, no copy); a part is
    written in place and only that layer is refreshed. Label data whose
    dtype cannot hold the new ids is widened first (uint16 -> int32).
    """
    suspended = tracker.suspended() if tracker is not None else _null()
    with suspended:
        if region.is_whole and values.shape == layer.data.shape:
            layer.data = values
            return
        data = layer.data
        if data.dtype.kind in "iu" and values.size:
            top = int(values.max())
            if top > np.iinfo(data.dtype).max:
                layer.data = data = data.astype(np.int32)
        data[region.target] = values
        layer.refresh()


def full_array(shape: tuple[int, ...], region: Scope, values: np.ndarray) -> np.ndarray:
    """A new full-shape array holding ``values`` at ``region`` (zeros elsewhere)."""
    if region.is_whole and values.shape == tuple(shape):
        return values
    out = np.zeros(shape, dtype=values.dtype)
    out[region.target] = values
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
