"""The Segment dock's controls, one section per concern.

Each ``*_section`` function creates its controls as attributes of the dock
(the dock and tests address them by name, e.g. ``dock.threshold``) and
returns them in display order. A new concern (an option group) gets its
own section here and one line in :class:`~.segment_widget.SegmentWidget`.
"""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, FloatSlider, Label, PushButton, SpinBox

from ..settings import default_window
from . import _layers
from ._review import ReviewPanel

OUTPUTS = [("instance labels", "instance"), ("semantic mask / class labels", "semantic")]
INSTANCES = [("3D: one per nucleus through Z", "3d"), ("2D: per plane", "2d"),
             ("planes linked by overlap (IoU)", "stitch")]


def input_section(dock) -> list:
    """The image layer, its channel axis and the channels fed to the model."""
    # Choices are callables: napari calls reset_choices() on docked widgets,
    # which would otherwise restore the initial (empty) lists.
    dock.image = ComboBox(label="image", choices=dock._image_choices, nullable=True)
    dock.channel_axis = ComboBox(label="channel axis", choices=lambda w: (
        _layers.channel_axis_choices(dock.image.value)))
    dock.channels = ComboBox(label="channels", choices=dock._channel_choices)
    return [dock.image, dock.channel_axis, dock.channels]


def model_section(dock) -> list:
    """The model list, a one-line summary of the chosen model, and its export."""
    dock.model = ComboBox(label="model", choices=lambda w: dock.registry.choices())
    dock.model_info = Label(label="")
    return [dock.model, dock.model_info, dock.bioimageio.button]


def labelling_section(dock) -> list:
    """Post-processing: changing these re-labels the last result from its cache."""
    dock.output = ComboBox(label="output", choices=OUTPUTS, value="instance")
    dock.threshold = FloatSlider(label="threshold", min=0.05, max=0.95, step=0.05, value=0.5)
    dock.min_size = SpinBox(label="min size (px)", min=0, max=1_000_000, value=16)
    # Stacks: which axis is Z (objects through it) or T (never linked). The
    # selector shows only where the layer cannot say; voxel size: its scale.
    dock.axes = ComboBox(label="axes", choices=lambda w: _axes_choices(dock))
    dock.instances = ComboBox(label="objects", choices=INSTANCES, value="3d")
    return [dock.output, dock.threshold, dock.min_size, dock.axes, dock.instances]


def _axes_choices(dock) -> list:
    try:
        layer, axis = dock.image.value, dock.channel_axis.value
    except AttributeError:  # The input section is made after this one.
        return [("YX", "YX")]
    return _layers.label_axes_choices(layer, axis)


def update_stack_controls(dock) -> None:
    """Refresh the axes choices for the current image; show what applies."""
    dock.axes.reset_choices()
    choices = dock.axes.choices
    dock.axes.visible = len(choices) > 1
    dock.instances.visible = "Z" in (dock.axes.value or "")


def labelling_params(dock) -> dict:
    """The post-processing settings of :func:`labelling_section` (``Job.params``)."""
    letters = dock.axes.value or "YX"
    return {"mode": dock.output.value, "threshold": round(float(dock.threshold.value), 4),
            "min_size": int(dock.min_size.value), "axes": letters,
            "instances": dock.instances.value,
            "voxel_size": _layers.voxel_size(dock.image.value, dock.channel_axis.value,
                                             letters)}


def tiling_section(dock) -> list:
    """How the image is cut for the network, and which part of it is segmented."""
    dock.tile_size = SpinBox(label="tile size", min=32, max=2048, step=16,
                             value=default_window())
    dock.overlap = SpinBox(label="tile overlap", min=0, max=512, step=16, value=32)
    dock.scope = ComboBox(label="scope", choices=list(_layers.SCOPES))
    return [dock.tile_size, dock.overlap, dock.scope]


def result_section(dock) -> list:
    """What a run writes besides the labels, and how it treats hand edits."""
    dock.add_probs = CheckBox(text="also add probability map", value=False)
    dock.keep_edits = CheckBox(text="keep my edits (re-predict untouched areas)", value=False)
    return [dock.add_probs, dock.keep_edits]


def run_section(dock) -> list:
    """Run and Cancel buttons (progress and status are the dock's own)."""
    dock.run_button = PushButton(text="Run")
    dock.cancel_button = PushButton(text="Cancel", enabled=False)
    return [dock.run_button, dock.cancel_button]


def review_section(dock) -> list:
    """The review panel: the result's objects by confidence (see :mod:`._review`)."""
    dock.review = ReviewPanel(dock._viewer)
    return dock.review.widgets
