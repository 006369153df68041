"""Shared fixtures, and the split of the suite into a core and a GUI session.

``scripts/test.sh`` runs pytest twice: ``-m "not gui"`` (the headless core,
TensorFlow allowed) and ``-m gui`` (napari viewers, once per Qt binding).
The GUI session never imports TensorFlow: napari's process must not (the
docks run the network in a worker process), and TensorFlow's LLVM and
Mesa's OpenGL driver crash when they share a process. The session fails if
``tensorflow`` or ``keras`` got imported; models the GUI tests need are
built in a subprocess (:func:`model_files`).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests run random-weight tiny models whose probabilities sit at the
# threshold, where bfloat16 rounding flips whole planes; so float32 unless a
# test asks otherwise (the docks' worker inherits this). Precision is tested
# in test_engine.py (explicit and 'auto'), and on the shipped model by
# benchmarks/bench_speed.py (bf16 vs float32 F1 and Dice).
os.environ.setdefault("NAPARI_UNET_PRECISION", "float32")

import numpy as np
import pytest

#: Test files that only hold GUI tests; other files may mix (marked per test).
GUI_FILES = ("test_widget_",)
#: Test files with some GUI tests, by fixture (collected by both sessions).
MIXED_FILES = ("test_sample_data.py", "test_writer.py")
GUI_FIXTURES = {"make_napari_viewer", "qtbot"}
FORBIDDEN_IN_GUI = ("tensorflow", "keras")


def _session(config) -> str | None:
    """'gui' or 'core' when pytest runs one of scripts/test.sh's sessions."""
    return {"gui": "gui", "not gui": "core"}.get((config.getoption("markexpr") or "").strip())


def _is_gui_file(name: str) -> bool:
    return name.startswith(GUI_FILES)


def pytest_ignore_collect(collection_path, config):
    """Skip importing files a session has nothing to run from.

    The GUI session must not import core test modules (many import Keras);
    the core session need not import napari.
    """
    session, name = _session(config), collection_path.name
    if session is None or not name.startswith("test_") or collection_path.suffix != ".py":
        return None
    if session == "gui" and not (_is_gui_file(name) or name in MIXED_FILES):
        return True
    if session == "core" and _is_gui_file(name):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_gui_file(item.path.name) or GUI_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.gui)


def pytest_sessionfinish(session, exitstatus):
    """Fail the GUI session if napari's (the test) process imported TensorFlow."""
    ran_gui = any(item.get_closest_marker("gui") for item in session.items)
    if _session(session.config) != "gui" or not ran_gui:
        return
    found = [name for name in FORBIDDEN_IN_GUI if name in sys.modules]
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (f"GUI session: {', '.join(found)} imported in napari's process; the "
                   "docks must leave TensorFlow to the worker process.")
        if reporter is not None:
            reporter.write_line(message, red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_model():
    """A small 1-in/1-out U-Net (base 4, depth 2) with fixed random weights."""
    import keras

    from napari_unet import build_unet

    keras.utils.set_random_seed(0)
    return build_unet(base_filters=4, depth=2)


@pytest.fixture(scope="session")
def tiny_model_2out():
    """A small 1-in/2-out (foreground + boundary) U-Net, depth 4."""
    import keras

    from napari_unet import build_unet

    keras.utils.set_random_seed(1)
    return build_unet(base_filters=4, depth=4, out_channels=2)


_MODEL_SCRIPT = """
import sys
from pathlib import Path
import keras
from napari_unet import ModelInfo, build_unet, save_model

folder = Path(sys.argv[1])
keras.utils.set_random_seed(0)
save_model(build_unet(base_filters=4, depth=2), folder / "tiny.keras")
save_model(build_unet(in_channels=2, base_filters=4, depth=2), folder / "two_in.keras")
keras.utils.set_random_seed(0)
net = build_unet(out_channels=2, base_filters=4, depth=2)
save_model(net, folder / "start.keras", ModelInfo.from_model(net, name="start", tile_size=64))
"""


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """Tiny model files, built in a subprocess so this process stays TensorFlow-free.

    ``tiny`` (1 in, 1 out, base 4, depth 2, random weights), ``two_in``
    (2 inputs) and ``start`` (2 outputs, named 'start', tile 64).
    """
    folder = tmp_path_factory.mktemp("models")
    _run_python(_MODEL_SCRIPT, str(folder))
    return {name: folder / f"{name}.keras" for name in ("tiny", "two_in", "start")}


@pytest.fixture(scope="session")
def run_python():
    """``run_python(code, *args)``: run code in a fresh interpreter, return its stdout.

    For results that need TensorFlow in the GUI session.
    """
    return _run_python


def _run_python(code: str, *args: str, timeout: float = 300) -> str:
    """Run ``code`` in a fresh interpreter (this checkout's package); return its stdout."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode:
        raise RuntimeError(f"subprocess failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


@pytest.fixture(scope="session")
def worker_control(tmp_path_factory):
    """The docks' worker clients for the GUI tests, steerable through a folder.

    Installed as the ``segment`` and ``train`` workers of every dock (see
    ``napari_unet._widgets._worker``); they behave as the real ones until a
    test drops a control file (see ``worker_hooks``). Cancelled jobs get a
    long grace, so a cancel is acknowledged by the worker, never a race
    with the terminate-after-a-second rule (tested in test_worker.py).
    Yields ``(folder, {role: client})``.
    """
    import worker_hooks

    from napari_unet._widgets import _worker
    from napari_unet.worker import WorkerClient

    folder = tmp_path_factory.mktemp("worker-control")
    clients = {role: WorkerClient(f"napari-unet test {role} worker", cancel_grace=120,
                                  initializer=worker_hooks.control, initargs=(str(folder),))
               for role in _worker.ROLES}
    with pytest.MonkeyPatch.context() as patch:
        for role, client in clients.items():
            patch.setitem(_worker._CLIENTS, role, client)
        yield folder, clients
    for client in clients.values():
        client.close()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
