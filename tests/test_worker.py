"""The worker process behind the docks, without napari: protocol, shared memory, faults.

Runs in the core session. Workers are steered through files (worker_hooks);
jobs that must not import TensorFlow (re-labelling) keep the fault tests
fast.
"""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import worker_hooks

from napari_unet import ModelFileError, predict_probabilities, probabilities_to_labels, save_model
from napari_unet.worker import WorkerClient, WorkerDied
from napari_unet.worker import shm as shared
from napari_unet.worker.protocol import RelabelRequest, SegmentRequest, StoreRequest, WarmUp

TIMEOUT = 300  # s; a fresh worker imports TensorFlow on a busy machine
PARAMS = {"mode": "instance", "threshold": 0.5, "min_size": 4}


def left_in_shm(client) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(client.shm_prefix)]


def finish(job):
    assert job.done.wait(TIMEOUT), f"{job} did not finish"
    return job.outcome


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, tiny_model):
    return save_model(tiny_model, tmp_path_factory.mktemp("worker-model") / "tiny.keras")


@pytest.fixture(scope="module")
def control_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-control")


@pytest.fixture(scope="module")
def client(control_dir):
    """A worker with a long cancel grace: cancels are acknowledged, never forced."""
    worker = WorkerClient("test worker", cancel_grace=120, initializer=worker_hooks.control,
                          initargs=(str(control_dir),))
    yield worker
    worker.close()


@pytest.fixture
def hold(control_dir):
    def set_hold(what):
        if what is None:
            (control_dir / "hold").unlink(missing_ok=True)
        else:
            (control_dir / "held").unlink(missing_ok=True)  # left by a killed worker
            (control_dir / "hold").write_text(what)

    set_hold(None)
    yield set_hold
    set_hold(None)


def wait_held(control_dir):
    import time

    start = time.monotonic()
    while not (control_dir / "held").exists():
        assert time.monotonic() - start < TIMEOUT, "the worker never reached the hold"
        time.sleep(0.01)


def probs_patch(seed=0, shape=(2, 300, 300)):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape).astype(np.float32), (0, 3, 3))


def test_segment_in_the_worker_matches_the_core_in_process(client, model_path, tiny_model):
    image = np.random.default_rng(0).random((3, 200, 232)).astype(np.float32)
    progress = []
    request = SegmentRequest(str(model_path), shared.Slice(image, (slice(None),) * 3), None,
                             None, (Ellipsis,), 64, 16, 4, PARAMS)
    outcome = finish(client.submit(request, on_progress=lambda d, t: progress.append((d, t))))
    assert outcome.ok, outcome.error
    result = outcome.value
    expected = predict_probabilities(image, tiny_model, tile_size=64, overlap=16, batch_size=4)
    np.testing.assert_allclose(result.probs, expected, atol=1e-5)
    np.testing.assert_array_equal(result.labels, probabilities_to_labels(
        result.probs, threshold=0.5, min_size=4))
    assert result.labels.dtype == np.uint16 and result.stats["n_objects"] == result.labels.max()
    assert progress[-1][0] == progress[-1][1] > 0
    # Images and results went through shared memory, and none of it is left.
    assert {"send", "attach", "export", "receive", "worker"} <= set(outcome.timings)
    assert left_in_shm(client) == []
    assert client.pid not in (None, os.getpid())


def test_relabel_and_errors_come_back_typed(client, tmp_path):
    patches = [(probs_patch(0), None), (probs_patch(1, (2, 40, 30)), None)]
    outcome = finish(client.submit(RelabelRequest(patches, PARAMS)))
    assert outcome.ok
    for (probs, _), labels in zip(patches, outcome.value, strict=True):
        np.testing.assert_array_equal(labels, probabilities_to_labels(probs, **PARAMS))

    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"garbage")
    outcome = finish(client.submit(WarmUp(str(bad))))
    assert isinstance(outcome.error, ModelFileError) and "Not a Keras model" in str(outcome.error)
    assert "Traceback" in outcome.error.remote_traceback

    # Data that cannot be pickled is refused with a sentence, before anything is sent.
    unpicklable = StoreRequest("m.keras", lambda: None, str(tmp_path / "out.zarr"), None, None,
                               64, 16, 4, PARAMS)
    outcome = finish(client.submit(unpicklable))
    assert isinstance(outcome.error, ValueError) and "cannot be sent" in str(outcome.error)
    assert finish(client.submit(RelabelRequest(patches[:1], PARAMS))).ok  # Still serving.
    assert left_in_shm(client) == []


def test_cancel_is_acknowledged_and_the_worker_stays(client, control_dir, hold):
    finish(client.submit(RelabelRequest([(probs_patch(), None)], PARAMS)))  # Started.
    pid = client.pid
    hold("labels")
    job = client.submit(RelabelRequest([(probs_patch(2), None)] * 3, PARAMS))
    wait_held(control_dir)
    client.cancel(job)
    hold(None)
    outcome = finish(job)
    # Cancelled between patches by the worker itself: not terminated.
    assert outcome.cancelled and not outcome.killed and outcome.value is None
    assert client.pid == pid and left_in_shm(client) == []
    # A job queued behind a cancelled one is not affected by the cancel.
    hold("labels")
    first = client.submit(RelabelRequest([(probs_patch(3), None)] * 2, PARAMS))
    second = client.submit(RelabelRequest([(probs_patch(4), None)], PARAMS))
    wait_held(control_dir)
    client.cancel(first)
    hold(None)
    assert finish(first).cancelled and finish(second).ok and client.pid == pid


