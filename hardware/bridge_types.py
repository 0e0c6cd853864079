"""What crosses the bridge core's edge: its settings (BridgeConfig), the measured joints going in
(with their checks), and the JointCommand coming out. No ROS, no jax."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from robolearn.hardware.passivity import PassivityConfig
from robolearn.hardware.readings import ReadingLimits
from robolearn.hardware.shield import ShieldConfig

from robolearn.core import widowx_control as control
from robolearn.core.errors import ConfigError, RobolearnError

SIM_RAMP_FRACTION = control.RAMP_CHUNKS / control.INTERP_CHUNKS


class ObservationError(RobolearnError, ValueError):
    """A joint state or image of the wrong shape, type or with NaN/inf (rejected, not stored)."""


@dataclasses.dataclass(frozen=True)
class BridgeConfig:
    """Bridge settings. Rates in Hz; the filter's and shield's dt_s are set to 1 / control_hz.

    instruction: recorded with each episode (the task name when empty).
    image_size: the side the policy's images are resized to (its training size).
    record_dir: episode store for deployment episodes; None records nothing. The bridge writes
        nothing itself: it needs an episode writer for this directory (robolearn.hardware.recording;
        robolearn.runs.deploy hands it the episode store's).
    task: the task the policy was trained for (checkpoint check, episode meta).
    policy_name: what acted, for the episode meta (e.g. "bundle:drawer/bc").
    ramp_fraction: the share of the policy period over which joint setpoints ramp to the target.
        The simulator ramps over 70 % (SIM_RAMP_FRACTION; with that setting at 50 Hz the commands
        equal its per-chunk targets); the default is the whole period: a 70 % ramp moves a joint up
        to 1/0.7 times the velocity limit, and on the strongly damped servos that injects more
        energy than the default tank holds. Measured on the simulated arm
        (robolearn.hardware.sim_arm, drawer BC policy, 20 seeds of 15 s): whole period, filter on:
        20/20 opened, alpha < 1 on 0.4 % of control steps; 70 %, filter on: 15/20, alpha < 1 on
        55 %; 70 %, filter off: 20/20 but every episode overdraws the tank (by up to 31 J).
    joint_delay_s: the loop's delay beyond a joint state's age since arrival: how old it already
        was on arrival (the driver's sampling, transport) plus how late a command takes effect
        (transport, the driver's next cycle); default one 100 Hz period. The passivity filter
        sees the measured position extrapolated to when the command acts, q + qdot * (age since
        arrival + joint_delay_s), capped at max_extrapolation_s. With a lagging q the spring
        error along the motion looks larger and the tank pays for energy the command never
        injected: with 10 ms old joint states and no extrapolation the drawer policy stalled in
        4/4 episodes (the filter gating ~96 % of control steps); over ROS 2 with 5 ms it still
        stalled in 1 of 12 runs. A blocked arm has qdot = 0, so pushing into contact is gated
        as before.
    policy_deadline_s: the policy watchdog: a policy step without a result this long after it
        was due (not started, or still computing) holds, and a result that comes later is never
        applied. None: two policy periods (0.4 s at 5 Hz), which leaves room for the node's wait
        for a fresh camera frame (up to 0.1 s) and inference; `policy_deadline` is the value.
    readings: what a joint reading may show before it is refused as implausible
        (robolearn.hardware.readings).
    """

    policy_hz: float = control.CONTROL_HZ
    control_hz: float = 100.0
    instruction: str = ""
    image_size: int = 64
    passivity: PassivityConfig = dataclasses.field(default_factory=PassivityConfig)
    shield: ShieldConfig = dataclasses.field(default_factory=ShieldConfig)
    record_dir: str | None = None
    task: str = "drawer"
    policy_name: str = ""
    ramp_fraction: float = 1.0
    joint_delay_s: float = 0.01
    max_extrapolation_s: float = 0.03
    policy_deadline_s: float | None = None
    readings: ReadingLimits = dataclasses.field(default_factory=ReadingLimits)

    def __post_init__(self):
        for name in ("joint_delay_s", "max_extrapolation_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 0.2:
                raise ConfigError(f"bridge.{name} must be in [0, 0.2] s, got {value!r}")
        if not isinstance(self.ramp_fraction, int | float) or not 0 < self.ramp_fraction <= 1:
            raise ConfigError(f"bridge.ramp_fraction must be in (0, 1], got {self.ramp_fraction!r}")
        for name in ("policy_hz", "control_hz"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"bridge.{name} must be a number > 0 Hz, got {value!r}")
        if self.control_hz < self.policy_hz:
            raise ConfigError(
                f"bridge.control_hz ({self.control_hz}) must be >= policy_hz ({self.policy_hz})"
            )
        if not isinstance(self.image_size, int) or not 16 <= self.image_size <= 256:
            raise ConfigError(
                f"bridge.image_size must be an integer in 16..256, got {self.image_size!r}"
            )
        deadline = self.policy_deadline_s
        number = isinstance(deadline, int | float) and not isinstance(deadline, bool)
        if deadline is not None and (not number or not math.isfinite(deadline) or deadline <= 0):
            raise ConfigError(f"bridge.policy_deadline_s must be > 0 s or None, got {deadline!r}")
        dt = 1.0 / self.control_hz
        object.__setattr__(self, "passivity", dataclasses.replace(self.passivity, dt_s=dt))
        object.__setattr__(self, "shield", dataclasses.replace(self.shield, dt_s=dt))

    @property
    def policy_deadline(self) -> float:
        """The policy watchdog's deadline (s): policy_deadline_s, or two policy periods."""
        if self.policy_deadline_s is not None:
            return float(self.policy_deadline_s)
        return 2.0 / self.policy_hz


@dataclasses.dataclass
class JointCommand:
    """One command that passed the shield: arm joints (rad) [6], finger position (m), time (s)."""

    q_rad: np.ndarray
    finger_m: float
    stamp_s: float


@dataclasses.dataclass
class MeasuredJoints:
    """One checked joint state: time (s), arm q (rad) [6], qdot (rad/s) [6], fingers (m) [2],
    effort (mA) [6] or None."""

    stamp_s: float
    q: np.ndarray
    qdot: np.ndarray
    finger: np.ndarray
    effort: np.ndarray | None


def check_vector(x: Any, n: int, name: str) -> np.ndarray:
    """`x` as a float64 copy of shape [n]; ObservationError naming `name` if not, or on NaN/inf."""
    try:
        arr = np.array(x, dtype=np.float64)  # a copy: callers may reuse their buffers
    except (TypeError, ValueError) as exc:
        raise ObservationError(f"{name} must be {n} numbers, got {x!r}") from exc
    if arr.shape != (n,):
        raise ObservationError(f"{name} must have shape ({n},), got {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ObservationError(f"{name} has NaN/inf: {arr.tolist()}")
    return arr
