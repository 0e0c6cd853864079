"""Deployment episodes on the bridge's side: what is recorded, and the hand-off to a writer.

One episode runs from a bridge `start` to the next hold, safe stop, restart or close. The bridge's
EpisodeRecorder builds it in memory (DeploymentEpisode; appends only, no I/O) and, when it ends,
hands it to a RecordingThread, whose own thread calls the EpisodeWriter the bridge was given. So
no file is written in the control step, the policy step or an operator call, whatever the writer
does.
hardware never imports robolearn.data: robolearn.data.deployment.store_writer(DIR) is the writer
for an episode store, and robolearn.runs.deploy hands it to the bridge node and the simulated loop.

What the writer gets, per episode of T policy steps:

    meta          EpisodeMeta's fields (source "robot", fps = the policy rate, created at start)
    observations  [T+1] dicts: image uint8 [S, S, 3] (the policy's input image), proprio float32
                  [7] (core.widowx.proprio of the measured joints), state float64 [12] (measured
                  arm q (rad) [6] then qdot (rad/s) [6])
    actions       [T] float32 [7], the policy's actions (clipped to [-1, 1]); reward is 0 (nothing
                  measures reward on the robot)
    success       [T+1] bool, what Bridge.mark_success said (False unless told)

The last observation is the latest image and joint state when the episode ends. The bridge's
view of each step goes into meta["extra"] (JSON inside the episode file, so no sidecar files):
extra["bridge"] holds the BridgeConfig (rates, filter and shield settings) and `end_reason`;
extra["steps"] per observation: `tank_energy_j` and `injected_energy_j` (cumulative) at the
observation, `alpha_min` (the filter's smallest alpha over the control steps since the previous
observation) and `interventions` (the kinds of shield interventions in those steps).
An episode without a single complete step (a hold before the first action) is not written.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from robolearn.hardware.bridge_types import BridgeConfig

from robolearn.core import widowx_control as control
from robolearn.core.spec import ACTION_NAMES

STEP_KEYS = ("tank_energy_j", "injected_energy_j", "alpha_min", "interventions")
MAX_PENDING = 8  # finished episodes waiting for the writer before new ones are dropped


class EpisodeWriter(Protocol):
    """Stores one finished deployment episode (blocking: disk I/O); returns where it went.

    Called on the bridge's recording thread only, with the fields described in the module doc.
    """

    def __call__(
        self,
        meta: dict[str, Any],
        observations: Sequence[dict[str, np.ndarray]],
        actions: Sequence[np.ndarray],
        success: Sequence[bool],
    ) -> str: ...


# record_dir -> the writer for it (robolearn.data.deployment.store_writer).
WriterFactory = Callable[[str], EpisodeWriter]


def episode_meta(cfg: BridgeConfig) -> dict[str, Any]:
    """EpisodeMeta's fields for an episode run with BridgeConfig `cfg`, created now."""
    return {
        "task": cfg.task,
        "instruction": cfg.instruction or cfg.task,
        "source": "robot",
        "fps": float(cfg.policy_hz),
        "action_meaning": control.ACTION_MEANING,
        "action_names": ACTION_NAMES,
        "policy": cfg.policy_name,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "extra": {"bridge": jsonable(dataclasses.asdict(cfg))},
    }


class DeploymentEpisode:
    """One episode being recorded in memory (the bridge calls it under its lock; no I/O)."""

    def __init__(self, meta: dict[str, Any]):
        self.meta = meta
        self.obs: list[tuple[dict[str, np.ndarray], bool]] = []
        self.actions: list[np.ndarray] = []
        self.steps: dict[str, list] = {key: [] for key in STEP_KEYS}
        self.end_reason = ""
        self.end_s = 0.0
        self._alpha_min = 1.0
        self._kinds: set[str] = set()

    def control(self, alpha: float, kinds: list[str]) -> None:
        """One control step's filter alpha and shield intervention kinds."""
        self._alpha_min = min(self._alpha_min, float(alpha))
        self._kinds.update(kinds)

    def observe(self, obs: dict[str, np.ndarray], state: np.ndarray, success: bool, tank) -> None:
        """The observation a policy step acts on (image, proprio), `state` [12], and the tank."""
        if len(self.obs) > len(self.actions):
            return  # the previous observation still waits for its action
        self.obs.append(({**obs, "state": np.asarray(state, np.float64)}, bool(success)))
        self.steps["tank_energy_j"].append(float(tank.energy_j))
        self.steps["injected_energy_j"].append(float(tank.injected_energy_j))
        self.steps["alpha_min"].append(self._alpha_min)
        self.steps["interventions"].append(sorted(self._kinds))
        self._alpha_min, self._kinds = 1.0, set()

    def act(self, action: np.ndarray) -> None:
        """The action taken on the latest observation [7]."""
        self.actions.append(np.asarray(action, np.float32))

    def end(self, reason: str, now_s: float) -> None:
        """Why and when (s) the episode ended (the observation at the end comes first)."""
        self.end_reason, self.end_s = reason, float(now_s)

    def write(self, writer: EpisodeWriter) -> str:
        """Hand the finished episode to `writer` (blocking); its path, or '' without a step."""
        steps = min(len(self.actions), len(self.obs) - 1)
        if steps < 1:
            return ""
        extra = dict(self.meta["extra"])
        extra["bridge"] = {**extra.get("bridge", {}), "end_reason": self.end_reason}
        extra["steps"] = {key: values[: steps + 1] for key, values in self.steps.items()}
        obs = self.obs[: steps + 1]
        return writer(
            meta={**self.meta, "extra": extra},
            observations=[o for o, _ in obs],
            actions=self.actions[:steps],
            success=[s for _, s in obs],
        )


