"""The one task interface every simulator sits behind.

Contract (Gymnasium-compatible):

    reset(seed=None) -> obs, info
    step(action[7]) -> obs, reward, terminated, truncated, info
    render() -> uint8 [H, W, 3]
    close()
    continue_as(name, return_to_start=False) -> obs, info   (reset-free practice: one scene)

    obs = {"image": uint8 [H, W, 3], "proprio": float32 [7], "state": float64 [S]}
    info = {"success": bool, "instruction": str, "task": str, "step": int}

`proprio` is the end-effector pose and gripper in the task's base frame: xyz (m),
roll/pitch/yaw (rad), gripper opening in [0, 1] (1 = open). `state` is the simulator's full
physics state (qpos, qvel).
The action is float32 in [-1, 1]^7 in the BridgeData convention: delta xyz, delta roll/pitch/yaw,
gripper (+1 open, -1 closed); each task's `TaskInfo.action_meaning` says what that maps to in
physical units for its simulator. The reward is the sparse success signal (1.0 on success steps).
Episodes never terminate early; they are truncated after `max_steps`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.core.errors import ActionError, ConfigError
from robolearn.core.spec import ACTION_DIM, ACTION_NAMES, PROPRIO_DIM
from robolearn.core.widowx import mat_to_rpy  # noqa: F401  (re-exported: the adapters use it)
from robolearn.envs.render import check_image_size

__all__ = ["ACTION_DIM", "ACTION_NAMES", "PROPRIO_DIM", "Task", "TaskConfig", "TaskInfo"]


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Per-run settings shared by every task.

    image_size: side of the square camera image in pixels (16..256).
    visual_randomization: randomize light, colours and camera pose per episode (sim-to-real);
        tasks whose simulator does not support it ignore it and say so in their TaskInfo.
    max_steps: episode length in control steps; None takes the task's default.
    camera_lag_max_s: each step's image is taken a random 0..camera_lag_max_s (uniform) before the
        step ends, while proprio is measured at its end: what a policy sees on a robot whose camera
        runs on its own clock (30 Hz: frames up to 33 ms older than the joint state they are
        paired with). Data collected so trains policies robust to it. 0: the image of the step's
        end (the default). WidowX tasks only.
    step_dwell_max_s: each step holds its final joint target a random 0..step_dwell_max_s
        (uniform) longer before the next observation: what a robot bridge does when each policy
        step also waits for inference and a fresh camera frame (over ROS 2 here a step comes every
        ~215-235 ms, not 200). 0: the task's fixed step (the default). WidowX tasks only.
    """

    image_size: int = 64
    visual_randomization: bool = False
    max_steps: int | None = None
    camera_lag_max_s: float = 0.0
    step_dwell_max_s: float = 0.0

    def __post_init__(self):
        check_image_size(self.image_size)
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ConfigError(
                f"max_steps must be a positive integer or None, got {self.max_steps!r}"
            )
        for name in ("camera_lag_max_s", "step_dwell_max_s"):
            value = getattr(self, name)
            if not 0.0 <= value <= 0.1:
                raise ConfigError(f"{name} must be in [0, 0.1] s, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What a task is, for listings and for the episode store."""

    name: str
    suite: str  # "widowx", "metaworld" or "robosuite"
    instruction: str
    control_hz: float
    max_steps: int
    action_meaning: str  # the physical meaning of the normalized 7-D action in this simulator


class Task(gym.Env, abc.ABC):
    """Base class: validates actions, counts steps, assembles observations and info.

    Subclasses implement the simulator-specific `_reset`, `_apply_action`, `_success`, `_image`,
    `_proprio`, `_sim_state`, `layout` and `expert_action`.
    """

    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"

    SUPPORTS_TIMING = False  # TaskConfig.camera_lag_max_s and step_dwell_max_s
    RETURNS_TO_START = False  # continue_as(return_to_start=True): _return_to_start

    def __init__(self, info: TaskInfo, config: TaskConfig, state_dim: int):
        for name in ("camera_lag_max_s", "step_dwell_max_s"):
            if getattr(config, name) and not self.SUPPORTS_TIMING:
                raise ConfigError(
                    f"task {info.name!r}: {name} is supported by the WidowX tasks only"
                )
        self.task_info = info
        self.config = config
        self.max_steps = config.max_steps or info.max_steps
        size = config.image_size
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8),
                "proprio": gym.spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32),
                "state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float64),
            }
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._t = 0
        self._last_image: np.ndarray | None = None

    # -- Gymnasium API -------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new episode; object placement (and visuals, if enabled) drawn from `seed`."""
        super().reset(seed=seed)
        self._t = 0
        self._reset(self.np_random)
        return self._observe(), self._info()

    def step(self, action):
        """Apply one normalized 7-D action; returns obs, reward, terminated, truncated, info."""
        act = self.check_action(action)
        self._apply_action(act)
        self._t += 1
        obs = self._observe()
        info = self._info()
        reward = 1.0 if info["success"] else 0.0
        return obs, reward, False, self._t >= self.max_steps, info

    def continue_as(
        self, name: str, return_to_start: bool = False
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start a new episode of task `name` from the current simulator state, without a reset:
        the reset-free practice of RoboFuME, a forward task and its backward task (e.g. drawer and
        drawer-close) alternating in one scene. Returns the episode's first obs and info, like
        reset. A one-line ConfigError for a task that does not share this one's scene.

        return_to_start: first the arm moves back to the pose episodes start from, the scene
        left as it is (the scripted move of a robot's operator, in real physics: it can nudge
        what it passes); info then adds `return_steps` (control steps the move took, not
        counted in the episode) and `at_start` (whether it got there). Tasks without such a move
        say so in a ConfigError."""
        if return_to_start and not self.RETURNS_TO_START:
            raise ConfigError(
                f"task {self.task_info.name!r} cannot move its arm back to the start pose"
            )
        partners = self.reset_free_partners()
        if name != self.task_info.name and name not in partners:
            known = ", ".join(partners) or "none"
            raise ConfigError(
                f"task {self.task_info.name!r} cannot continue as {name!r} without a reset "
                f"(tasks that share its scene: {known})"
            )
        if name != self.task_info.name:
            self._become(name)
            self.max_steps = self.config.max_steps or self.task_info.max_steps
        moved = self._return_to_start() if return_to_start else None
        self._t = 0
        info = self._info()
        if moved is not None:
            info["return_steps"], info["at_start"] = moved
        return self._observe(), info

    def _return_to_start(self) -> tuple[int, bool]:
        """Move the arm back to its start pose through the task's own control (continue_as's
        return_to_start; tasks with RETURNS_TO_START); (control steps, whether it got there)."""
        raise TypeError(f"{type(self).__name__} sets RETURNS_TO_START but not _return_to_start")

    def reset_free_partners(self) -> tuple[str, ...]:
        """Tasks this one can continue as without a reset (continue_as); none by default."""
        return ()

    def _become(self, name: str) -> None:
        """Turn into task `name` (one of reset_free_partners) without touching the simulator."""
        raise TypeError(f"{type(self).__name__} declares reset-free partners but not _become")

    def render(self) -> np.ndarray:
        """The camera image of the current state, uint8 [H, W, 3]."""
        if self._last_image is None:
            self._last_image = self._image()
        return self._last_image

    def check_action(self, action: Any) -> np.ndarray:
        """The action as float64 [7] clipped to [-1, 1]; wrong shapes and NaN/inf are errors."""
        try:
            act = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ActionError(
                f"task {self.task_info.name!r}: action must be numbers of shape ({ACTION_DIM},), "
                f"got {action!r}"
            ) from exc
        if act.shape != (ACTION_DIM,):
            raise ActionError(
                f"task {self.task_info.name!r}: action must have shape ({ACTION_DIM},) "
                f"({', '.join(ACTION_NAMES)}), got shape {act.shape}"
            )
        if not np.all(np.isfinite(act)):
            bad = [ACTION_NAMES[i] for i in np.flatnonzero(~np.isfinite(act))]
            raise ActionError(
                f"task {self.task_info.name!r}: action has NaN/inf in {', '.join(bad)}: "
                f"{act.tolist()}"
            )
        return np.clip(act, -1.0, 1.0)

    # -- assembly ------------------------------------------------------------------------------

    def _observe(self) -> dict[str, np.ndarray]:
        self._last_image = self._image()
        return {
            "image": self._last_image,
            "proprio": np.asarray(self._proprio(), dtype=np.float32),
            "state": np.asarray(self._sim_state(), dtype=np.float64),
        }

    def _info(self) -> dict[str, Any]:
        return {
            "success": bool(self._success()),
            "instruction": self.task_info.instruction,
            "task": self.task_info.name,
            "step": self._t,
        }

    # -- simulator-specific --------------------------------------------------------------------

    @abc.abstractmethod
    def _reset(self, rng: np.random.Generator) -> None:
        """Reset the simulator; randomize object placement (and visuals if configured)."""

    @abc.abstractmethod
    def _apply_action(self, action: np.ndarray) -> None:
        """Run one control step for a validated action in [-1, 1]^7."""

    @abc.abstractmethod
    def _success(self) -> bool:
        """Task success, computed from simulator state."""

    @abc.abstractmethod
    def _image(self) -> np.ndarray:
        """Render the fixed task camera, uint8 [H, W, 3]."""

    @abc.abstractmethod
    def _proprio(self) -> np.ndarray:
        """End-effector xyz (m), roll/pitch/yaw (rad) and gripper opening in [0, 1], [7]."""

    @abc.abstractmethod
    def _sim_state(self) -> np.ndarray:
        """The simulator's physics state (qpos, qvel), float64 [S]."""

    @abc.abstractmethod
    def layout(self) -> np.ndarray:
        """This episode's placement of scene parts that `state` does not hold, float64 [K].

        Several scenes place fixed bodies (a cabinet, a door, a goal) by moving them in the model,
        so qpos/qvel alone do not identify the initial scene; `state` plus `layout` do.
        """

    @abc.abstractmethod
    def expert_action(self) -> np.ndarray:
        """The scripted expert's action for the current state, float [7] in [-1, 1].

        Experts read privileged simulator state and may keep a phase; `_reset` resets it.
        """


def quat_to_rpy(quat_wxyz: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (rad, extrinsic XYZ = intrinsic ZYX) of a unit quaternion [w, x, y, z]."""
    w, x, y, z = quat_wxyz
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.array([roll, pitch, yaw])
