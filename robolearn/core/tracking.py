"""Weights & Biases for the metrics writer (`--wandb` on the trainers): the same scalars, images
and videos as metrics.jsonl and TensorBoard, in a W&B run under OUT/wandb/.

    run = WandbRun(out, WandbSettings(project="robolearn"), config={...}, resume_step=None)
    run.log(step, {"loss": 0.1})          # skipped when a predecessor already logged `step`
    run.finish()

The run is offline unless the environment's WANDB_MODE says otherwise (`wandb sync
OUT/wandb/offline-run-*` uploads it later); its name is the run directory's, its config the run's
resolved settings. The run id is kept in OUT/wandb/robolearn-run.json with the last step logged,
so a resumed training run (--resume) continues the same W&B run, and never logs a step twice: a
killed run may have logged steps past its last checkpoint, which the resumed run trains again;
W&B keeps the first values of those steps (its history cannot be rewritten, and an offline run
may already have been synced) and the resumed run logs from the step after them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import string
import warnings
from pathlib import Path

from robolearn.core.errors import RobolearnError, one_line
from robolearn.core.optional import missing_extra

WANDB_DIR = "wandb"
STATE_FILE = "robolearn-run.json"


class TrackingError(RobolearnError):
    """W&B could not start a run (e.g. WANDB_MODE=online without a login)."""


@dataclasses.dataclass(frozen=True)
class WandbSettings:
    """`--wandb` and `--wandb-project`: log to a W&B run of this project."""

    project: str = "robolearn"


class WandbRun:
    """One W&B run of a training run directory (process 0 only).

    resume_step: the step a resumed run continues from (None: a fresh run, a new W&B run id).
    """

    def __init__(
        self,
        out: str | Path,
        settings: WandbSettings,
        config: dict | None = None,
        resume_step: int | None = None,
    ):
        try:
            import wandb
        except ImportError as exc:
            raise (missing_extra(exc) or exc) from None
        self.out = Path(out)
        self.dir = self.out / WANDB_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        previous = _read_state(self.dir / STATE_FILE) if resume_step is not None else None
        run_id = previous["id"] if previous else _new_id()
        # steps up to the predecessor's last logged one are W&B's already
        self._last = previous["step"] if previous else -1
        self._floor = self._last
        self._wandb = wandb
        try:
            with warnings.catch_warnings():
                # wandb starts its service by subprocess (fork, then exec at once): no JAX
                # thread runs in the child, so the warning JAX's threads raise does not apply
                warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
                self.run = wandb.init(
                    project=settings.project,
                    name=self.out.resolve().name,
                    id=run_id,
                    resume="allow",
                    dir=str(self.out),
                    mode=None if os.environ.get("WANDB_MODE") else "offline",
                    config=config or {},
                    settings=wandb.Settings(console="off", silent=True),
                    reinit="create_new",
                )
        except Exception as exc:  # wandb raises its own error types (UsageError, CommError, ...)
            raise TrackingError(
                f"W&B could not start a run in {self.dir}: {one_line(exc)} (unset WANDB_MODE "
                "for an offline run, `wandb sync` it later)"
            ) from None
        self.id = run_id
        self._save_state()

    def log(self, step: int, data: dict) -> bool:
        """Log `data` ({name: number | wandb.Image | wandb.Video}) at `step`; False (nothing
        logged) for a step a predecessor of a resumed run already logged, or an earlier one."""
        step = int(step)
        if step <= self._floor or step < self._last:
            return False
        self.run.log(data, step=step)
        if step != self._last:
            self._last = step
            self._save_state()
        return True

    def image(self, rgb):
        """A wandb.Image of uint8 [H, W, 3]."""
        return self._wandb.Image(rgb)

    def video(self, path: str | Path):
        """A wandb.Video of an MP4 file (raw frames would need moviepy to encode)."""
        return self._wandb.Video(str(path), format="mp4")

    def finish(self) -> None:
        self.run.finish()

    def _save_state(self) -> None:
        path = self.dir / STATE_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"id": self.id, "step": self._last}) + "\n")
        os.replace(tmp, path)


def _read_state(path: Path) -> dict | None:
    """The id and last step of the run's W&B run (None when it had none, e.g. it ran without
    --wandb, or the file is unreadable: a new W&B run then)."""
    try:
        state = json.loads(path.read_text())
        return {"id": str(state["id"]), "step": int(state["step"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _new_id() -> str:
    """A new W&B run id: 8 lowercase letters and digits, as W&B makes them."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
