"""Semantic training from class labels: targets, class weights, loss, scores.

Label value = class id (0 background, 1..K the classes). In a stack painted
on a few planes, a plane with no label at all is *unannotated*: it is left
out of training and validation, not taught as background. (A plane that is
really all background is therefore not expressible; paint a few pixels of
a class in it, or leave it out.)

With one class the network has one sigmoid map and the loss is the seed's
binary cross-entropy (+ soft Dice); with K >= 2 it has a softmax over
background + K classes and the loss is cross-entropy + per-class soft Dice.
Rare classes get larger weights in both terms (:func:`class_weights`), and
half of the training patches are centred on a pixel of a class chosen
uniformly (see :class:`~napari_unet.training.sampler.PatchSampler`), so a
small structure painted on a few planes is still learned.

Few painted planes (fewer than :data:`MIN_SPLIT_PLANES`) are all used for
training: holding one of three out would hide a third of the data and
leave a one-plane validation score too noisy to stop on (it stopped a run
at 0.75 mean Dice that reached 0.82 when trained to its time limit). The
best epoch is then the one with the lowest training loss, and early
stopping waits for half of the run (:func:`~napari_unet.training.train`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model_io import default_class_colors, semantic_outputs

#: Fewer annotated planes than this: no validation planes are held out.
MIN_SPLIT_PLANES = 5


@dataclass
class SemanticSetup:
    """What :func:`~napari_unet.training.train` needs for a semantic run."""

    classes: list[str]
    class_colors: list[str]
    outputs: list[str]
    weights: np.ndarray  # per output class (background first for K >= 2)
    n_unannotated: int

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def targets(self, labels: np.ndarray) -> np.ndarray:
        return class_targets(labels, self.n_classes)


def class_names(classes, label_planes) -> list[str]:
    """Class names from a list of names, a count, or (None) the labels' maximum."""
    if classes is None:
        top = max((int(lab.max(initial=0)) for lab in label_planes), default=0)
        classes = max(top, 1)
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",")]
    if isinstance(classes, (int, np.integer)):
        if classes < 1:
            raise ValueError(f"classes must be >= 1, got {classes}")
        return [f"class_{i}" for i in range(1, int(classes) + 1)]
    names = [str(c).strip() for c in classes]
    if not names or any(not n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"class names must be distinct and non-empty, got {names}")
    if "background" in names:
        raise ValueError("'background' is label 0; do not name it as a class")
    return names


def annotated_planes(planes, label_planes):
    """Keep the planes that have at least one labelled pixel.

    Returns
    -------
    planes, label_planes, n_dropped
    """
    keep = [i for i, lab in enumerate(label_planes) if lab.any()]
    return ([planes[i] for i in keep], [label_planes[i] for i in keep],
            len(label_planes) - len(keep))


def check_class_labels(label_planes, n_classes: int) -> None:
    """Labels must be class ids 0..K."""
    for lab in label_planes:
        lo, hi = int(lab.min(initial=0)), int(lab.max(initial=0))
        if lo < 0 or hi > n_classes:
            raise ValueError(f"Labels are class ids 0..{n_classes} for {n_classes} classes, "
                             f"found values {lo}..{hi}; give more class names or fix the labels.")


