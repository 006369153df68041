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

import ctypes
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types

_FLAGS_MODULE = "tensorflow.python.pywrap_dlopen_global_flags"
_FLAGS = os.RTLD_NOW | getattr(os, "RTLD_DEEPBIND", 0)
#: TensorFlow's big shared libraries, relative to its package folder.
_CORE_LIBRARIES = ("libtensorflow_framework.so.2", "libtensorflow_cc.so.2",
                   "python/lib_pywrap_tensorflow_common.so")


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
            sys.setdlopenflags(_FLAGS)
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
    if not _active():
        sys.meta_path.insert(0, _PrivateTensorFlowFinder())
    return True


def _active() -> bool:
    return any(isinstance(f, _PrivateTensorFlowFinder) for f in sys.meta_path)


def preload_libraries() -> int:
    """Map TensorFlow's core shared libraries without holding the GIL.

    ``import tensorflow`` loads ~1.2 GB of shared libraries; the dynamic
    loader's relocations and static constructors then run inside the import
    with the GIL held, freezing every other Python thread -- napari's GUI --
    for ~0.5 s. ``dlopen`` called through a ctypes *function* releases the
    GIL, so doing it first in a worker thread leaves the later import only a
    cheap reference-count bump. Uses the same flags as the import hook, so
    the libraries end up exactly as the hook would load them.

    Returns the number of libraries loaded (0 when the hook is not active,
    TensorFlow is already imported, or it is not installed).
    """
    if "tensorflow" in sys.modules or not _active():
        return 0
    # PathFinder, not importlib.util.find_spec: the latter would consume the
    # one-shot hook without importing anything.
    spec = importlib.machinery.PathFinder.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        return 0
    root = list(spec.submodule_search_locations)[0]
    try:
        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen
    except (OSError, AttributeError):
        return 0
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    loaded = 0
    for name in _CORE_LIBRARIES:
        path = os.path.join(root, name)
        # A failure is harmless: the import then loads (or reports) it as usual.
        if os.path.isfile(path) and dlopen(os.fsencode(path), _FLAGS):
            loaded += 1
    return loaded
