"""Training metrics, written one way by every trainer: `metrics.jsonl` and TensorBoard event files.

    writer = MetricsWriter(out, resume_step=int(state.step))
    writer.write(step, {"loss": 0.12, "steps_per_second": 3.1})
    writer.close()

`OUT/metrics.jsonl` holds one JSON object per logged step, `{"step": n, <name>: value, ...}`;
`OUT/tensorboard/` holds TensorBoard event files (tensorboardX: no TensorFlow needed) with the same
scalars, so `tensorboard --logdir runs/` shows every run. A run resumed from the checkpoint at
step S drops what a killed predecessor logged after S (the rows are rewritten, and TensorBoard is
told to purge those steps), so each step appears once in both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class MetricsWriter:
    """Appends metrics rows to OUT/metrics.jsonl and scalars to OUT/tensorboard/.

    enabled=False writes nothing (every process but the first of a multi-host run).
    resume_step: the step a resumed run continues from (None: a fresh run, whose directory holds
        no metrics yet); logged rows after it are discarded.
    """

    def __init__(
        self,
        out: str | Path,
        resume_step: int | None = None,
        enabled: bool = True,
        tensorboard: bool = True,
    ):
        self.out = Path(out)
        self.enabled = enabled
        self._log = None
        self._tb = None
        if not enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / METRICS_FILE
        if resume_step is not None:
            _truncate_after(path, resume_step)
        self._log = open(path, "a")  # noqa: SIM115 - closed in close()
        if tensorboard:
            from tensorboardX import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            # tensorboardX names event files by the second they are opened: a suffix keeps a
            # resume within the same second from truncating its predecessor's file.
            suffix = f".{os.getpid()}.{resume_step or 0}"
            self._tb = SummaryWriter(
                str(self.out / TENSORBOARD_DIR), purge_step=purge, filename_suffix=suffix
            )

    def write(self, step: int, metrics: dict[str, float], prefix: str = "") -> dict:
        """Log `metrics` at `step` (names get `prefix`, e.g. "eval/"); returns the row written."""
        row = {"step": int(step), **{prefix + k: _number(v) for k, v in metrics.items()}}
        if not self.enabled:
            return row
        self._log.write(json.dumps(row) + "\n")
        self._log.flush()
        if self._tb is not None:
            for name, value in row.items():
                if name != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(name, value, int(step))
            self._tb.flush()
        return row

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(out: str | Path) -> list[dict]:
    """The rows of OUT/metrics.jsonl ([] when there is none)."""
    path = Path(out) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _number(value) -> float | int | bool:
    """A plain scalar: ints and bools as they are, anything else (numpy, jax) as a float. NaN
    and inf stay as they are (Python's json writes NaN/Infinity): a diverged loss must show."""
    if isinstance(value, (bool, int)):
        return value
    return float(value)


def _truncate_after(path: Path, step: int) -> None:
    """Drop rows logged after `step` (a killed run's, past its last checkpoint); atomic."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    keep = []
    for line in lines:
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except (json.JSONDecodeError, AttributeError):
            continue  # a row torn by the kill
    if len(keep) == len(lines):
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)
