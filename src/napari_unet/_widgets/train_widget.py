"""The Train dock widget (Plugins › napari-unet › Train).

Fine-tunes a model (or trains a new U-Net) on exported dataset folders and/or
open Image + Labels layer pairs with :func:`napari_unet.training.train`, in
the training worker process (:mod:`napari_unet.worker`, started when the
dock opens). The worker's progress dicts reach the GUI thread through a
queued Qt signal and drive the dock's progress bar, the status line and the
live curve. Cancel stops after the current step (or terminates the
worker if it does not stop within a second); the best completed epoch is
already saved by then. A finished model is announced with
:data:`._models.model_added`, so model lists (Segment widget) show it.
How the settings fields follow the start model, task and preset is in
:mod:`._train_options` (:class:`~._train_options.TrainOptions`, mixed in).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    Select,
    SpinBox,
)
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info

from ..model_io import default_model_path
from ..worker.protocol import TrainRequest, TrainSummary, WarmUp
from ..worker.shm import Slice
from . import _job, _layers, _models, _worker
from ._base import DockWidget
from ._bioimageio import BioimageioExport
from ._models import LOAD_ENTRY, ModelRegistry
from ._plot import TrainingPlot
from ._progress import DockProgress
from ._train_job import JIT_MIN_STEPS, default_output_path, describe  # noqa: F401 (re-export)
from ._train_options import INSTANCE_SETTINGS, SCRATCH, TASKS, WIDTHS, TrainOptions
from .export_widget import ExportError, channel_axis_for

if TYPE_CHECKING:
    import napari


# --------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------
class TrainWidget(TrainOptions, DockWidget):
    """Fine-tune a U-Net, or train a new one, on corrected data.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Injected by napari when the widget is docked from the manifest.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer)
        self.registry = ModelRegistry()
        self._folders: list[Path] = []
        self._job = None  # the worker client's Job of the run in progress
        self._cancelling = False
        self._output_used: Path | None = None
        self._auto_output = None
        self._model_value = None
        self.last_result = None

        self.datasets = Select(label="datasets", choices=lambda w: [
            (_folder_label(p), p) for p in self._folders])
        self.add_button = PushButton(text="Add dataset folder…")
        self.remove_button = PushButton(text="Remove selected folders")
        self.layer_pairs = Select(label="layer pairs", choices=self._pair_choices)
        self.start_model = ComboBox(label="start from", choices=lambda w: [
            ("new U-Net (from scratch)", SCRATCH)] + self.registry.choices())
        self.base_filters = ComboBox(label="base filters", choices=WIDTHS, value=16)
        self.task = ComboBox(label="task", choices=TASKS, value="instance")
        self.class_names = LineEdit(label="class names", value="")
        self.class_names.tooltip = ("names of label values 1, 2, ... separated by commas; "
                                    "empty: the dataset's, or the Labels layer's features")
        self.preset = ComboBox(label="preset", value=None, choices=[
            ("custom", None), ("quick: fine-tune within 3 minutes", "quick")],
            tooltip="'quick' fills in settings that make fine-tuning on one corrected "
                    "image pay off within 3 minutes on 2 CPU cores")
        self.epochs = SpinBox(label="epochs", min=1, max=1000, value=INSTANCE_SETTINGS["epochs"])
        self.steps = SpinBox(label="steps per epoch", min=1, max=10_000,
                             value=INSTANCE_SETTINGS["steps_per_epoch"])
        self.learning_rate = FloatSpinBox(label="learning rate", min=1e-5, max=0.1, step=1e-5,
                                          value=INSTANCE_SETTINGS["learning_rate"])
        self.batch_size = SpinBox(label="batch size", min=1, max=128,
                                  value=INSTANCE_SETTINGS["batch_size"])
        self.patch_size = SpinBox(label="patch size", min=32, max=1024, step=16,
                                  value=INSTANCE_SETTINGS["patch_size"])
        self._semantic_settings = False  # which settings the spin boxes show
        self.val_fraction = FloatSpinBox(label="validation fraction", min=0.0, max=0.5,
                                         step=0.05, value=0.15)
        self.time_limit = SpinBox(label="time limit (s, 0: none)", min=0, max=7 * 86400,
                                  value=0)
        self.augment = CheckBox(text="augment (flips, rotations, zoom, intensity)", value=True)
        self.output = FileEdit(label="save model as", mode="w", filter="*.keras")
        self.start_button = PushButton(text="Start training")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self._inbox = _worker.Inbox(self.native)
        # Started (in the background) by the first dock; importing TensorFlow
        # there now makes the first Start quicker.
        self.client = _worker.client("train")
        self.client.submit(WarmUp())
        self.bioimageio = BioimageioExport(self, self.client, self._inbox, self._export_model)
        self.progress = DockProgress()
        self.status = Label(value="")
        for select in (self.datasets, self.layer_pairs):
            select.native.setMaximumHeight(80)
        self.extend([self.datasets, self.add_button, self.remove_button, self.layer_pairs,
                     self.start_model, self.task, self.class_names, self.base_filters,
                     self.preset, self.epochs,
                     self.steps, self.learning_rate, self.batch_size, self.patch_size,
                     self.val_fraction, self.time_limit, self.augment, self.output,
                     self.start_button, self.cancel_button,
                     self.progress.widget, self.status, self.bioimageio.button])

        self.plot = TrainingPlot(self.native, colors=_theme_colors(self._viewer))
        self.native.layout().addWidget(self.plot.canvas)

        self.add_button.changed.connect(self._ask_dataset)
        self.remove_button.changed.connect(self._remove_selected)
        self.start_model.changed.connect(self._on_model)
        self.base_filters.changed.connect(self._update_output)
        self.task.changed.connect(self._on_task)
        self.preset.changed.connect(self._on_preset)
        self.start_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        _models.model_added.connect(self._on_model_added)
        self.start_model.value = self.registry.preferred()
        self._on_model()

    # -------------------------------------------------------------- data
    def _pair_choices(self, widget=None):
        layers = self._viewer.layers
        items = []
        for lab in (la for la in layers if isinstance(la, Labels)):
            for img in (la for la in layers if isinstance(la, Image)):
                try:
                    channel_axis_for(img, _layers.base_data(lab).shape)
                except ExportError:
                    continue
                items.append((f"{img.name} + {lab.name}", (img, lab)))
        return items

    def add_dataset(self, folder) -> bool:
        """Add an exported dataset folder to the training data."""
        folder = Path(folder).expanduser().resolve()
        if not (folder / "images").is_dir() or not (folder / "masks").is_dir():
            show_error(f"{folder} is not a training dataset: it needs 'images' and 'masks' "
                       "folders (use Export training data).")
            return False
        if folder not in self._folders:
            self._folders.append(folder)
            self.datasets.reset_choices()
        return True

    def _ask_dataset(self, *args):
        from qtpy.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self.native, "Add a training dataset folder")
        if path:
            self.add_dataset(path)

    def _remove_selected(self, *args):
        chosen = set(self.datasets.value)
        self._folders = [p for p in self._folders if p not in chosen]
        self.datasets.reset_choices()

    # ------------------------------------------------------------- model
    def load_model_file(self, path) -> bool:
        """Choose a ``.keras`` file to start from; it is remembered for all widgets."""
        try:
            self.start_model.value = self.registry.adopt(path)
        except Exception as err:  # noqa: BLE001
            show_error(_job.describe_error(err))
            return False
        return True

    def _on_model_added(self, path: str):
        try:
            _models.relist(self.start_model)
        except RuntimeError:  # the Qt widget is gone; the signal drops us soon
            pass

    # --------------------------------------------------------------- run
    @property
    def busy(self) -> bool:
        """True while a training run is in progress."""
        return self._job is not None

    def start(self, *args):
        """Start training with the current settings (the Start button)."""
        if self.busy:
            return None
        try:
            request = self._make_request()
        except (ExportError, ValueError, OSError) as err:
            show_error(f"Cannot train: {err}")
            return None
        self.progress.busy()  # Until the first step.
        self.plot.clear()
        self.start_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = "loading data…"
        self._cancelling = False
        self._output_used = request.settings["output_path"]
        inbox, client = self._inbox, self.client

        def on_event(event):
            if not inbox.post(self._on_event, event):  # the dock was closed: stop training
                client.cancel(job)

        job = self._job = client.submit(request, on_event=on_event,
                                        on_done=inbox.wrap(self._on_done))
        return job

    def _make_request(self) -> TrainRequest:
        pairs = []
        for img, lab in self.layer_pairs.value:
            if img not in self._viewer.layers or lab not in self._viewer.layers:
                continue
            labels = np.array(_layers.base_data(lab))  # frozen: edits go on meanwhile
            axis = channel_axis_for(img, labels.shape)
            # The image is read in the worker client's thread (it may be lazy).
            pairs.append((Slice(_layers.base_data(img)), axis, labels,
                          f"{img.name} + {lab.name}"))
        if not self._folders and not pairs:
            raise ExportError("no training data: add a dataset folder or select a layer pair.")
        reviewed = [lab.name for _, lab in self.layer_pairs.value
                    if lab in self._viewer.layers and "reviewed" in lab.features
                    and np.asarray(lab.features["reviewed"], bool).any()]
        if reviewed:  # Layer pairs train on whole layers: say how to train on less.
            show_info(f"Training on the whole of {', '.join(reviewed)}. To train only on "
                      "the objects you reviewed or corrected, export them with 'what counts: "
                      "reviewed and corrected regions' and add that dataset folder instead.")
        model = self.start_model.value
        if model in (None, LOAD_ENTRY):
            raise ExportError("choose a model to start from.")
        if model != SCRATCH:
            self.registry.info(model)  # a clear message for a missing file
            _models.check_trainable(model)
        auto = self._auto_output is not None and self.output.value == self._auto_output
        if auto and Path(self._auto_output).exists():  # taken meanwhile (another dock?)
            self._auto_output = None
            self._update_output()
        out = Path(self.output.value).expanduser()
        if out.suffix != ".keras":
            raise ExportError(f"the model file must end in '.keras': {out}")
        if out.exists() or out.resolve() == default_model_path().resolve():
            raise ExportError(f"{out} exists; choose a new file (models are never overwritten).")
        steps = int(self.epochs.value) * int(self.steps.value)
        settings = dict(
            epochs=int(self.epochs.value), steps_per_epoch=int(self.steps.value),
            batch_size=int(self.batch_size.value), patch_size=int(self.patch_size.value),
            learning_rate=float(self.learning_rate.value),
            val_fraction=float(self.val_fraction.value), augment=bool(self.augment.value),
            output_path=out, overwrite=False, jit_compile="auto" if steps >= JIT_MIN_STEPS
            else False, time_limit=float(self.time_limit.value) or None,
            preset=self.preset.value)
        if model == SCRATCH:
            settings.update(base_filters=int(self.base_filters.value), depth=4,
                            task=self.task.value)
        if self.task.value == "semantic":
            settings["task"] = "semantic"
            names = self._class_names(self.layer_pairs.value)
            if names:
                settings["classes"] = names
        return TrainRequest([str(f) for f in self._folders], pairs,
                            None if model == SCRATCH else model, settings)

    def _export_model(self) -> str:
        """The model "Export to bioimage.io…" writes: the last one trained, else the start model.

        Raises ValueError with a sentence for the user when there is none.
        """
        if self.busy:
            raise ValueError("training is running; export when it has finished.")
        trained = getattr(self.last_result, "path", None)
        if trained is not None and Path(trained).is_file():
            return str(trained)
        model = self.start_model.value
        if model in (None, LOAD_ENTRY, SCRATCH):
            raise ValueError("train a model first, or choose one to start from.")
        self.registry.info(model)  # a clear message for a missing file
        return model

    def _on_event(self, event: dict):
        if self._job is None:
            return  # a late event of a finished run
        self.plot.add(event)
        kind, epoch, epochs = event.get("event"), event.get("epoch"), event.get("epochs")
        if kind == "step":
            self.progress.show((epoch - 1) * event["steps"] + event["step"],
                               epochs * event["steps"])
            if not self._cancelling:
                self.status.value = (f"epoch {epoch}/{epochs}, step {event['step']}/"
                                     f"{event['steps']}: loss {event['loss']:.4f}")
        elif kind == "epoch" and not self._cancelling:
            score = event.get("val_score")
            self.status.value = (f"epoch {epoch}/{epochs}: " + (
                f"validation score {score:.3f}" if score is not None else
                f"loss {event['loss']:.4f}") + (" (best so far)" if event.get("improved")
                                                 else ""))

    def cancel(self, *args):
        """Stop after the current step; the best completed epoch stays saved."""
        if self._job is None or self._cancelling:
            return
        self._cancelling = True
        self.client.cancel(self._job)
        self.cancel_button.enabled = False
        self.status.value = "cancelling after this step…"

    def _on_done(self, outcome):
        self._job = None
        self.progress.idle()
        self.start_button.enabled, self.cancel_button.enabled = True, False
        self.plot.redraw()
        out = self._output_used
        if out.exists():
            self._update_output()  # the proposed name was used: propose the next one
        if outcome.error is not None:
            self.status.value = "failed"
            show_error(describe(outcome.error))
            return
        result = outcome.value
        if not isinstance(result, TrainSummary):
            # The worker was terminated: what it saved before is all there is.
            result = TrainSummary(out if out.exists() else None, [], None, None, "cancelled")
        self.last_result = result
        if result.path is None:
            self.status.value = "cancelled: nothing saved"
            show_info("Training cancelled before the first epoch ended; no model was saved.")
            return
        self.registry.add(result.path)  # selectable in every model list now
        self.status.value = f"saved {result.path.name}"
        how = ("cancelled; kept the best model so far" if result.cancelled else
               f"stopped: {result.stopped.replace('_', ' ')}")
        best = ""
        if result.best_score is not None:
            what = "validation score" if result.history and "val_score" in result.history[-1] \
                else "training loss"
            best = (f": best {what} {result.best_score:.3f} at epoch "
                    f"{result.best_epoch}/{len(result.history)}")
        show_info(f"Trained {result.path.name} ({how}){best}. Saved to {result.path}; "
                  "choose it in the Segment widget.")


def _folder_label(folder: Path) -> str:
    n = sum(1 for p in (folder / "images").glob("*.tif*")) if folder.is_dir() else 0
    return f"{folder.name}  ({n} images)"


def _theme_colors(viewer) -> tuple[str, str]:
    """Background and text colours of the viewer's theme (dark defaults)."""
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(viewer.theme)
        return theme.background.as_hex(), theme.text.as_hex()
    except Exception:  # noqa: BLE001 - cosmetic only
        return "#262930", "#f0f1f2"
