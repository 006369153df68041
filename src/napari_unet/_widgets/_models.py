"""The docks' model list: shipped default and recently used files.

Models are only ever *loaded* in the worker process (:mod:`napari_unet.worker`);
here their metadata is read from the file, without TensorFlow.

Recently used model files are remembered in ``recent_models.json`` in the
user's settings folder (:func:`napari_unet.paths.config_dir`).
"""

from __future__ import annotations

import json
from pathlib import Path

from psygnal import SignalInstance

from .._atomic import atomic_write
from ..model_io import ModelFileError, ModelInfo, default_model_path, read_model_info
from ..paths import config_dir

RECENT_FILE = "recent_models.json"
#: Sentinel value of the "Load model file…" entry of the model combo box.
LOAD_ENTRY = "__load_model_file__"

#: Emitted (in the GUI thread) with the resolved path, as a string, of a model
#: file that just became available, e.g. one the Train widget wrote. Widgets
#: listing models connect to it and refresh their model combo box.
model_added = SignalInstance((str,), name="model_added")


class ModelRegistry:
    """Model choices for the docks, and the checks of a chosen file.

    Parameters
    ----------
    max_recent : int
        How many recently used files to remember.
    """

    def __init__(self, max_recent: int = 8):
        self.max_recent = max_recent

    # ------------------------------------------------------------------ recent
    @property
    def recent_path(self) -> Path:
        return config_dir() / RECENT_FILE

    def recent(self) -> list[Path]:
        """Recently used model files that still exist, most recent first."""
        try:
            entries = json.loads(self.recent_path.read_text(encoding="utf-8"))
            paths = [Path(p) for p in entries.get("recent", []) if isinstance(p, str)]
        except (OSError, ValueError, AttributeError):
            return []  # Missing or corrupt settings must never break the widget.
        return [p for p in paths if p.is_file()]

    def remember(self, path) -> None:
        """Put ``path`` first in the recent list (the default is not stored)."""
        path = Path(path).resolve()
        if path == default_model_path().resolve():
            return
        paths = [path] + [p for p in self.recent() if p.resolve() != path]
        target = self.recent_path
        data = {"recent": [str(p) for p in paths[: self.max_recent]]}
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(target, overwrite=True) as tmp:
                tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        except OSError:
            pass  # Read-only home: the list is a convenience, not essential.

    def add(self, path) -> None:
        """Remember a new model file and announce it to every widget (:data:`model_added`)."""
        self.remember(path)
        model_added.emit(str(Path(path).resolve()))

    def adopt(self, path) -> str:
        """Check a model file the user chose, remember it, return its combo-box value.

        Raises
        ------
        ModelFileError
            The file is missing or not a Keras model (nothing is remembered).
        """
        self.info(path)
        self.add(path)  # Every model list (the caller's too) is rebuilt first.
        return str(Path(path).resolve())

    # ----------------------------------------------------------------- choices
    def choices(self) -> list[tuple[str, str]]:
        """``(label, value)`` pairs for the model combo box.

        The value is the file path as a string, or :data:`LOAD_ENTRY`. The
        shipped default is always listed, marked when it is not installed, so
        the user learns why it cannot run instead of seeing it vanish.
        """
        default = default_model_path()
        label = "nuclei (default)" if default.is_file() else "nuclei (default, not installed)"
        items = [(label, str(default))]
        for path in self.recent():
            if path.resolve() != default.resolve():
                items.append((f"{path.name}  ({_short(path.parent)})", str(path)))
        items.append(("Load model file…", LOAD_ENTRY))
        return items

    def preferred(self) -> str:
        """The value to select initially: the default if installed, else the latest file."""
        default = default_model_path()
        if default.is_file():
            return str(default)
        recent = self.recent()
        return str(recent[0]) if recent else str(default)

    # ------------------------------------------------------------------ models
    @staticmethod
    def info(path) -> ModelInfo | None:
        """Metadata of a model file, read without TensorFlow.

        Raises
        ------
        ModelFileError
            The file is missing or not a Keras archive.
        """
        path = Path(path)
        if path == default_model_path() and not path.is_file():
            raise ModelFileError(
                "The default nuclei model is not installed in this copy of napari-unet "
                f"({path.name} is missing). Choose 'Load model file…' to use a .keras model."
            )
        return read_model_info(path)


def check_trainable(path) -> None:
    """Refuse, before any work, a package that only has TensorFlow SavedModel weights.

    Such a network is frozen (napari-unet runs it, but cannot fine-tune or
    re-save it); the training loop refuses it too, once loaded.

    Raises
    ------
    ModelFileError
        With the reason and what to use instead.
    """
    from ..bioimageio.description import read_package_model
    from ..bioimageio.package import is_bioimageio_package, open_package

    if not is_bioimageio_package(path):
        return
    with open_package(path) as package:
        weights = read_package_model(package).weights_format
    if weights == "tensorflow_saved_model_bundle":
        raise ModelFileError(
            f"{Path(path).name} has only TensorFlow SavedModel weights, which cannot be "
            "fine-tuned. Start from a .keras model, or a bioimage.io package with keras_v3 "
            "or keras_hdf5 weights.")


def ask_model_file(parent, title: str) -> str | None:
    """A ``.keras`` file or bioimage.io package picked in Qt's file dialog, or None."""
    from qtpy.QtWidgets import QFileDialog

    from ..bioimageio import PACKAGE_FILE_FILTER

    path, _ = QFileDialog.getOpenFileName(parent, title, "", PACKAGE_FILE_FILTER)
    return path or None


def relist(combo) -> None:
    """Rebuild a model combo box in the registry's order, keeping its value.

    magicgui would append a new file at the end; rebuilt, the list keeps the
    default first, recent files newest first, "Load model file…" last.
    Raises RuntimeError once the combo box's Qt widget is gone.
    """
    with combo.changed.blocked():
        value = combo.value
        combo.native.clear()
        combo.reset_choices()
        if value in combo.choices:
            combo.value = value


def _short(folder: Path) -> str:
    """Shorten a folder for display: ``~`` for home, at most 2 levels."""
    try:
        folder = Path("~") / folder.relative_to(Path.home())
    except ValueError:
        pass
    parts = folder.parts
    return str(Path(*parts[-2:])) if len(parts) > 2 else str(folder)
