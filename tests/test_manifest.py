"""The npe2 manifest: valid, found through the entry point, and complete."""

import importlib
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest
from npe2 import PluginManifest

ROOT = Path(__file__).resolve().parents[1]
DIST = "napari-tiled-unet"


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
    if root.is_file():  # running from the repository: the install copied the one manifest
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
                if w.command == "napari-tiled-unet.write_labels"]
    assert [str(t) for t in writer.layer_types] == ["labels"]
    assert set(writer.filename_extensions) == {".tif", ".tiff"}


def test_no_symlinks_so_any_checkout_builds_the_same(tmp_path):
    """A checkout without symlinks (Windows, core.symlinks=false) must build a working
    wheel: the repository holds none, and the wheel carries the manifest and samples."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    assert [line for line in listed.splitlines() if line.startswith("120000")] == []
    # Build from a plain copy of the tracked files, as any checkout would have them.
    src = tmp_path / "checkout"
    for name in subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines():
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(tmp_path / "dist"), str(src)], capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert zf.read("napari_unet/napari.yaml") == (ROOT / "napari.yaml").read_bytes()
    samples = {p.name for p in (ROOT / "sample_data").iterdir()}
    assert {f"napari_unet/sample_data/{n}" for n in samples} <= names
    # Installed on its own, the wheel's manifest validates with npe2.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=300)
    code = (f"import sys; sys.path.insert(0, {str(target)!r});"
            "import napari_unet, importlib.resources as r;"
            "from npe2 import PluginManifest;"
            "m = PluginManifest.from_file(str(r.files('napari_unet') / 'napari.yaml'));"
            "assert str(r.files('napari_unet')).startswith(sys.path[0]), r.files('napari_unet');"
            "print(m.name, len(m.contributions.commands))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == DIST
