"""robosuite tasks (Panda, OSC_POSE delta control) behind the robolearn `Task` contract.

robosuite is imported only when a task is built. Its own renderers stay off; frames come from our
`Camera` on robosuite's MjModel/MjData.

numba + GL trap (shared DEPENDENCIES.md): robosuite JIT-compiles its controller math on the first
step, and doing so after a GL context exists is slow and garbles frames. The task therefore steps
the env once before it creates its camera, which makes either choice safe. Measured here with 64x64
frames and the scripted experts: JIT costs ~9 s per process and then runs Lift at 37 steps/s and
Door at 28, against 32 and 25 with NUMBA_DISABLE_JIT=1; JIT only pays off after ~2000 steps, so
short runs and tests set NUMBA_DISABLE_JIT=1 (tests/conftest.py does).

Placement: robosuite draws the object pose and the arm's joint noise from `env.rng`; we replace
that generator (and the placement sampler's reference to it) with one seeded from the episode rng.
"""

from __future__ import annotations

import abc

import mujoco
import numpy as np

from robolearn.envs.base import Task, TaskConfig, TaskInfo, mat_to_rpy
from robolearn.envs.render import Camera
from robolearn.envs.visuals import SceneJitter

CONTROL_HZ = 20.0
POS_SCALE_M = 0.05  # OSC_POSE output_max: a full action moves the setpoint 5 cm per step
ROT_SCALE_RAD = 0.5  # and rotates it 0.5 rad per step
GRIPPER_MAX_OPENING_M = 0.08  # Panda: two fingers of 0.04 m travel
# The Panda's nominal end-effector orientation at its home pose (gripper down); the proprio rpy is
# measured relative to it, since the rpy of a downward gripper sits at roll = +-pi.
_NOMINAL_EEF_ROT = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
_HIDDEN_GEOM_GROUP = 3  # MuJoCo's default scene option draws geom groups 0-2 only
ACTION_MEANING = (
    "dx,dy,dz: move the OSC setpoint by action*5 cm per step (20 Hz, robot base frame); "
    "droll,dpitch,dyaw: rotate it by action*0.5 rad per step (rpy converted to axis-angle); "
    "gripper: +1 open .. -1 closed (robosuite's sign negated)"
)

# name: (robosuite env, instruction, default max_steps, camera, env kwargs). max_steps is the
# smallest multiple of 50 at which the expert succeeds on >= 90 % of seeds 0..49
# (bench/expert_success_suites.py: lift at most 37 steps, door at most 61).
TASKS = {
    "lift": ("Lift", "pick up the red cube", 50, "agentview", {}),
    # The latch (turn the handle before pulling) is disabled: the door opens by pulling its handle.
    "door": ("Door", "pull the door open", 100, "sideview", {"use_latch": False}),
}


def task_infos() -> list[TaskInfo]:
    """Static descriptions of every robosuite task we register."""
    return [
        TaskInfo(
            name=f"robosuite/{name}",
            suite="robosuite",
            instruction=instruction,
            control_hz=CONTROL_HZ,
            max_steps=max_steps,
            action_meaning=ACTION_MEANING,
        )
        for name, (_, instruction, max_steps, _, _) in TASKS.items()
    ]


def register_all(register) -> None:
    """Register every robosuite task with the task registry."""
    for info in task_infos():
        register(info, "robolearn.envs.robosuite:make_task")


def make_task(info: TaskInfo, config: TaskConfig) -> RobosuiteTask:
    """Factory used by the registry: builds the robosuite env named by `info`."""
    short = info.name.removeprefix("robosuite/")
    env_name, _, _, camera, kwargs = TASKS[short]
    expert = {"lift": LiftExpert, "door": DoorExpert}[short]
    return RobosuiteTask(info, config, make_env(env_name, **kwargs), camera, expert)


def make_env(env_name: str, **kwargs):
    """A robosuite Panda env with OSC_POSE delta control and no renderer of its own."""
    import robosuite
    from robosuite.controllers import load_composite_controller_config
    from robosuite.utils.log_utils import ROBOSUITE_DEFAULT_LOGGER

    ROBOSUITE_DEFAULT_LOGGER.setLevel("ERROR")  # "controller for head/base/legs skipped"
    controller = load_composite_controller_config(controller="BASIC", robot="Panda")
    arm = controller["body_parts"]["right"]
    assert arm["type"] == "OSC_POSE" and arm["input_type"] == "delta", arm
    return robosuite.make(
        env_name,
        robots="Panda",
        controller_configs=controller,
        has_renderer=False,
        has_offscreen_renderer=False,
        use_camera_obs=False,
        hard_reset=False,  # keep one MjModel, so our camera stays valid across episodes
        ignore_done=True,  # our Task truncates
        control_freq=int(CONTROL_HZ),
        **kwargs,
    )


