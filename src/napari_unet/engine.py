"""Running the network: compiled call, precision, device and batch fallbacks.

Everything that decides *how* a Keras model is executed on a batch of tiles
lives here; :mod:`.tiling` decides *which* tiles.

* **Compiled call**: one ``tf.function`` per model, traced once with dynamic
  batch and spatial dimensions (~4x faster per tile than ``model.predict``
  on CPU, which re-enters Keras' data pipeline on every call).
* **Precision**: ``"auto"`` runs a bfloat16 copy of the model (same weights,
  rounded; no retraining) on CPUs with native bf16 matrix units
  (``avx512_bf16`` or AMX), where it is 2-3x faster than float32, and a
  mixed-float16 copy on a GPU. Other CPUs emulate bf16 slowly, so they stay
  in float32. The environment variable ``NAPARI_UNET_PRECISION`` (one of
  :data:`PRECISIONS`) replaces ``"auto"``, e.g. ``float32`` to opt out.
  The output layer always stays float32.
* **Device**: TensorFlow places the model on a GPU when one is visible.
  When a batch does not fit in GPU memory it is split in halves and the
  halves are run (csbdeep shrinks its tiles the same way); the smaller
  batch is remembered for the next calls.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np

from .settings import PRECISIONS  # also the values of NAPARI_UNET_PRECISION

ENV_VAR = "NAPARI_UNET_PRECISION"

# Keras dtype policies for the copies. Variables in bf16 too ("bfloat16",
# not "mixed_bfloat16"): the kernels cast them to bf16 anyway, and storing
# them so saves a cast per layer and call (measured ~10 % on this CPU).
_POLICIES = {"bfloat16": "bfloat16", "float16": "mixed_float16"}
_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CLONES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BATCH_LIMIT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


# --------------------------------------------------------------------------
# Hardware
# --------------------------------------------------------------------------
def cpu_flags(path: str | os.PathLike = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags of the first core (empty where unknown, e.g. macOS)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


@functools.lru_cache(maxsize=8)
def cpu_has_bf16(path: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
    return bool(cpu_flags(path) & _BF16_FLAGS)


@functools.lru_cache(maxsize=8)
def cpu_has_amx(path: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether the CPU has AMX tile units for bfloat16 (Sapphire Rapids and later)."""
    return "amx_bf16" in cpu_flags(path)


@functools.lru_cache(maxsize=1)
def gpu_available() -> bool:
    """Whether TensorFlow sees a GPU (it then runs the model there)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:  # allocate as needed: the worker shares the GPU with napari
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):  # already initialised
            pass
    return bool(gpus)


def device_name() -> str:
    """``"GPU"`` or ``"CPU"``: where :func:`run_model` computes."""
    return "GPU" if gpu_available() else "CPU"


# --------------------------------------------------------------------------
# Precision
# --------------------------------------------------------------------------
def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def resolve_precision(precision: str = "auto", *, gpu: bool | None = None,
                      cpu_bf16: bool | None = None) -> str:
    """The precision a run uses: ``"float32"``, ``"bfloat16"`` or ``"float16"``.

    Parameters
    ----------
    precision : str
        One of :data:`PRECISIONS`. An explicit value is kept. ``"auto"``
        reads ``NAPARI_UNET_PRECISION`` first; if that is unset (or
        ``auto``) it picks float16 on a GPU, bfloat16 on a CPU with native
        bf16 units and float32 otherwise.
    gpu, cpu_bf16 : bool, optional
        The hardware, detected when None (for tests and for callers that
        already know).
    """
    check_precision(precision)
    if precision == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env:
            if env not in PRECISIONS:
                raise ValueError(f"{ENV_VAR} must be one of {', '.join(PRECISIONS)}, "
                                 f"got {env!r}")
            precision = env
    if precision != "auto":
        return precision
    if gpu if gpu is not None else gpu_available():
        return "float16"
    return "bfloat16" if (cpu_bf16 if cpu_bf16 is not None else cpu_has_bf16()) else "float32"


def model_for_precision(model, precision: str):
    """``model`` itself for float32, else a cached copy computing in ``precision``.

    The copy has the same architecture and weights (cast), every layer but
    the last computing in bf16/fp16. Models that Keras cannot clone (e.g. a
    TensorFlow SavedModel wrapper) run in float32, with a warning.
    """
    if precision == "float32":
        return model
    check_precision(precision)
    if precision == "auto":
        raise ValueError("resolve 'auto' with resolve_precision() first")
    with _LOCK:
        clones = _CLONES.setdefault(model, {})
        if precision not in clones:
            try:
                clones[precision] = _clone(model, _POLICIES[precision])
            except Exception as err:  # noqa: BLE001 - any model Keras cannot rebuild
                warnings.warn(f"cannot run this model in {precision} ({err}); "
                              "using float32", RuntimeWarning, stacklevel=2)
                clones[precision] = model
        return clones[precision]


def _clone(model, policy: str):
    import keras

    last = model.layers[-1].name

    def with_policy(layer):
        config = layer.get_config()
        if layer.name != last:  # probabilities leave the net in float32
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=with_policy)
    clone.set_weights(model.get_weights())
    for name in ("napari_unet_depth",):  # metadata some loaders attach
        if hasattr(model, name):
            setattr(clone, name, getattr(model, name))
    return clone


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------
def compiled_predictor(model):
    """A ``tf.function`` running ``model`` on float32 NHWC batches.

    Traced once per model with dynamic batch and spatial dimensions, so the
    last, smaller batch and other tile sizes do not retrace.
    """
    fn = _COMPILED.get(model)
    if fn is None:
        import tensorflow as tf

        cin = int(model.inputs[0].shape[-1])
        spec = tf.TensorSpec([None, None, None, cin], tf.float32)

        @tf.function(input_signature=[spec])
        def fn(x):
            return tf.cast(model(x, training=False), tf.float32)

        _COMPILED[model] = fn
    return fn


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is TensorFlow's (or the allocator's) out-of-memory error."""
    if type(err).__name__ == "ResourceExhaustedError":
        return True
    text = str(err)
    return "OOM" in text or "out of memory" in text.lower()


def run_batches(fn, batch: np.ndarray, key=None) -> np.ndarray:
    """``fn(batch)``, split into smaller batches while ``fn`` runs out of memory.

    The batch is halved until it fits (down to one window, after which the
    error is raised); the size that fitted is remembered under ``key`` (a
    model) so later calls split at once.
    """
    n = len(batch)
    limit = _BATCH_LIMIT.get(key, n) if key is not None else n
    size = max(1, min(n, limit))
    while True:
        try:
            parts = [np.asarray(fn(batch[i:i + size])) for i in range(0, n, size)]
        except Exception as err:
            if not is_out_of_memory(err) or size == 1:
                raise
            size = max(1, size // 2)
            warnings.warn(f"out of memory for a batch; retrying with batches of {size}",
                          RuntimeWarning, stacklevel=2)
            continue
        if key is not None and size < n:
            _BATCH_LIMIT[key] = size
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def run_model(model, batch: np.ndarray, precision: str = "float32") -> np.ndarray:
    """Run ``model`` on an NHWC batch in ``precision``; float32 numpy result.

    ``precision`` may be ``"auto"`` (see :func:`resolve_precision`); callers
    running many batches resolve it once.
    """
    if precision == "auto":
        precision = resolve_precision(precision)
    runner = model_for_precision(model, precision)
    fn = compiled_predictor(runner)
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    return run_batches(lambda b: fn(b).numpy(), batch, key=runner)
