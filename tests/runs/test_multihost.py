"""Training over two real processes on localhost (jax.distributed, CPU collectives): each process
one CPU device, the state replicated over both (robolearn.core.mesh.replicate: global arrays built
from each process's own copy), each reading its own shard of the batches."""

import json
import os
import socket
import subprocess
import sys

import pytest

from robolearn.data.synthetic import write_random_store

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_world_model_trains_on_two_processes(tmp_path):
    data = write_random_store(tmp_path / "data", 4, 8, image_size=16, task="drawer")
    port, out = _free_port(), tmp_path / "run"
    argv = [sys.executable, "-m", "robolearn.cli", "train", "world-model", "--data", str(data)]
    argv += ["--preset", "tiny", "--steps", "4", "--batch-size", "4", "--save-every", "2"]
    argv += ["--log-every", "1", "--quiet", "--out", str(out), "--distributed"]
    argv += ["--coordinator", f"localhost:{port}", "--num-processes", "2"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # one device per process
    procs = [
        subprocess.Popen(
            [*argv, "--process-id", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    finals = [[x for x in log.splitlines() if x.startswith("world model: step 4")] for log in logs]
    assert finals[0] and finals[0] == finals[1]  # the same losses on both processes
    assert "on 2 device(s)" in finals[0][0]
    assert (out / "checkpoints" / "4").is_dir() and (out / "data_state" / "4").is_dir()
    states = sorted(p.name for p in (out / "data_state" / "4").iterdir())
    assert states == ["process-0-of-2.json", "process-1-of-2.json"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
