"""Passivity filter: a discrete energy tank that gates each joint command's step to its setpoint.

The port (REFERENCES.md section 5) is the virtual spring-damper a position-controlled arm behaves
like at its joints, tau = K (q_cmd - q) - D qdot, with stored energy V = 1/2 e^T K e, e = q_cmd - q.
Moving the setpoint changes V at the measured q: that change is the energy the command injects. A
step of alpha * d, d = q_target - q_prev_cmd, injects

    dV(alpha) = alpha * d^T K e + 1/2 alpha^2 d^T K d        (e = q_prev_cmd - q_meas)

and the tank pays for it: E_{k+1} = E_k + dt * (sigma * P_diss - P_in) with P_in = dV / dt and
P_diss = qdot^T D qdot, the power the virtual damping dissipates (refilled into the tank, never
above E_max, and bounded as below). The gate is the smooth one of Ferraguti et al.:
alpha = clip((E - E_min) / (dt * P_in_pred), 0, 1) with P_in_pred = dV(1) / dt, and alpha = 1 when
P_in_pred <= 0 (the step takes energy out of the spring: toward the measured position, or with the
arm already moving there). Because dV is convex in alpha with dV(0) = 0, dV(alpha) <= alpha dV(1),
so the tank never drops below E_min (the gate is conservative: from rest dV is quadratic in
alpha and the tank could pay for more). Energy a step returns (dV < 0) goes back into the tank,
capped at E_max. Call it an energy budget, not a certified guarantee: the port is a model of the
servo, not a measurement of the torque.

The refill is bounded by what the commanded motion can have dissipated: the port's damping only
dissipates energy that reached the arm through the spring, and the spring got it from the
commands (the steps' dV > 0, and what it held at the reset). So a budget B counts the energy the
commands put into the port that the tank has not taken back; each step's refill, and each step's
returned energy, is at most B and is taken from it. Without the bound the sampled
dt * qdot^T D qdot refilled the tank from velocities that were never dissipated: with the
setpoint flipping at the control rate in a finely integrated plant it refilled twice what the
plant dissipated (41.6 J vs 21.4 J), and a corrupted or finite-differenced qdot (1e150 rad/s, a
burst of messages microseconds apart) refilled it to E_max in one step. With it the tank never
rises above its start plus the spring's energy at the reset: energy from outside (gravity, a push
by hand, a bad reading) never refills it.

Defaults: K and D are the simulated WidowX servo's position gain and joint damping
(robolearn/envs/widowx/arm.py, KP and DAMPING), so the port models the same servo the simulator
runs. The tank starts at 5 J (at most 10 J, floor 0.1 J): steady tracking is nearly tank-neutral
(the spring's lag K e = D qdot injects what the damping refills), lifting the ~1.5 kg arm costs its
potential energy (about 1.5 J per 10 cm, returned when it comes down), and pushing into a blocked
joint drains it fast (nothing moves, nothing refills), which is what the gate is for. Measured in
the drawer scene (the shipped BC policy at 5 Hz, joint targets ramped over the whole 0.2 s step at
100 Hz, then this filter and the shield, 20 seeds): without the filter one episode in 20 overdraws
a 5 J tank (by 2.6 J); with it alpha < 1 on 0.1 % of the control steps and all 20 succeed. A 3 J
tank gated the first big moves so hard that 2 of 5 episodes failed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from robolearn.core import widowx as wx
from robolearn.core.errors import ActionError, ConfigError

NUM_JOINTS = wx.NUM_JOINTS


@dataclasses.dataclass(frozen=True)
class PassivityConfig:
    """Energy-tank filter settings; validated on construction (one-line ConfigError).

    stiffness / damping: the port's K (N m/rad) and D (N m s/rad) per arm joint [6]; any sequence
    of numbers is accepted and stored as a tuple of floats. Energies in joules with
    0 <= energy_min_j <= energy_init_j <= energy_max_j. enabled=False passes every command
    unscaled (alpha = 1) but still accounts the tank and counts the steps that end below
    energy_min_j as violations (for passivity studies).
    """

    dt_s: float = 0.01
    stiffness: tuple[float, ...] = (200.0, 250.0, 200.0, 50.0, 50.0, 25.0)
    damping: tuple[float, ...] = (7.0, 8.0, 5.0, 1.2, 1.2, 0.5)
    energy_init_j: float = 5.0
    energy_min_j: float = 0.1
    energy_max_j: float = 10.0
    enabled: bool = True

    def __post_init__(self) -> None:
        _check_positive("passivity.dt_s", self.dt_s, "s")
        object.__setattr__(self, "stiffness", _gains("passivity.stiffness", self.stiffness, True))
        object.__setattr__(self, "damping", _gains("passivity.damping", self.damping, False))
        for name in ("energy_init_j", "energy_min_j", "energy_max_j"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"passivity.{name} must be a finite number >= 0 J, got {value!r}")
        if not self.energy_min_j <= self.energy_init_j <= self.energy_max_j:
            raise ConfigError(
                "passivity.energy_init_j must lie within [energy_min_j, energy_max_j], got "
                f"{self.energy_init_j!r} outside [{self.energy_min_j!r}, {self.energy_max_j!r}]"
            )
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"passivity.enabled must be true or false, got {self.enabled!r}")


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)


def _check_positive(name: str, value, unit: str) -> None:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0 {unit}, got {value!r}")


def _gains(name: str, values, positive: bool) -> tuple[float, ...]:
    """`values` as a tuple of NUM_JOINTS finite floats, each > 0 (positive) or >= 0."""
    try:
        items = list(values)
    except TypeError:
        items = []
    ok = len(items) == NUM_JOINTS and all(
        _is_number(v) and math.isfinite(v) and (v > 0 if positive else v >= 0) for v in items
    )
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{name} must be {NUM_JOINTS} finite numbers {bound}, got {values!r}")
    return tuple(float(v) for v in items)


@dataclasses.dataclass
class TankState:
    """A snapshot of the tank for logging (energies in J, powers in W, the latest step's values).

    energy_j: tank level after the latest step. alpha: the latest step's scale (0 on a hold).
    injected_power_w: dV/dt of the latest step as executed (< 0: the step returned energy).
    dissipated_power_w: qdot^T D qdot measured at the latest step. injected_energy_j: sum of the
    positive injections; harvested_energy_j: energy put into the tank (damping refill and returned
    energy, after the E_max cap). refill_budget_j: energy the commands put into the port that the
    tank may still take back (the bound on the refill; see the module doc). activations: steps
    with 0 <= alpha < 1 from the gate (holds are counted in `holds`, not here). violations: with
    enabled=False, steps that ended with the tank below energy_min_j (always 0 when enabled).
    holds: steps with NaN/inf input that held.
    """

    energy_j: float
    alpha: float
    injected_power_w: float
    dissipated_power_w: float
    injected_energy_j: float
    harvested_energy_j: float
    refill_budget_j: float
    activations: int
    steps: int
    violations: int
    holds: int


class PassivityFilter:
    """The energy-tank gate on a stream of joint setpoints, one `filter` call per control step.

    Pure numpy on [6] vectors, a few microseconds a step: the state lives in plain floats and one
    command array, and `state` builds a TankState only when asked. When a later stage (the
    shield) changes the command, pass what was sent to `set_command`, so the next step starts
    from the arm's real setpoint.
    """

    def __init__(self, cfg: PassivityConfig | None = None):
        self.cfg = cfg = cfg if cfg is not None else PassivityConfig()
        self._k = np.asarray(cfg.stiffness, dtype=np.float64)
        self._d = np.asarray(cfg.damping, dtype=np.float64)
        self._dt = float(cfg.dt_s)
        self._e_min = float(cfg.energy_min_j)
        self._e_max = float(cfg.energy_max_j)
        self._enabled = cfg.enabled
        self._cmd: np.ndarray | None = None
        self._reset_counters(float(cfg.energy_init_j))

    def _reset_counters(self, energy_j: float) -> None:
        self._energy = energy_j
        self._budget: float | None = None  # set on the first step: the spring's energy then
        self._alpha = 1.0
        self._p_in = 0.0
        self._p_diss = 0.0
        self._injected = 0.0
        self._harvested = 0.0
        self._activations = 0
        self._steps = 0
        self._violations = 0
        self._holds = 0

    def reset(self, q_command: np.ndarray, energy_j: float | None = None) -> None:
        """Start an episode from the arm command `q_command` (rad) [6], usually the measured q.

        The tank restarts at `energy_j` (default cfg.energy_init_j, within [E_min, E_max]) and
        every counter restarts at zero.
        """
        q = _vector(q_command, "q_command")
        if not np.isfinite(q).all():
            raise ActionError(f"passivity reset: q_command has NaN/inf: {q.tolist()}")
        energy = self.cfg.energy_init_j if energy_j is None else energy_j
        if not _is_number(energy) or not self._e_min <= energy <= self._e_max:
            raise ConfigError(
                f"passivity reset: energy_j must lie within [{self._e_min}, {self._e_max}] J, "
                f"got {energy_j!r}"
            )
        self._cmd = q.copy()
        self._reset_counters(float(energy))

    def filter(self, q_target: np.ndarray, q_meas: np.ndarray, qdot_meas: np.ndarray) -> np.ndarray:
        """One control step: the new arm command (rad) [6].

        The command moves from the previous one toward `q_target` (rad) [6] by alpha * (q_target -
        q_prev_cmd), given the measured joint angles `q_meas` (rad) [6] and velocities
        `qdot_meas` (rad/s) [6]. NaN/inf (or overflowing) input anywhere: hold (the previous
        command, alpha 0, counted in `holds`; the tank is untouched). Without a `reset` the first
        call starts from q_meas.
        """
        t = _vector(q_target, "q_target")
        q = _vector(q_meas, "q_meas")
        qd = _vector(qdot_meas, "qdot_meas")
        self._steps += 1
        prev = self._cmd
        if prev is None:
            if not np.isfinite(q).all():
                raise ActionError("passivity filter: no previous command and q_meas is NaN/inf")
            prev = self._cmd = q.copy()
        with np.errstate(all="ignore"):  # inf/overflow: caught just below, without a warning
            d = t - prev
            kd = self._k * d
            quad = float(kd @ d)  # d^T K d >= 0
            lin = float(kd @ (prev - q))  # d^T K e
            p_diss = float((self._d * qd) @ qd)
            spring = 0.5 * float((self._k * (prev - q)) @ (prev - q))
        dv_full = lin + 0.5 * quad
        # With K > 0 and D >= 0 any NaN/inf in t, q or qd makes one of these non-finite.
        if not (math.isfinite(dv_full) and math.isfinite(p_diss) and math.isfinite(spring)):
            self._holds += 1
            self._alpha = 0.0
            self._p_in = 0.0
            self._p_diss = 0.0
            return prev.copy()

        if self._budget is None:  # after a reset the spring may already hold energy
            self._budget = spring
        energy = self._energy
        refill = 0.0
        dissipated = min(self._dt * p_diss, self._budget)
        self._budget -= dissipated
        if energy < self._e_max:  # sigma = 1 below E_max; the last bit is cut at E_max
            filled = min(energy + dissipated, self._e_max)
            refill, energy = filled - energy, filled
        if dv_full <= 0.0 or not self._enabled:
            alpha = 1.0
            dv = dv_full
        else:
            alpha = min(1.0, (energy - self._e_min) / dv_full)
            dv = alpha * lin + 0.5 * alpha * alpha * quad
            if alpha < 1.0:
                self._activations += 1
        if dv < 0.0:  # the step took energy out of the spring: back into the tank, up to E_max
            returned = min(-dv, self._budget)
            self._budget -= returned
            filled = max(min(energy + returned, self._e_max), energy)
            refill, energy = refill + filled - energy, filled
        else:
            energy -= dv
            self._injected += dv
            self._budget += dv
        if energy < self._e_min:
            if self._enabled:
                energy = self._e_min  # dV(alpha) <= E - E_min up to rounding: never below
            else:
                self._violations += 1
        self._harvested += refill
        self._energy = energy
        self._alpha = alpha
        self._p_in = dv / self._dt
        self._p_diss = p_diss
        new = t.copy() if alpha == 1.0 else prev + alpha * d
        self._cmd = new
        return new.copy()

    def set_command(self, q_sent: np.ndarray) -> None:
        """Tell the filter the command actually sent (rad) [6] when a later stage (the shield)
        changed it, so the next step is measured from there. The tank is not touched."""
        q = _vector(q_sent, "q_sent")
        if np.isfinite(q).all():
            self._cmd = q.copy()

    @property
    def command(self) -> np.ndarray | None:
        """The latest command (rad) [6], or None before the first step/reset."""
        return None if self._cmd is None else self._cmd.copy()

    @property
    def state(self) -> TankState:
        """The tank's state after the latest step (a new TankState each call)."""
        return TankState(
            energy_j=self._energy,
            alpha=self._alpha,
            injected_power_w=self._p_in,
            dissipated_power_w=self._p_diss,
            injected_energy_j=self._injected,
            harvested_energy_j=self._harvested,
            refill_budget_j=0.0 if self._budget is None else self._budget,
            activations=self._activations,
            steps=self._steps,
            violations=self._violations,
            holds=self._holds,
        )


def _vector(x, name: str) -> np.ndarray:
    """`x` as a float64 [6] array; a wrong shape is a programming error (ActionError)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (NUM_JOINTS,):
        raise ActionError(f"passivity filter: {name} must have shape (6,), got {arr.shape}")
    return arr
