"""The headless core imports without napari, Qt or magicgui."""

import subprocess
import sys
import textwrap
from pathlib import Path

import napari_unet

PACKAGE = Path(napari_unet.__file__).parent
# Modules that adapt napari layers may import napari; nothing else may.
GUI_PARTS = ("_widgets",)


def core_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if any(part in GUI_PARTS for part in rel.parts) or rel.name == "__main__":
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        names.append(".".join(parts))
    return names


def test_every_core_module_imports_without_gui_packages():
    modules = core_modules()
    assert "napari_unet.largescale.blocks" in modules and "napari_unet.training.loop" in modules
    code = textwrap.dedent(f"""
        import importlib, importlib.abc, sys

        BLOCKED = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui",
                   "vispy", "superqt")

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"core imported GUI package {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        for name in {modules!r}:
            importlib.import_module(name)
        print("imported", len({modules!r}))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"imported {len(modules)}" in result.stdout


def test_importing_the_package_changes_nothing_in_the_process():
    """No import hooks, no changed dlopen flags, no TensorFlow, no GC or GIL tweaks."""
    code = textwrap.dedent("""
        import gc, sys
        before = (list(sys.meta_path), sys.getdlopenflags(), sys.getswitchinterval(),
                  gc.isenabled(), gc.get_freeze_count())
        import napari_unet, napari_unet.worker, napari_unet.worker.client
        after = (list(sys.meta_path), sys.getdlopenflags(), sys.getswitchinterval(),
                 gc.isenabled(), gc.get_freeze_count())
        assert before == after, (before, after)
        heavy = sorted({"tensorflow", "keras", "napari", "qtpy"} & set(sys.modules))
        assert not heavy, heavy
        print("clean")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "clean"
