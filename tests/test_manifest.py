"""The npe2 manifest: valid, found through the entry point, and complete."""

import importlib
import importlib.metadata
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from npe2 import PluginManifest

ROOT = Path(__file__).resolve().parents[1]
DIST = "napari-unet"


@pytest.fixture(scope="module")
def manifest():
    return PluginManifest.from_distribution(DIST)


def _entry_point():
    [ep] = [e for e in importlib.metadata.distribution(DIST).entry_points
            if e.group == "napari.manifest"]
    return ep


def test_manifest_loads_from_installed_distribution(manifest):
    assert manifest.name == DIST
    assert manifest.package_metadata.version == importlib.metadata.version(DIST)


def test_npe2_validate_cli():
    exe = shutil.which("npe2", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "npe2"]
    result = subprocess.run([*cmd, "validate", DIST], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_entry_point_resolves_to_root_manifest(manifest):
    module, _, resource = _entry_point().value.partition(":")
    assert (module, resource) == ("napari_unet", "napari.yaml")
    found = files(module) / resource
    root = ROOT / "napari.yaml"
    if (ROOT / "src" / "napari_unet").is_dir():  # running from the repository
        # The package holds a symlink, so there is one manifest to edit.
        assert (ROOT / "src" / "napari_unet" / "napari.yaml").is_symlink()
        assert (ROOT / "src" / "napari_unet" / "sample_data").is_symlink()
        assert Path(str(found)).resolve() == root.resolve()
    if root.is_file():
        assert found.read_text(encoding="utf-8") == root.read_text(encoding="utf-8")
        assert PluginManifest.from_file(root).contributions == manifest.contributions


def test_every_command_imports(manifest):
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        assert callable(obj), command.id


def test_sample_data_contributions(manifest):
    samples = {s.key: s for s in manifest.contributions.sample_data}
    assert samples["nuclei2d"].display_name == "Nuclei 2D (mnfinder)"
    assert samples["nuclei3d"].display_name == "Nuclei 3D (cells3d)"
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands[samples["nuclei2d"].command] == "napari_unet._sample_data:nuclei_2d"
    assert commands[samples["nuclei3d"].command] == "napari_unet._sample_data:nuclei_3d"


def test_labels_writer_contribution(manifest):
    [writer] = [w for w in manifest.contributions.writers
                if w.command == "napari-unet.write_labels"]
    assert [str(t) for t in writer.layer_types] == ["labels"]
    assert set(writer.filename_extensions) == {".tif", ".tiff"}
