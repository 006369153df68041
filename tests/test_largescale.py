"""Out-of-core (zarr/dask) and distributed segmentation equal the in-memory result."""

import numpy as np
import pytest
from scipy import ndimage as ndi

# From the package (not napari_unet.segment): resolves the lazy export to the
# function before anything imports the submodule of the same name.
from napari_unet import segment

zarr = pytest.importorskip("zarr")


def blob_image(size, seed=0, spacing=1500, shape=None):
    """uint16 nuclei-like blobs (some touching) on a noisy background."""
    shape = shape or (size, size)
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.float32)
    n = int(np.prod(shape)) // spacing
    img[tuple(rng.integers(0, s, n) for s in shape)] = 1
    img = ndi.gaussian_filter(ndi.grey_dilation(img, size=(1,) * (len(shape) - 2) + (9, 9)),
                              (0,) * (len(shape) - 2) + (2, 2))
    return (img * 3000 + rng.normal(200, 20, shape)).clip(0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def blob_model_path(tmp_path_factory):
    """A depth-2 U-Net whose output is a steep sigmoid of the input, plus a
    small share of its deep (pooled) features: real objects, real seams."""
    import keras

    import napari_unet as nu

    keras.utils.set_random_seed(0)
    model = nu.build_unet(base_filters=4, depth=2)
    for name in ("down0_conv1", "down0_conv2", "up0_conv1", "up0_conv2"):
        layer = model.get_layer(name)  # filter 0 passes channel 0 through
        kernel, bias = layer.get_weights()
        kernel[..., 0] = 0
        kernel[1, 1, 0, 0], bias[0] = 1.0, 0.0
        layer.set_weights([kernel, bias])
    head = model.get_layer("probabilities")
    kernel, bias = head.get_weights()
    kernel *= 0.3
    kernel[0, 0, 0, 0], bias[:] = 12.0, -12.0 * 0.35
    head.set_weights([kernel, bias])
    return nu.save_model(model, tmp_path_factory.mktemp("model") / "blobs.keras")


def assert_same_labels(a, b):
    """Equal up to a permutation of ids (a bijection between the ids)."""
    assert a.shape == b.shape
    assert np.array_equal(a > 0, b > 0)
    pairs = np.unique(a.astype(np.int64).ravel() * (int(b.max()) + 1) + b.ravel())
    assert len(pairs) == len(np.unique(a)) == len(np.unique(b))


def objects_across(labels, cuts):
    """Ids present on both sides of the given row and column chunk borders."""
    ids = [np.intersect1d(labels[..., k - 1, :], labels[..., k, :]) for k in cuts] + [
        np.intersect1d(labels[..., k - 1], labels[..., k]) for k in cuts]
    ids = np.concatenate(ids)
    return np.unique(ids[ids > 0])


def test_out_of_core_equals_in_memory_locally_and_on_a_cluster(tmp_path, blob_model_path):
    from distributed import Client, LocalCluster

    import napari_unet as nu

    image = blob_image(3000, spacing=3000)
    src = zarr.open_array(str(tmp_path / "in.zarr"), mode="w", shape=image.shape,
                          chunks=(1024, 1024), dtype=image.dtype)
    src[:] = image
    expected = segment(image, blob_model_path)

    local = nu.segment_zarr(tmp_path / "in.zarr", tmp_path / "local.zarr", blob_model_path,
                            quiet=True)
    labels = local[:]
    assert local.chunks == (1024, 1024) and local.dtype == np.int32
    assert_same_labels(labels, expected)
    assert local.attrs["n_objects"] == labels.max() == expected.max() > 1000
    # Not vacuous: many objects were cut by chunk borders and merged back.
    assert len(objects_across(labels, (1024, 2048))) > 20

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        # Other blocks too: the chunking does not change the labels.
        remote = nu.segment_zarr(str(tmp_path / "in.zarr"), tmp_path / "remote.zarr",
                                 str(blob_model_path), client=client, quiet=True,
                                 block_size=1536)
        assert remote.chunks == (1536, 1536)
        assert_same_labels(remote[:], labels)


def test_lazy_stack_and_semantic_mode_match_in_memory(blob_model_path):
    import dask.array as da

    import napari_unet as nu

    stack = blob_image(0, seed=3, shape=(2, 600, 530))
    lazy = da.from_array(stack, chunks=(1, 256, 256))
    labels = nu.segment_dask(lazy, blob_model_path, axes="TYX")
    assert isinstance(labels, da.Array) and labels.chunksize == (1, 256, 256)
    expected = segment(stack, blob_model_path, axes="TYX")
    result = labels.compute()
    assert_same_labels(result, expected)
    assert len(objects_across(result, (256, 512))) > 10
    mask = nu.segment_dask(lazy, blob_model_path, mode="semantic").compute()
    np.testing.assert_array_equal(mask, segment(stack, blob_model_path, mode="semantic"))
    # A Z stack's 3D objects are written by segment_zarr, not built lazily.
    with pytest.raises(ValueError, match="segment_zarr"):
        nu.segment_dask(lazy, blob_model_path, axes="ZYX")


@pytest.fixture(scope="module")
def nuclei_volume(tmp_path_factory):
    """A 30 x 128 x 128 crop of the 3D sample in a zarr array chunked by 6 planes,
    and its in-memory 3D labels."""
    from pathlib import Path

    from napari_unet.tiff import read_tiff

    image, scale = read_tiff(Path(__file__).resolve().parents[1] / "sample_data"
                             / "nuclei3d.tif")
    volume = np.ascontiguousarray(image[:, :128, :128])
    path = tmp_path_factory.mktemp("vol") / "in.zarr"
    src = zarr.open_array(str(path), mode="w", shape=volume.shape, chunks=(6, 128, 128),
                          dtype=volume.dtype)
    src[:] = volume
    return path, volume, scale, segment(volume, axes="ZYX", voxel_size=scale)


def test_zarr_volume_gives_the_same_3d_objects_as_in_memory(tmp_path, nuclei_volume):
    import napari_unet as nu

    path, _, scale, expected = nuclei_volume
    out = nu.segment_zarr(path, tmp_path / "out.zarr", axes="ZYX", voxel_size=scale, halo=8,
                          quiet=True)
    labels = out[:]
    assert out.chunks[0] == 8 and labels.dtype == np.int32  # slabs at least the halo
    assert_same_labels(labels, expected)
    assert out.attrs["n_objects"] == labels.max() == expected.max() >= 5
    # Not vacuous: objects run through several 8-plane slabs and were merged.
    spans = [len(np.unique(np.nonzero(labels == i)[0] // 8)) for i in range(1, labels.max() + 1)]
    assert max(spans) == 4
    # A halo shorter than the nuclei is an approximation: pieces are joined
    # across slab faces where each is the other's best partner, and at most
    # one nucleus may stay cut at a face (measured with the shipped model).
    short = nu.segment_zarr(path, tmp_path / "short.zarr", axes="ZYX", voxel_size=scale,
                            halo=2, quiet=True)[:]
    assert expected.max() <= short.max() <= expected.max() + 1
    assert nu.evaluate(short, expected, per_plane=False)["f1"] >= 0.9


def test_zarr_volume_memory_is_bounded_by_the_slab(tmp_path, nuclei_volume):
    """Twice the planes, no higher peak; well under in memory (numpy
    allocations, traced; the first run also warms up)."""
    import tracemalloc

    import napari_unet as nu

    path, volume, scale, _ = nuclei_volume
    double = np.concatenate([volume, volume[::-1]])
    src = zarr.open_array(str(tmp_path / "double.zarr"), mode="w", shape=double.shape,
                          chunks=(6, 128, 128), dtype=double.dtype)
    src[:] = double
    peaks = []
    for name, source in (("one", path), ("two", tmp_path / "double.zarr")):
        tracemalloc.start()
        out = nu.segment_zarr(source, tmp_path / f"{name}.zarr", axes="ZYX", voxel_size=scale,
                              halo=2, quiet=True)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert out.attrs["n_objects"] > 0
    tracemalloc.start()
    segment(double, axes="ZYX", voxel_size=scale)
    in_memory = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peaks[1] < 1.25 * peaks[0] and peaks[1] < 0.5 * in_memory, (peaks, in_memory)


def test_percentiles_are_global_per_plane_not_per_chunk(blob_model_path):
    from napari_unet.largescale import _plan
    from napari_unet.largescale.blocks import plane_range
    from napari_unet.prediction import plane_range as in_memory_range
    from napari_unet.settings import split_options

    image = blob_image(0, shape=(2100, 2000))  # > 4M px: the strided subsample
    image[:300] = 60000  # one bright band: chunk-wise percentiles would differ
    settings = split_options({"block_size": 512}, allowed=("prediction", "labelling", "blocks"))
    plan, src = _plan(image, blob_model_path, None, axes=None, channel_axis=None, channels=None,
                      settings=settings)
    np.testing.assert_array_equal(plane_range(src, plan, ()),
                                  np.stack(in_memory_range(image[..., None], 1.0, 99.8)))


def test_region_prediction_is_bitwise_equal_with_whole_plane_batches(tiny_model_2out, rng):
    from napari_unet.tiling import predict_plane, predict_region, region_input_box

    image = rng.random((500, 430, 1), dtype=np.float32)
    full = predict_plane(image, tiny_model_2out)
    for region in [(100, 300, 200, 430), (450, 500, 0, 40), (0, 500, 0, 430)]:
        y0, y1, x0, x1 = region_input_box(region, image.shape[:2], 128, 32)
        part = predict_region(image[y0:y1, x0:x1], tiny_model_2out, region=region,
                              image_shape=image.shape[:2], origin=(y0, x0),
                              global_batches=True)
        assert np.array_equal(part, full[:, region[0]:region[1], region[2]:region[3]])
    with pytest.raises(ValueError, match="does not hold"):
        predict_region(image[100:], tiny_model_2out, region=(100, 300, 0, 430),
                       image_shape=image.shape[:2], origin=(100, 0))


def test_refuses_to_overwrite_and_in_memory_models_on_a_cluster(tmp_path, tiny_model):
    import napari_unet as nu

    (tmp_path / "out.zarr").mkdir()
    with pytest.raises(FileExistsError):
        nu.segment_zarr(np.zeros((64, 64), np.uint16), tmp_path / "out.zarr", tiny_model)
    with pytest.raises(ValueError, match=".keras path"):
        nu.segment_zarr(np.zeros((64, 64), np.uint16), tmp_path / "new.zarr", tiny_model,
                        scheduler="tcp://127.0.0.1:1")
    assert not (tmp_path / "new.zarr").exists()


def test_progress_and_cancel_leave_no_partial_output(tmp_path, blob_model_path):
    import napari_unet as nu
    from napari_unet.cancel import Cancelled

    image = np.random.default_rng(1).random((96, 96)).astype(np.float32)
    seen = []
    out = nu.segment_zarr(image, tmp_path / "ok.zarr", blob_model_path, block_size=48,
                          quiet=True, progress=lambda done, total: seen.append((done, total)))
    assert out.shape == image.shape
    assert (4, 4) in seen and (0, 4) in seen  # 2 x 2 blocks, each reported
    calls = []

    def cancel():  # True once the first block is done
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        nu.segment_zarr(image, tmp_path / "stopped.zarr", blob_model_path, block_size=48,
                        quiet=True, cancel=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.zarr"]  # nothing half-written



def test_blocks_share_windows_and_match_in_memory(tmp_path, blob_model_path, monkeypatch):
    """Out of core, neighbouring blocks' halos need the same windows: each
    is run once (the window cache), and labels still equal in memory."""
    import napari_unet as nu
    from napari_unet import engine
    from napari_unet.tiling import count_windows

    image = blob_image(600, seed=4)
    model, info = nu.load_model(blob_model_path, with_info=True)
    expected = segment(image, model, info=info, tile_size=128, overlap=32)
    windows = []
    real = engine.run_model

    def counted(model, batch, *args):
        windows.append(len(batch))
        return real(model, batch, *args)

    monkeypatch.setattr(engine, "run_model", counted)
    out = nu.segment_zarr(image, tmp_path / "out.zarr", blob_model_path, block_size=160,
                          halo=32, tile_size=128, overlap=32, quiet=True)
    assert sum(windows) == count_windows(image.shape, 128, 32)  # each once
    assert_same_labels(out[:], expected)
    windows.clear()
    nu.segment_zarr(image, tmp_path / "exact.zarr", blob_model_path, block_size=160,
                    halo=32, tile_size=128, overlap=32, exact=True, quiet=True)
    assert sum(windows) > 2 * count_windows(image.shape, 128, 32)  # no cache when exact


def test_local_runs_group_chunks_into_larger_blocks(tmp_path, blob_model_path):
    import dask.array as da

    import napari_unet as nu

    image = blob_image(600, seed=5)
    seen = []
    out = nu.segment_zarr(da.from_array(image, chunks=256), tmp_path / "out.zarr",
                          blob_model_path, quiet=True, tile_size=128, overlap=32,
                          progress=lambda done, total: seen.append(total))
    assert out.chunks == (256, 256)  # the output keeps the input's chunks
    assert max(seen) == 1  # but the 3 x 3 chunks ran as one block (every stage: 1 task)
    assert_same_labels(out[:], segment(image, blob_model_path, tile_size=128, overlap=32))


def test_local_blocks_are_1024_rows_by_2048_columns(blob_model_path):
    """Grouped blocks are wide, not square: ~45 MB less per block than 2048^2
    on a 6144^2 zarr, for a few more halo pixels (see LOCAL_BLOCK)."""
    import dask.array as da

    from napari_unet.largescale import LOCAL_BLOCK, _plan
    from napari_unet.settings import split_options

    settings = split_options({}, prediction=None, labelling=None, blocks=None,
                             allowed=("prediction", "labelling", "blocks"), caller="test")
    image = da.zeros((6144, 6144), dtype=np.uint16, chunks=1024)
    plan, _ = _plan(image, blob_model_path, None, axes=None, channel_axis=None, channels=None,
                    settings=settings, local=True)
    assert LOCAL_BLOCK == (1024, 2048) and plan.block == (1024, 2048)
    assert plan.out_chunks == (1024, 1024)  # the output keeps the input's chunks
    plan, _ = _plan(image.rechunk(512), blob_model_path, None, axes=None, channel_axis=None,
                    channels=None, settings=settings, local=True)
    assert plan.block == (1024, 2048)
    plan, _ = _plan(image, blob_model_path, None, axes=None, channel_axis=None, channels=None,
                    settings=settings, local=False)  # dask tasks: the chunks themselves
    assert plan.block == (1024, 1024)
