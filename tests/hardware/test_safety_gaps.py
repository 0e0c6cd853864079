"""Regression tests for the safety gaps hostile testing of hardware/ found (issue 16), one test per
gap, each driven through the public classes, plus a hypothesis property over random hostile input
sequences: no command ever moves a joint more than the step limit from the last command sent, in
any mode (running, hold, safe stop, restart)."""

from __future__ import annotations

import builtins
import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from robolearn.hardware import ros2_config
from robolearn.hardware.bridge import Bridge, BridgeConfig, ObservationError
from robolearn.hardware.passivity import PassivityConfig, PassivityFilter
from robolearn.hardware.ramp import check_action
from robolearn.hardware.readings import DifferencedVelocity
from robolearn.hardware.safety_chain import SafetyChain
from robolearn.hardware.shield import ShieldConfig

from robolearn.core import widowx as wx
from robolearn.core import widowx_control as control
from robolearn.data.deployment import store_writer

START_Q = control.start_target().q_rad
OPEN = np.full(2, wx.FINGER_UPPER_M)
IMAGE = np.full((64, 64, 3), 90, np.uint8)
SMALL = np.array([0.3, -0.2, 0.2, 0.1, -0.1, 0.1, 1.0], np.float32)
STILL = np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32)
OVER_EFFORT = np.array([0.0, 5000.0, 0.0, 0.0, 0.0, 0.0])
DT = 0.01
MAX_STEP = wx.VELOCITY_LIMIT_RAD_S * DT


class Policy:
    """A policy returning `action` (or raising it, when it is an exception), counting calls."""

    def __init__(self, action=SMALL):
        self.action, self.calls = action, 0

    def __call__(self, obs):
        self.calls += 1
        if isinstance(self.action, BaseException):
            raise self.action
        return self.action


def feed(bridge, now, q=START_Q, qdot=None, effort=None, image=True):
    bridge.observe_joints(now, q, np.zeros(6) if qdot is None else qdot, OPEN, effort)
    if image:
        bridge.observe_image(now, IMAGE)


def running_bridge(policy=None, seconds=0.3, cfg=None):
    """A started bridge after `seconds` of policy and control steps on a static arm at START_Q;
    returns (bridge, time of the next control step, the commands sent)."""
    bridge = Bridge(policy or Policy(), cfg or BridgeConfig())
    feed(bridge, 0.0)
    bridge.start(0.0)
    commands = []
    for i in range(round(seconds / DT)):
        now = i * DT
        feed(bridge, now)
        if bridge.policy_due(now):
            bridge.run_policy(now)
        commands.append(bridge.control_step(now).q_rad)
    return bridge, round(seconds / DT) * DT, commands


def largest_jump(commands) -> float:
    """The largest change of any joint between consecutive commands (rad)."""
    return float(np.abs(np.diff(np.asarray(commands), axis=0)).max())


def try_feed(bridge, *args, **kwargs) -> bool:
    """feed(), False when the joint state was refused."""
    try:
        feed(bridge, *args, **kwargs)
    except ObservationError:
        return False
    return True


