"""Where napari-unet keeps the user's files: settings, their models, result stores.

Each folder follows the platform's conventions (``platformdirs``) and can be
moved with an environment variable (tests use these so they never touch a
real home folder):

============  ===============================  ==============================
folder        default on Linux                 override
============  ===============================  ==============================
settings      ``~/.config/napari-unet``        ``NAPARI_UNET_CONFIG_DIR``
models        ``~/.local/share/napari-unet/``  ``NAPARI_UNET_MODELS_DIR``
              ``models``
results       ``~/.cache/napari-unet/results`` ``NAPARI_UNET_RESULTS_DIR``
============  ===============================  ==============================
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_ENV = "NAPARI_UNET_CONFIG_DIR"
MODELS_ENV = "NAPARI_UNET_MODELS_DIR"
RESULTS_ENV = "NAPARI_UNET_RESULTS_DIR"
_APP = "napari-unet"


def config_dir() -> Path:
    """Folder of small settings files (e.g. the recently used models)."""
    from platformdirs import user_config_dir

    return Path(os.environ.get(CONFIG_ENV) or user_config_dir(_APP, appauthor=False))


def models_dir() -> Path:
    """Folder of the models the user trains in napari."""
    from platformdirs import user_data_dir

    override = os.environ.get(MODELS_ENV)
    return Path(override) if override else Path(user_data_dir(_APP, appauthor=False)) / "models"


def results_dir() -> Path:
    """Folder of out-of-core label stores written by the Segment dock."""
    from platformdirs import user_cache_dir

    override = os.environ.get(RESULTS_ENV)
    return Path(override) if override else Path(user_cache_dir(_APP, appauthor=False)) / "results"
