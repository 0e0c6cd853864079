"""Joint readings the arm can have produced: the check every joint state passes before the bridge
stores it (robolearn.hardware.bridge.Bridge.observe_joints).

A joint state is implausible, and refused with the reason, when
- a joint lies outside the shield's joint limits widened by `margin_rad`, or a finger outside its
  limits widened by `finger_margin_m`;
- a joint velocity is faster than `max_speed_rad_s` (a finite difference over microseconds, a
  corrupted message): the energy tank would refill from it;
- a joint moved farther from the last accepted reading than `max_speed_rad_s` times the time
  between their stamps, plus `jump_tolerance_rad` (sensor noise): an encoder glitch;
- its stamp lies before the last accepted one's (a clock that jumped back).

A refused reading never becomes the reference: the next ones are checked against the last good
one, with an allowance that grows with the time since, so an arm that really moved (by hand, in a
stop) is accepted again after at most a second or so. After a clock that jumped back, the reference
keeps its position and takes the new stamp, so the check recovers from that too.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from robolearn.hardware.shield import ShieldConfig

from robolearn.core import widowx as wx
from robolearn.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ReadingLimits:
    """What a joint reading may show (rad, rad/s, m); validated on construction.

    margin_rad: how far beyond the shield's joint limits a reading may lie (the shield's limits
        are the URDF's shrunk by 0.05 rad, so the default allows 0.2 rad past the URDF's).
    max_speed_rad_s: the fastest the arm can move, per joint: twice the WidowX's velocity limit.
    jump_tolerance_rad: sensor noise and stamp jitter allowed on top of max_speed x elapsed.
    finger_margin_m: how far beyond the shield's finger limits a finger reading may lie.
    """

    margin_rad: float = 0.25
    max_speed_rad_s: float = 2.0 * float(wx.VELOCITY_LIMIT_RAD_S)
    jump_tolerance_rad: float = 0.05
    finger_margin_m: float = 0.01

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"readings.{field.name} must be a finite number >= 0, got {value!r}"
                )
        if self.max_speed_rad_s <= 0:
            raise ConfigError(f"readings.max_speed_rad_s must be > 0, got {self.max_speed_rad_s}")


class ReadingCheck:
    """Checks each joint state against the limits and the last accepted one (see the module doc)."""

    def __init__(self, limits: ReadingLimits, shield: ShieldConfig):
        self.limits = limits
        self._lo = np.asarray(shield.q_lower_rad) - limits.margin_rad
        self._hi = np.asarray(shield.q_upper_rad) + limits.margin_rad
        self._finger_lo = shield.finger_lower_m - limits.finger_margin_m
        self._finger_hi = shield.finger_upper_m + limits.finger_margin_m
        self._ref_stamp_s: float | None = None  # the last accepted reading's time (s) ...
        self._ref_q: np.ndarray | None = None  # ... and arm q (rad) [6]

    def check(
        self, stamp_s: float, q_rad: np.ndarray, qdot: np.ndarray, finger_m: np.ndarray
    ) -> str:
        """Why the reading (time s, arm q rad [6], qdot rad/s [6], fingers m [2], all finite) is
        implausible, or the empty string when it is plausible (it then becomes the reference)."""
        reason = self._range(q_rad, qdot, finger_m) or self._motion(stamp_s, q_rad)
        if not reason:
            self._ref_stamp_s, self._ref_q = stamp_s, q_rad.copy()
        return reason

    def _range(self, q_rad, qdot, finger_m) -> str:
        out = np.flatnonzero((q_rad < self._lo) | (q_rad > self._hi))
        if out.size:
            i = int(out[0])
            return (
                f"{wx.JOINT_NAMES[i]} reads {q_rad[i]:.3f} rad, outside "
                f"[{self._lo[i]:.3f}, {self._hi[i]:.3f}]"
            )
        fast = np.flatnonzero(np.abs(qdot) > self.limits.max_speed_rad_s)
        if fast.size:
            i = int(fast[0])
            return (
                f"{wx.JOINT_NAMES[i]} velocity {qdot[i]:.3g} rad/s is faster than the arm can move "
                f"({self.limits.max_speed_rad_s:.2f} rad/s)"
            )
        if np.any((finger_m < self._finger_lo) | (finger_m > self._finger_hi)):
            return f"fingers read {np.round(finger_m, 4).tolist()} m, outside their limits"
        return ""

    def _motion(self, stamp_s: float, q_rad: np.ndarray) -> str:
        if self._ref_q is None:
            return ""
        elapsed = stamp_s - self._ref_stamp_s
        if elapsed < 0.0:
            self._ref_stamp_s = stamp_s  # keep the position, so the next reading can pass
            return f"stamped {-elapsed:.3f} s before the previous joint state"
        allowed = self.limits.max_speed_rad_s * elapsed + self.limits.jump_tolerance_rad
        moved = np.abs(q_rad - self._ref_q)
        if (moved > allowed).any():
            i = int(np.argmax(moved))
            return (
                f"{wx.JOINT_NAMES[i]} moved {moved[i]:.3f} rad in {elapsed:.3f} s, more than the "
                f"arm can ({allowed:.3f} rad)"
            )
        return ""


class DifferencedVelocity:
    """Joint velocities for a driver that publishes none: positions differenced over at least
    `min_interval_s` of arrival time.

    Differencing consecutive messages divides by the gap between them, microseconds in a burst,
    which turns sensor noise into absurd speeds (refused by the plausibility check, holding the
    arm). Instead the reference reading is kept until one arrives `min_interval_s` or more after
    it; readings in between get the last velocity found (zero before the first).
    """

    def __init__(self, num_joints: int = wx.NUM_JOINTS, min_interval_s: float = 0.01):
        if not math.isfinite(min_interval_s) or min_interval_s <= 0:
            raise ConfigError(f"min_interval_s must be > 0, got {min_interval_s}")
        self.min_interval_s = min_interval_s
        self._reference: tuple[float, np.ndarray] | None = None
        self._qdot = np.zeros(num_joints)

    def update(self, now_s: float, q_rad: np.ndarray) -> np.ndarray:
        """The velocity estimate (rad/s) for the reading q_rad that arrived at now_s."""
        q = np.asarray(q_rad, dtype=np.float64)
        if self._reference is None or now_s < self._reference[0]:
            self._reference = (now_s, q)  # the first reading, or a clock that jumped back
        elif now_s - self._reference[0] >= self.min_interval_s:
            t0, q0 = self._reference
            self._qdot = (q - q0) / (now_s - t0)
            self._reference = (now_s, q)
        return self._qdot.copy()
