"""Bad input and faults: one clear line, a non-zero exit, nothing partial, nothing lost.

The same matrix runs through the command line (in-process, and in a child
process for signals) and the Python API.
"""

import errno
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import napari_unet as nu
from napari_unet import tiff as ntiff
from napari_unet.cli import main
from napari_unet.tiff import write_tiff_atomic


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, tiny_model):
    return nu.save_model(tiny_model, tmp_path_factory.mktemp("model") / "tiny.keras")


def image(shape=(96, 80), seed=0):
    return np.random.default_rng(seed).integers(0, 4000, shape).astype(np.uint16)


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def listing(folder):
    """Every entry of a folder, hidden ones included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def assert_one_line(code, err, text):
    assert code not in (0, None), err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], err
    assert "Traceback" not in err


# --------------------------------------------------------------------------
# Input files
# --------------------------------------------------------------------------
def _tiff_bytes(tmp_path, data):
    path = tmp_path / "source.tif"
    write_tiff_atomic(path, data)
    raw = path.read_bytes()
    path.unlink()
    return raw


@pytest.mark.parametrize("case,text", [
    ("empty", "cannot read image"),
    ("truncated", "cannot read image"),
    ("garbage", "cannot read image"),
    ("complex", "Complex images"),
    ("all_nan", "no finite values"),
    ("one_pixel", "too small to segment"),
    ("one_row", "too small to segment"),
    ("six_d", "cannot guess the axes"),
])
def test_bad_image_files(tmp_path, capsys, model_file, case, text):
    path = tmp_path / "in.tif"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        path.write_bytes(_tiff_bytes(tmp_path, image((300, 300)))[:2000])
    elif case == "garbage":
        path.write_bytes(np.random.default_rng(1).bytes(5000))
    else:
        data = {
            "complex": np.zeros((16, 16), np.complex64),
            "all_nan": np.full((16, 16), np.nan, np.float32),
            "one_pixel": np.ones((1, 1), np.uint16),
            "one_row": np.ones((1, 64), np.uint16),
            "six_d": np.ones((2, 1, 1, 2, 8, 8), np.uint16),
        }[case]
        import tifffile

        tifffile.imwrite(path, data)  # plain TIFF: no axes of our own
    code, _, err = cli(capsys, "segment", path, "-o", tmp_path / "out", "--model", model_file)
    assert_one_line(code, err, text)
    assert listing(tmp_path / "out") == []  # nothing partial


@pytest.mark.parametrize("case,text", [
    ("lambda", "Cannot load model"),
    ("truncated", "Not a Keras model file"),
    ("not_zip", "Not a Keras model file"),
    ("wrong_meta", "channels"),
])
def test_bad_model_files(tmp_path, capsys, model_file, case, text):
    bad = tmp_path / "bad.keras"
    if case == "lambda":
        import keras

        inp = keras.Input((None, None, 1))
        out = keras.layers.Lambda(lambda x: x * 0 + 1)(inp)  # arbitrary code in a file
        keras.Model(inp, out).save(bad)
    elif case == "truncated":
        bad.write_bytes(model_file.read_bytes()[:4000])
    elif case == "not_zip":
        bad.write_bytes(b"import os; os.system('echo pwned')\n")
    else:  # metadata that lies about the network
        with zipfile.ZipFile(model_file) as src, zipfile.ZipFile(bad, "w") as dst:
            for item in src.infolist():
                data = src.read(item.filename)
                if item.filename == "napari_unet.json":
                    data = b'{"in_channels": 3, "out_channels": 1}'
                dst.writestr(item, data)
    write_tiff_atomic(tmp_path / "in.tif", image())
    code, _, err = cli(capsys, "segment", tmp_path / "in.tif", "-o", tmp_path / "out",
                       "--model", bad)
    assert_one_line(code, err, text)
    assert listing(tmp_path / "out") == []
    with pytest.raises(nu.ModelFileError):
        nu.load_model(bad)


@pytest.mark.parametrize("argv,text", [
    (["--threshold", "-3"], "--threshold: must be between 0 and 1"),
    (["--threshold", "nan"], "--threshold: expected a finite number"),
    (["--min-size", "-1"], "--min-size: must be >= 0"),
    (["--tile-size", "0"], "--tile-size: must be a positive integer"),
    (["--tile-size", "102"], "multiple of"),
    (["--overlap", "-16"], "--overlap: must be >= 0"),
    (["--overlap", "256"], "overlap"),
    (["--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["--channel", "x"], "--channel: expected an index"),
    (["--channel", "-1"], "--channel: channel indices must be >= 0"),
    (["--axes", "QYX"], "--axes: use letters from T, Z, C, Y, X"),
    (["--axes", "ZYX"], "has 3 letters"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler applies to zarr inputs"),
])
def test_segment_options_are_range_checked(tmp_path, capsys, model_file, argv, text):
    write_tiff_atomic(tmp_path / "in.tif", image())
    code, _, err = cli(capsys, "segment", tmp_path / "in.tif", "-o", tmp_path / "out",
                       "--model", model_file, *argv)
    assert_one_line(code, err, text)
    assert listing(tmp_path / "out") == []


@pytest.mark.parametrize("argv,text", [
    (["--epochs", "0"], "--epochs: must be a positive integer"),
    (["--steps", "-5"], "--steps: must be a positive integer"),
    (["--learning-rate", "0"], "--learning-rate: must be > 0"),
    (["--val-fraction", "1.5"], "--val-fraction: must be in [0, 1)"),
    (["--time-limit", "-1"], "--time-limit: must be > 0"),
    (["--patch-size", "abc"], "--patch-size: expected an integer"),
    (["--from", "missing.keras"], "--from: model file not found"),
])
def test_train_options_are_range_checked(tmp_path, capsys, argv, text):
    (tmp_path / "ds" / "images").mkdir(parents=True)
    code, _, err = cli(capsys, "train", tmp_path / "ds", "-o", tmp_path / "m.keras", *argv)
    assert_one_line(code, err, text)
    assert not (tmp_path / "m.keras").exists()


def test_other_commands_check_their_options(tmp_path, capsys):
    code, _, err = cli(capsys, "evaluate", tmp_path / "a.tif", tmp_path / "b.tif", "--iou", "2")
    assert_one_line(code, err, "--iou: must be in (0, 1]")
    code, _, err = cli(capsys, "cache", "clean", "--older-than", "-2")
    assert_one_line(code, err, "--older-than: must be >= 0")
    code, _, err = cli(capsys, "nonsense")
    assert_one_line(code, err, "invalid choice")


# --------------------------------------------------------------------------
# Output locations and disk faults
# --------------------------------------------------------------------------
def test_output_path_that_is_a_file(tmp_path, capsys, model_file):
    write_tiff_atomic(tmp_path / "in.tif", image())
    (tmp_path / "out").write_text("a file")
    code, _, err = cli(capsys, "segment", tmp_path / "in.tif", "-o", tmp_path / "out",
                       "--model", model_file)
    assert_one_line(code, err, "--output must be a folder")
    assert (tmp_path / "out").read_text() == "a file"


def test_read_only_output_folder(tmp_path, capsys, model_file, monkeypatch):
    write_tiff_atomic(tmp_path / "in.tif", image())
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root ignores permissions: refuse creation as a read-only FS would
        real_open = os.open

        def read_only(path, flags, *args, **kwargs):
            if str(path).startswith(str(out)) and flags & (os.O_WRONLY | os.O_RDWR):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", read_only)
    try:
        code, _, err = cli(capsys, "segment", tmp_path / "in.tif", "-o", out,
                           "--model", model_file)
    finally:
        out.chmod(0o755)
    assert_one_line(code, err, "Permission denied")
    assert listing(out) == []


def test_full_disk_keeps_the_existing_output(tmp_path, capsys, model_file, monkeypatch):
    write_tiff_atomic(tmp_path / "in.tif", image())
    out = tmp_path / "out"
    code, _, _ = cli(capsys, "segment", tmp_path / "in.tif", "-o", out, "--model", model_file)
    assert code == 0
    before = (out / "in_labels.tif").read_bytes()
    real_write = ntiff._write

    def disk_full(fh, *args):
        fh.write(b"\0" * 1000)  # part of the file reached the disk...
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ntiff, "_write", disk_full)
    code, _, err = cli(capsys, "segment", tmp_path / "in.tif", "-o", out, "--model",
                       model_file, "--overwrite")
    assert_one_line(code, err, "No space left on device")
    assert (out / "in_labels.tif").read_bytes() == before
    assert listing(out) == ["in_labels.tif"]
    monkeypatch.setattr(ntiff, "_write", real_write)


# --------------------------------------------------------------------------
# Signals: a child process interrupted or killed at a chosen moment
# --------------------------------------------------------------------------
_CHILD = textwrap.dedent("""
    import os, signal, sys
    from napari_unet import engine, tiff
    from napari_unet.cli import main

    where, sig = sys.argv[1], getattr(signal, sys.argv[2])
    if where == "network":  # interrupted while the U-Net runs
        real = engine.run_model
        def run_model(*args, **kwargs):
            os.kill(os.getpid(), sig)
            return real(*args, **kwargs)
        engine.run_model = run_model
    else:  # killed half-way through writing the labels
        real = tiff._write
        def _write(fh, *args):
            fh.write(b"II*\\0" + b"\\0" * 4096)
            fh.flush()
            os.kill(os.getpid(), sig)
            return real(fh, *args)
        tiff._write = _write
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.parametrize("where,sig", [("network", "SIGINT"), ("write", "SIGINT"),
                                       ("network", "SIGKILL"), ("write", "SIGKILL")])