def test_unanswered_cancel_terminates_the_worker(control_dir, hold):
    client = WorkerClient("test worker (short grace)", cancel_grace=0.5,
                          initializer=worker_hooks.control, initargs=(str(control_dir),))
    try:
        hold("labels")  # Never released while the job runs: the worker cannot answer.
        job = client.submit(RelabelRequest([(probs_patch(), None)], PARAMS))
        wait_held(control_dir)
        pid = client.pid
        client.cancel(job)
        outcome = finish(job)
        assert outcome.cancelled and outcome.killed
        assert client.pid is None and left_in_shm(client) == []
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        hold(None)
        # The next job starts a fresh worker by itself.
        assert finish(client.submit(RelabelRequest([(probs_patch(), None)], PARAMS))).ok
        assert client.processes_started == 2 and client.pid not in (None, pid)
    finally:
        client.close()


def test_killed_worker_is_reported_and_replaced(control_dir, hold):
    client = WorkerClient("test worker (killed)", initializer=worker_hooks.control,
                          initargs=(str(control_dir),))
    try:
        hold("labels")
        job = client.submit(RelabelRequest([(probs_patch(), None)], PARAMS))
        wait_held(control_dir)
        os.kill(client.pid, signal.SIGKILL)
        outcome = finish(job)
        assert isinstance(outcome.error, WorkerDied) and outcome.error.exitcode == -9
        assert "killed by SIGKILL" in str(outcome.error)
        assert left_in_shm(client) == []  # The job's input segment was removed too.
        hold(None)
        assert finish(client.submit(RelabelRequest([(probs_patch(), None)], PARAMS))).ok
        assert client.processes_started == 2
    finally:
        client.close()
    assert client.pid is None


def test_worker_ends_with_the_process_that_started_it(tmp_path):
    code = textwrap.dedent("""
        import os, sys
        from napari_unet.worker import WorkerClient
        from napari_unet.worker.protocol import RelabelRequest
        import numpy as np

        client = WorkerClient()
        job = client.submit(RelabelRequest([], {"mode": "semantic", "threshold": 0.5,
                                                "min_size": 0}))
        job.done.wait(120)
        print(client.pid, flush=True)
        os._exit(0)  # No clean-up at all, as if napari crashed.
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    pid = int(out.split()[-1])
    import time

    start = time.monotonic()
    while _alive(pid):
        assert time.monotonic() - start < 60, "the worker outlived napari's process"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_shared_memory_round_trip_and_clean_up():
    big = np.arange(100_000, dtype=np.int32).reshape(100, 1000)
    small = np.ones(3)
    segments = shared.Segments()
    message = shared.export({"a": [big, small], "b": ("text", shared.Slice(big, np.s_[:20]))},
                            segments, "nutest_x_")
    ref = message["a"][0]
    assert isinstance(ref, shared.SharedArray) and message["a"][1] is small
    assert isinstance(message["b"][1], shared.SharedArray)  # a Slice is read, then shared
    viewer = shared.Segments()
    views = shared.attach(message, viewer)
    np.testing.assert_array_equal(views["a"][0], big)
    del views
    viewer.close()
    segments.close()
    back = shared.fetch(message)  # copies out and unlinks
    np.testing.assert_array_equal(back["b"][1], big[:20])
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("nutest_x_")]
    segments.unlink()  # already gone: harmless


def test_a_script_without_a_main_guard_is_not_run_again_in_the_worker(tmp_path):
    # napari scripts rarely guard their body with `if __name__ == "__main__"`;
    # the spawned worker must not execute it a second time.
    script = tmp_path / "unguarded.py"
    marks = tmp_path / "marks"
    script.write_text(textwrap.dedent(f"""
        import os
        with open({str(marks)!r}, "a") as f:
            f.write(str(os.getpid()) + "\\n")
        from napari_unet.worker import WorkerClient
        from napari_unet.worker.protocol import RelabelRequest

        client = WorkerClient()
        job = client.submit(RelabelRequest([], {{"mode": "semantic", "threshold": 0.5,
                                                 "min_size": 0}}))
        job.done.wait(120)
        print("ok" if job.outcome.ok else repr(job.outcome.error))
        client.close()
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
    assert len(marks.read_text().split()) == 1


def test_a_full_shared_memory_is_a_clear_error(monkeypatch):
    """Pages are allocated before the copy: no space is a MemoryError with a
    message (a copy into a segment tmpfs cannot back is a SIGBUS), and the
    segment is removed."""
    import errno

    if not hasattr(os, "posix_fallocate") or not os.path.isdir("/dev/shm"):
        pytest.skip("POSIX shared memory in /dev/shm only")

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    segments = shared.Segments()
    with pytest.raises(MemoryError, match="not enough shared memory"):
        segments.create("/napari_unet_test_full", np.ones(1 << 16, np.float32))
    assert segments.created == []
    assert not os.path.exists("/dev/shm/napari_unet_test_full")