class RobosuiteTask(Task):
    """One robosuite Panda environment as a robolearn Task.

    Image: one fixed camera per task, collision geoms hidden. Proprio: end-effector site xyz (m)
    in the robot base frame, its roll/pitch/yaw (rad) relative to the nominal gripper-down
    orientation, finger opening in [0, 1].
    State: qpos, qvel. Success: robosuite's `_check_success()`.
    """

    def __init__(self, info: TaskInfo, config: TaskConfig, env, camera: str, expert_cls):
        env.reset()
        env.step(np.zeros(env.action_dim))  # numba compiles here, before any GL context exists
        self._env = env
        self._model: mujoco.MjModel = env.sim.model._model
        self._data: mujoco.MjData = env.sim.data._data
        robot = env.robots[0]
        self._eef_site = robot.eef_site_id["right"]
        self._base = self._model.body(robot.robot_model.root_body).id
        self._finger_qpos = np.asarray(robot._ref_gripper_joint_pos_indexes["right"])
        # robosuite's collision geoms (group 0) repeat its visual meshes (group 1) in flat colours.
        self._model.geom_group[self._model.geom_group == 0] = _HIDDEN_GEOM_GROUP
        self._camera = Camera(self._model, config.image_size, camera)
        self._jitter = SceneJitter(self._model, camera) if config.visual_randomization else None
        self._expert = expert_cls(self)
        self._reset_once = False
        super().__init__(info, config, state_dim=self._model.nq + self._model.nv)

    def _reset(self, rng: np.random.Generator) -> None:
        env = self._env
        env.rng = np.random.default_rng(rng.integers(2**63))
        env.placement_initializer.rng = env.rng
        if self._jitter is not None:  # before the reset, whose forward pass moves the camera
            self._jitter.apply(rng)
        env.reset()
        self._expert.reset()
        self._reset_once = True

    def _apply_action(self, action: np.ndarray) -> None:
        from scipy.spatial.transform import Rotation

        if not self._reset_once:
            raise RuntimeError(f"task {self.task_info.name!r}: call reset() before step()")
        rotvec = Rotation.from_euler("xyz", action[3:6] * ROT_SCALE_RAD).as_rotvec()
        drot = np.clip(rotvec / ROT_SCALE_RAD, -1.0, 1.0)
        self._env.step(np.concatenate([action[:3], drot, [-action[6]]]))

    def _success(self) -> bool:
        return bool(self._env._check_success())

    def _image(self) -> np.ndarray:
        return self._camera.render(self._data)

    def eef_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (m) and rotation matrix [3, 3], both in the robot base frame."""
        base_rot = self._data.xmat[self._base].reshape(3, 3)
        pos = base_rot.T @ (self._data.site_xpos[self._eef_site] - self._data.xpos[self._base])
        return pos, base_rot.T @ self._data.site_xmat[self._eef_site].reshape(3, 3)

    def to_base(self, world_pos: np.ndarray) -> np.ndarray:
        """A world-frame point (m) in the robot base frame."""
        base_rot = self._data.xmat[self._base].reshape(3, 3)
        return base_rot.T @ (np.asarray(world_pos) - self._data.xpos[self._base])

    def _proprio(self) -> np.ndarray:
        pos, rot = self.eef_pose()
        rpy = mat_to_rpy(_NOMINAL_EEF_ROT.T @ rot)
        q = self._data.qpos[self._finger_qpos]
        opening = np.clip((q[0] - q[1]) / GRIPPER_MAX_OPENING_M, 0.0, 1.0)
        return np.concatenate([pos, rpy, [opening]])

    def _sim_state(self) -> np.ndarray:
        return np.concatenate([self._data.qpos, self._data.qvel])

    def expert_action(self) -> np.ndarray:
        """The scripted expert's action (privileged object state), float32 [7]."""
        return np.clip(self._expert.action(), -1.0, 1.0).astype(np.float32)

    def layout(self) -> np.ndarray:
        """This episode's object placement: position (m) and quaternion of the task object [7].

        The door is placed by moving its body in the model, so it does not show in `state`.
        """
        env = self._env
        obj = env.cube if hasattr(env, "cube") else env.door
        body = self._model.body(obj.root_body).id
        return np.concatenate([self._data.xpos[body], self._data.xquat[body]])

    def close(self) -> None:
        """Release the renderer and the robosuite env."""
        self._camera.close()
        self._env.close()


