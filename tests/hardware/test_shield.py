"""The safety shield: every limit, the watchdog, the safe stop, the intervention record, and a
hypothesis property that no input (random, NaN, huge) gets a command outside the limits out."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from robolearn.hardware.shield import Shield, ShieldConfig, tip_position_m

from robolearn.core import widowx as wx
from robolearn.core import widowx_control as wxc
from robolearn.core.errors import ActionError, ConfigError

Q0 = wxc.start_target().q_rad  # tip at (0.22, 0, 0.20) m, inside the workspace box
F0 = 0.03
DT = 0.01
MAX_STEP = math.pi * DT


def fresh(shield: Shield, t: float, q_cmd, finger=F0, q_meas=Q0, effort=None, **kw):
    """A check with a joint state and an image both stamped `t` (fresh)."""
    return shield.check(t, q_cmd, finger, q_meas, t, t, effort, **kw)


def test_defaults_come_from_core_widowx():
    cfg = ShieldConfig()
    np.testing.assert_allclose(cfg.q_lower_rad, wx.Q_LOWER_RAD + 0.05)
    np.testing.assert_allclose(cfg.q_upper_rad, wx.Q_UPPER_RAD - 0.05)
    np.testing.assert_allclose(cfg.workspace_box_m, wxc.WORKSPACE_BOX_M)
    assert cfg.max_velocity_rad_s == wx.VELOCITY_LIMIT_RAD_S
    assert (cfg.finger_lower_m, cfg.finger_upper_m) == (wx.FINGER_LOWER_M, wx.FINGER_UPPER_M)
    np.testing.assert_allclose(cfg.effort_limit, [1360, 1700, 1020, 1020, 1020, 1190])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dt_s", 0.0),
        ("max_velocity_rad_s", -1.0),
        ("joint_state_timeout_s", math.inf),
        ("image_timeout_s", math.nan),
        ("q_lower_rad", (0.0,) * 5),
        ("q_upper_rad", (-5.0,) * 6),
        ("workspace_box_m", ((0.0, 0.0, 0.0), (1.0, 1.0))),
        ("workspace_box_m", ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0))),
        ("workspace_margin_m", -0.01),
        ("finger_lower_m", 0.05),
        ("effort_limit", (1.0, 1.0, 1.0, 1.0, 1.0, 0.0)),
        ("max_records", 0),
    ],
)
def test_bad_config_is_a_one_line_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"shield\.{field}") as err:
        ShieldConfig(**{field: value})
    assert "\n" not in str(err.value)


def test_tip_position_matches_core_fk():
    rng = np.random.default_rng(0)
    for q in rng.uniform(wx.Q_LOWER_RAD, wx.Q_UPPER_RAD, (200, 6)):
        np.testing.assert_allclose(tip_position_m(q), wx.fk(q)[:3, 3], atol=1e-12)


def test_a_command_within_every_limit_passes_unchanged():
    shield = Shield()
    q = Q0 + 0.01
    out, finger = fresh(shield, 0.0, q)
    np.testing.assert_array_equal(out, q)
    assert finger == F0 and shield.mode == "running" and not shield.interventions


def test_joint_limits_clip():
    cfg = ShieldConfig(max_velocity_rad_s=1e3, workspace_margin_m=10.0)  # isolate the clip
    shield = Shield(cfg)
    q = Q0.copy()
    q[2] = 3.0  # elbow above its upper limit
    q[4] = -2.5  # wrist_angle below its lower limit
    out, _ = fresh(shield, 0.0, q)
    assert out[2] == cfg.q_upper_rad[2] and out[4] == cfg.q_lower_rad[4]
    assert shield.counts["joint_limit"] == 1
    record = shield.interventions[-1]
    assert record.kind == "joint_limit"
    assert "elbow" in record.detail and "wrist_angle" in record.detail
    # A target exactly at a limit (IK solutions clip there) is not an intervention.
    fresh(shield, DT, out)
    assert shield.counts["joint_limit"] == 1


def test_step_limit_moves_at_most_v_dt_from_the_last_safe_command():
    shield = Shield()
    target = Q0 + np.array([0.5, -0.2, 0.0, 0.0, 0.0, 0.0])
    prev = Q0
    for k in range(30):
        out, _ = fresh(shield, k * DT, target)
        assert np.abs(out - prev).max() <= MAX_STEP + 1e-12
        prev = out
    np.testing.assert_allclose(out, target)  # 0.5 rad at pi rad/s: 16 steps
    assert shield.counts["step_limit"] == math.ceil(0.5 / MAX_STEP) - 1


def test_limit_is_checks_joint_and_step_limits_and_check_then_finds_nothing_to_clip():
    """The bridge limits each setpoint before the passivity filter (the tank pays only for what
    can be sent); the clips are recorded there, once, as check records them."""
    q = Q0 + np.array([0.5, 0.0, 3.0, 0.0, 0.0, 0.0])  # a big step, the elbow past its limit
    reference = Shield()
    expected, _ = fresh(reference, 0.0, q)
    shield = Shield()
    limited = shield.limit(0.0, q, Q0)
    np.testing.assert_array_equal(limited, expected)
    assert shield.counts == reference.counts == {"joint_limit": 1, "step_limit": 1}
    out, _ = fresh(shield, 0.0, limited)
    np.testing.assert_array_equal(out, expected)
    assert shield.counts == reference.counts  # nothing recorded twice


def test_first_command_is_limited_relative_to_the_measured_position():
    shield = Shield()
    out, _ = fresh(shield, 0.0, Q0 + 1.0, q_meas=Q0)
    np.testing.assert_allclose(out, Q0 + MAX_STEP)


OUTSIDE = Q0 + np.array([0.0, 0.6, 0.3, 0.0, 0.6, 0.0])  # tip x = 0.046 m: behind the box


def _box_distance(q: np.ndarray, cfg: ShieldConfig) -> float:
    lo = np.asarray(cfg.workspace_box_m[0]) - cfg.workspace_margin_m
    hi = np.asarray(cfg.workspace_box_m[1]) + cfg.workspace_margin_m
    tip = np.asarray(tip_position_m(q))
    return float(np.linalg.norm(np.maximum(lo - tip, 0) + np.maximum(tip - hi, 0)))


def test_workspace_box_rejects_a_command_leaving_it():
    cfg = ShieldConfig(max_velocity_rad_s=100.0)
    shield = Shield(cfg)
    fresh(shield, 0.0, Q0)
    assert _box_distance(OUTSIDE, cfg) > 0.03
    out, finger = fresh(shield, DT, OUTSIDE, finger=0.02)
    np.testing.assert_array_equal(out, Q0)  # held at the last safe command, fingers too
    assert finger == F0 and shield.mode == "hold"
    assert shield.interventions[-1].kind == "workspace"
    assert "outside the box" in shield.interventions[-1].detail
    fresh(shield, 2 * DT, Q0 + 0.01)
    assert shield.mode == "running"


def test_workspace_lets_an_arm_outside_the_box_come_back():
    cfg = ShieldConfig(max_velocity_rad_s=100.0)
    shield = Shield(cfg)
    out, _ = fresh(shield, 0.0, OUTSIDE, q_meas=OUTSIDE)  # starts out of the box: may stay
    np.testing.assert_array_equal(out, OUTSIDE)
    farther = OUTSIDE + np.array([0.0, 0.0, 0.1, 0.0, 0.0, 0.0])
    assert _box_distance(farther, cfg) > _box_distance(OUTSIDE, cfg)
    out, _ = fresh(shield, DT, farther, q_meas=OUTSIDE)
    np.testing.assert_array_equal(out, OUTSIDE)  # farther out: rejected
    assert shield.counts["workspace"] == 1
    back = OUTSIDE + 0.5 * (Q0 - OUTSIDE)
    out, _ = fresh(shield, 2 * DT, back, q_meas=OUTSIDE)  # back toward (here into) the box
    np.testing.assert_array_equal(out, back)
    assert shield.counts["workspace"] == 1


def test_finger_limits_clip():
    shield = Shield()
    _, finger = fresh(shield, 0.0, Q0, finger=0.1)
    assert finger == wx.FINGER_UPPER_M
    _, finger = fresh(shield, DT, Q0, finger=-1.0)
    assert finger == wx.FINGER_LOWER_M
    _, finger = fresh(shield, 2 * DT, Q0, finger=np.float32(0.02))
    assert finger == pytest.approx(0.02)
    assert shield.counts["finger_limit"] == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"q_cmd": np.array([0.0, np.nan, 0, 0, 0, 0])},
        {"q_cmd": np.array([np.inf, 0, 0, 0, 0, 0])},
        {"q_cmd": np.zeros(5)},
        {"finger": math.nan},
        {"finger": -math.inf},
        {"finger": "open"},
    ],
)
def test_nan_inf_or_malformed_commands_hold(bad):
    shield = Shield()
    fresh(shield, 0.0, Q0 + 0.02, finger=0.025)
    kwargs = {"q_cmd": Q0 - 0.3, "finger": 0.02} | bad
    out, finger = fresh(shield, DT, kwargs.pop("q_cmd"), **kwargs)
    np.testing.assert_array_equal(out, Q0 + 0.02)
    assert finger == 0.025 and shield.mode == "hold"
    assert shield.interventions[-1].kind == "nan"
    out, _ = fresh(shield, 2 * DT, Q0)  # resumes by itself once commands are sane
    assert shield.mode == "running"


def test_nan_measurement_holds():
    shield = Shield()
    fresh(shield, 0.0, Q0)
    out, _ = fresh(shield, DT, Q0 + 0.02, q_meas=np.full(6, np.nan))
    np.testing.assert_array_equal(out, Q0)
    assert shield.interventions[-1].kind == "nan" and "q_meas" in shield.interventions[-1].detail


def test_watchdog_holds_within_one_period_of_stale_joint_states():
    shield = Shield()
    last_joint = 1.0
    held_at = None
    for k in range(40):
        now = 1.0 + k * DT
        joint_stamp = now if now <= last_joint else last_joint  # joint states stop at 1.0 s
        out, _ = shield.check(now, Q0 + 0.005 * k, F0, Q0, joint_stamp, now, None)
        if held_at is None and shield.mode == "hold":
            held_at, held_q = now, out
    assert held_at is not None
    # Stale once older than 0.1 s: the first check after that holds (100 Hz: within 10 ms).
    assert last_joint + 0.1 - 1e-9 <= held_at <= last_joint + 0.1 + DT + 1e-9
    np.testing.assert_array_equal(out, held_q)  # keeps holding the last safe command
    k_held = round((held_at - 1.0) / DT)
    np.testing.assert_allclose(held_q, Q0 + 0.005 * (k_held - 1))
    assert shield.interventions[-1].kind == "stale_joint_states"
    assert "s old" in shield.interventions[-1].detail
    out, _ = shield.check(2.0, held_q, F0, Q0, 2.0, 2.0, None)  # fresh again: resumes
    assert shield.mode == "running"


def test_watchdog_holds_on_a_stale_image_and_can_be_disabled():
    shield = Shield()
    fresh(shield, 0.0, Q0)
    out, _ = shield.check(0.6, Q0 + 0.01, F0, Q0, 0.6, 0.0, None)  # image 0.6 s old
    np.testing.assert_array_equal(out, Q0)
    assert shield.counts["stale_image"] == 1
    no_camera = Shield(ShieldConfig(image_timeout_s=math.inf))
    out, _ = no_camera.check(0.0, Q0, F0, Q0, 0.0, None, None)
    np.testing.assert_array_equal(out, Q0)
    assert no_camera.mode == "running"


def test_no_joint_state_yet_holds_at_the_measurement_or_refuses():
    shield = Shield()
    out, finger = shield.check(0.0, Q0 + 0.02, F0, Q0, None, 0.0, None, finger_meas_m=0.02)
    np.testing.assert_array_equal(out, Q0)
    assert finger == 0.02 and shield.counts["stale_joint_states"] == 1
    with pytest.raises(ActionError, match="nothing|no safe command"):
        Shield().check(0.0, Q0, F0, None, None, None, None)
    with pytest.raises(ActionError):
        Shield().check(0.0, Q0, F0, np.full(6, np.nan), 0.0, 0.0, None)


def test_effort_over_the_threshold_is_a_latched_safe_stop():
    shield = Shield()
    fresh(shield, 0.0, Q0)
    pushed = Q0 + np.array([0.0, 0.02, 0.0, 0.0, 0.0, 0.0])  # where the arm got stuck
    effort = np.array([0.0, -1800.0, 0.0, 0.0, 0.0, 0.0])  # shoulder: |1800| > 1700 mA
    out, finger = fresh(shield, DT, Q0 + 0.03, q_meas=pushed, effort=effort)
    np.testing.assert_array_equal(out, pushed)  # holds the measured position: stops pushing
    assert shield.mode == "stopped" and finger == F0
    assert shield.interventions[-2].kind == "effort"
    assert "shoulder" in shield.interventions[-2].detail
    for k in range(2, 10):  # latched, whatever comes in
        out, _ = fresh(shield, k * DT, Q0 - 0.2, q_meas=Q0, effort=np.zeros(6))
        np.testing.assert_array_equal(out, pushed)
        assert shield.mode == "stopped"
    assert shield.counts["effort"] == 1 and shield.counts["stopped"] == 9
    shield.reset()
    assert shield.mode == "running"
    out, _ = fresh(shield, 1.0, Q0 + 0.01, q_meas=Q0, effort=np.zeros(6))
    np.testing.assert_array_equal(out, Q0 + 0.01)


def test_effort_below_the_threshold_or_missing_is_fine():
    shield = Shield()
    fresh(shield, 0.0, Q0, effort=np.array([1300.0, -1600.0, 1000.0, 0.0, 0.0, 1100.0]))
    fresh(shield, DT, Q0, effort=None)
    fresh(shield, 2 * DT, Q0, effort=np.zeros(2))  # a driver without per-joint effort
    assert shield.mode == "running" and not shield.counts


def test_record_keeps_time_kind_detail_and_is_bounded():
    shield = Shield(ShieldConfig(max_records=10))
    fresh(shield, 0.0, Q0)
    for k in range(1, 26):
        fresh(shield, k * DT, Q0, finger=1.0)
    assert shield.counts["finger_limit"] == 25
    assert len(shield.interventions) <= 10
    last = shield.interventions[-1]
    assert (last.time_s, last.kind) == (pytest.approx(0.25), "finger_limit")


# -- the shield never lets a command out of the limits ----------------------------------------

wild = st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300])
anything = st.one_of(st.floats(-10.0, 10.0), wild)
near = st.lists(st.floats(-1.5, 1.5), min_size=6, max_size=6).map(lambda d: Q0 + np.array(d))
vec = st.lists(anything, min_size=6, max_size=6).map(np.array)
# Mostly sane streams (so the running, hold and stop paths all get exercised), with NaN/inf,
# huge, malformed and stale inputs mixed in.
q_cmd_st = st.one_of(near, near, vec)
finger_st = st.one_of(st.floats(-0.1, 0.1), anything)
q_meas_st = st.one_of(near, near, near, st.none(), vec, st.just(np.zeros(3)))
age = st.one_of(st.floats(0.0, 0.05), st.floats(0.0, 0.05), st.floats(0.0, 1.0), st.none())
effort = st.one_of(
    st.none(),
    st.lists(st.floats(-1000.0, 1000.0), min_size=6, max_size=6),
    st.lists(st.floats(-3000.0, 3000.0), min_size=6, max_size=6),
)
call = st.tuples(q_cmd_st, finger_st, q_meas_st, age, age, effort)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(call, min_size=1, max_size=30))
def test_no_input_gets_a_command_outside_the_limits(calls):
    cfg = ShieldConfig()
    shield = Shield(cfg)
    lo, hi = np.asarray(cfg.q_lower_rad), np.asarray(cfg.q_upper_rad)
    prev = None
    for k, (q_cmd, finger, q_meas, joint_age, image_age, eff) in enumerate(calls):
        now = k * DT
        joint_stamp = None if joint_age is None else now - joint_age
        image_stamp = None if image_age is None else now - image_age
        try:
            out, finger_out = shield.check(
                now, q_cmd, finger, q_meas, joint_stamp, image_stamp, eff
            )
        except ActionError:
            assert prev is None  # only when there is nothing safe to hold
            continue
        assert out.shape == (6,) and np.isfinite(out).all()
        assert (out >= lo).all() and (out <= hi).all()
        assert cfg.finger_lower_m <= finger_out <= cfg.finger_upper_m
        event(shield.mode)
        if prev is not None:  # in every mode, the safe stop included
            assert np.abs(out - prev).max() <= MAX_STEP + 1e-9
            dist = _box_distance(out, cfg)
            stopped = shield.mode == "stopped"  # a stop moves toward where the arm is measured
            assert stopped or dist == 0.0 or dist <= _box_distance(prev, cfg) + 1e-9
        prev = out
