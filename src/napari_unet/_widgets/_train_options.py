"""The Train dock's settings controls: start model, task, preset, class names, output file.

:class:`TrainOptions` is mixed into :class:`~.train_widget.TrainWidget`; it
uses the dock's fields (created in its ``__init__``) and keeps them
consistent when one changes: the start model sets the patch size, task and
class names, the task switches between the dock's instance settings and
:data:`~napari_unet.settings.SEMANTIC_DEFAULTS`, a preset fills in its
settings, and the proposed output file name follows the start model and
width. The constants here are the choices and defaults of those fields.
"""

from __future__ import annotations

from ..export import class_names_from_features
from ..settings import SEMANTIC_DEFAULTS, training_preset
from . import _job, _models
from ._models import LOAD_ENTRY
from ._train_job import default_output_path

SCRATCH = "__scratch__"
#: The dock's own settings for instance models (semantic: SEMANTIC_DEFAULTS).
INSTANCE_SETTINGS = {"epochs": 10, "steps_per_epoch": 50, "batch_size": 8, "patch_size": 128,
                     "learning_rate": 1e-3}
WIDTHS = [("16 (fast, like the shipped model)", 16), ("32", 32), ("64 (reference U-Net)", 64)]
TASKS = [("instance (countable objects)", "instance"),
         ("semantic (classes; unpainted planes ignored)", "semantic")]


class TrainOptions:
    """How the Train dock's settings fields follow each other (a mixin)."""

    def _on_model(self, *args):
        value = self.start_model.value
        if value == LOAD_ENTRY:
            path = _models.ask_model_file(self.native, "Start from a model")
            if not (path and self.load_model_file(path)):
                self.start_model.value = self._model_value
            return
        self._model_value = value
        self.base_filters.visible = value == SCRATCH
        self.task.enabled = value == SCRATCH  # a fine-tuned model keeps its task
        if value != SCRATCH:
            try:
                info = self.registry.info(value)
            except Exception as err:  # noqa: BLE001 - shown now, and again at Start
                self.status.value = _job.describe_error(err)
                info = None
            if info is not None:
                self.patch_size.value = int(info.tile_size)
                self.task.value = info.task
                if info.is_semantic:
                    self.class_names.value = ", ".join(info.classes)
        self._on_task()
        self._update_output()

    def _on_task(self, *args):
        semantic = self.task.value == "semantic"
        self.class_names.visible = semantic
        if self.start_model.value == SCRATCH and semantic != self._semantic_settings:
            # Show the settings a from-scratch semantic run uses (and back).
            values = SEMANTIC_DEFAULTS if semantic else INSTANCE_SETTINGS
            self.epochs.value, self.steps.value = values["epochs"], values["steps_per_epoch"]
            self.batch_size.value = values["batch_size"]
            self.patch_size.value = values["patch_size"]
            self.learning_rate.value = values["learning_rate"]
            self._semantic_settings = semantic

    def _class_names(self, pairs_layers) -> list[str] | None:
        """Typed names, else those of the first Labels layer with class features."""
        typed = [c.strip() for c in str(self.class_names.value).split(",") if c.strip()]
        if typed:
            return typed
        for _, lab in pairs_layers:
            names = class_names_from_features(getattr(lab, "features", None))
            if names:
                return names
        return None

    def _update_output(self, *args):
        """Propose a fresh file name, unless the user typed one.

        Called when the dock opens, when the start model or width changes,
        and after a run saved the proposed file: the name shown is the name
        used.
        """
        if self._auto_output is not None and self.output.value != self._auto_output:
            return
        parent = None if self.start_model.value == SCRATCH else self.start_model.value
        self._auto_output = default_output_path(parent, self.base_filters.value)
        self.output.value = self._auto_output

    def _on_preset(self, *args):
        """Fill in a preset's settings (the patch size stays the model's tile)."""
        if self.preset.value is None:
            return
        values = training_preset(self.preset.value)
        self.epochs.value, self.steps.value = values["epochs"], values["steps_per_epoch"]
        self.learning_rate.value, self.batch_size.value = (values["learning_rate"],
                                                           values["batch_size"])
        self.time_limit.value = int(values["time_limit"])
