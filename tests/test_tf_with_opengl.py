"""TensorFlow and napari's OpenGL canvas in one process (see _tf_isolation).

Without the isolation hook this crashes with a segfault under Mesa's
llvmpipe (both bundle LLVM), so it runs in a subprocess: a crash is then a
test failure, not the end of the test session.
"""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import sys
import numpy as np
import napari
import napari_unet as nu
from napari_unet._tf_isolation import preload_libraries

viewer = napari.Viewer(show=True)
viewer.add_image(np.random.random((64, 64)))
viewer.screenshot()                      # GL driver (and its LLVM) loaded
if "--preload" in sys.argv:  # what the Segment widget's warm-up does first
    assert preload_libraries() == 3
model = nu.build_unet(base_filters=4, depth=2)   # now TensorFlow
probs = nu.predict_probabilities(np.random.random((64, 64)), model)
viewer.add_image(probs[0])
shot = viewer.screenshot()
assert shot.std() > 0
viewer.close()
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux-specific clash")
@pytest.mark.parametrize("args", [[], ["--preload"]], ids=["import", "preloaded"])
def test_napari_canvas_and_tensorflow_share_a_process(args):
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display (run under xvfb-run, as scripts/test.sh does)")
    env = {k: v for k, v in os.environ.items() if k != "NAPARI_UNET_TF_GLOBAL_SYMBOLS"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True,
                          timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
