"""Deployment episodes: what the robot bridge records into an episode store (robolearn.data).

One episode runs from a bridge `start` to the next hold, safe stop, restart or close. It is stored
like any collected episode (robolearn.data.store; source "robot", fps = the policy rate):

    image    uint8   [T+1, S, S, 3]  the policy's input image at each policy step (and at the end)
    proprio  float32 [T+1, 7]        core.widowx.proprio of the measured joints
    state    float64 [T+1, 12]       measured arm q (rad) [6] then qdot (rad/s) [6]
    action   float32 [T, 7]          the policy's actions (clipped to [-1, 1])
    reward   float32 [T]             0 (nothing measures reward on the robot)
    success  bool    [T+1]           what Bridge.mark_success said (False unless told)

The last observation is the latest image and joint state when the episode ends. The bridge's
view of each step goes into meta.extra (JSON inside the episode file, so no sidecar files):
extra["bridge"] holds the BridgeConfig (rates, filter and shield settings) and `end_reason`;
extra["steps"] per observation: `tank_energy_j` and `injected_energy_j` (cumulative) at the
observation, `alpha_min` (the filter's smallest alpha over the control steps since the previous
observation) and `interventions` (the kinds of shield interventions in those steps).
An episode without a single complete step (a hold before the first action) is not written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.data.episode import EpisodeMeta
from robolearn.data.recorder import EpisodeRecorder
from robolearn.data.store import create_store

STEP_KEYS = ("tank_energy_j", "injected_energy_j", "alpha_min", "interventions")


class DeploymentEpisode:
    """One episode being recorded in memory; `write` commits it to the store atomically."""

    def __init__(self, store: str | Path, meta: EpisodeMeta):
        self.store = Path(store)
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

    def write(self) -> str:
        """Commit to the store (created if needed); the path, or '' when there is no step."""
        steps = min(len(self.actions), len(self.obs) - 1)
        if steps < 1:
            return ""
        extra = dict(self.meta.extra)
        extra["bridge"] = {**extra.get("bridge", {}), "end_reason": self.end_reason}
        extra["steps"] = {key: values[: steps + 1] for key, values in self.steps.items()}
        meta = dataclasses.replace(self.meta, extra=extra)
        create_store(self.store)
        recorder = EpisodeRecorder(self.store, meta)
        try:
            recorder.add_first(*self.obs[0])
            for action, (obs, success) in zip(self.actions, self.obs[1 : steps + 1], strict=False):
                recorder.add_step(action, 0.0, obs, success)
            return str(recorder.finish())
        except BaseException:
            recorder.abort()
            raise


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
