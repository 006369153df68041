"""The docks' "Export to bioimage.io…" action.

The package is written by :func:`napari_unet.bioimageio.export_bioimageio`
in the dock's worker process (it loads the model with TensorFlow, which
napari's process never imports). An existing file is never replaced: the
dock refuses it up front, and the worker exports with ``overwrite=False``.
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import PushButton

from ..worker.protocol import BioimageioRequest
from . import _notify

#: Offered in the save dialog.
FILE_FILTER = "bioimage.io model package (*.zip)"


class BioimageioExport:
    """An "Export to bioimage.io…" button and what it does, for one dock.

    Parameters
    ----------
    dock : DockWidget
        The dock; its ``native`` widget parents the dialogs.
    client : napari_unet.worker.WorkerClient
        The dock's worker.
    inbox : _worker.Inbox
        Brings the worker's answer to the GUI thread.
    model_path : callable
        Returns the model file to export, or raises ValueError with a
        sentence for the user (no model chosen, the dock is busy…).
    """

    def __init__(self, dock, client, inbox, model_path):
        self._dock, self._client, self._inbox, self._model_path = dock, client, inbox, model_path
        self.button = PushButton(text="Export to bioimage.io…")
        self.button.changed.connect(self.ask)
        self.job = None  # the worker client's job while an export runs
        self.last_outcome = None  # of the last finished export

    @property
    def busy(self) -> bool:
        return self.job is not None

    def ask(self, *args) -> None:
        """Ask where to write the package and who made the model, then export."""
        try:
            model = Path(self._model_path())
        except ValueError as err:
            _notify.show_error(f"Cannot export: {err}")
            return
        path = ask_package_path(self._dock.native, default_package_path(model))
        if not path:
            return
        details = ask_details(self._dock.native, _model_name(model))
        if details is None:
            return
        name, authors = details
        self.export(path, name=name, authors=authors)

    def export(self, path, *, name: str | None = None, authors: list | None = None,
               saved_model: bool = True):
        """Write the dock's model as the bioimage.io package ``path``, in the worker.

        Returns the worker client's job, or None when refused (notified).
        ``saved_model`` adds TensorFlow SavedModel weights (for deepImageJ).
        """
        try:
            if self.busy:
                raise ValueError("an export is already running.")
            model = Path(self._model_path())
            path = Path(path).expanduser()
            if path.suffix.lower() != ".zip":
                raise ValueError(f"a bioimage.io package must be a .zip file: {path}")
            if path.exists():
                raise ValueError(f"{path} exists; choose a new file name (napari-unet never "
                                 "overwrites files).")
        except ValueError as err:
            _notify.show_error(f"Cannot export: {err}")
            return None
        request = BioimageioRequest(str(model), str(path), name=name or None,
                                    authors=list(authors) if authors else None,
                                    saved_model=saved_model)
        self.button.enabled = False
        self.job = self._client.submit(
            request, on_done=self._inbox.wrap(lambda outcome: self._done(outcome, model, path)))
        return self.job

    def _done(self, outcome, model: Path, path: Path) -> None:
        self.job, self.last_outcome = None, outcome
        try:
            self.button.enabled = True
        except RuntimeError:  # The dock was closed meanwhile.
            pass
        if outcome.ok:
            _notify.show_info(f"Exported {model.name} to {path}: a bioimage.io package for "
                              "deepImageJ, ilastik or bioimageio.core.")
        elif outcome.error is not None:
            err = outcome.error
            reason = str(err) if isinstance(err, (ValueError, OSError)) else (
                f"{type(err).__name__}: {err}")
            _notify.show_error(f"bioimage.io export failed: {reason}")


def default_package_path(model: Path) -> Path:
    """``<model stem>.bioimageio.zip`` next to the model, or in the home folder."""
    folder = model.parent if model.parent.is_dir() else Path.home()
    return folder / f"{model.stem}.bioimageio.zip"


def _model_name(model: Path) -> str:
    from ..model_io import read_model_info

    try:
        info = read_model_info(model)
    except (ValueError, OSError):
        info = None
    return info.name if info is not None and info.name else model.stem


def ask_package_path(parent, default: Path) -> str | None:
    """The package file picked in Qt's save dialog, or None if cancelled."""
    from qtpy.QtWidgets import QFileDialog

    # The dock refuses existing files itself: no "replace it?" question.
    path, _ = QFileDialog.getSaveFileName(parent, "Export to bioimage.io", str(default),
                                          FILE_FILTER, options=QFileDialog.DontConfirmOverwrite)
    if path and not path.lower().endswith(".zip"):
        path += ".zip"
    return path or None


def ask_details(parent, name: str) -> tuple[str, list[str]] | None:
    """``(name, authors)`` of the package, asked in a small form; None if cancelled."""
    from qtpy.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLineEdit

    dialog = QDialog(parent)
    dialog.setWindowTitle("bioimage.io package")
    form = QFormLayout(dialog)
    name_edit = QLineEdit(name)
    authors_edit = QLineEdit()
    authors_edit.setPlaceholderText("e.g. Ada Lovelace, Alan Turing")
    form.addRow("model name", name_edit)
    form.addRow("authors", authors_edit)
    buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)
    if not dialog.exec():
        return None
    return name_edit.text().strip(), parse_authors(authors_edit.text())


def parse_authors(text: str) -> list[str]:
    """Author names from a comma- or semicolon-separated line."""
    return [a.strip() for a in text.replace(";", ",").split(",") if a.strip()]
