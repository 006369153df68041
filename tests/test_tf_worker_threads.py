"""TensorFlow in napari's pooled worker threads (see _widgets/_warmup.py).

If TensorFlow is first imported inside a Qt thread-pool worker, pybind11
keeps that worker's Python thread state in a thread-local slot after Python
has freed it; the next worker Qt runs on the same OS thread crashes
(segfault) or deadlocks when it builds a model. The widgets import
TensorFlow in a plain Python thread first (``ensure_tensorflow``). Run in a
subprocess, so a crash is a test failure, not the end of the session.
"""

import os
import subprocess
import sys

import pytest

pytest.importorskip("qtpy")

SCRIPT = """
import time
import napari_unet as nu
from napari.qt.threading import thread_worker
from qtpy.QtWidgets import QApplication
from napari_unet._widgets._warmup import ensure_tensorflow

app = QApplication.instance() or QApplication([])
assert "tensorflow" not in __import__("sys").modules

def build(i):
    ensure_tensorflow()  # as every widget worker that touches TensorFlow does
    nu.build_unet(base_filters=4, depth=2)
    return i

for i in range(3):  # the pool reuses its OS thread for the later workers
    done = []
    worker = thread_worker(build, start_thread=False)(i)
    worker.returned.connect(done.append)
    worker.start()
    while not done:
        app.processEvents()
        time.sleep(0.01)
print("ok")
"""


def test_models_build_in_successive_qt_workers():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