@pytest.mark.parametrize(
    "reading",
    [
        "glitch",  # one sample 3 rad off (an encoder glitch), with an effort spike
        "moved",  # really pushed 0.3 rad in 0.1 s, with the effort over the limit
    ],
)
def test_gap_a_a_safe_stop_never_jumps(reading):
    """Gap A: the safe stop held the clipped *measured* position with no step limit, so a glitched
    joint reading (or an arm really pushed away) made the command jump: 3.09 rad in one 10 ms
    step. observe_joints accepted any finite q."""
    bridge, t, commands = running_bridge()
    if reading == "glitch":
        q = START_Q + np.array([3.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        accepted = try_feed(bridge, t, q=q, effort=OVER_EFFORT)
        if not accepted:  # refused: the hold is latched with the reason
            status = bridge.status()
            assert status["mode"] == "hold" and "implausible" in status["hold_reason"]
    else:
        q = START_Q + np.array([0.0, 0.3, 0.0, 0.0, 0.0, 0.0])
        feed(bridge, t + 0.1, q=q, effort=OVER_EFFORT)
    for i in range(60):
        now = t + 0.1 + i * DT
        commands.append(bridge.control_step(now).q_rad)
    assert bridge.mode == "hold"
    assert largest_jump(commands) <= MAX_STEP + 1e-9
    if reading == "moved":  # the stop still stops pushing: it reaches the measured position
        assert bridge.status()["shield_mode"] == "stopped"
        np.testing.assert_allclose(commands[-1], q, atol=1e-9)


def test_gap_a_refused_readings_never_become_the_reference():
    """Gap A, the reading check itself: after a glitch the arm's real readings pass again; an arm
    really moved passes once the elapsed time allows it; a clock that jumped back is refused once
    and then checked from its new time; out-of-range, too fast and finger readings are refused."""
    from robolearn.hardware.readings import ReadingCheck, ReadingLimits  # new with the fix

    check = ReadingCheck(ReadingLimits(), ShieldConfig())
    zero, shoulder = np.zeros(6), np.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert check.check(0.0, START_Q, zero, OPEN) == ""
    assert "moved 2.000 rad" in check.check(0.01, START_Q + 2.0 * shoulder, zero, OPEN)
    assert check.check(0.02, START_Q, zero, OPEN) == ""  # compared with the last good reading
    moved = START_Q + 0.5 * shoulder
    assert "more than the arm can" in check.check(0.03, moved, zero, OPEN)  # 0.5 rad in 10 ms
    assert check.check(0.1, moved, zero, OPEN) == ""  # 80 ms: up to 2 pi x 0.08 + 0.05 rad
    assert "before the previous" in check.check(0.05, moved, zero, OPEN)
    assert check.check(0.06, moved, zero, OPEN) == ""
    assert "outside" in check.check(0.07, moved + np.array([4.0, 0, 0, 0, 0, 0]), zero, OPEN)
    assert "faster than the arm" in check.check(0.08, moved, 7.0 * shoulder, OPEN)
    assert "fingers" in check.check(0.09, moved, zero, np.full(2, 0.1))
    assert check.check(0.1, moved, zero, OPEN) == ""


@pytest.mark.parametrize("reading", ["moved", "glitch"])
def test_gap_b_a_restart_moves_on_from_the_last_command(reading):
    """Gap B: a restart re-referenced the step limit on the measured position instead of the last
    command: a 0.22 rad jump after the arm was moved during a stop, 5.9 rad with a glitched
    reading."""
    bridge, t, commands = running_bridge(Policy(STILL))
    bridge.hold(t, "operator")
    moved = START_Q + np.array([0.0, 0.22, 0.0, 0.0, 0.0, 0.0])
    for i in range(50):  # the arm is pushed 0.22 rad by hand during the hold, over 0.5 s
        now = t + i * DT
        feed(bridge, now, q=START_Q + (i + 1) / 50 * (moved - START_Q))
        commands.append(bridge.control_step(now).q_rad)
    t += 0.5
    if reading == "glitch":
        try_feed(bridge, t, q=moved + np.array([5.9, 0.0, 0.0, 0.0, 0.0, 0.0]))
    bridge.start(t)
    for i in range(50):
        now = t + i * DT
        if i:
            feed(bridge, now, q=moved)
        if bridge.policy_due(now):
            bridge.run_policy(now)
        commands.append(bridge.control_step(now).q_rad)
    assert bridge.mode == "running", bridge.status()["hold_reason"]
    assert largest_jump(commands) <= MAX_STEP + 1e-9
    np.testing.assert_allclose(commands[-1], moved, atol=1e-6)  # it got there, step by step


@pytest.mark.parametrize("what", ["joints", "image"])
def test_gap_c_a_timestamp_from_the_future_holds(what):
    """Gap C: a joint-state (or image) timestamp from the future made the watchdog's age negative
    and disabled it: the bridge kept running on data that never came again."""
    bridge, t, _ = running_bridge()
    if what == "joints":
        bridge.observe_joints(t + 1000.0, START_Q, np.zeros(6), OPEN, None)
    else:
        bridge.observe_image(t + 1000.0, IMAGE)
    command = bridge.control_step(t)
    for i in range(1, 30):  # the driver (or camera) goes silent
        bridge.control_step(t + i * DT)
    status = bridge.status()
    assert status["mode"] == "hold" and "future" in status["hold_reason"], status["hold_reason"]
    np.testing.assert_array_equal(bridge.status()["command"], command.q_rad)
    with pytest.raises(ObservationError, match="future"):
        bridge.start(t + 0.3)


def _flipping_plant(cfg: PassivityConfig, amplitude: float, seconds: float, substeps: int = 50):
    """The filter on a finely integrated arm (inertia M, the port's K and D, M q'' = K (q_cmd - q)
    - D q') whose setpoint flips by +-amplitude at every control step. Returns the filter, the
    energy the plant really dissipated (J), what the commands took back out of the spring (steps
    with dV < 0, J) and what the plant still stores at the end (spring + kinetic, J)."""
    k, d = np.asarray(cfg.stiffness), np.asarray(cfg.damping)
    m = np.array([0.02, 0.03, 0.02, 0.005, 0.005, 0.002])  # kg m^2, light: fast, under-damped
    f = PassivityFilter(cfg)
    f.reset(START_Q)
    q, qdot, cmd = START_Q.copy(), np.zeros(6), START_Q.copy()
    h = cfg.dt_s / substeps
    dissipated = returned = 0.0

    def deriv(q, qdot):  # (q', q'', power the damping dissipates)
        return qdot, (k * (cmd - q) - d * qdot) / m, float((d * qdot) @ qdot)

    for i in range(round(seconds / cfg.dt_s)):
        target = START_Q + (amplitude if i % 2 == 0 else -amplitude)
        cmd = f.filter(target, q, qdot)
        returned += max(-f.state.injected_power_w * cfg.dt_s, 0.0)
        for _ in range(substeps):  # classic Runge-Kutta, 0.2 ms
            k1 = deriv(q, qdot)
            k2 = deriv(q + 0.5 * h * k1[0], qdot + 0.5 * h * k1[1])
            k3 = deriv(q + 0.5 * h * k2[0], qdot + 0.5 * h * k2[1])
            k4 = deriv(q + h * k3[0], qdot + h * k3[1])
            q = q + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            qdot = qdot + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            dissipated += h / 6 * (k1[2] + 2 * k2[2] + 2 * k3[2] + k4[2])
    stored = 0.5 * float((k * (cmd - q)) @ (cmd - q)) + 0.5 * float((m * qdot) @ qdot)
    return f, dissipated, returned, stored


def test_gap_d_the_tank_refill_is_bounded_by_what_the_commands_can_have_dissipated():
    """Gap D: the tank's sampled damping refill (qdot^T D qdot at the control instants) exceeded
    what the plant really dissipated when the setpoint flipped at the control rate (153 J refilled
    vs 71 J dissipated, found in a finely integrated plant)."""
    cfg = PassivityConfig(energy_init_j=50.0, energy_max_j=1000.0)
    f, dissipated, returned, stored = _flipping_plant(cfg, amplitude=0.02, seconds=5.0)
    s = f.state
    # The damping refill is what the tank took back beyond the spring energy the steps returned;
    # it never exceeds what the plant really dissipated (plus what it still holds), and the tank
    # as a whole never takes back more than the commands injected.
    refilled = s.harvested_energy_j - returned
    assert refilled <= dissipated + stored + 1e-9, (refilled, dissipated, stored)
    assert s.harvested_energy_j <= s.injected_energy_j + 1e-9
    assert s.energy_j <= cfg.energy_init_j + 1e-9


def test_gap_e_a_policy_raising_any_exception_holds():
    """Gap E: a policy raising SystemExit or KeyboardInterrupt (not an Exception) left the bridge
    "running" with no error, and the policy was never called again."""
    for exc in (SystemExit(3), KeyboardInterrupt(), GeneratorExit()):
        policy = Policy()
        bridge, t, _ = running_bridge(policy, seconds=0.1)
        policy.action = exc
        with pytest.raises(type(exc)):  # interpreter exits still propagate, after the hold
            bridge.run_policy(0.2)
        status = bridge.status()
        assert status["mode"] == "hold" and status["hold_reason"] == "policy_error", status
        assert type(exc).__name__ in status["last_error"]
        assert not bridge.policy_due(0.4)


def test_gap_f_a_slow_policy_holds_and_its_late_action_is_never_applied():
    """Gap F: a slow or hung policy was not reported, and its action, computed from an observation
    1.5 s old, was applied when it arrived. There was no policy-age watchdog."""
    release, started = threading.Event(), threading.Event()
    big = np.array([1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 1.0], np.float32)

    def hung(obs):
        started.set()
        assert release.wait(10.0)
        return big

    bridge = Bridge(hung, BridgeConfig())
    feed(bridge, 0.0)
    bridge.start(0.0)
    worker = threading.Thread(target=bridge.run_policy, args=(0.0,))
    worker.start()
    assert started.wait(10.0)
    deadline = bridge.cfg.policy_deadline
    assert deadline == pytest.approx(2.0 / bridge.cfg.policy_hz)
    commands, held_at = [], None
    for i in range(150):  # 1.5 s of control steps while the policy hangs
        now = i * DT
        feed(bridge, now)
        commands.append(bridge.control_step(now).q_rad)
        if held_at is None and bridge.mode == "hold":
            held_at = now
    release.set()
    worker.join(10.0)
    for i in range(150, 180):
        feed(bridge, i * DT)
        commands.append(bridge.control_step(i * DT).q_rad)
    status = bridge.status()
    assert held_at is not None and held_at <= deadline + DT + 1e-9, held_at
    assert "policy_late" in status["hold_reason"] and status["policy_steps"] == 0
    np.testing.assert_array_equal(commands, np.broadcast_to(START_Q, (180, 6)))  # never applied


def test_gap_f_the_policy_deadline_is_a_node_parameter():
    """Gap F: the deadline is configurable like the other watchdog timeouts (node parameter)."""
    params = {p.name: p.default for p in ros2_config.PARAMS}
    assert params["policy_timeout_s"] == 0.0  # 0: two policy periods
    assert ros2_config.bridge_config(params).policy_deadline == pytest.approx(0.4)
    cfg = ros2_config.bridge_config({**params, "policy_timeout_s": 0.25})
    assert cfg.policy_deadline == 0.25


@pytest.mark.parametrize("velocities", ["finite_difference_burst", "absurd"])
def test_gap_i_implausible_joint_velocities_never_refill_the_tank(velocities):
    """Gap I: finite-differenced velocities of a 10k-message burst (a driver without velocities,
    messages microseconds apart) or an absurd qdot (1e150) refilled the tank to E_max."""
    bridge, t, _ = running_bridge(Policy(STILL))
    before = bridge.tank.energy_j
    rng = np.random.default_rng(0)
    prev_q, prev_t = START_Q, t
    refused = 0
    for i in range(10_000):
        now = t + i * 1e-6
        if velocities == "absurd":
            q, qdot = START_Q, np.full(6, 1e150)
        else:
            q = START_Q + rng.normal(0.0, 1e-3, 6)
            qdot = (q - prev_q) / (now - prev_t) if now > prev_t else np.zeros(6)
            prev_q, prev_t = q, now
        refused += not try_feed(bridge, now, q=q, qdot=qdot, image=False)
        if i % 1000 == 999:
            bridge.control_step(now)
    assert refused > 0 and bridge.mode == "hold"
    assert "implausible" in bridge.status()["hold_reason"]
    assert bridge.tank.energy_j <= max(before, bridge.cfg.passivity.energy_init_j) + 1e-9
    # The filter alone, told of 1e150 rad/s with the setpoint at the arm, refills nothing.
    f = PassivityFilter()
    f.reset(START_Q)
    f.filter(START_Q, START_Q, np.full(6, 1e150))
    assert f.state.energy_j == PassivityConfig().energy_init_j


def test_a_burst_without_velocities_is_differenced_over_time_not_per_message():
    """The node's velocities for a driver without them (readings.DifferencedVelocity): the same
    10k-message burst as gap I, microseconds apart, keeps the bridge running (per message, its
    differences were refused as implausible and held the arm) and never refills the tank."""
    bridge, t, _ = running_bridge(Policy(STILL))
    before = bridge.tank.energy_j
    rng = np.random.default_rng(0)
    velocity = DifferencedVelocity()
    speeds = []
    for i in range(10_000):
        now = t + i * 1e-6
        q = START_Q + rng.normal(0.0, 1e-3, 6)
        qdot = velocity.update(now, q)
        speeds.append(np.abs(qdot).max())
        assert try_feed(bridge, now, q=q, qdot=qdot, image=False)
        if i % 1000 == 999:
            bridge.control_step(now)
    assert bridge.mode == "running", bridge.status()["hold_reason"]
    assert max(speeds) == 0.0  # the burst spans 10 ms: no reading far enough from the first
    assert bridge.tank.energy_j <= max(before, bridge.cfg.passivity.energy_init_j) + 1e-9
    # Readings 10 ms apart are differenced: a joint moving at 0.5 rad/s reads 0.5 rad/s.
    velocity = DifferencedVelocity()
    for i in range(5):
        qdot = velocity.update(i * 0.01, START_Q + 0.5 * i * 0.01)
    np.testing.assert_allclose(qdot, 0.5, rtol=1e-9)


@pytest.mark.parametrize(
    "action",
    [
        ["0.1", "0", "0", "0", "0", "0", "1"],
        np.array(["0.1", "0", "0", "0", "0", "0", "1"]),
        np.array([0.1 + 0.5j, 0, 0, 0, 0, 0, 1]),
        np.array([True, False, False, False, False, False, True]),
        np.array([0.1, 0, 0, 0, 0, 0, 1], dtype=object),
        [0.1, 0, 0, 0, 0, 0, "1"],
    ],
    ids=["str_list", "str_array", "complex", "bool", "object", "mixed"],
)
def test_gap_actions_must_be_real_finite_floats(action):
    """Policy outputs given as strings or complex numbers (and bools, objects) were accepted as
    actions by ramp.check_action."""
    act, kind, error = check_action(action)
    assert act is None and kind == "policy_type", (kind, error)
    assert "real" in error and "float" in error
    policy = Policy(action)
    bridge, _, _ = running_bridge(policy, seconds=0.1)
    assert bridge.mode == "hold" and bridge.status()["hold_reason"] == "policy_type"
    assert check_action(np.asarray(SMALL, np.float32))[0] is not None
    assert check_action(SMALL.tolist())[0] is not None


def test_control_step_does_no_disk_io(tmp_path, monkeypatch):
    """Recording runs on its own thread: no file is opened, written, synced or renamed inside
    control_step, even on the step whose hold finishes a recorded episode."""
    calls = []
    in_control = threading.Event()
    control_thread = threading.current_thread()

    def spy(name, real):
        def wrapped(*args, **kwargs):
            if in_control.is_set() and threading.current_thread() is control_thread:
                calls.append(name)
            return real(*args, **kwargs)

        return wrapped

    for module, name in [
        (builtins, "open"),
        (os, "open"),
        (os, "write"),
        (os, "fsync"),
        (os, "replace"),
        (os, "rename"),
        (os, "mkdir"),
        (os, "makedirs"),
    ]:
        monkeypatch.setattr(module, name, spy(name, getattr(module, name)))
    store = tmp_path / "store"
    bridge = Bridge(Policy(), BridgeConfig(record_dir=str(store)), store_writer(store))
    feed(bridge, 0.0)
    bridge.start(0.0)
    t = 0.0
    for i in range(60):  # runs, then the joint states stop: control_step ends the episode
        t = i * DT
        if i < 40:
            feed(bridge, t)
        else:
            bridge.observe_image(t, IMAGE)
        if bridge.policy_due(t):
            bridge.run_policy(t)
        in_control.set()
        bridge.control_step(t)
        in_control.clear()
    assert bridge.mode == "hold" and "stale_joint_states" in bridge.status()["hold_reason"]
    assert bridge.flush_recording(10.0)
    assert bridge.status()["last_episode"]  # the episode was written, on the writer's thread
    assert calls == []


def test_the_simulated_arm_is_driven_through_the_bridges_safety_chain(monkeypatch):
    """One safety chain: every command the simulated loop sends the arm is SafetyChain's output."""
    from robolearn.hardware.sim_arm import SimArm, run_closed_loop

    outputs, sent = [], []
    step = SafetyChain.step

    def spy_step(self, *args, **kwargs):
        new = step(self, *args, **kwargs)
        outputs.append(self.last_q_rad.copy())
        return new

    monkeypatch.setattr(SafetyChain, "step", spy_step)
    arm = SimArm("drawer", seed=0)
    command = arm.command
    monkeypatch.setattr(arm, "command", lambda q, f: (sent.append(np.array(q)), command(q, f)))
    try:
        run_closed_loop(Bridge(Policy(), BridgeConfig()), arm, seconds=0.3)
    finally:
        arm.close()
    assert len(sent) == 30 and len(outputs) == 30
    np.testing.assert_array_equal(sent, outputs)


# -- the step-limit invariant under random hostile input ---------------------------------------

LO = np.asarray(BridgeConfig().shield.q_lower_rad)
HI = np.asarray(BridgeConfig().shield.q_upper_rad)
offsets = st.lists(st.floats(-0.05, 0.05), min_size=6, max_size=6).map(np.array)
joint_q = st.one_of(
    offsets.map(lambda d: START_Q + d),  # the arm about where it is
    offsets.map(lambda d: START_Q + 20 * d),  # up to 1 rad away (moved, or a glitch)
    st.lists(st.floats(-7.0, 7.0), min_size=6, max_size=6).map(np.array),  # anywhere
    st.just(np.full(6, np.nan)),
)
stamp_offset = st.sampled_from([0.0, 0.0, 0.0, -0.05, -0.5, 0.05, 1000.0, -1000.0])
sane_joint_op = st.tuples(  # the arm where it is, now and then pushing into something
    st.just("joints"),
    st.lists(st.floats(-0.02, 0.02), min_size=6, max_size=6).map(lambda d: START_Q + np.array(d)),
    st.just(0.0),
    st.just(0.0),
    st.sampled_from([None, None, None, 5000.0]),
)
joint_op = st.tuples(
    st.just("joints"),
    joint_q,
    stamp_offset,
    st.sampled_from([0.0, 0.0, 3.0, 1e150]),  # qdot (rad/s, every joint)
    st.sampled_from([None, None, 0.0, 5000.0]),  # shoulder effort (mA)
)
action = st.sampled_from(
    [
        SMALL,
        -SMALL,
        np.array([1.0, 1.0, -1.0, 1.0, 1.0, 1.0, -1.0], np.float32),
        np.full(7, np.nan, np.float32),
        ["1"] * 7,
        RuntimeError("policy failed"),
    ]
)
op = st.one_of(
    sane_joint_op,
    sane_joint_op,
    joint_op,
    st.tuples(st.just("image"), stamp_offset),
    st.tuples(st.just("start")),
    st.tuples(st.just("hold")),
    st.tuples(st.just("policy"), action),
    st.tuples(st.just("control"), st.sampled_from([DT, DT, DT, 0.003, 0.05, 0.3])),
    st.tuples(st.just("control"), st.just(DT)),
    st.tuples(st.just("control"), st.just(DT)),
)


def _apply(bridge, policy, op, now):
    """One hostile input; refused inputs are what the bridge is for."""
    kind = op[0]
    try:
        if kind == "joints":
            _, q, offset, qdot, effort = op
            eff = None if effort is None else np.array([0.0, effort, 0.0, 0.0, 0.0, 0.0])
            bridge.observe_joints(now + offset, q, np.full(6, qdot), OPEN, eff)
        elif kind == "image":
            bridge.observe_image(now + op[1], IMAGE)
        elif kind == "start":
            bridge.start(now)
        elif kind == "hold":
            bridge.hold(now)
        elif kind == "policy":
            policy.action = op[1]
            bridge.run_policy(now)
    except ObservationError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=60))
def test_no_command_moves_a_joint_more_than_the_step_limit_in_any_mode(ops):
    policy = Policy()
    bridge = Bridge(policy, BridgeConfig())
    feed(bridge, 0.0)
    now, prev = 0.0, None
    for op in [("start",), *ops]:
        if op[0] != "control":
            _apply(bridge, policy, op, now)
            continue
        now += op[1]
        command = bridge.control_step(now)
        q = command.q_rad
        assert np.isfinite(q).all() and (q >= LO - 1e-12).all() and (q <= HI + 1e-12).all()
        if prev is not None:
            assert np.abs(q - prev).max() <= MAX_STEP + 1e-9, (bridge.mode, bridge.status())
        prev = q
        event(f"{bridge.mode}/{bridge.status()['shield_mode']}")
