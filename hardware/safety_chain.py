"""The safety chain every bridge command passes, on every control step, in any mode:

    joint state -> ReadingCheck (implausible readings refused before they are stored)
    setpoint -> Shield.limit (joint and per-step limits; only for the policy's setpoints)
             -> PassivityFilter (energy tank) -> Shield.check (everything) -> command

Whatever the mode (running, hold, safe stop, restart), the command is at most the shield's step
limit from the last command sent: the shield keeps its last safe command across restarts and
moves a safe stop toward the measured position one step at a time.

The shield's joint and step limits come before the filter: a late control tick, an unfinished ramp
or a target past a joint limit asks for more than can be sent, and the tank would pay for all of it
before the shield cut it, again on every step (measured over ROS 2: the tank drained by the first
move's clipped steps, or by a target held past a joint limit after success while the arm moved
normally). Only the shield's output is ever sent, and the filter is told when the shield changed
its command, so the tank measures the next step from what the arm was really sent.

The filter sees the measured position extrapolated to when the command acts (BridgeConfig
joint_delay_s, max_extrapolation_s): with a lagging q it pays for energy no command injected.
"""

from __future__ import annotations

import numpy as np
from robolearn.hardware.bridge_types import BridgeConfig, MeasuredJoints
from robolearn.hardware.passivity import PassivityFilter, TankState
from robolearn.hardware.readings import ReadingCheck
from robolearn.hardware.shield import Intervention, Shield

from robolearn.core import widowx as wx


class SafetyChain:
    """Shield limits -> passivity filter -> shield check, and the last command that passed.

    `last_q_rad` [6] / `last_finger_m`: the last command the shield let out (the measured position
    before the first one, None before any joint state); the bridge holds there outside running.
    """

    def __init__(self, cfg: BridgeConfig):
        self.filter = PassivityFilter(cfg.passivity)
        self.shield = Shield(cfg.shield)
        self.readings = ReadingCheck(cfg.readings, cfg.shield)
        self._joint_delay_s = cfg.joint_delay_s
        self._max_extrapolation_s = cfg.max_extrapolation_s
        self._seen_interventions = 0
        self.last_q_rad: np.ndarray | None = None
        self.last_finger_m = wx.FINGER_UPPER_M

    def check_reading(self, joint: MeasuredJoints) -> str:
        """Why the joint state is implausible (robolearn.hardware.readings), or the empty string."""
        return self.readings.check(joint.stamp_s, joint.q, joint.qdot, joint.finger)

    def adopt(self, joint: MeasuredJoints) -> None:
        """Before the first command: hold the measured position (the filter starts from it)."""
        if self.last_q_rad is None:
            self.last_q_rad = joint.q.copy()
            self.last_finger_m = float(np.mean(joint.finger))
            self.filter.reset(self.last_q_rad)

    def restart(self) -> None:
        """A new run from the last command: full tank, shield reset (clears a safe stop; the last
        command stays the step limit's reference)."""
        self.filter.reset(self.last_q_rad)
        self.shield.reset()

    def limit(self, now_s: float, goal_q_rad: np.ndarray) -> np.ndarray:
        """A setpoint (rad) [6] within the shield's joint limits and a step of the last command."""
        return self.shield.limit(now_s, goal_q_rad, self.filter.command)

    def step(
        self,
        now_s: float,
        goal_q_rad: np.ndarray,
        finger_m: float,
        joint: MeasuredJoints,
        image_stamp_s: float | None,
    ) -> list[Intervention]:
        """Filter and check one command (arm rad [6], finger m); the result becomes last_q_rad /
        last_finger_m. image_stamp_s: the latest image's time for the watchdog (now_s: no check).
        Returns the shield interventions of this step."""
        age = now_s - joint.stamp_s + self._joint_delay_s
        q_now = joint.q + joint.qdot * min(max(age, 0.0), self._max_extrapolation_s)
        q_cmd = self.filter.filter(goal_q_rad, q_now, joint.qdot)
        q_safe, finger_safe = self.shield.check(
            now_s,
            q_cmd,
            finger_m,
            joint.q,
            joint.stamp_s,
            image_stamp_s,
            joint.effort,
            float(np.mean(joint.finger)),
        )
        if not np.array_equal(q_safe, q_cmd):
            self.filter.set_command(q_safe)  # the tank measures the next step from here
        self.last_q_rad = np.array(q_safe, dtype=np.float64)
        self.last_finger_m = float(finger_safe)
        return self._new_interventions()

    @property
    def tank(self) -> TankState:
        """The passivity filter's state after the latest step."""
        return self.filter.state

    def _new_interventions(self) -> list[Intervention]:
        """The shield's interventions since the previous call (its list may drop old ones)."""
        total = sum(self.shield.counts.values())
        new = total - self._seen_interventions
        self._seen_interventions = total
        return self.shield.interventions[-new:] if new else []
