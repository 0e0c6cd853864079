"""robosuite / robomimic HDF5 demonstrations converted to store episodes.

The layout robosuite's demonstration recorder writes, and robomimic's datasets extend:

    data                    attrs: env (robosuite env name) and env_info (JSON: robots,
                            controller_configs, control_freq, ...) in robosuite's files;
                            env_args (JSON: env_name, env_kwargs) in robomimic's; repository_version
    data/demo_<i>           attrs: model_file (the scene's MJCF as recorded), num_samples
    data/demo_<i>/states    float64 [N, 1+nq+nv]: the flattened MuJoCo state (time, qpos, qvel)
                            before each action
    data/demo_<i>/actions   [N, 7] OSC_POSE delta actions in [-1, 1] (dx dy dz, axis-angle, gripper
                            +1 closing)
    data/demo_<i>/rewards, dones             [N] (robomimic; optional)
    data/demo_<i>/obs/<camera>_image         uint8 [N, H, W, 3] (robomimic; optional)
    data/demo_<i>/obs/robot0_eef_pos, _eef_quat (x y z w), _gripper_qpos   (robomimic; optional)

Time alignment, as the RLDS import: N states and N actions become N observations and T = N-1
actions (the final action has no recorded outcome; it is kept in meta.extra); `max_steps` keeps the
first T actions only.

Observations come from replaying the states in the matching robolearn robosuite task when there is
one (a `Replay`, built by the caller: robolearn.data never imports a simulator), as robomimic's
dataset_states_to_obs does: each recorded state is set with sim.set_state_from_flattened, then
forward, then the task's own proprio (end-effector pose in the robot base frame, gripper opening),
the env's reward and its _check_success are read and, unless the file has images, its camera is
rendered. The scene is built from the env name and robots, not from the recorded model_file (files
of older robosuite versions reference meshes newer ones do not have); the state size is checked
against it. A file whose env robolearn cannot replay imports from its obs/ alone: images from
obs/<camera>_image, proprio from robot0_eef_pos (world frame), the roll/pitch/yaw of robot0_eef_quat
and the opening of robot0_gripper_qpos (Panda: 0.08 m), success from rewards > 0 (else dones).

    image    [T+1]  obs/<camera>_image resized to image_size (INTER_AREA), or rendered
    proprio  [T+1]  see above
    state    [T+1]  the recorded states without their leading time: qpos, qvel (float64)
    action   [T]    OSC_POSE -> BridgeData-style 7-D, what the robolearn robosuite tasks take:
                    a[:3] as recorded (the setpoint moves 5 cm per unit), a[3:6] the roll/pitch/yaw
                    of the recorded axis-angle step (0.5 rad per unit) / 0.5 rad, a[6] = -gripper
                    (+1 open); values outside [-1, 1] are clipped and counted
    reward   [T]    rewards[k] when recorded (the final one added to the last), else the env's
                    reward at the state after action k
    success  [T+1]  the env's _check_success at each state (replay), else as above
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import cv2
import numpy as np

from robolearn.core import widowx as wx
from robolearn.core.spec import ACTION_NAMES
from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.robomimic_file import (
    ROT_SCALE_RAD,
    FileInfo,
    RobomimicConfig,
    RobomimicError,
    h5py_module,
    inspect_file,
    length,
)

__all__ = [
    "FileInfo",
    "Replay",
    "ReplayObs",
    "RobomimicConfig",
    "RobomimicError",
    "inspect_file",
    "iter_episodes",
    "osc_to_bridge",
]

PANDA_MAX_OPENING_M = 0.08
ACTION_MEANING = (
    "robosuite OSC_POSE delta (imported): a[:3] moves the setpoint by a*5 cm per step (robot "
    "base frame); a[3:6] roll/pitch/yaw of the recorded axis-angle step, /0.5 rad; a[6] gripper "
    "+1 open .. -1 closed (robosuite's sign negated)"
)


class ReplayObs(NamedTuple):
    """What a replay reads at one recorded state."""

    image: np.ndarray | None  # uint8 [H, W, 3], or None when not asked to render
    proprio: np.ndarray  # [7]
    reward: float
    success: bool


class Replay(Protocol):
    """A simulator that sets recorded states and observes them (built by robolearn.runs)."""

    task: str
    instruction: str
    description: str

    def observe(self, flat_state: np.ndarray, render: bool) -> ReplayObs:
        """Set the flattened state (time, qpos, qvel), forward, and observe."""


def iter_episodes(
    info: FileInfo,
    cfg: RobomimicConfig,
    replay: Replay | None,
    on_step: Callable[[], None] = lambda: None,
) -> Iterator[tuple[str, Episode | None, str]]:
    """(demo, episode, note) for every demo of an inspected file, one demo in memory at a time;
    episode None (and a note why) for a demo of fewer than 2 steps. on_step runs per observation."""
    h5py = h5py_module()
    with h5py.File(info.path, "r") as f:
        for name, n in info.demos:
            if n < 2:
                yield name, None, f"{info.path}: data/{name} has {n} step(s), need 2; skipped"
                continue
            yield name, _episode(f[f"data/{name}"], name, info, cfg, replay, on_step), ""


def osc_to_bridge(actions: np.ndarray) -> tuple[np.ndarray, int]:
    """robosuite OSC_POSE delta actions [T, 7] -> float32 [T, 7] of the module docstring, #clipped.

    The inverse of the robolearn robosuite tasks' mapping (rpy -> axis-angle), so replaying the
    result in such a task sends robosuite the recorded action (up to clipping).
    """
    src = np.asarray(actions, np.float64)
    clipped = int(np.count_nonzero(np.abs(src) > 1.0))
    src = np.clip(src, -1.0, 1.0)
    rpy = np.stack([wx.mat_to_rpy(_rotvec_to_mat(r * ROT_SCALE_RAD)) for r in src[:, 3:6]])
    rpy = rpy.reshape(-1, 3) / ROT_SCALE_RAD
    clipped += int(np.count_nonzero(np.abs(rpy) > 1.0))
    out = np.concatenate([src[:, :3], np.clip(rpy, -1.0, 1.0), -src[:, 6:7]], axis=1)
    return out.astype(np.float32), clipped


def _rotvec_to_mat(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues: the rotation matrix [3, 3] of an axis-angle vector (rad)."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = wx.skew(rotvec / angle)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def _episode(group, name: str, info: FileInfo, cfg, replay: Replay | None, on_step) -> Episode:
    """One demo group -> an Episode (see the module docstring)."""
    states = np.asarray(group["states"], np.float64)
    actions = np.asarray(group["actions"])
    n = len(actions)
    t = length(n, cfg)
    action, clipped = osc_to_bridge(actions[:t])
    images, proprio, reward, success = _observations(group, name, info, cfg, replay, t, on_step)
    rewards = np.asarray(group["rewards"], np.float64) if "rewards" in group else None
    if rewards is not None:
        reward = rewards[:t].copy()
        if t == n - 1:
            reward[-1] += rewards[-1]
    extra = {
        "source_file": str(info.path),
        "demo": name,
        "source_steps": n,
        "env_name": info.env_name,
        "robots": list(info.robots),
        "robosuite_version": info.version,
        "controller": info.controller,
        "observations": replay.description if replay else "from obs/ (no replay)",
        "image_source": f"obs/{info.image_key}" if info.image_key else "rendered",
        "reward_source": "rewards" if rewards is not None else "env" if replay else "none",
        "state_names": "qpos, qvel of the recorded flattened MuJoCo state (its time dropped)",
        "clipped_action_values": clipped,
        "dropped_final_action": np.asarray(actions[-1], np.float64).tolist() if t == n - 1 else [],
        "truncated_at": t if t < n - 1 else None,
    }
    meta = EpisodeMeta(
        task=cfg.task or (replay.task if replay else f"robomimic/{info.env_name.lower()}"),
        instruction=replay.instruction if replay else "",
        source="imported",
        fps=info.fps,
        action_meaning=ACTION_MEANING,
        action_names=ACTION_NAMES,
        policy=f"robomimic:{info.path.stem}/{name}",
        extra=extra,
    )
    return Episode(
        image=np.ascontiguousarray(images, np.uint8),
        proprio=proprio.astype(np.float32),
        state=np.ascontiguousarray(states[: t + 1, 1:]),
        action=action,
        reward=reward.astype(np.float32),
        success=success.astype(bool),
        meta=meta,
    )


def _observations(group, name, info: FileInfo, cfg, replay: Replay | None, t: int, on_step):
    """(images [t+1], proprio [t+1, 7], env reward [t], success [t+1]) of one demo's first t+1
    states: by replay, or from its obs/ (reward 0 there; the caller uses recorded rewards)."""
    images = None
    if info.image_key is not None:
        frames = np.asarray(group["obs"][info.image_key][: t + 1])
        images = _resize(frames, cfg.image_size, f"{info.path}: data/{name}/obs/{info.image_key}")
    if replay is None:
        marks = group["rewards"] if "rewards" in group else group.get("dones")
        success = np.zeros(t + 1, bool)
        if marks is not None:
            success[1:] = np.asarray(marks[:t]) > 0
        for _ in range(t + 1):
            on_step()
        return images, _obs_proprio(group["obs"], t + 1), np.zeros(t), success
    states = group["states"]
    seen = []
    for i in range(t + 1):
        seen.append(replay.observe(np.asarray(states[i], np.float64), render=images is None))
        on_step()
    if images is None:
        images = np.stack([o.image for o in seen])
    return (
        images,
        np.stack([o.proprio for o in seen]),
        np.array([o.reward for o in seen[1:]], np.float64),
        np.array([o.success for o in seen]),
    )


def _obs_proprio(obs, k: int) -> np.ndarray:
    """[k, 7] from robomimic's robot0 obs: eef xyz (world), rpy of eef_quat (x y z w), opening."""
    pos = np.asarray(obs["robot0_eef_pos"][:k], np.float64)
    quat = np.asarray(obs["robot0_eef_quat"][:k], np.float64)
    fingers = np.asarray(obs["robot0_gripper_qpos"][:k], np.float64)
    rpy = np.stack([wx.mat_to_rpy(_quat_xyzw_to_mat(q)) for q in quat])
    opening = np.clip(np.abs(fingers[:, 0] - fingers[:, 1]) / PANDA_MAX_OPENING_M, 0.0, 1.0)
    return np.concatenate([pos, rpy, opening[:, None]], axis=1)


def _quat_xyzw_to_mat(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _resize(frames: np.ndarray, size: int, where: str) -> np.ndarray:
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise RobomimicError(f"{where}: images should be uint8 [N, H, W, 3], got {frames.dtype} "
                             f"{list(frames.shape)}")  # fmt: skip
    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
