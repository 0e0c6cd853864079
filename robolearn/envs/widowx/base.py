"""The base of the WidowX MuJoCo tasks (5 Hz, 64x64); the scenes: drawer.py, push.py, contact.py.

A task owns one compiled MjModel/MjData and one Camera. Per episode it places objects from the
reset rng (and, with `visual_randomization`, jitters light, colours and camera pose), puts the arm
in its start pose, and runs the end-effector control of robolearn.core.widowx_control. Observations:
image from camera `scene`, proprio = tip xyz (m) + rpy (rad) + gripper opening [0, 1],
state = concat(qpos, qvel). Static placements (cabinet pose, push target) are model parameters, not
physics state: `layout()` returns them.
"""

from __future__ import annotations

import abc

import mujoco
import numpy as np

from robolearn.core import widowx as wx
from robolearn.core import widowx_control as control
from robolearn.envs.base import Task, TaskConfig, TaskInfo, mat_to_rpy
from robolearn.envs.render import Camera
from robolearn.envs.widowx import experts, scenes
from robolearn.envs.widowx.arm import FINGER_ACTUATORS, FINGER_JOINTS, TIP_SITE
from robolearn.envs.widowx.visuals import VisualRandomizer

ARM = "wx250s/"


class WidowXTask(Task):
    """Base of the WidowX tasks: arm control, observations, visual randomization.

    Subclasses build the scene (`_build`), place objects (`_place`), and define `_success` and
    the expert (`_make_expert`).
    """

    SUPPORTS_TIMING = True
    RETURNS_TO_START = True

    def __init__(self, info: TaskInfo, config: TaskConfig):
        self._lagged_image: np.ndarray | None = None  # this step's image, taken before its end
        self.model = mujoco.MjModel.from_xml_string(self._build().to_xml_string())
        self.data = mujoco.MjData(self.model)
        super().__init__(info, config, state_dim=self.model.nq + self.model.nv)
        m = self.model
        self._arm_qadr = np.array([m.joint(ARM + n).qposadr[0] for n in wx.JOINT_NAMES])
        self._arm_act = np.array([m.actuator(ARM + n).id for n in wx.JOINT_NAMES])
        self._arm_dof = np.array([m.joint(ARM + n).dofadr[0] for n in wx.JOINT_NAMES])
        self._arm_geom = np.array(
            [m.body(int(b)).name.startswith(ARM) for b in m.geom_bodyid], dtype=bool
        )
        self._finger_qadr = np.array([m.joint(ARM + n).qposadr[0] for n in FINGER_JOINTS])
        self._finger_act = np.array([m.actuator(ARM + n).id for n in FINGER_ACTUATORS])
        self._tip = m.site(ARM + TIP_SITE).id
        self._start = control.start_target()
        self.target = self._start
        self._camera = Camera(m, config.image_size, scenes.CAMERA)
        self._visuals = VisualRandomizer(m) if config.visual_randomization else None
        self.expert = self._make_expert()

    # -- to implement per scene ----------------------------------------------------------------

    @abc.abstractmethod
    def _build(self):
        """The scene's MJCF root (dm_control.mjcf) with the arm attached."""

    @abc.abstractmethod
    def _place(self, rng: np.random.Generator) -> None:
        """Randomize object placement for a new episode."""

    @abc.abstractmethod
    def _make_expert(self) -> experts.Expert:
        """The task's scripted expert."""

    @abc.abstractmethod
    def layout(self) -> np.ndarray:
        """The episode's placement of static scene parts (not in qpos), float64 [K]."""

    # -- Task ----------------------------------------------------------------------------------

    def _reset(self, rng: np.random.Generator) -> None:
        mujoco.mj_resetData(self.model, self.data)
        self._lagged_image = None
        self._place(rng)
        if self._visuals is not None:
            self._visuals.apply(rng)
        self.target = control.EETarget(
            self._start.pos_m.copy(), self._start.rpy_rad.copy(), self._start.q_rad.copy()
        )
        self.data.qpos[self._arm_qadr] = self.target.q_rad
        self.data.qpos[self._finger_qadr] = wx.FINGER_UPPER_M
        self.data.ctrl[self._arm_act] = self.target.q_rad
        self.data.ctrl[self._finger_act] = wx.FINGER_UPPER_M
        mujoco.mj_forward(self.model, self.data)
        self.expert.reset()

    def _apply_action(self, action: np.ndarray) -> None:
        q_prev = self.target.q_rad
        self.target, _ = control.step_target(self.target, action)
        self._drive(q_prev, action[6])

    def _drive(self, q_prev: np.ndarray, gripper: float) -> None:
        """One control step's physics from joint target q_prev to self.target's, the gripper
        command `gripper` absolute."""
        self.data.ctrl[self._finger_act] = control.gripper_target_m(gripper)
        per_chunk = control.SUBSTEPS // control.INTERP_CHUNKS
        # (fraction of the way to the new joint target, physics steps): the ramp, then the hold
        chunks = [
            (min(1.0, k / control.RAMP_CHUNKS), per_chunk)
            for k in range(1, control.INTERP_CHUNKS + 1)
        ]
        dwell, lag = self._timing_draws()
        if dwell:
            chunks.append((1.0, dwell))
        shot = sum(n for _, n in chunks) - min(lag, control.SUBSTEPS) if lag else None
        done = 0
        for frac, n in chunks:
            self.data.ctrl[self._arm_act] = q_prev + frac * (self.target.q_rad - q_prev)
            if shot is not None and done <= shot < done + n:  # the camera frame of this step
                if shot > done:
                    self.advance(shot - done)
                self._lagged_image = self._camera.render(self.data)
                if done + n > shot:
                    self.advance(done + n - shot)
            else:
                self.advance(n)
            done += n

    def _return_to_start(self) -> tuple[int, bool]:
        """The scripted return to the start pose (widowx_control.return_to_start) in this task's
        control steps; the step counter is left for continue_as to restart."""

        def step(command):
            if isinstance(command, control.JointGoal):
                q_prev = self.target.q_rad
                self.target = control.joint_step_target(self.target, command)
                self._drive(q_prev, command.gripper)
                obs = self._observe()
            else:
                obs = self.step(command)[0]
            return obs["proprio"], self.data.qpos[self._arm_qadr].copy(), False

        return control.return_to_start(step, self._proprio(), self.data.qpos[self._arm_qadr].copy())

    def _timing_draws(self) -> tuple[int, int]:
        """(extra hold, camera lag) of this step in physics steps, drawn from the episode's rng
        when step_dwell_max_s / camera_lag_max_s are set (TaskConfig), else (0, 0)."""
        cfg, dt = self.config, self.model.opt.timestep
        dwell = (
            round(self.np_random.uniform(0, cfg.step_dwell_max_s) / dt)
            if cfg.step_dwell_max_s
            else 0
        )
        lag = (
            round(self.np_random.uniform(0, cfg.camera_lag_max_s) / dt)
            if cfg.camera_lag_max_s
            else 0
        )
        return dwell, lag

    def _image(self) -> np.ndarray:
        lagged, self._lagged_image = self._lagged_image, None
        return lagged if lagged is not None else self._camera.render(self.data)

    def _proprio(self) -> np.ndarray:
        opening = (self.data.qpos[self._finger_qadr].mean() - wx.FINGER_LOWER_M) / (
            wx.FINGER_UPPER_M - wx.FINGER_LOWER_M
        )
        return np.concatenate(
            [self.tip_pos(), mat_to_rpy(self.tip_mat()), [np.clip(opening, 0.0, 1.0)]]
        )

    def _sim_state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel])

    def expert_action(self) -> np.ndarray:
        """The scripted expert's normalized action [7] for the current state."""
        return self.expert.act(self)

    def close(self) -> None:
        """Release the renderer."""
        self._camera.close()

    # -- privileged state for experts and tests ------------------------------------------------

    def tip_pos(self) -> np.ndarray:
        """Measured gripper-tip position in the base frame (m) [3]."""
        return self.data.site_xpos[self._tip].copy()

    def tip_mat(self) -> np.ndarray:
        """Measured gripper-tip orientation in the base frame [3, 3]."""
        return self.data.site_xmat[self._tip].reshape(3, 3).copy()

    def finger_q(self) -> np.ndarray:
        """Measured finger joint positions (m from the centre), [2]."""
        return self.data.qpos[self._finger_qadr].copy()

    def arm_q(self) -> np.ndarray:
        """Measured arm joint angles (rad) [6]."""
        return self.data.qpos[self._arm_qadr].copy()

    # -- joint-level driving (robolearn.hardware.sim_arm: the simulated arm behind the robot bridge)
    # ------

    def arm_qdot(self) -> np.ndarray:
        """Measured arm joint velocities (rad/s) [6]."""
        return self.data.qvel[self._arm_dof].copy()

    def arm_torque(self) -> np.ndarray:
        """Torque the arm's position actuators apply (N m) [6], within arm.TORQUE_LIMIT."""
        return self.data.actuator_force[self._arm_act].copy()

    def set_joint_targets(self, q_rad: np.ndarray, finger_m: float) -> None:
        """Joint position targets of the six arm actuators (rad) [6] and both fingers (m).

        Bypasses the end-effector control: the caller (a robot bridge) drives the joints directly.
        MuJoCo clamps each target into its actuator's ctrlrange (the joint limits).
        """
        self.data.ctrl[self._arm_act] = np.asarray(q_rad, dtype=np.float64)
        self.data.ctrl[self._finger_act] = float(finger_m)

    def advance(self, nstep: int) -> None:
        """Run `nstep` physics steps (model.opt.timestep each) with the current targets."""
        mujoco.mj_step(self.model, self.data, nstep=nstep)

    def camera_image(self) -> np.ndarray:
        """A fresh frame of the task camera for the current physics state, uint8 [H, W, 3]."""
        return self._camera.render(self.data)

    def success_now(self) -> bool:
        """Task success for the current physics state."""
        return bool(self._success())

    def arm_contact_force_n(self) -> tuple[float, float]:
        """(total, max) normal contact force (N) on the arm and gripper from the scene."""
        total = peak = 0.0
        force = np.zeros(6)
        for i in range(self.data.ncon):
            con = self.data.contact[i]
            if not (self._arm_geom[con.geom1] or self._arm_geom[con.geom2]):
                continue
            mujoco.mj_contactForce(self.model, self.data, i, force)
            total += abs(force[0])
            peak = max(peak, abs(force[0]))
        return total, peak
