"""The U-Net architecture (Ronneberger et al., 2015) as a Keras 3 model.

With its defaults, :func:`build_unet` reproduces the classic network: four
down levels of two 3x3 ReLU convolutions and a 2x2 max-pool (64, 128, 256,
512 filters), a 1024-filter bottom, 2x2 stride-2 transposed convolutions with
skip concatenations on the way up and a 1x1 sigmoid head: 31,030,593
parameters for one input and one output channel.

Two tasks share this one network (:func:`build_unet` ``task=``):

* ``"instance"``: independent sigmoid maps (foreground, object boundary),
  turned into countable objects by post-processing;
* ``"semantic"`` with ``classes=K``: K = 1 is the original single sigmoid
  map (binary cross-entropy); K >= 2 is a softmax over background + K
  classes, one probability per class that sums to 1 at every pixel.

Convolutions use 'same' padding and the input is ``(None, None, C)``, so the
model is fully convolutional: it runs on any image whose height and width are
multiples of ``2**depth`` (the tiler pads to that).
"""

from __future__ import annotations

#: Parameters of the reference U-Net (base 64, depth 4, 1 in, 1 out).
REFERENCE_PARAMS = 31_030_593

TASKS = ("instance", "semantic")


def semantic_channels(classes: int) -> int:
    """Output channels of a semantic model with ``classes`` classes:
    one sigmoid map for one class, background + classes (softmax) otherwise."""
    return 1 if classes == 1 else classes + 1


def build_unet(
    in_channels: int = 1,
    out_channels: int = 1,
    base_filters: int = 64,
    depth: int = 4,
    *,
    task: str = "instance",
    classes: int | None = None,
    name: str | None = None,
):
    """Build a U-Net.

    Parameters
    ----------
    in_channels : int
        Number of image channels the model reads.
    out_channels : int
        Instance task: number of sigmoid output maps (1 for foreground, 2
        for foreground + object boundary). Semantic task: implied by
        ``classes`` (leave it at 1).
    base_filters : int
        Filters of the first level; each level down doubles them.
    depth : int
        Number of down-sampling levels (4 in the reference U-Net).
    task : {'instance', 'semantic'}
        What the outputs mean (see the module docstring).
    classes : int, optional
        Semantic task: number of classes K besides background. K = 1 gives
        one sigmoid map; K >= 2 a softmax over K + 1 channels.
    name : str, optional
        Model name; defaults to ``unet_b{base}_d{depth}``.

    Returns
    -------
    keras.Model
        Uncompiled model mapping ``(batch, H, W, in_channels)`` to
        ``(batch, H, W, out_channels)`` probabilities in [0, 1].
    """
    import keras
    from keras import layers

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    activation = "sigmoid"
    if task == "semantic":
        if classes is None or int(classes) != classes or classes < 1:
            raise ValueError(f"a semantic model needs classes >= 1, got {classes!r}")
        if out_channels not in (1, semantic_channels(classes)):
            raise ValueError(f"{classes} classes give {semantic_channels(classes)} output "
                             f"channels, not {out_channels}")
        out_channels = semantic_channels(int(classes))
        activation = "sigmoid" if classes == 1 else "softmax"
    elif classes is not None:
        raise ValueError("classes applies to task='semantic' only")

    for label, value in (("in_channels", in_channels), ("out_channels", out_channels),
                         ("base_filters", base_filters), ("depth", depth)):
        if int(value) != value or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")

    def double_conv(x, filters, prefix):
        for i in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                              kernel_initializer="he_normal", name=f"{prefix}_conv{i}")(x)
        return x

    inputs = keras.Input(shape=(None, None, in_channels), name="image")
    x = inputs
    skips = []
    for level in range(depth):
        x = double_conv(x, base_filters * 2**level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = double_conv(x, base_filters * 2**depth, "bottom")
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}_upconv")(x)
        x = layers.Concatenate(name=f"up{level}_concat")([skips[level], x])
        x = double_conv(x, filters, f"up{level}")
    outputs = layers.Conv2D(out_channels, 1, activation=activation, dtype="float32",
                            name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name or f"unet_b{base_filters}_d{depth}")


def model_depth(model) -> int:
    """Number of 2x2 pooling levels of a model (0 if it has none).

    A model loaded from a bioimage.io package carries the depth its
    description states (``napari_unet_depth``): its layers may downsample
    without pooling, or be a TensorFlow SavedModel with no visible layers.
    """
    stated = getattr(model, "napari_unet_depth", None)
    if stated is not None:
        return int(stated)
    return sum(1 for layer in model.layers if layer.__class__.__name__ == "MaxPooling2D")


def model_channels(model) -> tuple[int, int]:
    """``(in_channels, out_channels)`` of a channels-last 2D model."""
    in_shape = model.inputs[0].shape
    out_shape = model.outputs[0].shape
    return int(in_shape[-1]), int(out_shape[-1])