class Expert(abc.ABC):
    """A phase-based scripted expert reading privileged state of a RobosuiteTask."""

    def __init__(self, task: RobosuiteTask):
        self.task = task
        self.env = task._env
        self.reset()

    def reset(self) -> None:
        """Start a new episode."""
        self.phase = 0
        self.timer = 0

    def move(self, target_base: np.ndarray, gripper: float, yaw: float = 0.0) -> np.ndarray:
        """Action toward a base-frame position, gripper down and turned `yaw` rad about base z.

        The OSC setpoint moves by the whole error, capped at one step's 5 cm / 0.5 rad.
        """
        from scipy.spatial.transform import Rotation

        pos, rot = self.task.eef_pose()
        dpos = np.clip((target_base - pos) / POS_SCALE_M, -1.0, 1.0)
        target_rot = Rotation.from_euler("z", yaw).as_matrix() @ _NOMINAL_EEF_ROT
        drpy = Rotation.from_matrix(target_rot @ rot.T).as_euler("xyz")
        return np.concatenate([dpos, np.clip(drpy / ROT_SCALE_RAD, -1.0, 1.0), [gripper]])

    @abc.abstractmethod
    def action(self) -> np.ndarray:
        """The next action in our 7-D convention."""


class LiftExpert(Expert):
    """Above the cube, down, close, lift."""

    def action(self) -> np.ndarray:
        cube = self.task.to_base(self.env.sim.data.body_xpos[self.env.cube_body_id])
        pos, _ = self.task.eef_pose()
        yaw = _cube_yaw(self.env)
        above = cube + [0.0, 0.0, 0.08]
        if self.phase == 0:
            if np.linalg.norm(pos[:2] - cube[:2]) < 0.01 and abs(pos[2] - above[2]) < 0.03:
                self.phase = 1
            return self.move(above, 1.0, yaw)
        if self.phase == 1:
            if pos[2] - cube[2] < 0.01:
                self.phase = 2
            return self.move(cube, 1.0, yaw)
        if self.phase == 2:
            self.timer += 1
            if self.timer > 8:
                self.phase = 3
            return self.move(cube, -1.0, yaw)
        return self.move(cube * [1, 1, 0] + [0, 0, pos[2] + 0.1], -1.0, yaw)


def _cube_yaw(env) -> float:
    """Cube yaw relative to the gripper's finger axis, folded into [-pi/4, pi/4]."""
    quat = env.sim.data.body_xquat[env.cube_body_id]
    yaw = 2 * np.arctan2(quat[3], quat[0])
    return (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4


class DoorExpert(Expert):
    """Hook the closed fingers behind the handle bar and pull the door along its arc.

    The bar runs parallel to the door, 5 cm in front of it; the Panda hand is too wide to grasp it
    from above without hitting the door, so the fingers (spread parallel to the door) go down into
    the gap behind the bar and pull toward the robot, turning with the door.
    """

    GAP_M = 0.042  # handle site to the middle of the bar-door gap, along the door normal

    def action(self) -> np.ndarray:
        env = self.env
        hook = self._hook_point()
        pos, _ = self.task.eef_pose()
        yaw = np.pi / 2 + env.sim.data.qpos[env.hinge_qpos_addr]
        if self.phase == 0:
            above = hook + [0.0, 0.0, 0.12]
            if np.linalg.norm(pos - above) < 0.015:
                self.phase = 1
            return self.move(above, -1.0, yaw)
        if self.phase == 1:
            if np.linalg.norm(pos - hook) < 0.015:
                self.phase = 2
            return self.move(hook, -1.0, yaw)
        return self.move(self._along_arc(hook, 0.15), -1.0, yaw)

    def _hook_point(self) -> np.ndarray:
        """Base-frame point in the gap between handle bar and door, just below the bar's centre."""
        env, data = self.env, self.task._data
        panel = env.sim.model._model.geom("Door_panel").id
        normal = data.geom_xmat[panel].reshape(3, 3)[:, 1]  # the panel's thin axis
        handle = np.asarray(env._handle_xpos)
        normal = normal * np.sign(normal @ (handle - data.geom_xpos[panel]))
        return self.task.to_base(handle - self.GAP_M * normal + [0.0, 0.0, -0.01])

    def _along_arc(self, handle_base: np.ndarray, dangle: float) -> np.ndarray:
        """The handle position after the door turns `dangle` rad further about its hinge."""
        env = self.env
        joint = env.sim.model._model.joint(env.door.joints[0])
        anchor = self.task.to_base(env.sim.data._data.xanchor[joint.id])
        axis_world = env.sim.data._data.xaxis[joint.id]
        base_rot = self.task._data.xmat[self.task._base].reshape(3, 3)
        axis = base_rot.T @ axis_world
        r = handle_base - anchor
        rot = _axis_angle_matrix(axis, dangle)
        return anchor + rot @ r


def _axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix [3, 3] of `angle` rad about unit `axis`."""
    quat = np.empty(4)
    mujoco.mju_axisAngle2Quat(quat, np.asarray(axis, dtype=np.float64), angle)
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, quat)
    return mat.reshape(3, 3)
