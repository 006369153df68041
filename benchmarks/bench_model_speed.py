"""Speed of the shipped default model vs the full-width reference U-Net.

Run::

    python benchmarks/bench_model_speed.py [--size 2048]

Times ``segment`` (defaults: 128 px tiles, 32 px overlap, batch 16, then
post-processing) on the same ``size x size`` nuclei image with the shipped
default model and with the reference architecture (base 64, depth 4, same
outputs, untrained weights: speed does not depend on the weights), side by
side in one run. Target (issue 3): default <= 0.25x the reference.
"""

from __future__ import annotations

import argparse

from _common import load_benchmark_model, nuclei_image, timed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    import napari_unet as nu

    default, info, label = load_benchmark_model()
    reference = nu.build_unet(out_channels=info.out_channels, base_filters=64, depth=4)
    ref_info = nu.ModelInfo.from_model(reference, outputs=info.outputs,
                                       thresholds=info.thresholds, min_size=info.min_size)
    image = nuclei_image(args.size)
    for model, minfo in ((default, info), (reference, ref_info)):  # trace both first
        nu.segment(image[:256, :256], model, info=minfo)

    t_default, _ = timed(lambda: nu.segment(image, default, info=info), args.repeat)
    t_ref, _ = timed(lambda: nu.segment(image, reference, info=ref_info), args.repeat)
    mpx = args.size**2 / 1e6
    print(f"image {image.shape}; default model: {label}")
    print(f"default   ({default.count_params():>10,} params): {t_default:7.2f} s "
          f"({mpx / t_default:.2f} Mpx/s)")
    print(f"reference ({reference.count_params():>10,} params): {t_ref:7.2f} s "
          f"({mpx / t_ref:.2f} Mpx/s)")
    print(f"ratio default / reference: {t_default / t_ref:.3f} (target <= 0.25)")


if __name__ == "__main__":
    main()
