"""Meta-World v3 tasks behind the robolearn `Task` contract (World4RL's six tasks plus drawers).

Meta-World is imported only when a task is built, so listing tasks stays light.

Per-episode placement: Meta-World v3 draws object/goal positions in `reset_model` from
`env.np_random` when `_freeze_rand_vec` is False and `seeded_rand_vec` is True (some tasks
reject-sample, so a frozen vector can loop forever). We hand the env a fresh generator seeded from
the episode rng on every reset: equal seeds give equal placements.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from robolearn.envs.base import Task, TaskConfig, TaskInfo, mat_to_rpy
from robolearn.envs.render import Camera
from robolearn.envs.visuals import SceneJitter

CONTROL_HZ = 80.0  # Meta-World: frame_skip 5 x timestep 2.5 ms
# "<task>-40hz": World4RL's episode length, each action held for SLOW_REPEAT Meta-World steps
SLOW_SUFFIX = "-40hz"
SLOW_REPEAT = 2
CAMERA = "corner2"  # sees gripper, object and goal; its up-axis points down, so frames are rotated
CAMERA_FOVY_DEG = 40.0  # corner2's own 60 degrees leaves the objects a few pixels wide at 64x64
# The mocap holds the hand at quaternion (1, 0, 1, 0) (gripper down); its rpy is at gimbal lock
# (pitch 90 degrees), so the proprio rpy is measured relative to this nominal orientation.
_NOMINAL_HAND_ROT = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
ACTION_SCALE_M = 0.01  # Meta-World's default action_scale: mocap moves action * 1 cm per step


def _action_meaning(repeat: int) -> str:
    """TaskInfo.action_meaning for actions held `repeat` Meta-World steps (80 Hz text unchanged)."""
    if repeat == 1:
        unit = f"per step ({CONTROL_HZ:.0f} Hz, world frame)"
    else:
        unit = (
            f"per Meta-World step ({CONTROL_HZ / repeat:.0f} Hz, world frame, held for {repeat} "
            f"Meta-World steps: {repeat} cm per step)"
        )
    return (
        f"dx,dy,dz: move the hand's mocap target by action*1 cm {unit}; "
        "droll,dpitch,dyaw: ignored (Meta-World has no orientation control); "
        "gripper: +1 open .. -1 closed (finger actuator command, Meta-World's sign negated)"
    )


# name: (Meta-World env, instruction, default max_steps). max_steps is the smallest round number
# at which the scripted expert succeeds on >= 90 % of seeds 0..49 (bench/expert_success.py).
TASKS = {
    "coffee-pull": ("coffee-pull-v3", "pull the coffee mug out from under the machine", 100),
    "soccer": ("soccer-v3", "push the soccer ball into the goal", 100),
    "hammer": ("hammer-v3", "hammer the nail into the wall", 100),
    "door-lock": ("door-lock-v3", "turn the knob to lock the door", 150),
    "lever-pull": ("lever-pull-v3", "pull the lever up", 100),
    "handle-pull": ("handle-pull-v3", "pull the handle up", 150),
    "drawer-open": ("drawer-open-v3", "open the drawer", 100),
    "drawer-close": ("drawer-close-v3", "close the drawer", 100),
}
# World4RL's six tasks also at 40 Hz ("metaworld/lever-pull-40hz"): its episodes are 50 steps, and
# halving the control rate halves how far a world model has to imagine for the same motion. The
# default length is half the 80 Hz one (the same simulated time); the expert's success rate at it
# is in bench/expert_success.py.
WORLD4RL = ("coffee-pull", "soccer", "hammer", "door-lock", "lever-pull", "handle-pull")


def _variants() -> dict[str, tuple[str, str, int, int]]:
    """Every registered short name: (Meta-World env, instruction, default max_steps, repeat)."""
    out = {name: (*spec, 1) for name, spec in TASKS.items()}
    for name in WORLD4RL:
        env_name, instruction, max_steps = TASKS[name]
        out[name + SLOW_SUFFIX] = (env_name, instruction, max_steps // SLOW_REPEAT, SLOW_REPEAT)
    return out


def task_infos() -> list[TaskInfo]:
    """Static descriptions of every Meta-World task we register."""
    return [
        TaskInfo(
            name=f"metaworld/{name}",
            suite="metaworld",
            instruction=instruction,
            control_hz=CONTROL_HZ / repeat,
            max_steps=max_steps,
            action_meaning=_action_meaning(repeat),
        )
        for name, (_, instruction, max_steps, repeat) in _variants().items()
    ]


def register_all(register) -> None:
    """Register every Meta-World task with the task registry."""
    for info in task_infos():
        register(info, "robolearn.envs.metaworld:make_task")


def make_task(info: TaskInfo, config: TaskConfig) -> MetaWorldTask:
    """Factory used by the registry: builds the Meta-World env named by `info`."""
    env_name, _, _, repeat = _variants()[info.name.removeprefix("metaworld/")]
    return MetaWorldTask(info, config, env_name, repeat)


@dataclasses.dataclass
class _Episode:
    """The Meta-World side of the current episode: its last 39-D observation and success."""

    obs: np.ndarray
    success: bool


class MetaWorldTask(Task):
    """One Meta-World v3 environment (Sawyer arm, mocap position control) as a robolearn Task.

    Image: camera "corner2" (narrowed to 40 degrees) rotated 180 degrees upright. Proprio: hand body
    xyz (m, world frame), its roll/pitch/yaw (rad) relative to the nominal gripper-down orientation,
    and the finger opening in [0, 1] (Meta-World's normalized finger distance).
    State: qpos, qvel. The expert is Meta-World's scripted policy for the task.
    With repeat > 1 every action is held for that many Meta-World steps (the image is rendered
    once, after the last); success is Meta-World's flag after the last.
    """

    def __init__(self, info: TaskInfo, config: TaskConfig, env_name: str, repeat: int = 1):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        from metaworld.policies import ENV_POLICY_MAP

        env = ALL_V3_ENVIRONMENTS[env_name]()
        hz = 1.0 / (env.dt * repeat)
        if not (np.isclose(hz, info.control_hz) and env.action_scale == ACTION_SCALE_M):
            raise RuntimeError(
                f"{env_name}: {hz} Hz and {env.action_scale} m per action unit differ "
                f"from the registered {info.control_hz} Hz and {ACTION_SCALE_M} m"
            )
        self._repeat = repeat
        env._partially_observable = False  # the scripted policies read the goal from the obs
        del env.sawyer_observation_space  # cached with a zero goal range, which clips the goal
        env._set_task_called = True
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env.max_path_length = np.iinfo(np.int64).max  # our Task truncates, not Meta-World
        self._env = env
        self._policy = ENV_POLICY_MAP[env_name]()
        env.model.cam_fovy[env.model.camera(CAMERA).id] = CAMERA_FOVY_DEG
        self._camera = Camera(env.model, config.image_size, CAMERA)
        self._jitter = SceneJitter(env.model, CAMERA) if config.visual_randomization else None
        self._hand = env.model.body("hand").id
        self._episode: _Episode | None = None
        super().__init__(info, config, state_dim=env.model.nq + env.model.nv)

    def _reset(self, rng: np.random.Generator) -> None:
        env = self._env
        env.np_random = np.random.default_rng(rng.integers(2**63))
        if self._jitter is not None:  # before the reset, whose forward pass moves the camera
            self._jitter.apply(rng)
        obs, _ = env.reset()
        _, mw_info = env.evaluate_state(obs, np.zeros(4))
        self._episode = _Episode(obs=obs, success=bool(mw_info["success"]))

    def _apply_action(self, action: np.ndarray) -> None:
        self._require_episode()
        mw_action = np.array([action[0], action[1], action[2], -action[6]])
        for _ in range(self._repeat):
            obs, _, _, _, mw_info = self._env.step(mw_action)
        self._episode = _Episode(obs=obs, success=bool(mw_info["success"]))

    def _success(self) -> bool:
        return self._require_episode().success

    def _image(self) -> np.ndarray:
        return np.ascontiguousarray(self._camera.render(self._env.data)[::-1, ::-1])

    def _proprio(self) -> np.ndarray:
        data = self._env.data
        rpy = mat_to_rpy(_NOMINAL_HAND_ROT.T @ data.xmat[self._hand].reshape(3, 3))
        opening = self._require_episode().obs[3]
        return np.concatenate([data.xpos[self._hand], rpy, [opening]])

    def _sim_state(self) -> np.ndarray:
        return np.concatenate([self._env.data.qpos, self._env.data.qvel])

    def expert_action(self) -> np.ndarray:
        """Meta-World's scripted policy on the current 39-D observation, in our 7-D convention."""
        with warnings.catch_warnings():  # "Constant(s) may be too high": the env clips anyway
            warnings.simplefilter("ignore")
            mw_action = np.clip(self._policy.get_action(self._require_episode().obs), -1.0, 1.0)
        return np.array([*mw_action[:3], 0.0, 0.0, 0.0, -mw_action[3]], dtype=np.float32)

    def layout(self) -> np.ndarray:
        """This episode's object/goal placement: Meta-World's random reset vector [R].

        Several tasks place fixed bodies (drawer, lock, lever, coffee machine) by moving them in
        the model, so the placement does not always show in `state` (qpos, qvel).
        """
        return np.array(self._env._last_rand_vec, dtype=np.float64)

    def close(self) -> None:
        """Release the renderer and the Meta-World env."""
        self._camera.close()
        self._env.close()

    def _require_episode(self) -> _Episode:
        if self._episode is None:
            raise RuntimeError(f"task {self.task_info.name!r}: call reset() before step()")
        return self._episode
