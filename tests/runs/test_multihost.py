"""Training over two real processes on localhost (jax.distributed, CPU collectives, one CPU device
each), as a cluster runs it: the losses and weights equal one process's on the same global
batches, SIGTERM to one process stops both at the same step with a checkpoint and a clean exit,
and a 2-process --resume continues to exactly where an uninterrupted run gets."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from robolearn.data.synthetic import write_random_store

pytestmark = pytest.mark.slow

STEPS = 30  # long enough that the SIGTERM, sent after step 3, lands mid-run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _argv(kind: str, data, out, steps: int) -> list[str]:
    argv = [sys.executable, "-m", "robolearn.cli", "train", kind, "--data", str(data)]
    argv += ["--preset", "tiny", "--steps", str(steps), "--batch-size", "4", "--quiet"]
    return argv + ["--save-every", "1000", "--log-every", "1", "--out", str(out)]


def _start(argv: list[str], processes: int) -> list[subprocess.Popen]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    flags = env.get("XLA_FLAGS", "").split()  # one device per process
    env["XLA_FLAGS"] = " ".join(f for f in flags if "host_platform_device_count" not in f)
    if processes > 1:
        argv = [*argv, "--distributed", "--coordinator", f"localhost:{_free_port()}"]
        argv += ["--num-processes", str(processes)]
    return [
        subprocess.Popen(
            argv + (["--process-id", str(i)] if processes > 1 else []),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(processes)
    ]


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    return logs


def _rows(out) -> list[dict]:
    """The training rows (not the eval/ and validation/ rows logged beside them)."""
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss" in r]
    return [{k: v for k, v in r.items() if k not in ("time", "steps_per_second")} for r in rows]


def _weights(kind: str, out):
    if kind == "world-model":
        from robolearn.world_models.checkpoint import load_world_model

        return load_world_model(out).params
    from robolearn.policies.bc.checkpoint import read_checkpoint, restore_actor

    return restore_actor(out, read_checkpoint(out)[1])[1]


@pytest.mark.parametrize("kind", ["world-model", "bc"])
def test_two_processes_train_like_one_survive_sigterm_and_resume(tmp_path, kind):
    data = write_random_store(tmp_path / "data", 4, 8, image_size=16, task="drawer")
    one, two = tmp_path / "one", tmp_path / "two"
    single = _start(_argv(kind, data, one, STEPS), 1)
    pair = _start(_argv(kind, data, two, STEPS), 2)
    metrics = two / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and '"step": 3,' in metrics.read_text()):
        assert time.monotonic() < deadline and pair[1].poll() is None, "no step 3 logged"
        time.sleep(0.2)
    pair[1].send_signal(signal.SIGTERM)  # as a scheduler preempting one host
    logs = _finish(pair)
    stopped = [line for line in logs[0].splitlines() if line.startswith("stopped by SIGTERM")]
    assert stopped and stopped[0] in logs[1], logs[0][-2000:]  # both stop at the same step
    step = int(stopped[0].split()[5].rstrip(","))
    assert 3 <= step < STEPS
    assert (two / "checkpoints" / str(step)).is_dir()
    states = sorted(p.name for p in (two / "data_state" / str(step)).iterdir())
    assert states == ["process-0-of-2.json", "process-1-of-2.json"]

    logs = _finish(_start([*_argv(kind, data, two, STEPS), "--resume"], 2))
    assert "on 2 device(s)" in logs[0] and f"({STEPS - step} this run" in logs[0]
    _finish(single)
    # the same global batches, in the same row order: the same losses, step by step ...
    expected, got = _rows(one), _rows(two)
    assert [r["step"] for r in got] == [r["step"] for r in expected] == list(range(1, STEPS + 1))
    for a, b in zip(expected, got, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            assert b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-5), (a["step"], name)
    # ... and the same weights at the end
    for a, b in zip(
        jax.tree.leaves(_weights(kind, one)), jax.tree.leaves(_weights(kind, two)), strict=True
    ):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-3, atol=1e-5)


def test_reward_classifier_trains_on_two_processes_like_on_one(tmp_path):
    """Balanced batches split over two processes: the same curve and the same calibrated
    classifier as one process (process 0 writes it; process 1 only trains)."""
    data = write_random_store(tmp_path / "data", 8, 12, image_size=16, successes=True)
    one, two = tmp_path / "one", tmp_path / "two"
    argv = [sys.executable, "-m", "robolearn.cli", "train", "reward", "--data", str(data)]
    argv += ["--preset", "tiny", "--steps", "12", "--batch-size", "8", "--log-every", "1"]
    argv += ["--quiet", "val_fraction=0.4"]
    single = _start([*argv, "--out", str(one)], 1)
    logs = _finish(_start([*argv, "--out", str(two)], 2))
    _finish(single)
    assert "process 0" in logs[1] and "checkpoint:" in logs[0]
    expected, got = _rows(one), _rows(two)
    assert [r["step"] for r in got] == list(range(1, 13))
    for a, b in zip(expected, got, strict=True):
        for name in a:
            assert b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-5), (a["step"], name)
    calibration = [json.loads((d / "metrics.json").read_text())["calibration"] for d in (one, two)]
    assert calibration[1] == pytest.approx(calibration[0], rel=1e-3, abs=1e-4)
