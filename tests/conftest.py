"""Shared fixtures: tiny models built on the fly (fast on 2 CPU cores)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import napari_unet  # noqa: F401  (first: installs the TensorFlow isolation hook)


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


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# TensorFlow and Mesa's software OpenGL both carry LLVM; even with TF's
# symbols kept private (napari_unet._tf_isolation), their static destructors
# can still collide at interpreter exit ("free(): invalid pointer", after all
# results are printed). End the process with pytest's own exit status
# instead of running those destructors.
_EXIT_STATUS = None


def pytest_sessionfinish(session, exitstatus):
    global _EXIT_STATUS
    _EXIT_STATUS = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if _EXIT_STATUS is not None and os.environ.get("NAPARI_UNET_HARD_EXIT", "1") == "1":
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS)
