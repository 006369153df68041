"""The napari-unet command line, run in-process (fast) and once as a console script."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# From the package (not napari_unet.segment): resolves the lazy export to the
# function before anything imports the submodule of the same name.
from napari_unet import segment
from napari_unet.cli import main
from napari_unet.tiff import read_tiff, read_tiff_metadata, write_tiff_atomic


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, tiny_model):
    from napari_unet import save_model

    return str(save_model(tiny_model, tmp_path_factory.mktemp("model") / "tiny.keras"))


def image(seed=0, shape=(150, 170)):
    return np.random.default_rng(seed).integers(0, 4000, shape).astype(np.uint16)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, text):
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and text in err, err


def test_segment_files_and_folders_keeps_the_pixel_size(tmp_path, capsys, model_file):
    write_tiff_atomic(tmp_path / "one.tif", image(0), scale=(0.5, 0.25))
    (tmp_path / "folder").mkdir()
    for i in (1, 2):
        write_tiff_atomic(tmp_path / "folder" / f"img{i}.tif", image(i), scale=(0.3, 0.3))
    write_tiff_atomic(tmp_path / "stack.tif", image(3, (2, 100, 90)), axes="TYX",
                      scale=(1.0, 0.2, 0.2))
    code, out, err = run(capsys, "segment", tmp_path / "one.tif", tmp_path / "folder",
                         tmp_path / "stack.tif", "-o", tmp_path / "out", "--model", model_file)
    assert code == 0, err
    assert "img2.tif -> " in err  # one summary line per file
    labels, scale = read_tiff(tmp_path / "out" / "one_labels.tif")
    assert labels.shape == (150, 170) and labels.dtype == np.int32 and scale == (0.5, 0.25)
    for i in (1, 2):
        assert read_tiff(tmp_path / "out" / f"img{i}_labels.tif")[1] == (0.3, 0.3)
    meta = read_tiff_metadata(tmp_path / "out" / "stack_labels.tif")
    assert meta.axes == "TYX" and meta.shape == (2, 100, 90) and meta.scale[1:] == (0.2, 0.2)


def test_refuses_to_overwrite_without_flag(tmp_path, capsys, model_file):
    write_tiff_atomic(tmp_path / "a.tif", image())
    assert run(capsys, "segment", tmp_path / "a.tif", "-o", tmp_path, "--model", model_file,
               "-q")[0] == 0
    target = tmp_path / "a_labels.tif"
    before = target.read_bytes()
    code, _, err = run(capsys, "segment", tmp_path / "a.tif", "-o", tmp_path, "--model",
                       model_file, "--threshold", "0.9")
    assert_one_line_error(code, err, "--overwrite")
    assert target.read_bytes() == before
    code, _, err = run(capsys, "segment", tmp_path / "a.tif", "-o", tmp_path, "--model",
                       model_file, "--threshold", "0.9", "--overwrite", "-q")
    assert code == 0, err


@pytest.mark.parametrize("case, text", [
    ("missing", "input not found"),
    ("unreadable", "cannot read image"),
    ("axes", "axes 'ZYX' has 3 letters"),
    ("axes_order", "Y and X must be the last"),
    ("model", "Model file not found"),
    ("not_a_folder", "--output must be a folder"),
    ("voxel_count", "expected three numbers Z,Y,X"),
    ("voxel_zero", "voxel sizes must be > 0"),
    ("voxel_text", "expected a number"),
    ("instances", "invalid choice: '4d'"),
])
def test_bad_input_is_one_line_on_stderr(tmp_path, capsys, model_file, case, text):
    write_tiff_atomic(tmp_path / "ok.tif", image())
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    (tmp_path / "file").write_text("x")
    args = {
        "missing": [tmp_path / "nope.tif", "-o", tmp_path / "o", "--model", model_file],
        "unreadable": [tmp_path / "bad.tif", "-o", tmp_path / "o", "--model", model_file],
        "axes": [tmp_path / "ok.tif", "-o", tmp_path / "o", "--axes", "ZYX", "--model",
                 model_file],
        "axes_order": [tmp_path / "ok.tif", "-o", tmp_path / "o", "--axes", "YC", "--model",
                       model_file],
        "model": [tmp_path / "ok.tif", "-o", tmp_path / "o", "--model", tmp_path / "x.keras"],
        "not_a_folder": [tmp_path / "ok.tif", "-o", tmp_path / "file", "--model", model_file],
        "voxel_count": [tmp_path / "ok.tif", "-o", tmp_path / "o", "--voxel-size", "1,2"],
        "voxel_zero": [tmp_path / "ok.tif", "-o", tmp_path / "o", "--voxel-size", "0,1,1"],
        "voxel_text": [tmp_path / "ok.tif", "-o", tmp_path / "o", "--voxel-size", "1,a,1"],
        "instances": [tmp_path / "ok.tif", "-o", tmp_path / "o", "--instances", "4d"],
    }[case]
    code, out, err = run(capsys, "segment", *args)
    assert_one_line_error(code, err, text)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_z_stack_gives_3d_instances_unless_told_otherwise(tmp_path, capsys):
    """The shipped model on a crop of the 3D sample: one id per nucleus
    through Z by default, per-plane ids with --instances 2d; the voxel size
    comes from the file or --voxel-size."""
    stack, scale = read_tiff(Path(__file__).resolve().parents[1] / "sample_data"
                             / "nuclei3d.tif")
    write_tiff_atomic(tmp_path / "z.tif", stack[8:20, :96, :96], axes="ZYX", scale=scale)
    code, _, err = run(capsys, "segment", tmp_path / "z.tif", "-o", tmp_path / "3d", "-q")
    assert code == 0, err
    labels3d, out_scale = read_tiff(tmp_path / "3d" / "z_labels.tif")
    assert out_scale == pytest.approx(scale)
    code, _, err = run(capsys, "segment", tmp_path / "z.tif", "-o", tmp_path / "2d", "-q",
                       "--instances", "2d", "--voxel-size", "0.29,0.26,0.26")
    assert code == 0, err
    labels2d, _ = read_tiff(tmp_path / "2d" / "z_labels.tif")
    n3, n2 = int(labels3d.max()), int(labels2d.max())
    assert 3 <= n3 and n2 > 5 * n3  # 12 planes: every nucleus once, not once per plane
    spans = [len({z for z in range(12) if (labels3d[z] == i).any()}) for i in range(1, n3 + 1)]
    assert max(spans) == 12


def test_evaluate_prints_dice_and_f1(tmp_path, capsys):
    gt = np.zeros((40, 40), np.uint16)
    gt[5:15, 5:15], gt[20:30, 20:30] = 1, 2
    pred = gt.copy()
    pred[20:30, 20:30] = 0
    write_tiff_atomic(tmp_path / "gt.tif", gt)
    write_tiff_atomic(tmp_path / "pred.tif", pred)
    code, out, err = run(capsys, "evaluate", tmp_path / "pred.tif", tmp_path / "gt.tif")
    assert code == 0, err
    assert "Dice 0.6667" in out and "F1@0.5 0.6667" in out and "FN 1" in out
    assert "merges 0 splits 0" in out and "mean F1 (IoU 0.5-0.9) 0.6667" in out
    code, _, err = run(capsys, "evaluate", tmp_path / "pred.tif", tmp_path / "none.tif")
    assert_one_line_error(code, err, "file not found")
    # A stack: one object through 3 planes is 3 sections per plane, 1 in 3D.
    write_tiff_atomic(tmp_path / "gt3.tif", np.stack([gt] * 3), axes="ZYX")
    write_tiff_atomic(tmp_path / "pred3.tif", np.stack([pred] * 3), axes="ZYX")
    for flag, tp in (((), "TP 3 "), (("--3d",), "TP 1 ")):
        code, out, err = run(capsys, "evaluate", tmp_path / "pred3.tif", tmp_path / "gt3.tif",
                             *flag)
        assert code == 0 and "F1@0.5 0.6667" in out and tp in out, (out, err)


def test_info_prints_metadata(capsys, model_file):
    import json

    code, out, err = run(capsys, "info", model_file)
    assert code == 0, err
    meta = json.loads(out)
    assert meta["tile_size"] == 128 and meta["outputs"] == ["foreground"]
    assert meta["parameters"] > 0 and meta["file"] == model_file


def test_zarr_in_zarr_out(tmp_path, capsys, model_file):
    import zarr

    img = image(5, (300, 280))
    src = zarr.open_array(str(tmp_path / "big.zarr"), mode="w", shape=img.shape,
                          chunks=(256, 256), dtype=img.dtype)
    src[:] = img
    code, _, err = run(capsys, "segment", tmp_path / "big.zarr", "-o", tmp_path / "out",
                       "--model", model_file, "-q")
    assert code == 0, err
    out = zarr.open_array(str(tmp_path / "out" / "big_labels.zarr"), mode="r")
    assert out.shape == img.shape and out.dtype == np.int32
    # Random weights make objects larger than the halo: only the mask is exact.
    assert np.array_equal(out[:] > 0, segment(img, model_file) > 0)
    assert out.attrs["n_objects"] == out[:].max() > 0
    code, _, err = run(capsys, "segment", tmp_path / "big.zarr", "-o", tmp_path / "out",
                       "--model", model_file)
    assert_one_line_error(code, err, "--overwrite")


def test_train_reports_epochs_and_saves(tmp_path, capsys, model_file):
    for sub in ("images", "masks"):
        (tmp_path / "ds" / sub).mkdir(parents=True)
    for i in range(2):
        labels = np.zeros((64, 64), np.uint16)
        labels[10:30, 10:30], labels[35:55, 30:50] = 1, 2
        write_tiff_atomic(tmp_path / "ds" / "images" / f"{i}.tif",
                          (labels > 0).astype(np.uint16) * 1000 + image(i, (64, 64)) // 10)
        write_tiff_atomic(tmp_path / "ds" / "masks" / f"{i}.tif", labels)
    code, out, err = run(capsys, "train", tmp_path / "ds", "-o", tmp_path / "new.keras",
                         "--from", model_file, "--epochs", "1", "--steps", "2",
                         "--batch-size", "2", "--patch-size", "32")
    assert code == 0, err
    assert "epoch 1/1: loss" in err and "val_score" in err
    assert "saved" in out and (tmp_path / "new.keras").is_file()
    code, _, err = run(capsys, "train", tmp_path / "ds", "-o", tmp_path / "new.keras")
    assert_one_line_error(code, err, "--overwrite")


def _dataset(folder, n=2):
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    for i in range(n):
        labels = np.zeros((64, 64), np.uint16)
        labels[10:30, 10:30], labels[35:55, 30:50] = 1, 2
        write_tiff_atomic(folder / "images" / f"{i}.tif",
                          (labels > 0).astype(np.uint16) * 1000 + image(i, (64, 64)) // 10)
        write_tiff_atomic(folder / "masks" / f"{i}.tif", labels)
    return folder


@pytest.fixture
def train_calls(monkeypatch, tmp_path):
    """Keyword arguments of the train() calls the CLI makes (nothing is trained)."""
    from napari_unet.training import loop

    calls = []

    def fake_train(images, labels, **kwargs):
        calls.append(kwargs)
        return loop.TrainingResult(None, None, path=kwargs["output_path"], best_score=0.5,
                                   best_epoch=1)

    monkeypatch.setattr(loop, "train", fake_train)
    return calls


def test_train_fine_tunes_the_shipped_model_unless_told_otherwise(tmp_path, capsys,
                                                                  train_calls, model_file):
    from napari_unet.model_io import default_model_path

    ds = _dataset(tmp_path / "ds")
    assert run(capsys, "train", ds, "-o", tmp_path / "a.keras")[0] == 0
    assert Path(train_calls[-1]["model"]) == default_model_path()
    assert Path(default_model_path()).is_file()
    assert run(capsys, "train", ds, "-o", tmp_path / "b.keras", "--from", model_file)[0] == 0
    assert str(train_calls[-1]["model"]) == model_file
    assert run(capsys, "train", ds, "-o", tmp_path / "c.keras", "--from", "scratch",
               "--base-filters", "8")[0] == 0
    assert train_calls[-1]["model"] is None and train_calls[-1]["base_filters"] == 8
    code, _, err = run(capsys, "train", ds, "-o", tmp_path / "d.keras", "--from",
                       tmp_path / "nope.keras")
    assert_one_line_error(code, err, "model file not found")
    # Unset flags are left to train() (its defaults, or the preset's values).
    assert "epochs" not in train_calls[-1] and train_calls[-1]["preset"] is None
    assert train_calls[-1]["counted"] == [None, None]  # whole images count
    assert len(train_calls) == 3
    # A sparse pair's counted mask reaches train().
    (ds / "counted").mkdir()
    write_tiff_atomic(ds / "counted" / "1.tif", np.eye(64, dtype=np.uint8))
    assert run(capsys, "train", ds, "-o", tmp_path / "e.keras")[0] == 0
    first, second = train_calls[-1]["counted"]
    assert first is None and np.array_equal(second, np.eye(64, dtype=bool))


def test_train_quick_preset_with_overrides(tmp_path, capsys, model_file):
    from napari_unet import load_model
    from napari_unet.settings import TRAINING_PRESETS

    code, out, err = run(capsys, "train", _dataset(tmp_path / "ds"), "-o",
                         tmp_path / "q.keras", "--from", model_file, "--preset", "quick",
                         "--epochs", "1", "--steps", "2", "--batch-size", "2",
                         "--patch-size", "32")
    assert code == 0, err
    assert "(preset quick)" in err
    info = load_model(tmp_path / "q.keras", with_info=True)[1]
    quick = TRAINING_PRESETS["quick"]
    assert info.training["preset"] == "quick"
    assert info.training["time_limit"] == quick["time_limit"]  # from the preset
    assert info.training["learning_rate"] == quick["learning_rate"]
    assert (info.training["max_epochs"], info.training["steps_per_epoch"]) == (1, 2)  # flags
    code, _, err = run(capsys, "train", tmp_path / "ds", "-o", tmp_path / "r.keras",
                       "--preset", "slow")
    assert code != 0 and "invalid choice" in err


def test_console_script_runs_and_fails_cleanly(tmp_path, model_file):
    exe = Path(sys.executable).parent / "napari-unet"
    exe = str(exe) if exe.exists() else shutil.which("napari-unet")
    if exe is None:
        pytest.skip("the napari-unet console script is not installed")
    write_tiff_atomic(tmp_path / "img.tif", image(), scale=(0.5, 0.5))
    done = subprocess.run([exe, "segment", str(tmp_path / "img.tif"), "-o",
                           str(tmp_path / "out"), "--model", model_file],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert read_tiff(tmp_path / "out" / "img_labels.tif")[1] == (0.5, 0.5)
    done = subprocess.run([exe, "segment", str(tmp_path / "nope.tif"), "-o",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"napari-unet segment: error: input not found: {tmp_path / 'nope.tif'}"]


def _zarr_image(path, img, chunks=(256, 256)):
    import zarr

    src = zarr.open_array(str(path), mode="w", shape=img.shape, chunks=chunks, dtype=img.dtype)
    src[:] = img
    return path


def test_single_zarr_input_with_zarr_output_names_the_array(tmp_path, capsys, model_file):
    import zarr

    _zarr_image(tmp_path / "in.zarr", image(3, (200, 180)))
    code, _, err = run(capsys, "segment", tmp_path / "in.zarr", "-o", tmp_path / "out.zarr",
                       "--model", model_file, "-q")
    assert code == 0, err
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")  # the array itself...
    assert out.shape == (200, 180) and not (tmp_path / "out.zarr" / "in_labels.zarr").exists()
    code, _, err = run(capsys, "segment", tmp_path / "in.zarr", "-o", tmp_path / "out.zarr",
                       "--model", model_file)
    assert_one_line_error(code, err, "--overwrite")
    # Several inputs still need a folder, and a zarr array is not one.
    _zarr_image(tmp_path / "in2.zarr", image(4, (64, 64)))
    code, _, err = run(capsys, "segment", tmp_path / "in.zarr", tmp_path / "in2.zarr", "-o",
                       tmp_path / "out.zarr", "--model", model_file)
    assert_one_line_error(code, err, "give a folder for several inputs")


def test_scheduler_without_distributed_names_the_extra(tmp_path, capsys, model_file,
                                                       monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    _zarr_image(tmp_path / "in.zarr", image(3, (64, 64)))
    code, _, err = run(capsys, "segment", tmp_path / "in.zarr", "-o", tmp_path / "out",
                       "--model", model_file, "--scheduler", "tcp://127.0.0.1:8786")
    assert_one_line_error(code, err, "[distributed]")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_real_dask_scheduler_and_worker_processes(tmp_path, capsys, model_file):
    """The cluster path end to end: `dask scheduler` and `dask worker` as separate processes."""
    import socket
    import time

    import zarr

    dask_cli = Path(sys.executable).parent / "dask"
    if not dask_cli.exists():
        pytest.skip("the dask command-line tool is not installed")
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    procs = [subprocess.Popen([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen([str(dask_cli), "worker", address, "--nworkers", "1",
                                       "--nthreads", "1", "--no-dashboard"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="60s") as client:  # waits for the scheduler
            client.wait_for_workers(1, timeout=120)
        img = image(6, (300, 260))
        _zarr_image(tmp_path / "in.zarr", img, chunks=(160, 160))
        code, _, err = run(capsys, "segment", tmp_path / "in.zarr", "-o",
                           tmp_path / "out.zarr", "--model", model_file, "--scheduler",
                           address, "-q")
        assert code == 0, err
        out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[:]
        assert np.array_equal(out > 0, segment(img, model_file) > 0)
    finally:
        for p in reversed(procs):
            p.terminate()
        deadline = time.monotonic() + 30
        for p in procs:
            try:
                p.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


def test_cache_list_and_clean(tmp_path, capsys, monkeypatch):
    import zarr

    monkeypatch.setenv("NAPARI_UNET_RESULTS_DIR", str(tmp_path / "results"))
    for name in ("old-labels.zarr", "new-labels.zarr"):
        zarr.open_array(str(tmp_path / "results" / name), mode="w", shape=(64, 64),
                        chunks=(32, 32), dtype=np.int32)[:] = 1
    old = time.time() - 10 * 86400
    for p in (tmp_path / "results" / "old-labels.zarr").rglob("*"):
        os.utime(p, (old, old))
    os.utime(tmp_path / "results" / "old-labels.zarr", (old, old))
    code, out, _ = run(capsys, "cache", "list")
    assert code == 0 and "old-labels.zarr" in out and "new-labels.zarr" in out
    assert out.strip().splitlines()[-1].startswith("2 stores")
    code, out, _ = run(capsys, "cache", "clean", "--older-than", "7", "--dry-run")
    assert code == 0 and "would remove" in out
    assert (tmp_path / "results" / "old-labels.zarr").exists()
    code, out, _ = run(capsys, "cache", "clean", "--older-than", "7")
    assert code == 0 and "removed 1 stores" in out
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["new-labels.zarr"]


def test_precision_option_reaches_the_network(tmp_path, capsys, model_file, monkeypatch):
    from napari_unet import engine

    seen = []
    real = engine.run_model

    def spy(model, batch, precision="float32"):
        seen.append(precision)
        return real(model, batch, precision)

    monkeypatch.setattr(engine, "run_model", spy)
    write_tiff_atomic(tmp_path / "a.tif", image())
    code, _, err = run(capsys, "segment", tmp_path / "a.tif", "-o", tmp_path / "o",
                       "--model", model_file, "--precision", "float32", "-q")
    assert code == 0, err
    assert set(seen) == {"float32"}
    seen.clear()
    monkeypatch.setenv("NAPARI_UNET_PRECISION", "bfloat16")  # replaces 'auto' only
    assert run(capsys, "segment", tmp_path / "a.tif", "-o", tmp_path / "p",
               "--model", model_file, "-q")[0] == 0
    assert set(seen) == {"bfloat16"}
    code, _, err = run(capsys, "segment", tmp_path / "a.tif", "-o", tmp_path / "q",
                       "--model", model_file, "--precision", "int8")
    assert code != 0 and "--precision" in err
