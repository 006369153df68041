"""Hatch build hook: put the top-level manifest and sample data into the package.

The repository keeps one ``napari.yaml`` and one ``sample_data/`` at its top
level (the project layout), while napari finds the manifest through the
``napari_unet:napari.yaml`` entry point and the sample commands read
``napari_unet/sample_data``. No symbolic links are involved, so a checkout
without symlink support (Windows, ``core.symlinks=false``) builds the same:

* wheels get both as files inside ``napari_unet/``;
* editable installs get copies in ``src/napari_unet/`` (ignored by git),
  refreshed on every install: re-run ``bash scripts/setup.sh`` after editing
  the top-level files (its stamp tracks them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

RESOURCES = {"napari.yaml": "napari_unet/napari.yaml", "sample_data": "napari_unet/sample_data"}


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version, build_data):
        root = Path(self.root)
        if version == "editable":
            for source, target in RESOURCES.items():
                _mirror(root / source, root / "src" / target)
            return
        for source, target in RESOURCES.items():
            build_data["force_include"][str(root / source)] = target


def _mirror(source: Path, target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
