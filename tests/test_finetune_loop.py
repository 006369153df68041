"""The correction loop, headless: predict, correct, export, fine-tune, predict again."""

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import disk

import napari_unet as nu
from napari_unet.export import export_pairs
from napari_unet.training import read_dataset


def nuclei_scene(shape=(192, 192), n=40, seed=0):
    """Bright discs on a textured background, with their instance labels."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    k = 0
    for _ in range(n * 4):
        r = rng.integers(5, 9)
        c = rng.integers(r, shape[0] - r), rng.integers(r, shape[1] - r)
        rr, cc = disk(c, r + 2, shape=shape)
        if labels[rr, cc].any():
            continue
        k += 1
        labels[disk(c, r, shape=shape)] = k
        if k == n:
            break
    image = (labels > 0) * 600.0 + ndi.gaussian_filter(rng.normal(0, 300, shape), 2) + 1000
    image = ndi.gaussian_filter(image, 1) + rng.normal(0, 30, shape)
    return image.astype(np.uint16), labels


def test_correct_export_finetune_improves_held_out_dice(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    net = nu.build_unet(out_channels=2, base_filters=8, depth=2)  # small: trains in seconds
    image, truth = nuclei_scene()
    start = nu.save_model(net, tmp_path / "start.keras",
                          nu.ModelInfo.from_model(net, name="start", min_size=10))
    top, bottom = slice(0, 128), slice(128, 192)

    before = nu.segment(image, str(start))
    dice_before = nu.evaluate(before[bottom], truth[bottom])["dice"]

    # The user corrects the top part of the prediction (here: to the truth)
    # and exports it; the bottom part is held out.
    export_pairs(image[top], truth[top], tmp_path / "ds", name="scene",
                 model="start", source_layer="scene", labels_layer="scene labels")
    data = read_dataset(tmp_path / "ds")
    result = nu.train(data.images, data.labels, model=start, epochs=4, steps_per_epoch=10,
                      batch_size=4, patch_size=64, learning_rate=3e-3, val_fraction=0,
                      output_path=tmp_path / "tuned.keras", seed=0)
    assert result.path.exists()
    _, info = nu.load_model(result.path, with_info=True)
    assert info.parent == "start"

    after = nu.segment(image, str(result.path))
    dice_after = nu.evaluate(after[bottom], truth[bottom])["dice"]
    assert dice_after > dice_before + 0.2, (dice_before, dice_after)
    assert dice_after > 0.7
    assert start.exists()  # the starting model is never modified
