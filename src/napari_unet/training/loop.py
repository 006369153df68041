"""Training and fine-tuning U-Nets: the core behind the Train widget and CLI.

:func:`train` runs plain ``keras.Model.fit`` on random augmented patches
(:class:`~napari_unet.training.sampler.PatchSampler`, fed by a ``PyDataset`` that
tf.data prefetches in a background thread), so throughput is that of bare
``fit``. One Keras callback reports progress, honours cancellation and a
time limit, scores the validation patches after each epoch, keeps the best
weights and saves them atomically. Images are normalized exactly as at
prediction time (per-plane percentiles), so a trained model needs no
further calibration.

The run's inputs (starting model, validation split, patch feed) are
prepared by :mod:`.prepare`; :mod:`.result` holds :class:`TrainingResult`
(re-exported here) and the provenance stored with the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..model_io import ModelFileError, ModelInfo
from ..settings import DEFAULT, SEMANTIC_DEFAULTS, TRAINING_DEFAULTS, training_preset
from .data import counted_planes, training_planes
from .losses import make_loss
from .prepare import _counts, _patch_dataset, _resolve_start, _split_validation, _uncompiled_copy
from .result import TrainingResult, _versions
from .sampler import Augmentation, PatchSampler, grid_patches
from .semantic import (
    MIN_SPLIT_PLANES,
    annotated_planes,
    make_semantic_loss,
    semantic_setup,
    validation_scores,
)
from .targets import SUPPORTED_OUTPUTS


def train(
    images,
    labels,
    *,
    model=None,
    task: str | None = None,
    classes=None,
    class_colors=None,
    base_filters: int = 16,
    depth: int = 4,
    outputs: Sequence[str] | None = None,
    channel_axis: int | None = None,
    val_images=None,
    val_labels=None,
    val_fraction: float = 0.15,
    epochs: int = DEFAULT,
    steps_per_epoch: int = DEFAULT,
    batch_size: int = DEFAULT,
    learning_rate: float = DEFAULT,
    patch_size: int = DEFAULT,
    augment: bool | Augmentation | str = True,
    patience: int | None = DEFAULT,
    boundary_width: int = 2,
    boundary_weight: float = 3.0,
    separation: tuple[float, float] | None = None,
    time_limit: float | None = DEFAULT,
    output_path=None,
    overwrite: bool = False,
    info: ModelInfo | None = None,
    data_description: str | None = None,
    seed: int | None = 0,
    jit_compile: bool | str = "auto",
    progress: Callable[[dict], None] | None = None,
    cancel=None,
    counted=None,
    preset: str | None = None,
) -> TrainingResult:
    """Train a U-Net from scratch, or fine-tune one, on labelled images.

    Parameters
    ----------
    images, labels : array or list of arrays
        Training images (2D or stacks, see
        :func:`~napari_unet.training.data.training_planes`) and integer
        labels of the same spatial shape: instance ids, or class ids for
        ``task="semantic"``.
    model : keras.Model, str, Path or None
        Model to fine-tune (a copy is trained; the object passed is never
        modified) or a ``.keras`` file; None builds a fresh U-Net.
    task : {'instance', 'semantic'}, optional
        The fine-tuned model's own task, else ``"instance"``.
        ``"semantic"``: labels are class ids 0..K, planes without any label
        are unannotated and left out (see :mod:`.semantic`), the loss is
        cross-entropy + per-class soft Dice with rare-class weights,
        validation scores the mean per-class Dice, early stopping waits for
        half of the run, and from scratch the settings not given
        take :data:`napari_unet.settings.SEMANTIC_DEFAULTS`.
    classes : list of str, str or int, optional
        Semantic task: class names for label values 1..K (a list or
        ``"a,b,c"``), or K; by default the model's, else ``class_1..K`` up
        to the largest label.
    class_colors : list of str, optional
        ``#rrggbb`` per class, stored with the model for display.
    base_filters, depth : int
        Architecture of a fresh model.
    outputs : sequence of str, optional
        ``("foreground", "boundary")`` (default for fresh models),
        ``("foreground",)`` or ``("foreground", "boundary", "distance")``
        (adds the per-object normalized distance, whose maxima seed the
        watershed). A fine-tuned model keeps its own outputs.
    channel_axis : int, optional
        Channel axis of multichannel images.
    val_images, val_labels : optional
        Validation data. Without it, ``val_fraction`` of the planes (or a
        strip of a single image) is held out; ``val_fraction=0`` trains
        without validation (early stopping then watches the training loss),
        as do semantic runs on fewer than
        :data:`~napari_unet.training.semantic.MIN_SPLIT_PLANES` annotated
        planes.
    epochs, steps_per_epoch, batch_size : int
        Length of training (default 30 x 100 steps of 8); each step sees
        ``batch_size`` random patches.
    learning_rate : float
        Initial Adam learning rate (default 1e-3). It follows a cosine decay to 10 % over
        the run, the run's end being the planned steps or the time limit,
        whichever comes first.
    patch_size : int
        Square patch edge (default 128); a multiple of ``2**depth``. Stored as the model's
        default prediction tile.
    augment : bool, 'strong' or Augmentation
        Random flips, 90-degree rotations, scale, intensity, gamma, noise;
        semantic runs use :meth:`Augmentation.strong` for True.
    patience : int or None
        Stop after this many epochs without improvement (default 8; None:
        never).
    boundary_width : int
        Thickness (px) of the boundary target rims.
    boundary_weight : float
        Weight of boundary pixels in the boundary channel's BCE.
    separation : (float, float), optional
        ``(w0, sigma)``: weight the foreground and boundary BCE with the
        U-Net paper's separation-border map (e.g. ``(10, 5)``), so that the
        background between touching nuclei dominates the loss.
    time_limit : float, optional
        Seconds (default None: no limit); training stops after the step that passes it (the partial
        epoch is still validated).
    output_path : str or Path, optional
        ``.keras`` file receiving the best weights, saved atomically after
        every improving epoch and at the end.
    overwrite : bool
        Allow replacing an existing ``output_path``. Checked before training
        starts.
    info : ModelInfo, optional
        Template metadata (name, description, thresholds); architecture,
        normalization and training fields are filled in.
    data_description : str, optional
        Stored in ``info.training['data']``.
    seed : int or None
        Seeds Keras' global RNGs and the patch sampler (reproducible runs).
    jit_compile : bool or 'auto'
        XLA compilation of the training step (Keras' ``compile`` option):
        'auto' is faster for real runs; False starts a few seconds sooner,
        which suits tiny runs.
    progress : callable, optional
        Called with a dict after every step (``event='step'``: epoch, step,
        loss, ...) and every epoch (``event='epoch'``: val_loss, val_score,
        best_score, ...).
    cancel : callable or threading.Event, optional
        Checked after every step; training stops, the best completed epoch
        is kept, and a run cancelled during its first epoch writes nothing.
    counted : list of (array of bool or None), optional
        Sparse annotation: per training image, the pixels whose labels count
        (reviewed and corrected regions, see :mod:`napari_unet.counted`);
        None (for all or one image) counts every pixel. The loss ignores
        the rest and patches are centred on counted pixels.
    preset : str, optional
        A named set of settings (:data:`napari_unet.settings.TRAINING_PRESETS`,
        e.g. ``'quick'``: fine-tuning on one corrected image within 3 minutes
        on 2 CPU cores). Of the arguments above marked with a default, those
        not given take the preset's values; any value given wins, even one
        equal to the default (the signature shows them as ``DEFAULT``:
        :data:`napari_unet.settings.TRAINING_DEFAULTS`).

    Returns
    -------
    TrainingResult

    Raises
    ------
    ValueError
        Bad data or settings. ``FileExistsError`` if ``output_path`` exists
        and ``overwrite`` is False.
    """
    import keras

    # Arguments not given take the preset's value, else (semantic from scratch)
    # SEMANTIC_DEFAULTS, else train()'s own; resolved once the task is known.
    chosen = dict(epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
                  patch_size=patch_size, learning_rate=learning_rate, patience=patience,
                  time_limit=time_limit)
    preset_values = training_preset(preset) if preset is not None else {}
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if output_path is not None:
        output_path = Path(output_path)
        if output_path.suffix != ".keras":
            raise ModelFileError(f"Model files must end in '.keras': {output_path}")
        if output_path.exists() and not overwrite:
            raise FileExistsError(f"Model file already exists, not overwriting: {output_path}")

    source, parent, parent_name = _resolve_start(model, info)
    if parent is not None and task not in (None, parent.task):
        raise ValueError(f"The model to fine-tune is a {parent.task} model, not {task}; "
                         f"start a {task} model from scratch.")
    task = task or (parent.task if parent is not None else "instance")
    if task not in ("instance", "semantic"):
        raise ValueError(f"task must be 'instance' or 'semantic', got {task!r}")
    semantic = task == "semantic"
    if not semantic and classes is not None:
        raise ValueError("classes apply to task='semantic'")
    fill = {**TRAINING_DEFAULTS, **(SEMANTIC_DEFAULTS if semantic and source is None else {}),
            **preset_values}
    chosen = {k: fill[k] if v is DEFAULT else v for k, v in chosen.items()}
    epochs, steps_per_epoch, batch_size, patch_size, learning_rate, patience, time_limit = (
        chosen[k] for k in ("epochs", "steps_per_epoch", "batch_size", "patch_size",
                            "learning_rate", "patience", "time_limit"))
    for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch),
                        ("batch_size", batch_size), ("patch_size", patch_size)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    planes, label_planes = training_planes(images, labels, channel_axis=channel_axis)
    counted = counted_planes(counted, labels)
    if semantic and counted is not None:
        raise ValueError("Counted masks (reviewed regions) apply to instance training; for "
                         "classes, leave the planes you did not paint empty instead.")
    if not _counts(counted):
        raise ValueError("No pixel counts for training: the counted masks are empty.")
    n_unannotated = 0
    if semantic:  # planes with no label are unannotated, not background
        planes, label_planes, n_unannotated = annotated_planes(planes, label_planes)
        if not planes:
            raise ValueError("No plane has a label: paint classes on a few planes first.")
    in_channels = planes[0].shape[-1]
    rng = np.random.default_rng(seed)
    if (val_images is None) != (val_labels is None):
        raise ValueError("Give both val_images and val_labels, or neither.")
    if val_images is not None:
        val_planes, val_label_planes = training_planes(val_images, val_labels,
                                                       channel_axis=channel_axis)
        if semantic:
            val_planes, val_label_planes, _ = annotated_planes(val_planes, val_label_planes)
        if val_planes[0].shape[-1] != in_channels:
            raise ValueError("Validation images have a different number of channels.")
        val_mode = "given validation set"
    elif semantic and val_fraction > 0 and len(planes) < MIN_SPLIT_PLANES:
        val_planes, val_label_planes = [], []
        val_mode = f"none ({len(planes)} annotated planes, all train; best by training loss)"
    elif val_fraction > 0:
        split = _split_validation(planes, label_planes, val_fraction, rng, counted)
        if _counts(split[2]) and _counts(split[5]):
            (planes, label_planes, counted, val_planes, val_label_planes, val_counted,
             val_mode) = split
        else:  # sparse: held-out part or the rest holds no counted pixel
            val_planes, val_label_planes, val_mode = [], [], "none (sparse annotation)"
    else:
        val_planes, val_label_planes, val_mode = [], [], "none"
    if val_images is not None or not val_planes:
        val_counted = None

    if seed is not None:
        keras.utils.set_random_seed(seed)
    classes_of = None
    if semantic:
        classes_of = semantic_setup(label_planes + val_label_planes, classes, class_colors,
                                    parent)
        classes_of.n_unannotated = n_unannotated
        if outputs is not None and list(outputs) != classes_of.outputs:
            raise ValueError(f"A semantic model's outputs are {classes_of.outputs}.")
        outputs = classes_of.outputs
    if source is None:
        outputs = tuple(outputs or ("foreground", "boundary"))
        net = None
    else:
        from ..model import model_channels, model_depth

        cin, cout = model_channels(source)
        if cin != in_channels:
            raise ValueError(f"The model reads {cin} channels but the images have {in_channels}.")
        if outputs is not None and tuple(outputs) != tuple(parent.outputs):
            raise ValueError(f"The model's outputs are {parent.outputs}, not {list(outputs)}.")
        outputs = tuple(parent.outputs)
        if len(outputs) != cout:
            raise ValueError(f"The model has {cout} outputs but its metadata names {outputs}.")
        depth = model_depth(source)
        base_filters = parent.base_filters
        # Train a copy: a cached (e.g. the shipped default) model stays intact.
        net = _uncompiled_copy(source, weights=True)
    unknown = [o for o in outputs if o not in SUPPORTED_OUTPUTS]
    if semantic:
        pass  # outputs are the class names, checked by semantic_setup
    elif unknown or "foreground" not in outputs or len(set(outputs)) != len(outputs):
        raise ValueError(f"outputs must be 'foreground' optionally with 'boundary' and "
                         f"'distance', got {list(outputs)}")
    if patch_size % 2**depth:
        raise ValueError(f"patch_size ({patch_size}) must be a multiple of 2**depth "
                         f"({2**depth}).")
    if net is None:
        from ..model import build_unet

        net = (build_unet(in_channels, 1, base_filters, depth, task="semantic",
                          classes=classes_of.n_classes) if semantic
               else build_unet(in_channels, len(outputs), base_filters, depth))

    template = info or parent or ModelInfo()
    percentiles = template.percentiles
    aug = (augment if isinstance(augment, Augmentation)
           else Augmentation.strong() if augment == "strong" or (augment and semantic)
           else Augmentation() if augment else Augmentation.none())
    target_fn = classes_of.targets if semantic else None
    sampler = PatchSampler(planes, label_planes, patch_size, outputs, percentiles=percentiles,
                           augment=aug, boundary_width=boundary_width, counted=counted,
                           separation=separation, targets=target_fn,
                           balance_classes=semantic)
    val = (grid_patches(val_planes, val_label_planes, patch_size, outputs,
                        percentiles=percentiles, boundary_width=boundary_width,
                        counted=val_counted, separation=separation, targets=target_fn)
           if val_planes else None)

    if semantic:
        loss_fn = make_semantic_loss(classes_of.n_classes, classes_of.weights)
    else:
        loss_fn = make_loss(outputs, boundary_weight, separation=separation is not None)
    # Uncompiled twin for saving and returning: no optimizer state in files.
    export = _uncompiled_copy(net)
    net.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_fn,
                jit_compile=jit_compile)

    name = (info.name if info is not None and info.name != ModelInfo.name
            else output_path.stem if output_path is not None else net.name)
    base_info = dataclasses.replace(
        template, name=name, in_channels=in_channels, out_channels=len(outputs),
        outputs=list(outputs), tile_size=int(patch_size),
        normalization={"method": "percentile", "low": percentiles[0], "high": percentiles[1]},
        base_filters=base_filters, depth=depth, parent=parent_name, task=task,
        classes=classes_of.classes if semantic else [],
        class_colors=classes_of.class_colors if semantic else [],
    )
    settings = {
        "data": data_description or f"{len(planes)} training planes",
        "n_train_planes": len(planes), "n_val_planes": len(val_planes),
        "validation": val_mode, "max_epochs": epochs, "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size, "patch_size": patch_size, "learning_rate": learning_rate,
        "loss": f"BCE + soft Dice (foreground), BCE with boundary weight {boundary_weight}"
                + (", BCE (distance)" if "distance" in outputs else "")
                + (f", separation weights w0={separation[0]} sigma={separation[1]}"
                   if separation else ""),
        "separation": list(separation) if separation else None,
        "boundary_width": boundary_width,
        "augmentation": dataclasses.asdict(aug) if augment else None,
        "preset": preset, "time_limit": time_limit,
        "seed": seed, "val_score": "mean Dice over outputs on validation patches (p > 0.5)",
        "sparse": None if counted is None else {
            "counted_fraction": round(float(sum(
                lab.size if c is None else int(c.sum())
                for c, lab in zip(counted, label_planes, strict=True))) / sum(
                lab.size for lab in label_planes), 4)},
    }
    if semantic:
        settings.update(
            loss="cross-entropy + per-class soft Dice, class weights "
                 + ", ".join(f"{w:.2f}" for w in classes_of.weights),
            n_unannotated_planes=n_unannotated,
            val_score="mean per-class Dice on validation patches (argmax)")
    from .monitor import TrainingMonitor

    monitor = TrainingMonitor(
        net=net, export=export, val=val, loss_fn=loss_fn, outputs=outputs, epochs=epochs,
        steps=steps_per_epoch, learning_rate=learning_rate, patience=patience,
        time_limit=time_limit, cancel=cancel, progress=progress, output_path=output_path,
        overwrite=overwrite,
        make_info=lambda extra: dataclasses.replace(
            base_info, training={**settings, **extra, **_versions()}),
        scores=(lambda y, p: validation_scores(y, p, classes_of.classes)) if semantic else None,
        patience_after=0.5 if semantic else 0.0,
    )
    dataset = _patch_dataset(sampler, steps_per_epoch, batch_size, rng)
    net.fit(dataset, epochs=epochs, verbose=0, callbacks=[monitor])
    return monitor.finish()
