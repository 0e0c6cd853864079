"""The setpoint ramp: from a policy action (5 Hz) to a joint setpoint each control step (100 Hz).

A checked action [7] is mapped exactly as the simulator maps it (core.widowx_control.step_target:
end-effector step, workspace box, IK, per-step joint limit; a step whose IK fails is skipped; the
gripper command is absolute). The joint setpoint then ramps linearly from the previous joint target
to the new one over `ramp_fraction` of the policy period (BridgeConfig explains the default) and
holds. A ramp is slowed where a joint would exceed the shield's velocity limit (to at most two
policy periods), and starts at the first control step after the action arrived: counted from the
policy call, the inference time would be a jump in the setpoint.

The ramp advances by one control period per control step, not by the clock: a late or missed
control tick (a stalled process) delays the ramp instead of moving the setpoint ahead of what the
shield's step limit lets out. Counted by the clock, a 20 ms stall during the first, fastest move
left the joints at the velocity limit 20 ms behind the ramp for good; the policy then saw the arm
short of its target and took another path (in simulated time with one 20 ms stall at the first
move: 0 of 5 seeds opened the drawer; counted by steps, all 5 as without the stall).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from robolearn.hardware.bridge_types import BridgeConfig

from robolearn.core import widowx as wx
from robolearn.core import widowx_control as control
from robolearn.core.spec import ACTION_DIM


def check_action(action: Any) -> tuple[np.ndarray | None, str, str]:
    """A policy's output as (action float64 [7] clipped to [-1, 1], "", "") or, when it cannot be
    used, (None, kind, error) with kind "policy_shape" (not 7 numbers), "policy_type" (not real
    floats: bool, integer, str, complex or object values are refused, never converted) or
    "policy_nan"."""
    try:
        act = np.asarray(action)
    except (TypeError, ValueError):  # e.g. ragged sequences
        act = None
    if act is None or act.shape != (ACTION_DIM,):
        shape = "not numbers" if act is None else list(act.shape)
        return None, "policy_shape", f"policy action must have shape ({ACTION_DIM},), got {shape}"
    if act.dtype.kind != "f":
        return (
            None,
            "policy_type",
            f"policy action must be real floats, got dtype {act.dtype} ({act.tolist()!r:.80})",
        )
    act = act.astype(np.float64)
    if not np.all(np.isfinite(act)):
        return None, "policy_nan", f"policy action has NaN/inf: {act.tolist()}"
    return np.clip(act, -1.0, 1.0), "", ""


class SetpointRamp:
    """The end-effector target, the joint ramp toward its joint target, and the finger goal, for
    BridgeConfig `cfg` (policy and control rates, ramp_fraction, the shield's velocity limit)."""

    def __init__(self, cfg: BridgeConfig):
        self._period = 1.0 / cfg.policy_hz
        self._ramp_s = cfg.ramp_fraction * self._period
        self._dt = 1.0 / cfg.control_hz
        self._max_velocity = cfg.shield.max_velocity_rad_s * (1.0 - 1e-6)
        self._target: control.EETarget | None = None
        self._from = np.zeros(wx.NUM_JOINTS)
        self._sent = 0  # setpoints given since the latest action (or start)
        self._len_s = self._ramp_s
        self.finger_m = wx.FINGER_UPPER_M  # the finger goal (m)

    def start(self, q_rad: np.ndarray, finger_m: float, now_s: float) -> None:
        """Target the measured pose: FK of arm q (rad) [6]; the finger goal stays at finger_m."""
        pose = wx.fk(q_rad)
        self._target = control.EETarget(
            pose[:3, 3], wx.mat_to_rpy(pose[:3, :3]), np.array(q_rad, dtype=np.float64)
        )
        self._from, self._sent = np.array(q_rad, dtype=np.float64), 0
        self.finger_m = finger_m

    def step(self, act: np.ndarray) -> bool:
        """Move the target by a checked action [7] (check_action); False when IK failed and the
        step was skipped (the joint target stays)."""
        target, ok = control.step_target(self._target, act)
        self._aim(target, act[6])
        return ok

    def step_joints(self, goal: control.JointGoal) -> None:
        """Move the joint target toward goal.q_rad (widowx_control.joint_step_target: at most
        RETURN_JOINT_STEP_RAD a joint, within the joint limits; no IK), the gripper to
        goal.gripper: a step of the return to the start pose between reset-free phases."""
        gripper = float(np.clip(np.nan_to_num(goal.gripper, nan=1.0), -1.0, 1.0))
        self._aim(control.joint_step_target(self._target, goal), gripper)

    def _aim(self, target: control.EETarget, gripper: float) -> None:
        self._from, self._sent = self._target.q_rad, 0
        self._target = target
        slowest = float(np.max(np.abs(target.q_rad - self._from))) / self._max_velocity
        self._len_s = min(2.0 * self._period, max(self._ramp_s, slowest))
        self.finger_m = control.gripper_target_m(gripper)

    def setpoint(self, now_s: float) -> np.ndarray:
        """The arm joint setpoint (rad) [6] for the next control step (at now_s, s): the k-th
        call after an action is k control periods along its ramp, whenever it comes."""
        self._sent += 1
        frac = min(1.0, self._sent * self._dt / self._len_s)
        return self._from + frac * (self._target.q_rad - self._from)

    @property
    def sent(self) -> int:
        """Setpoints given since the latest action (or start)."""
        return self._sent
