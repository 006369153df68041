"""This machine's matmul roof (float32, bfloat16) and the network's share of it.

Run::

    python benchmarks/bench_roofline.py [--quick] [--model FILE]

Measures, in one run: TensorFlow's float32 and bfloat16 matmul GFLOP/s
(2048x2048, ``tf.function``), the model's FLOPs per pixel (counted from its
convolution kernels), the network alone on batches of 256 px windows in
float32 and bfloat16, and ``segment`` end to end, each as GFLOP/s and as a
share of the matching roof. Informational: no targets, no PASS/FAIL.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import load_benchmark_model, nuclei_image


def best_of(fn, repeat):
    fn()  # trace / warm up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_gflops(dtype, n=2048, repeat=5):
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)

    @tf.function
    def mm():
        return tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32))

    return 2 * n**3 / best_of(lambda: mm().numpy(), repeat) / 1e9


def flops_per_pixel(model, tile=256) -> float:
    """Multiply-adds x 2 of the convolutions, per input pixel, on a ``tile`` window."""
    import keras

    fixed = keras.models.clone_model(
        model, input_tensors=keras.Input((tile, tile, int(model.inputs[0].shape[-1]))))
    total = 0
    for layer in fixed.layers:
        kind = layer.__class__.__name__
        if kind not in ("Conv2D", "Conv2DTranspose"):
            continue
        shape = (layer.output if kind == "Conv2D" else layer.input).shape
        total += 2 * int(np.prod(layer.kernel.shape)) * int(shape[1]) * int(shape[2])
    return total / tile**2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help=".keras file (default: the shipped model)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller image")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else 5

    import napari_unet as nu
    from napari_unet import engine
    from napari_unet.settings import PredictionSettings

    model, info, label = load_benchmark_model(args.model)
    roof = {"float32": matmul_gflops("float32", repeat=4 * repeat)}
    bf16_native = engine.cpu_has_bf16() or engine.gpu_available()
    roof["bfloat16"] = matmul_gflops("bfloat16", repeat=4 * repeat)
    fpp = flops_per_pixel(model)
    print(f"device {engine.device_name()}; CPU bf16 units: {engine.cpu_has_bf16()}")
    print(f"matmul roof: float32 {roof['float32']:6.0f} GFLOP/s, "
          f"bfloat16 {roof['bfloat16']:6.0f} GFLOP/s "
          f"({roof['bfloat16'] / roof['float32']:.2f}x)"
          + ("" if bf16_native else "  [no native bf16: emulated]"))
    print(f"model: {label}: {fpp / 1e3:.1f} kFLOP per pixel "
          f"({fpp * 128**2 / 1e9:.2f} GFLOP per 128x128 tile)")

    tile, batch = 256, 4
    x = np.random.default_rng(0).random((batch, tile, tile, 1), dtype=np.float32)
    for prec in ("float32", "bfloat16"):
        t = best_of(lambda p=prec: engine.run_model(model, x, p), repeat)
        px = batch * tile**2
        gf = fpp * px / t / 1e9
        print(f"network alone, {prec:8s} ({batch}x{tile}^2 windows): {px / t / 1e6:6.2f} Mpx/s, "
              f"{gf:6.1f} GFLOP/s = {gf / roof[prec]:5.1%} of the {prec} roof")

    size = 1024 if args.quick else 2048
    image = nuclei_image(size)
    settings = PredictionSettings().resolved(info, image.shape)
    prec = engine.resolve_precision(settings.precision)
    stride = settings.tile_size - settings.overlap
    t = best_of(lambda: nu.segment(image, model, info=info), max(1, repeat // 2))
    computed = image.size * (settings.tile_size / stride) ** 2  # pixels the windows cover
    gf = fpp * computed / t / 1e9
    print(f"segment end to end ({size}^2, {prec}, window {settings.tile_size}, overlap "
          f"{settings.overlap}): {image.size / t / 1e6:.2f} Mpx/s, {gf:.1f} GFLOP/s useful+halo "
          f"= {gf / roof[prec if prec in roof else 'float32']:.1%} of the roof")
    print("(timings on a shared machine are noisy)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
