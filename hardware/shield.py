"""Safety shield: the last check between the bridge and every arm command.

The Interbotix driver checks nothing (REFERENCES.md section 6), so every command passes here, once
per control step, and comes out inside the limits whatever goes in. In order, `Shield.check`:

1. effort: any |effort| over `effort_limit` (motor current, mA) -> safe stop: mode "stopped",
   latched until `reset()`. A stop moves to the *measured* position at the moment of the stop (so
   a joint pushing into an obstacle stops pushing), within the step limit of the last safe command
   like every other command; the last safe command when none is measured.
2. watchdog: the latest joint state older than `joint_state_timeout_s` (or none yet, or a NaN/inf
   q_meas), or the latest image older than `image_timeout_s` (inf disables that check) -> hold. The
   check runs every control step, so the hold starts within one control period of the timeout. A
   joint state or image stamped more than `future_tolerance_s` after `now_s` (a clock gone wrong:
   its age would be negative and never time out) -> hold as well.
3. NaN/inf anywhere in the command -> hold.
4. joint position limits: each joint clipped into [q_lower_rad, q_upper_rad] (the hardware limits
   shrunk by a margin, so the servos never run into their stops).
5. step limit: each joint moves at most max_velocity_rad_s * dt_s from the last safe command.
6. workspace: the tip (fk of the clipped, step-limited command) must lie in `workspace_box_m`
   grown by `workspace_margin_m` (joint-space interpolation between two in-box targets bows out a
   little). A command outside it is *rejected*, not projected: the arm holds the last safe command,
   because projecting a tip position back into the box needs IK, which can jump. A command outside
   the box that is no farther from it than the last safe command is let through, so an arm that
   starts outside (or is moved out by hand) can come back.
7. fingers: clipped into [finger_lower_m, finger_upper_m].

"Hold" means: the last safe command (or, before the first one, the measured position clipped into
the limits); the mode reads "hold" for that step and "running" again once a check passes (a hold
is not latched; the bridge decides whether to resume). So every command the shield lets out lies
within the step limit of the one before it, in every mode, also across `reset()`. Every
intervention is recorded as an Intervention(time_s, kind, detail), one per reason per step, with
counts by kind.

`Shield.limit` is steps 4 and 5 alone, recorded the same way. The bridge applies it to each
setpoint before the passivity filter (so the energy tank pays only for what can be sent); `check`
still runs every step afterwards and finds nothing more to clip in that case.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np

from robolearn.core import widowx as wx
from robolearn.core import widowx_control as wxc
from robolearn.core.errors import ActionError, ConfigError

NUM_JOINTS = wx.NUM_JOINTS
_TOL = 1e-9  # clips smaller than this (rounding, e.g. a target exactly at a limit) are not recorded
JOINT_MARGIN_RAD = 0.05
# Interbotix / BridgeData's safe-stop currents (mA) per joint, with their 1.7 factor.
EFFORT_LIMIT_MA = tuple(1.7 * np.array([800.0, 1000.0, 600.0, 600.0, 600.0, 700.0]))
KINDS = (
    "nan",
    "joint_limit",
    "step_limit",
    "workspace",
    "finger_limit",
    "stale_joint_states",
    "stale_image",
    "future_joint_states",
    "future_image",
    "effort",
    "stopped",
)
CLIP_KINDS = ("joint_limit", "step_limit", "finger_limit")  # kinds that change a command, not hold


@dataclasses.dataclass(frozen=True)
class ShieldConfig:
    """Shield limits; validated on construction (one-line ConfigError naming the field).

    Angles in rad, lengths in m, times in s, effort in the driver's units (mA for Interbotix).
    Sequences may be lists; they are stored as tuples of floats. future_tolerance_s: how far after
    the control time a joint state or image may be stamped (threads reading the clock in another
    order) before the watchdog holds.
    """

    dt_s: float = 0.01
    q_lower_rad: tuple[float, ...] = tuple(wx.Q_LOWER_RAD + JOINT_MARGIN_RAD)
    q_upper_rad: tuple[float, ...] = tuple(wx.Q_UPPER_RAD - JOINT_MARGIN_RAD)
    max_velocity_rad_s: float = float(wx.VELOCITY_LIMIT_RAD_S)
    workspace_box_m: tuple[tuple[float, ...], tuple[float, ...]] = (
        tuple(wxc.WORKSPACE_BOX_M[0]),
        tuple(wxc.WORKSPACE_BOX_M[1]),
    )
    workspace_margin_m: float = 0.02
    finger_lower_m: float = wx.FINGER_LOWER_M
    finger_upper_m: float = wx.FINGER_UPPER_M
    joint_state_timeout_s: float = 0.1
    image_timeout_s: float = 0.5
    future_tolerance_s: float = 0.01
    effort_limit: tuple[float, ...] = EFFORT_LIMIT_MA
    max_records: int = 100_000

    def __post_init__(self) -> None:
        for name in (
            "dt_s",
            "max_velocity_rad_s",
            "joint_state_timeout_s",
            "image_timeout_s",
            "future_tolerance_s",
        ):
            value = getattr(self, name)
            inf_ok = name == "image_timeout_s"  # inf: no image watchdog (a policy without images)
            if not _is_number(value) or not value > 0 or (math.isinf(value) and not inf_ok):
                raise ConfigError(f"shield.{name} must be a finite number > 0 s, got {value!r}")
        lower = _floats("shield.q_lower_rad", self.q_lower_rad, NUM_JOINTS)
        upper = _floats("shield.q_upper_rad", self.q_upper_rad, NUM_JOINTS)
        if not all(lo < hi for lo, hi in zip(lower, upper, strict=True)):
            raise ConfigError(f"shield.q_upper_rad must be above q_lower_rad, got {upper}, {lower}")
        object.__setattr__(self, "q_lower_rad", lower)
        object.__setattr__(self, "q_upper_rad", upper)
        try:
            box = tuple(_floats("shield.workspace_box_m", c, 3) for c in self.workspace_box_m)
        except TypeError:
            box = ()
        if len(box) != 2 or not all(lo < hi for lo, hi in zip(*box, strict=True)):
            raise ConfigError(
                f"shield.workspace_box_m must be ((x, y, z) low, (x, y, z) high) with low < high, "
                f"got {self.workspace_box_m!r}"
            )
        object.__setattr__(self, "workspace_box_m", box)
        margin = self.workspace_margin_m
        if not _is_number(margin) or not math.isfinite(margin) or margin < 0:
            raise ConfigError(f"shield.workspace_margin_m must be a number >= 0, got {margin!r}")
        fingers = (self.finger_lower_m, self.finger_upper_m)
        _floats("shield.finger_lower_m/finger_upper_m", fingers, 2)
        if not fingers[0] < fingers[1]:
            raise ConfigError(f"shield.finger_lower_m must be below finger_upper_m, got {fingers}")
        effort = _floats("shield.effort_limit", self.effort_limit, NUM_JOINTS)
        if not all(v > 0 for v in effort):
            raise ConfigError(f"shield.effort_limit must be {NUM_JOINTS} numbers > 0, got {effort}")
        object.__setattr__(self, "effort_limit", effort)
        if not isinstance(self.max_records, int) or self.max_records < 1:
            raise ConfigError(f"shield.max_records must be an integer >= 1, got {self.max_records}")


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)


def _finite_float(value) -> float | None:
    """float(value) when it is a finite number (numpy scalars included), else None."""
    if isinstance(value, bool | str | bytes):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _floats(name: str, values, n: int) -> tuple[float, ...]:
    """`values` as a tuple of `n` finite floats, or a one-line ConfigError naming `name`."""
    try:
        items = list(values)
    except TypeError:
        items = []
    if len(items) != n or not all(_is_number(v) and math.isfinite(v) for v in items):
        raise ConfigError(f"{name} must be {n} finite numbers, got {values!r}")
    return tuple(float(v) for v in items)


@dataclasses.dataclass
class Intervention:
    """One change the shield made to a command: when (the caller's clock, s), why, and details."""

    time_s: float
    kind: str  # one of KINDS
    detail: str


def _principal_axis(axis: np.ndarray) -> int:
    idx = int(np.argmax(np.abs(axis)))
    assert axis[idx] == 1.0 and np.count_nonzero(axis) == 1, "WidowX joint axes are x, y or z"
    return idx


_AXIS_INDEX = tuple(_principal_axis(a) for a in wx.JOINT_AXES)
_ORIGINS = tuple(tuple(float(v) for v in o) for o in wx.JOINT_ORIGINS_M)
_TIP = tuple(float(v) for v in wx.TIP_OFFSET_M)


def tip_position_m(q_rad) -> tuple[float, float, float]:
    """Tip position (m, base frame) of wx.fk(q_rad)[:3, 3], ~10x faster (plain floats).

    The chain of core.widowx (all joint origins rpy = 0, axes x/y/z) evaluated from the tip back:
    p_parent = origin_i + R(axis_i, q_i) p_child.
    """
    x, y, z = _TIP
    for i in range(NUM_JOINTS - 1, -1, -1):
        c, s = math.cos(q_rad[i]), math.sin(q_rad[i])
        axis = _AXIS_INDEX[i]
        if axis == 0:
            y, z = c * y - s * z, s * y + c * z
        elif axis == 1:
            x, z = c * x + s * z, -s * x + c * z
        else:
            x, y = c * x - s * y, s * x + c * y
        ox, oy, oz = _ORIGINS[i]
        x, y, z = x + ox, y + oy, z + oz
    return x, y, z


class Shield:
    """Checks each arm + finger command against the limits and the watchdog; see the module doc.

    `mode`: "running", "hold" (the latest check held) or "stopped" (latched safe stop).
    `interventions`: every intervention (the oldest half is dropped past cfg.max_records);
    `counts`: interventions by kind, never dropped.
    """

    def __init__(self, cfg: ShieldConfig | None = None):
        self.cfg = cfg = cfg if cfg is not None else ShieldConfig()
        self._lo = np.asarray(cfg.q_lower_rad)
        self._hi = np.asarray(cfg.q_upper_rad)
        self._max_step = cfg.max_velocity_rad_s * cfg.dt_s
        margin = cfg.workspace_margin_m
        self._box_lo = tuple(v - margin for v in cfg.workspace_box_m[0])
        self._box_hi = tuple(v + margin for v in cfg.workspace_box_m[1])
        self._effort = np.asarray(cfg.effort_limit)
        self._mid_finger = 0.5 * (cfg.finger_lower_m + cfg.finger_upper_m)
        self.interventions: list[Intervention] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self._safe_q: np.ndarray | None = None  # the last command let out (rad) [6]
        self._safe_finger: float | None = None  # ... and its finger position (m)
        self._safe_dist = 0.0  # how far its tip lies outside the workspace box (m)
        self.reset()

    def reset(self) -> None:
        """Back to "running" (clears a safe stop). The last safe command stays the step limit's
        reference: the next command moves at most one step from it, wherever the arm is measured
        (re-referencing on the measured position made restarts jump). The record is kept."""
        self.mode = "running"
        self._stop_q: np.ndarray | None = None

    @property
    def last_safe(self) -> tuple[np.ndarray, float] | None:
        """The latest command the shield let out (q rad [6], finger m), or None."""
        if self._safe_q is None:
            return None
        return self._safe_q.copy(), float(self._safe_finger)

    def limit(self, now_s: float, q_cmd: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """`q_cmd` (rad) [6] clipped into the joint limits and then to the step limit from `ref`
        (rad) [6], the last command sent: check's steps 4 and 5, recorded as they are there.

        The bridge calls it before the passivity filter, so the tank pays only for a step the
        shield will let out; check then finds nothing more to clip (and records nothing twice).
        """
        q = np.asarray(q_cmd, dtype=np.float64)
        out = np.minimum(np.maximum(q, self._lo), self._hi)
        if (np.abs(out - q) > _TOL).any():
            self._record(now_s, "joint_limit", _joint_detail(q, out))
        ref = np.asarray(ref, dtype=np.float64)
        over = np.abs(out - ref) - self._max_step
        if (over > 0.0).any():
            limited = ref + np.clip(out - ref, -self._max_step, self._max_step)
            if (over > _TOL).any():
                self._record(now_s, "step_limit", _joint_detail(out, limited))
            out = limited
        return out

    def check(
        self,
        now_s: float,
        q_cmd: np.ndarray,
        finger_cmd_m: float,
        q_meas: np.ndarray | None = None,
        joint_stamp_s: float | None = None,
        image_stamp_s: float | None = None,
        effort: np.ndarray | None = None,
        finger_meas_m: float | None = None,
    ) -> tuple[np.ndarray, float]:
        """The safe (arm q rad [6], finger m) for this control step at time `now_s` (s).

        q_cmd [6] / finger_cmd_m: the wanted command. q_meas [6] (rad), joint_stamp_s and
        effort [6]: the latest joint state and when it arrived; image_stamp_s: when the latest
        image arrived; finger_meas_m: the measured finger position (m), used only to hold the
        gripper before any safe command. Stamps and now_s are on the same clock. Raises
        ActionError only when there is nothing safe to hold: no safe command yet and no finite
        q_meas.
        """
        q_meas_ok = q_meas is not None
        if q_meas_ok:
            q_meas = np.asarray(q_meas, dtype=np.float64)
            q_meas_ok = q_meas.shape == (NUM_JOINTS,) and bool(np.isfinite(q_meas).all())
        if effort is not None and self.mode != "stopped":
            self._check_effort(now_s, effort, q_meas if q_meas_ok else None)
        if self.mode == "stopped":
            self._record(now_s, "stopped", "safe stop latched until reset()")
            return self._hold(q_meas if q_meas_ok else None, finger_meas_m, stop=True)

        reasons = self._watchdog(now_s, q_meas, q_meas_ok, joint_stamp_s, image_stamp_s)
        q = np.asarray(q_cmd, dtype=np.float64)
        if q.shape != (NUM_JOINTS,):
            reasons.append(("nan", f"q_cmd has shape {q.shape}, not ({NUM_JOINTS},)"))
        elif not (np.isfinite(q).all() and _finite_float(finger_cmd_m) is not None):
            reasons.append(("nan", f"non-finite command q={q.tolist()} finger={finger_cmd_m!r}"))
        if reasons:
            for kind, detail in reasons:
                self._record(now_s, kind, detail)
            return self._hold(q_meas if q_meas_ok else None, finger_meas_m)

        ref = self._safe_q
        if ref is None:
            ref = self._init_reference(q_meas if q_meas_ok else None, finger_meas_m)
        out = self.limit(now_s, q, ref)
        dist = self._box_distance(tip_position_m(out))
        if dist > 0.0 and dist > self._safe_dist + 1e-9:
            tip = ", ".join(f"{v:.3f}" for v in tip_position_m(out))
            self._record(now_s, "workspace", f"tip ({tip}) m is {dist:.3f} m outside the box")
            return self._hold(None, finger_meas_m)
        finger = _finite_float(finger_cmd_m)
        finger_out = min(max(finger, self.cfg.finger_lower_m), self.cfg.finger_upper_m)
        if abs(finger_out - finger) > _TOL:
            self._record(now_s, "finger_limit", f"finger {finger:.4f} -> {finger_out:.4f} m")
        self._safe_q = out
        self._safe_finger = finger_out
        self._safe_dist = dist
        self.mode = "running"
        return out.copy(), finger_out

    def _check_effort(self, now_s: float, effort, q_meas: np.ndarray | None) -> None:
        eff = np.asarray(effort, dtype=np.float64)
        if eff.shape != (NUM_JOINTS,):
            return  # a driver without per-joint effort; the node logs malformed messages
        over = np.abs(eff) > self._effort  # NaN compares False: a NaN effort is not a stop
        if over.any():
            i = int(np.argmax(over))
            self._record(
                now_s,
                "effort",
                f"{wx.JOINT_NAMES[i]} effort {eff[i]:.0f} over {self._effort[i]:.0f}: safe stop",
            )
            self.mode = "stopped"
            if q_meas is not None:
                self._stop_q = np.minimum(np.maximum(q_meas, self._lo), self._hi)

    def _watchdog(self, now_s, q_meas, q_meas_ok, joint_stamp_s, image_stamp_s) -> list:
        reasons = []
        if q_meas is not None and not q_meas_ok:
            reasons.append(("nan", "non-finite or malformed q_meas"))
        future = -self.cfg.future_tolerance_s
        for what, stamp, timeout in (
            ("joint_states", joint_stamp_s, self.cfg.joint_state_timeout_s),
            ("image", image_stamp_s, self.cfg.image_timeout_s),
        ):
            age = _age(now_s, stamp)
            name = "joint state" if what == "joint_states" else "image"
            if age < future:  # a negative age would never time out: the watchdog holds instead
                reasons.append((f"future_{what}", f"latest {name} stamped {-age:.3f} s ahead"))
            elif not age <= timeout:  # NaN (bad clock) counts as stale
                reasons.append((f"stale_{what}", f"latest {name} {age:.3f} s old"))
        return reasons

    def _init_reference(self, q_meas: np.ndarray | None, finger_meas_m) -> np.ndarray:
        """Before the first safe command: the measured position (clipped) is the reference."""
        if q_meas is None:
            raise ActionError("shield: no safe command yet and no finite q_meas to hold")
        self._safe_q = np.minimum(np.maximum(q_meas, self._lo), self._hi)
        self._safe_finger = self._finger_fallback(finger_meas_m)
        self._safe_dist = self._box_distance(tip_position_m(self._safe_q))
        return self._safe_q

    def _finger_fallback(self, finger_meas_m) -> float:
        finger = _finite_float(finger_meas_m)
        if finger is not None:
            return min(max(finger, self.cfg.finger_lower_m), self.cfg.finger_upper_m)
        return self._mid_finger

    def _hold(self, q_meas, finger_meas_m, stop: bool = False) -> tuple[np.ndarray, float]:
        if self._safe_q is None:
            q = self._init_reference(q_meas, finger_meas_m)
        elif stop and self._stop_q is not None:  # toward the stop position, one step at a time
            q = self._safe_q + np.clip(self._stop_q - self._safe_q, -self._max_step, self._max_step)
        else:
            q = self._safe_q
        if stop:
            if self._stop_q is None:
                self._stop_q = q
        else:
            self.mode = "hold"
        self._safe_q = q
        if self._safe_finger is None:
            self._safe_finger = self._finger_fallback(finger_meas_m)
        return q.copy(), float(self._safe_finger)

    def _box_distance(self, tip) -> float:
        out = 0.0
        for v, lo, hi in zip(tip, self._box_lo, self._box_hi, strict=True):
            gap = lo - v if v < lo else (v - hi if v > hi else 0.0)
            out += gap * gap
        return math.sqrt(out)

    def _record(self, now_s: float, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        self.interventions.append(Intervention(float(now_s), kind, detail))
        if len(self.interventions) > self.cfg.max_records:
            del self.interventions[: len(self.interventions) // 2]


def _age(now_s: float, stamp_s: float | None) -> float:
    """Seconds since `stamp_s` (inf when there is none; NaN when a time is not finite)."""
    if stamp_s is None:
        return math.inf
    age = float(now_s) - float(stamp_s)
    return age if math.isfinite(age) else math.nan


def _joint_detail(before: np.ndarray, after: np.ndarray) -> str:
    changed = np.flatnonzero(np.abs(before - after) > _TOL)
    return "; ".join(f"{wx.JOINT_NAMES[i]} {before[i]:.3f} -> {after[i]:.3f} rad" for i in changed)