def class_targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``(H, W, C)`` uint8 targets: ``labels == 1`` for one class, one-hot
    over background + classes otherwise."""
    labels = np.asarray(labels)
    if n_classes == 1:
        return (labels == 1)[..., None].astype(np.uint8)
    return (labels[..., None] == np.arange(n_classes + 1)).astype(np.uint8)


def class_weights(label_planes, n_classes: int, max_weight: float = 5.0) -> np.ndarray:
    """Weights per output channel, larger for rare classes.

    ``(largest frequency / frequency) ** 0.5`` over background + classes,
    clipped to ``[1, max_weight]``: the most common class (usually
    background) weighs 1, so it keeps teaching where nothing is, and the
    square root keeps a tiny class from dominating. For one class the
    result has one value: the weight of class pixels relative to background.

    Raises
    ------
    ValueError
        A class has no labelled pixel.
    """
    counts = np.zeros(n_classes + 1, dtype=np.float64)
    for lab in label_planes:
        counts += np.bincount(lab.ravel(), minlength=n_classes + 1)[: n_classes + 1]
    missing = [i for i in range(1, n_classes + 1) if counts[i] == 0]
    if missing:
        raise ValueError(f"No pixel is labelled with class {missing[0]}; paint it on at "
                         f"least one plane or remove it from the class names.")
    if counts[0] == 0:
        counts[0] = counts[1:].sum()  # fully painted planes: no background prior
    w = np.clip(np.sqrt(counts.max() / counts), 1.0, max_weight)
    return np.array([w[1] / w[0]]) if n_classes == 1 else w


def semantic_setup(label_planes, classes, class_colors=None, parent=None) -> SemanticSetup:
    """Validate class labels (already without unannotated planes) and
    derive names, colours, outputs and class weights."""
    if parent is not None and classes is None:
        classes = parent.classes or max(1, parent.out_channels - 1)
        class_colors = class_colors or parent.class_colors
    names = class_names(classes, label_planes)
    if parent is not None and len(parent.classes or []) not in (0, len(names)):
        raise ValueError(f"The model has {len(parent.classes)} classes {parent.classes}, "
                         f"not {len(names)}.")
    check_class_labels(label_planes, len(names))
    colors = list(class_colors or default_class_colors(len(names)))
    if len(colors) != len(names):
        raise ValueError(f"{len(colors)} class colours for {len(names)} classes")
    return SemanticSetup(names, colors, semantic_outputs(names),
                         class_weights(label_planes, len(names)), 0)


def make_semantic_loss(n_classes: int, weights):
    """Cross-entropy + per-class soft Dice, both weighted by ``weights``.

    One class: BCE with class pixels weighted ``weights[0]`` + soft Dice.
    Several: softmax cross-entropy weighted per true class + the weighted
    mean of ``1 - Dice`` over background and the K classes (background's
    Dice penalizes a class spilling over it). Dice is computed over the
    whole batch, so a class absent from one patch does not make its score
    noisy.
    """
    from keras import ops

    w = np.asarray(weights, dtype=np.float32)

    def soft_dice(t, q):
        return (2 * ops.sum(t * q) + 1) / (ops.sum(t) + ops.sum(q) + 1)

    if n_classes == 1:
        pos_w = float(w[0])

        def binary_loss(y_true, y_pred):
            t = ops.cast(y_true, "float32")[..., 0]
            q = ops.clip(ops.cast(y_pred, "float32")[..., 0], 1e-6, 1 - 1e-6)
            bce = -(pos_w * t * ops.log(q) + (1 - t) * ops.log(1 - q))
            return ops.mean(bce) + 1 - soft_dice(t, q)

        return binary_loss

    dice_w = w / w.sum()

    def class_loss(y_true, y_pred):
        t = ops.cast(y_true, "float32")
        q = ops.clip(ops.cast(y_pred, "float32"), 1e-6, 1.0)
        ce = -ops.sum(t * ops.log(q) * w, axis=-1)
        total = ops.mean(ce)
        for c in range(n_classes + 1):
            total = total + float(dice_w[c]) * (1 - soft_dice(t[..., c], q[..., c]))
        return total

    return class_loss


def validation_scores(y: np.ndarray, preds: np.ndarray, classes) -> dict:
    """Per-class Dice on validation patches and their mean (``val_score``)."""
    from ..metrics import class_scores
    from ..postprocess import predicted_classes

    truth = predicted_classes(y, axis=-1)  # one-hot / 0-1 targets back to class ids
    scores = class_scores(truth, predicted_classes(preds, axis=-1), len(classes))
    record = {f"val_dice_{name}": scores["dice"][i] for i, name in enumerate(classes)}
    record["val_score"] = scores["mean_dice"]
    return record
