"""The setpoint ramp: from a policy action (5 Hz) to a joint setpoint each control step (100 Hz).

A checked action [7] is mapped exactly as the simulator maps it (core.widowx_control.step_target:
end-effector step, workspace box, IK, per-step joint limit; a step whose IK fails is skipped; the
gripper command is absolute). The joint setpoint then ramps linearly from the previous joint target
to the new one over `ramp_fraction` of the policy period (BridgeConfig explains the default) and
holds. A ramp is slowed where a joint would exceed the shield's velocity limit (to at most two
policy periods), and starts at the first control step after the action arrived: counted from the
policy call, the inference time would be a jump in the setpoint.
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
    used, (None, kind, error) with kind "policy_shape" (not 7 numbers) or "policy_nan"."""
    try:
        act = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        act = None
    if act is None or act.shape != (ACTION_DIM,):
        shape = "not numbers" if act is None else list(act.shape)
        return None, "policy_shape", f"policy action must have shape ({ACTION_DIM},), got {shape}"
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
        self._t0: float | None = 0.0
        self._len_s = self._ramp_s
        self.finger_m = wx.FINGER_UPPER_M  # the finger goal (m)

    def start(self, q_rad: np.ndarray, finger_m: float, now_s: float) -> None:
        """Target the measured pose: FK of arm q (rad) [6]; the finger goal stays at finger_m."""
        pose = wx.fk(q_rad)
        self._target = control.EETarget(
            pose[:3, 3], wx.mat_to_rpy(pose[:3, :3]), np.array(q_rad, dtype=np.float64)
        )
        self._from, self._t0 = np.array(q_rad, dtype=np.float64), now_s
        self.finger_m = finger_m

    def step(self, act: np.ndarray) -> bool:
        """Move the target by a checked action [7] (check_action); False when IK failed and the
        step was skipped (the joint target stays)."""
        target, ok = control.step_target(self._target, act)
        self._from, self._t0 = self._target.q_rad, None
        self._target = target
        slowest = float(np.max(np.abs(target.q_rad - self._from))) / self._max_velocity
        self._len_s = min(2.0 * self._period, max(self._ramp_s, slowest))
        self.finger_m = control.gripper_target_m(act[6])
        return ok

    def setpoint(self, now_s: float) -> np.ndarray:
        """The arm joint setpoint (rad) [6] for the control step at now_s (s)."""
        if self._t0 is None:
            self._t0 = now_s
        frac = min(1.0, max(0.0, (now_s - self._t0 + self._dt) / self._len_s))
        return self._from + frac * (self._target.q_rad - self._from)