def test_interrupted_or_killed_runs_leave_no_partial_output(tmp_path, model_file, where, sig):
    write_tiff_atomic(tmp_path / "a.tif", image(seed=1))
    write_tiff_atomic(tmp_path / "b.tif", image(seed=2))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_labels.tif").write_bytes(b"the user's earlier result")  # being overwritten
    argv = ["segment", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o", str(out),
            "--model", str(model_file), "--overwrite", "-q"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _CHILD, where, sig, *argv],
                          capture_output=True, text=True, timeout=300, env=env)
    if sig == "SIGINT":
        assert done.returncode == 130, done.stderr
        assert done.stderr.strip().splitlines()[-1] == "napari-unet segment: interrupted"
        assert "Traceback" not in done.stderr
    else:
        assert done.returncode == -signal.SIGKILL
    assert (out / "a_labels.tif").read_bytes() == b"the user's earlier result"
    assert listing(out) == ["a_labels.tif"]  # no b_labels, no temporary file


# --------------------------------------------------------------------------
# The Python API: the same inputs raise one clear exception
# --------------------------------------------------------------------------
@pytest.mark.parametrize("data,kwargs,exc,text", [
    (np.zeros((0, 10)), {}, ValueError, "empty"),
    (np.zeros((8, 8), np.complex64), {}, ValueError, "Complex"),
    (np.full((8, 8), np.nan), {}, ValueError, "no finite values"),
    (np.ones((1, 1)), {}, ValueError, "too small"),
    (np.ones((1, 40)), {}, ValueError, "too small"),
    (np.ones((2, 1, 1, 2, 8, 8)), {}, ValueError, "cannot guess the axes"),
    (np.ones((8, 8)), {"axes": "ZYX"}, ValueError, "has 3 letters"),
    (np.ones((8, 8)), {"threshold": -3}, ValueError, "threshold must be between 0 and 1"),
    (np.ones((8, 8)), {"min_size": -1}, ValueError, "min_size"),
    (np.ones((8, 8)), {"tile_size": 0}, ValueError, "tile_size"),
    (np.ones((8, 8)), {"mode": "panoptic"}, ValueError, "mode must be"),
    (np.ones((8, 8)), {"frobnicate": 1}, TypeError, "unexpected keyword argument"),
])
def test_python_api_bad_input(tiny_model, data, kwargs, exc, text):
    with pytest.raises(exc, match=text):
        nu.segment(data, tiny_model, **kwargs)


def test_api_writers_never_clobber_and_report_bad_destinations(tmp_path, tiny_model):
    target = tmp_path / "m.keras"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        nu.save_model(tiny_model, target)
    assert target.read_bytes() == b"precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        write_tiff_atomic(tmp_path / "file" / "x.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(FileExistsError):
        nu.segment_zarr(np.zeros((32, 32), np.uint16), tmp_path / "file", tiny_model)
    assert listing(tmp_path) == ["file", "m.keras"]
