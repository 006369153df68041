"""The docks' notifications, in one module so that tests can capture them.

Dock modules call ``_notify.show_error(...)`` (not napari's function bound at
import), so replacing the functions here reaches every caller.
"""

from __future__ import annotations


def show_error(message: str) -> None:
    """Show an error notification in napari."""
    from napari.utils.notifications import show_error as show

    show(message)


def show_warning(message: str) -> None:
    """Show a warning notification in napari."""
    from napari.utils.notifications import show_warning as show

    show(message)


def show_info(message: str) -> None:
    """Show an information notification in napari."""
    from napari.utils.notifications import show_info as show

    show(message)
