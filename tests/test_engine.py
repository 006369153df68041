"""Running the network: precision choice, reduced-precision copies, GPU
out-of-memory fallback (mocked: this machine has no GPU)."""

import numpy as np
import pytest

import napari_unet as nu
from napari_unet import engine
from napari_unet.settings import PredictionSettings


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(engine.ENV_VAR, raising=False)


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert engine.cpu_flags(info) == {"fpu", "sse", "avx512f", "avx512_bf16"}
    assert engine.cpu_has_bf16(info)
    assert not engine.cpu_has_amx(info)  # Zen 4: AVX-512 BF16, no AMX
    info.write_text("flags\t\t: fpu sse avx2 amx_tile\n")
    engine.cpu_has_bf16.cache_clear()
    engine.cpu_has_amx.cache_clear()
    assert not engine.cpu_has_bf16(info)
    assert not engine.cpu_has_amx(info)
    info.write_text("flags\t\t: fpu avx512_bf16 amx_tile amx_bf16 amx_int8\n")  # Sapphire Rapids
    engine.cpu_has_bf16.cache_clear()
    engine.cpu_has_amx.cache_clear()
    assert engine.cpu_has_bf16(info) and engine.cpu_has_amx(info)
    engine.cpu_has_bf16.cache_clear()
    engine.cpu_has_amx.cache_clear()
    assert engine.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.usefixtures("no_env")
def test_auto_precision_follows_the_hardware():
    assert engine.resolve_precision("auto", gpu=True, cpu_bf16=False) == "float16"
    assert engine.resolve_precision("auto", gpu=False, cpu_bf16=True) == "bfloat16"
    assert engine.resolve_precision("auto", gpu=False, cpu_bf16=False) == "float32"
    # An explicit choice is kept whatever the hardware.
    assert engine.resolve_precision("float32", gpu=True, cpu_bf16=True) == "float32"
    assert engine.resolve_precision("bfloat16", gpu=False, cpu_bf16=False) == "bfloat16"


def test_environment_variable_replaces_auto(monkeypatch):
    monkeypatch.setenv(engine.ENV_VAR, "float32")
    assert engine.resolve_precision("auto", gpu=True, cpu_bf16=True) == "float32"
    assert engine.resolve_precision("bfloat16", gpu=False, cpu_bf16=True) == "bfloat16"
    monkeypatch.setenv(engine.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="NAPARI_UNET_PRECISION"):
        engine.resolve_precision("auto")


def test_precision_is_a_checked_prediction_setting():
    assert PredictionSettings().precision == "auto"
    with pytest.raises(ValueError, match="precision must be one of"):
        PredictionSettings(precision="int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        nu.predict_probabilities(np.zeros((32, 32)), precision="double")


def test_bf16_copy_keeps_weights_and_agrees(tiny_model_2out, rng):
    clone = engine.model_for_precision(tiny_model_2out, "bfloat16")
    assert clone is not tiny_model_2out
    assert engine.model_for_precision(tiny_model_2out, "bfloat16") is clone  # cached
    assert engine.model_for_precision(tiny_model_2out, "float32") is tiny_model_2out
    assert clone.layers[1].compute_dtype == "bfloat16"
    assert clone.layers[-1].compute_dtype == "float32"  # probabilities stay float32
    for a, b in zip(tiny_model_2out.get_weights(), clone.get_weights(), strict=True):
        np.testing.assert_allclose(np.asarray(b, np.float32), a, rtol=1e-2, atol=1e-3)
    x = rng.random((2, 64, 64, 1), dtype=np.float32)
    ref = engine.run_model(tiny_model_2out, x, "float32")
    low = engine.run_model(tiny_model_2out, x, "bfloat16")
    assert low.dtype == np.float32 and low.shape == ref.shape
    assert not np.array_equal(low, ref)  # really ran in bf16
    assert np.abs(low - ref).mean() < 0.02


def test_segment_in_bf16_matches_float32(tiny_model_2out):
    from test_tiling import blobs

    image = blobs((200, 200), seed=2)
    p32 = nu.predict_probabilities(image, tiny_model_2out, precision="float32")
    p16 = nu.predict_probabilities(image, tiny_model_2out, precision="bfloat16")
    a, b = p32[0] > np.median(p32[0]), p16[0] > np.median(p32[0])
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.98


class ResourceExhaustedError(Exception):
    """Stands for tf.errors.ResourceExhaustedError (matched by name)."""


def test_out_of_memory_halves_the_batch_and_remembers(recwarn):
    calls = []

    class Key:  # a model stand-in the size limit is remembered for
        pass

    key = Key()

    def gpu(batch):  # a device that holds 3 windows at most
        calls.append(len(batch))
        if len(batch) > 3:
            raise ResourceExhaustedError("OOM when allocating tensor")
        return batch * 2

    batch = np.arange(10, dtype=np.float32)[:, None]
    out = engine.run_batches(gpu, batch, key=key)
    np.testing.assert_array_equal(out, batch * 2)  # all windows, in order
    assert calls[:2] == [10, 5] and set(calls[2:]) <= {2}
    assert any("out of memory" in str(w.message) for w in recwarn)
    calls.clear()
    engine.run_batches(gpu, batch, key=key)  # starts at the size that fitted
    assert calls == [2] * 5


def test_other_errors_and_single_windows_are_not_retried():
    def broken(batch):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        engine.run_batches(broken, np.zeros((4, 1)))

    def tiny_gpu(batch):
        raise ResourceExhaustedError("OOM")

    with pytest.raises(ResourceExhaustedError):
        engine.run_batches(tiny_gpu, np.zeros((4, 1)))


def test_gpu_mocked_runs_segment_in_float16_with_oom_fallback(tiny_model_2out, monkeypatch):
    """The GPU branch end to end on CPU: 'auto' picks float16 when a GPU is
    seen, and a too-large batch is split instead of failing."""
    import tensorflow as tf

    monkeypatch.delenv(engine.ENV_VAR, raising=False)
    monkeypatch.setattr(engine, "gpu_available", lambda: True)
    assert engine.resolve_precision("auto") == "float16"
    real = engine.compiled_predictor
    sizes = []

    def small_gpu(model):
        fn = real(model)

        def run(x):
            sizes.append(len(x))
            if len(x) > 2:
                raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")
            return fn(x)
        return run

    monkeypatch.setattr(engine, "compiled_predictor", small_gpu)
    image = np.random.default_rng(0).random((150, 150)).astype(np.float32)
    with pytest.warns(RuntimeWarning, match="out of memory"):
        probs = nu.predict_probabilities(image, tiny_model_2out, tile_size=64, overlap=16,
                                         batch_size=8)
    assert max(sizes) == 8 and sizes[-1] <= 2
    clone = engine.model_for_precision(tiny_model_2out, "float16")
    assert clone.layers[1].compute_dtype == "float16"
    ref = nu.predict_probabilities(image, tiny_model_2out, tile_size=64, overlap=16,
                                   precision="float32")
    assert np.abs(probs - ref).max() < 0.05
