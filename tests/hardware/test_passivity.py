"""The energy-tank passivity filter: hand-worked steps, config errors, and hypothesis properties
(the tank never below E_min, alpha in [0, 1], alpha = 1 while the port dissipates, NaN/inf hold,
refill capped at E_max, the disabled filter counts violations but passes commands)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from robolearn.hardware.passivity import PassivityConfig, PassivityFilter

from robolearn.core.errors import ActionError, ConfigError

Q0 = np.array([0.0, -0.78, 0.82, 0.0, 0.76, 0.0])  # about the drawer start pose
ZERO = np.zeros(6)
PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_one_step_matches_the_spring_energy_worked_by_hand():
    f = PassivityFilter()
    f.reset(Q0)
    target = Q0 + np.array([0.0, 0.1, 0.0, 0.0, 0.0, 0.0])
    out = f.filter(target, Q0, ZERO)
    s = f.state
    # Arm at the command, shoulder K = 250 N m/rad: dV = 1/2 * 250 * 0.1^2 = 1.25 J.
    assert s.alpha == 1.0
    np.testing.assert_array_equal(out, target)
    assert s.energy_j == pytest.approx(5.0 - 1.25)
    assert s.injected_energy_j == pytest.approx(1.25)
    assert s.injected_power_w == pytest.approx(125.0)
    assert (s.steps, s.activations, s.holds, s.violations) == (1, 0, 0, 0)


def test_damping_refills_the_tank_worked_by_hand():
    """Damping refills the tank, but never more than the commands put into the port."""
    f = PassivityFilter(PassivityConfig(energy_init_j=2.0))
    f.reset(Q0)
    elbow = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    f.filter(Q0 + 0.1 * elbow, Q0, ZERO)  # elbow K = 200: dV = 1/2 * 200 * 0.1^2 = 1 J
    assert (f.state.energy_j, f.state.refill_budget_j) == pytest.approx((1.0, 1.0))
    f.filter(Q0 + 0.1 * elbow, Q0 + 0.05 * elbow, 2.0 * elbow)  # D = 5: P = 5 * 2^2 = 20 W
    s = f.state
    assert s.dissipated_power_w == pytest.approx(20.0)
    assert s.energy_j == pytest.approx(1.0 + 0.01 * 20.0)
    assert s.harvested_energy_j == pytest.approx(0.2)
    assert s.refill_budget_j == pytest.approx(0.8)
    # 20 rad/s would refill 20 J in one step: only the 0.8 J the command put in come back.
    f.filter(Q0 + 0.1 * elbow, Q0 + 0.08 * elbow, 20.0 * elbow)
    s = f.state
    assert s.energy_j == pytest.approx(2.0) and s.harvested_energy_j == pytest.approx(1.0)
    assert s.refill_budget_j == 0.0


def test_a_violent_jump_is_scaled_to_the_budget():
    f = PassivityFilter()
    f.reset(Q0)
    target = Q0 + np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.0])
    out = f.filter(target, Q0, ZERO)
    s = f.state
    # dV(1) = 1/2 * 250 * 0.5^2 = 31.25 J > 4.9 J available: alpha = 4.9 / 31.25.
    assert s.alpha == pytest.approx(4.9 / 31.25)
    np.testing.assert_allclose(out, Q0 + s.alpha * (target - Q0))
    assert s.activations == 1
    assert s.energy_j >= 0.1
    # Keep pushing with the arm blocked (it never moves): the tank drains toward E_min, never below.
    for _ in range(200):
        out = f.filter(target, Q0, ZERO)
        assert f.state.energy_j >= 0.1
    assert f.state.energy_j < 0.2
    assert f.state.activations == 201
    assert np.abs(out - Q0).max() < 0.5


def _tracking_arm(cfg: PassivityConfig, q: np.ndarray, cmd: np.ndarray) -> tuple:
    """One dt of an overdamped servo that follows the port: D qdot = K (cmd - q)."""
    qdot = np.asarray(cfg.stiffness) * (cmd - q) / np.asarray(cfg.damping)
    qdot = np.clip(qdot, -3.0, 3.0)
    return q + cfg.dt_s * qdot, qdot


def test_a_sequence_of_small_steps_passes_unscaled():
    cfg = PassivityConfig()
    f = PassivityFilter(cfg)
    f.reset(Q0)
    q, qdot = Q0.copy(), ZERO.copy()
    direction = np.array([0.5, -0.3, 0.4, 0.2, -0.5, 0.6])
    for k in range(1, 101):  # 1 s at 100 Hz, up to 0.6 rad/s per joint
        out = f.filter(Q0 + 0.01 * k * direction, q, qdot)
        assert f.state.alpha == 1.0
        np.testing.assert_array_equal(out, Q0 + 0.01 * k * direction)
        q, qdot = _tracking_arm(cfg, q, out)
    assert f.state.activations == 0
    assert f.state.energy_j > 4.0  # steady tracking is nearly tank-neutral


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dt_s", 0.0),
        ("dt_s", math.nan),
        ("stiffness", (1.0, 2.0)),
        ("stiffness", (1.0, 2.0, 3.0, 4.0, 5.0, 0.0)),
        ("stiffness", "abcdef"),
        ("damping", (1.0, 2.0, 3.0, 4.0, 5.0, -1.0)),
        ("damping", (1.0, 2.0, 3.0, 4.0, 5.0, math.inf)),
        ("energy_init_j", 20.0),
        ("energy_min_j", -1.0),
        ("energy_max_j", math.inf),
        ("energy_init_j", "5"),
        ("enabled", "yes"),
    ],
)
def test_bad_config_is_a_one_line_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"passivity\.{field}") as err:
        PassivityConfig(**{field: value})
    assert "\n" not in str(err.value)


def test_config_takes_lists_and_stores_tuples():
    cfg = PassivityConfig(stiffness=[1, 2, 3, 4, 5, 6], damping=np.zeros(6))
    assert cfg.stiffness == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    assert cfg.damping == (0.0,) * 6


def test_default_port_is_the_simulated_servo():
    from robolearn.envs.widowx import arm

    cfg = PassivityConfig()
    np.testing.assert_array_equal(cfg.stiffness, arm.KP)
    np.testing.assert_array_equal(cfg.damping, arm.DAMPING)


def test_reset_restarts_the_tank_and_checks_its_input():
    f = PassivityFilter()
    f.reset(Q0)
    f.filter(Q0 + 0.3, Q0, ZERO)
    f.reset(Q0, energy_j=2.0)
    s = f.state
    assert (s.energy_j, s.steps, s.activations, s.injected_energy_j) == (2.0, 0, 0, 0.0)
    with pytest.raises(ConfigError, match="energy_j"):
        f.reset(Q0, energy_j=50.0)
    with pytest.raises(ActionError, match="NaN"):
        f.reset(np.full(6, np.nan))
    with pytest.raises(ActionError, match="shape"):
        f.filter(np.zeros(7), Q0, ZERO)


def test_without_reset_the_first_step_starts_from_the_measurement():
    f = PassivityFilter()
    out = f.filter(Q0 + 0.01, Q0, ZERO)
    assert f.state.alpha == 1.0
    np.testing.assert_array_equal(out, Q0 + 0.01)
    with pytest.raises(ActionError, match="no previous command"):
        PassivityFilter().filter(Q0, np.full(6, np.nan), ZERO)


def test_set_command_rebases_without_touching_the_tank():
    f = PassivityFilter()
    f.reset(Q0)
    f.filter(Q0 + 0.05, Q0, ZERO)
    energy = f.state.energy_j
    f.set_command(Q0 + 0.02)
    np.testing.assert_array_equal(f.command, Q0 + 0.02)
    assert f.state.energy_j == energy


# -- properties --------------------------------------------------------------------------------

angle = st.floats(-20.0, 20.0, allow_nan=False)
velocity = st.floats(-50.0, 50.0, allow_nan=False)
vec6 = st.lists(angle, min_size=6, max_size=6).map(np.array)
vel6 = st.lists(velocity, min_size=6, max_size=6).map(np.array)
step = st.tuples(vec6, vec6, vel6)


@st.composite
def configs(draw, enabled=True):
    gains = st.lists(st.floats(0.1, 500.0), min_size=6, max_size=6)
    e_min = draw(st.floats(0.0, 2.0))
    e_max = e_min + draw(st.floats(0.0, 20.0))
    e_init = draw(st.floats(e_min, e_max))
    return PassivityConfig(
        dt_s=draw(st.sampled_from([0.002, 0.01, 0.05])),
        stiffness=tuple(draw(gains)),
        damping=tuple(draw(gains)),
        energy_init_j=e_init,
        energy_min_j=e_min,
        energy_max_j=e_max,
        enabled=enabled,
    )


@PROPS
@given(configs(), vec6, st.lists(step, min_size=1, max_size=25))
def test_tank_stays_within_limits_and_alpha_in_unit_interval(cfg, q_start, steps):
    f = PassivityFilter(cfg)
    f.reset(q_start)
    prev = q_start
    for target, q, qdot in steps:
        out = f.filter(target, q, qdot)
        s = f.state
        assert cfg.energy_min_j <= s.energy_j <= cfg.energy_max_j
        assert 0.0 <= s.alpha <= 1.0
        np.testing.assert_allclose(out, prev + s.alpha * (target - prev), rtol=1e-12, atol=1e-12)
        prev = out
    s = f.state
    # Bookkeeping: the level is the start plus what went in minus what went out.
    balance = cfg.energy_init_j + s.harvested_energy_j - s.injected_energy_j
    assert s.energy_j == pytest.approx(balance, rel=1e-9, abs=1e-9 * max(1.0, s.injected_energy_j))
    assert s.violations == 0 and s.holds == 0 and s.steps == len(steps)


@PROPS
@given(
    configs(),
    vec6,
    st.lists(st.tuples(vec6, st.floats(0.0, 2.0), vel6), min_size=1, max_size=20),
)
def test_alpha_is_one_whenever_the_step_does_not_add_spring_energy(cfg, q_start, steps):
    f = PassivityFilter(cfg)
    f.reset(q_start)
    # Drain the tank first (a blocked arm pushed far), so only the "dissipating" rule can pass.
    for _ in range(30):
        f.filter(q_start + 5.0, q_start, ZERO)
    cmd = f.command
    for q_meas, beta, qdot in steps:
        # A step toward the measured position (0 < beta <= 2): d = beta (q - c), e = c - q, so
        # dV(1) = (beta^2 / 2 - beta) (q - c)^T K (q - c) <= 0 for any arm velocity.
        target = cmd + beta * (q_meas - cmd)
        out = f.filter(target, q_meas, qdot)
        assert f.state.alpha == 1.0
        np.testing.assert_array_equal(out, target)
        assert f.state.energy_j >= cfg.energy_min_j
        cmd = out


bad = st.sampled_from([math.nan, math.inf, -math.inf])


@PROPS
@given(configs(), vec6, step, st.integers(0, 2), st.integers(0, 5), bad)
def test_nan_or_inf_anywhere_holds(cfg, q_start, good, which, joint, value):
    f = PassivityFilter(cfg)
    f.reset(q_start)
    f.filter(*good)
    before = f.state
    held = f.command
    args = [a.copy() for a in good]
    args[which][joint] = value
    out = f.filter(*args)
    s = f.state
    np.testing.assert_array_equal(out, held)
    assert s.alpha == 0.0 and s.holds == 1 and s.steps == 2
    assert s.energy_j == before.energy_j
    assert s.injected_energy_j == before.injected_energy_j


huge = st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: abs(v) > 1e6)


@PROPS
@given(configs(), vec6, step, st.integers(0, 2), st.integers(0, 5), huge)
def test_huge_finite_input_gives_a_finite_command_and_a_valid_tank(
    cfg, q_start, good, which, joint, value
):
    f = PassivityFilter(cfg)
    f.reset(q_start)
    args = [a.copy() for a in good]
    args[which][joint] = value
    out = f.filter(*args)
    assert np.isfinite(out).all()
    assert cfg.energy_min_j <= f.state.energy_j <= cfg.energy_max_j
    assert 0.0 <= f.state.alpha <= 1.0


@PROPS
@given(configs(), vec6, st.lists(vel6, min_size=1, max_size=30))
def test_refill_never_exceeds_e_max(cfg, q_start, velocities):
    f = PassivityFilter(cfg)
    f.reset(q_start)
    for qdot in velocities:  # the setpoint stays at the arm: only damping refills
        f.filter(q_start, q_start, qdot * 10.0)
        assert f.state.energy_j <= cfg.energy_max_j
    assert f.state.harvested_energy_j <= cfg.energy_max_j - cfg.energy_init_j + 1e-9


@PROPS
@given(configs(enabled=False), vec6, st.lists(step, min_size=1, max_size=30))
def test_disabled_filter_passes_commands_and_counts_violations(cfg, q_start, steps):
    f = PassivityFilter(cfg)
    f.reset(q_start)
    below = 0
    for target, q, qdot in steps:
        out = f.filter(target, q, qdot)
        np.testing.assert_array_equal(out, target)
        assert f.state.alpha == 1.0
        below += f.state.energy_j < cfg.energy_min_j
        assert f.state.energy_j <= cfg.energy_max_j
    assert f.state.violations == below
    assert f.state.activations == 0


def test_disabled_filter_counts_a_known_overdraw():
    f = PassivityFilter(PassivityConfig(enabled=False))
    f.reset(Q0)
    f.filter(Q0 + np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.0]), Q0, ZERO)  # 31.25 J from 5 J
    s = f.state
    assert s.violations == 1 and s.alpha == 1.0
    assert s.energy_j == pytest.approx(5.0 - 31.25)