class RecordingThread:
    """Writes finished episodes with `writer` on its own thread, in order; `submit` never blocks.

    on_written(path) after each episode written; on_error(end_s, message) when a write fails or
    max_pending episodes already wait (the new one is dropped): a full or hung disk must not stop
    the arm. Both are called on the writer's thread (on_error also in `submit`) and must not raise.
    The thread runs while episodes wait and exits when none does.
    """

    def __init__(
        self,
        writer: EpisodeWriter,
        on_written: Callable[[str], None],
        on_error: Callable[[float, str], None],
        max_pending: int = MAX_PENDING,
    ):
        self._writer = writer
        self._on_written, self._on_error = on_written, on_error
        self._max_pending = max_pending
        self._pending: collections.deque[DeploymentEpisode] = collections.deque()
        self._cond = threading.Condition()
        self._running = False

    def submit(self, episode: DeploymentEpisode) -> None:
        """Queue a finished episode for writing (no I/O here)."""
        with self._cond:
            full = len(self._pending) >= self._max_pending
            if not full:
                self._pending.append(episode)
                if not self._running:
                    self._running = True
                    threading.Thread(target=self._run, name="episode-writer", daemon=True).start()
        if full:
            self._on_error(
                episode.end_s, f"recording backlog full ({self._max_pending} episodes): dropped one"
            )

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until every submitted episode is written (True) or timeout_s passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._running = False
                    self._cond.notify_all()
                    return
                episode = self._pending.popleft()
            try:
                path = episode.write(self._writer)
            except Exception as exc:  # reported in the bridge's status; the arm keeps its hold
                self._on_error(episode.end_s, f"recording failed: {type(exc).__name__}: {exc}")
            else:
                if path:
                    self._on_written(path)


class EpisodeRecorder:
    """The bridge's recording: the episode of the current run, in memory, and the thread that
    writes finished ones. The bridge calls it under its lock; nothing here writes files.

    writer: the EpisodeWriter (None: nothing is recorded and every call is a no-op).
    on_error(end_s, message): a write failed or the backlog was full (RecordingThread).
    """

    def __init__(
        self,
        cfg: BridgeConfig,
        writer: EpisodeWriter | None,
        on_error: Callable[[float, str], None],
    ):
        self._cfg = cfg
        self._thread = None if writer is None else RecordingThread(writer, self._written, on_error)
        self._episode: DeploymentEpisode | None = None
        self.last_path = ""  # where the latest episode was written ("" before one is)

    @property
    def recording(self) -> bool:
        """Whether an episode is being recorded."""
        return self._episode is not None

    def begin(self) -> None:
        """Start a new episode (the bridge started)."""
        if self._thread is not None:
            self._episode = DeploymentEpisode(episode_meta(self._cfg))

    def control(self, alpha: float, kinds: list[str]) -> None:
        """One control step's filter alpha and shield intervention kinds."""
        if self._episode is not None:
            self._episode.control(alpha, kinds)

    def step(self, obs, state: np.ndarray, success: bool, tank, action: np.ndarray) -> None:
        """A policy step: its observation, state [12] (q, qdot), success, the tank, the action."""
        if self._episode is not None:
            self._episode.observe(obs, state, success, tank)
            self._episode.act(action)

    def end(self, last, reason: str, now_s: float) -> DeploymentEpisode | None:
        """End the episode; `last` is (obs, state, success, tank) seen at the end, or None.
        Returns the finished episode, for `submit` once the bridge's lock is released."""
        episode, self._episode = self._episode, None
        if episode is not None:
            if last is not None:
                episode.observe(*last)
            episode.end(reason, now_s)
        return episode

    def submit(self, episode: DeploymentEpisode | None) -> None:
        """Hand a finished episode to the writer's thread (a queue append: no I/O here)."""
        if episode is not None:
            self._thread.submit(episode)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until every finished episode is written (True) or timeout_s passes (False)."""
        return True if self._thread is None else self._thread.wait(timeout_s)

    def _written(self, path: str) -> None:
        self.last_path = path


def jsonable(value: Any) -> Any:
    """`value` (nested dicts, lists, tuples, numpy) as plain JSON types."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
