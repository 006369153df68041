"""Load TensorFlow with private symbols, so it can share a process with OpenGL.

TensorFlow bundles its own LLVM and loads its libraries ``RTLD_GLOBAL``.
Mesa's software (llvmpipe) and AMD (radeonsi) OpenGL drivers link the
system libLLVM. In one process -- napari's canvas plus a U-Net -- the two
LLVMs bind to each other's symbols and crash (a segfault on the first draw,
or "free(): invalid pointer" at exit), whichever is loaded first. Seen in gdb
under Xvfb: ``swrast_dri.so`` calling ``llvm::FixedVectorType::get`` inside
``libtensorflow_framework.so.2``.

The fix: when ``tensorflow`` is first imported (lazily, by Keras), skip TF's
switch to ``RTLD_GLOBAL`` and load its libraries with ``RTLD_DEEPBIND`` so
they resolve to their own LLVM. It is a one-shot import hook, installed when
napari_unet is imported; it does nothing if TensorFlow is already loaded,
off Linux, or with ``NAPARI_UNET_TF_GLOBAL_SYMBOLS=1`` in the environment.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import types

_FLAGS_MODULE = "tensorflow.python.pywrap_dlopen_global_flags"


class _PrivateTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one-shot: from now on, normal imports
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_privately(module):
            # TF's own module would set RTLD_GLOBAL: replace it by a no-op.
            fake = types.ModuleType(_FLAGS_MODULE)
            fake.set_dlopen_flags = fake.reset_dlopen_flags = lambda: None
            sys.modules.setdefault(_FLAGS_MODULE, fake)
            old = sys.getdlopenflags()
            sys.setdlopenflags(os.RTLD_NOW | os.RTLD_DEEPBIND)
            try:
                exec_module(module)
            finally:
                sys.setdlopenflags(old)

        spec.loader.exec_module = exec_privately
        return spec


def install() -> bool:
    """Install the hook if it can help; return whether it is active."""
    if (
        not sys.platform.startswith("linux")
        or not hasattr(os, "RTLD_DEEPBIND")
        or os.environ.get("NAPARI_UNET_TF_GLOBAL_SYMBOLS") == "1"
        or "tensorflow" in sys.modules
    ):
        return False
    if not any(isinstance(f, _PrivateTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PrivateTensorFlowFinder())
    return True
