"""The bridge core (robolearn.hardware.bridge): rates, ramp, holds, status, recording (through
robolearn.data.deployment's writer, on the recording thread), and the closed loop.

Unit tests feed the bridge joint states directly and use small scripted policies (plain callables
with the policy's signature); the ramp is checked against the real simulator's joint targets, and
the closed-loop test runs the shipped BC drawer policy through the bridge on the simulated arm.

Longer than a module should be (~550 lines), on purpose: every test here drives the one Bridge
object through the same scripted policies and joint-state feeders defined at the top, and the
closed-loop tests share a module-scoped compiled policy; split files would each copy them.
"""

import dataclasses
import json
import threading
import types

import mujoco
import numpy as np
import pytest
from robolearn.hardware.bridge import (
    SIM_RAMP_FRACTION,
    Bridge,
    BridgeConfig,
    JointCommand,
    ObservationError,
    load_policy,
)
from robolearn.hardware.passivity import PassivityConfig
from robolearn.hardware.recording import DeploymentEpisode, RecordingThread
from robolearn.hardware.shield import ShieldConfig
from robolearn.hardware.sim_arm import SimArm, run_closed_loop

from robolearn import envs
from robolearn.bundles import BundleError
from robolearn.core import widowx as wx
from robolearn.core import widowx_control as control
from robolearn.core.errors import ConfigError
from robolearn.data.deployment import store_writer
from robolearn.data.store import list_episodes, read_episode

START_Q = control.start_target().q_rad
OPEN = np.full(2, wx.FINGER_UPPER_M)
SMALL = np.array([0.3, -0.2, 0.2, 0.1, -0.1, 0.1, 1.0], np.float32)


class Scripted:
    """A policy that returns the given actions in turn (the last one repeats) and counts calls."""

    def __init__(self, *actions):
        self.actions, self.calls = list(actions), 0

    def __call__(self, obs):
        assert obs["image"].shape == (64, 64, 3) and obs["proprio"].shape == (7,)
        self.calls += 1
        return self.actions[min(self.calls, len(self.actions)) - 1]


def no_filter(**kwargs) -> BridgeConfig:
    cfg = BridgeConfig(**kwargs)
    return dataclasses.replace(cfg, passivity=dataclasses.replace(cfg.passivity, enabled=False))


def feed(bridge, now, q=START_Q, image=True):
    bridge.observe_joints(now, q, np.zeros(6), OPEN, np.zeros(6))
    if image:
        bridge.observe_image(now, np.full((64, 64, 3), 90, np.uint8))


def run(bridge, t0, seconds, dt=0.01):
    """Drive the bridge with a static arm; returns the commands."""
    out = []
    for i in range(round(seconds / dt)):
        now = t0 + i * dt
        feed(bridge, now)
        if bridge.policy_due(now):
            bridge.run_policy(now)
        out.append(bridge.control_step(now))
    return out


def test_holds_the_measured_position_until_started():
    policy = Scripted(SMALL)
    bridge = Bridge(policy, BridgeConfig())
    assert bridge.control_step(0.0) is None  # nothing measured yet
    feed(bridge, 0.0)
    for i in range(30):
        feed(bridge, i * 0.01)
        bridge.run_policy(i * 0.01)
        cmd = bridge.control_step(i * 0.01)
        assert isinstance(cmd, JointCommand)
        np.testing.assert_array_equal(cmd.q_rad, START_Q)
        assert cmd.finger_m == wx.FINGER_UPPER_M
    assert policy.calls == 0 and bridge.mode == "idle" and not bridge.policy_due(0.3)


def _simulator_ctrl(monkeypatch, action):
    """The arm joint targets the drawer task applies in each 20 ms chunk of one step(action)."""
    task = envs.make("drawer")
    task.reset(seed=0)
    seen, step = [], mujoco.mj_step

    def spy(model, data, nstep=1):
        seen.append(data.ctrl[task._arm_act].copy())
        step(model, data, nstep=nstep)

    monkeypatch.setattr(mujoco, "mj_step", spy)
    task.step(action)
    monkeypatch.undo()
    task.close()
    return np.array(seen)


@pytest.mark.parametrize("control_hz", [50.0, 100.0])
def test_ramp_matches_the_simulator(monkeypatch, control_hz):
    sim = _simulator_ctrl(monkeypatch, SMALL)  # [10 chunks, 6]
    assert sim.shape == (10, 6)
    cfg = no_filter(control_hz=control_hz, ramp_fraction=SIM_RAMP_FRACTION)
    bridge = Bridge(Scripted(SMALL), cfg)
    feed(bridge, 0.0)
    bridge.start(0.0)
    cmds = np.array([c.q_rad for c in run(bridge, 0.0, 0.2, dt=1.0 / control_hz)])
    per_chunk = round(control_hz / 50.0)
    # The command that ends each 20 ms chunk is the simulator's target for that chunk ...
    np.testing.assert_allclose(cmds[per_chunk - 1 :: per_chunk], sim, atol=2e-4)
    # ... reached after 70 % of the step and then held; at 100 Hz the midpoints lie between.
    np.testing.assert_allclose(cmds[-1], sim[-1], atol=2e-4)
    if per_chunk == 2:
        np.testing.assert_allclose(cmds[2:14:2], 0.5 * (sim[:6] + sim[1:7]), atol=2e-4)
    assert bridge.status()["interventions"] == {}


def test_default_ramp_spans_the_policy_period():
    bridge = Bridge(Scripted(SMALL), no_filter())
    feed(bridge, 0.0)
    bridge.start(0.0)
    cmds = np.array([c.q_rad for c in run(bridge, 0.0, 0.4)])
    target, ok = control.step_target(
        control.EETarget(wx.fk(START_Q)[:3, 3], wx.mat_to_rpy(wx.fk(START_Q)[:3, :3]), START_Q),
        SMALL.astype(np.float64),
    )
    assert ok
    expected = START_Q + np.arange(1, 21)[:, None] / 20 * (target.q_rad - START_Q)
    np.testing.assert_allclose(cmds[:20], expected, atol=1e-9)
    steps = np.abs(np.diff(cmds, axis=0)).max()
    assert steps <= wx.VELOCITY_LIMIT_RAD_S * 0.01 + 1e-12


def test_the_ramp_starts_when_the_action_arrives_not_when_the_policy_was_called():
    """Over ROS 2 the action arrives after inference; counted from the policy call, that time
    became a jump in the setpoint (clipped by the shield, after the tank had paid for it)."""

    def commands(first_control_s):
        bridge = Bridge(Scripted(SMALL), no_filter())
        feed(bridge, 0.0)
        bridge.start(0.0)
        bridge.run_policy(0.0)  # called at 0; its action is in before the next control step
        out = []
        for i in range(20):
            now = first_control_s + 0.01 * i
            feed(bridge, now)
            out.append(bridge.control_step(now).q_rad)
        return np.array(out), bridge.status()["interventions"]

    on_time, _ = commands(0.0)
    late, interventions = commands(0.03)  # 30 ms of inference
    np.testing.assert_allclose(late, on_time, atol=1e-12)
    assert interventions == {}


class _ServoArm:
    """An arm that is exactly where it was last commanded, at rest: every spring error is zero,
    so a sent step d costs the tank exactly 1/2 d^T K d and nothing refills it."""

    def __init__(self, bridge):
        self.bridge, self.q, self.sent = bridge, START_Q.copy(), []

    def step(self, now):
        self.bridge.observe_joints(now, self.q, np.zeros(6), OPEN, np.zeros(6))
        self.bridge.observe_image(now, np.full((64, 64, 3), 90, np.uint8))
        if self.bridge.policy_due(now):
            self.bridge.run_policy(now)
        cmd = self.bridge.control_step(now)
        self.sent.append(cmd.q_rad - self.q)
        self.q = cmd.q_rad


@pytest.mark.parametrize("case", ["late_ticks", "joint_limit"])
def test_the_tank_pays_for_the_commands_sent_not_for_what_the_shield_cuts(case):
    """The shield's joint and step limits act before the passivity filter. A late control tick
    (a fast ramp then asks for more than one step) or a target past a joint limit (asked for
    again on every step) used to be charged in full and then clipped: over ROS 2 that drained the
    tank while the arm moved normally."""
    big = np.array([1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 1.0], np.float32)  # two moves at the speed limit
    # A tank large enough never to gate (a servo at rest refills nothing): exact accounting.
    tank = PassivityConfig(energy_init_j=100.0, energy_max_j=100.0)
    if case == "late_ticks":
        cfg, policy = BridgeConfig(passivity=tank), Scripted(big)
        gaps = np.random.default_rng(0).uniform(0.004, 0.016, 300)  # 10 +- 6 ms ticks
    else:
        shield = ShieldConfig(q_lower_rad=tuple(START_Q - 0.05), q_upper_rad=tuple(START_Q + 0.05))
        cfg, policy = BridgeConfig(passivity=tank, shield=shield), Scripted(SMALL)
        gaps = np.full(300, 0.01)
    bridge = Bridge(policy, cfg)
    arm = _ServoArm(bridge)
    arm.step(0.0)
    bridge.start(0.0)
    for now in np.cumsum(gaps):
        arm.step(float(now))
    counts = bridge.status()["interventions"]
    assert counts.get("step_limit" if case == "late_ticks" else "joint_limit", 0) >= 10, counts
    k = np.asarray(cfg.passivity.stiffness)
    paid = sum(0.5 * float(d @ (k * d)) for d in arm.sent)
    state = bridge.tank
    assert state.activations == 0 and paid > 0.0
    assert state.injected_energy_j == pytest.approx(paid, rel=1e-9)
    assert state.energy_j == pytest.approx(cfg.passivity.energy_init_j - paid, rel=1e-9)
    steps = np.abs(np.array(arm.sent)).max(axis=1)
    assert steps.max() <= cfg.shield.max_velocity_rad_s * cfg.shield.dt_s + 1e-12


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        (np.array([0, 0, np.nan, 0, 0, 0, 1], np.float32), "policy_nan"),
        (np.array([0, 0, 0, np.inf, 0, 0, 1], np.float32), "policy_nan"),
        (np.zeros(6, np.float32), "policy_shape"),
        ("open it", "policy_shape"),
    ],
)
def test_bad_action_holds_until_started_again(bad, kind):
    policy = Scripted(SMALL, bad, SMALL)
    bridge = Bridge(policy, BridgeConfig())
    feed(bridge, 0.0)
    bridge.start(0.0)
    cmds = run(bridge, 0.0, 1.0)
    status = bridge.status()
    assert status["mode"] == "hold" and status["hold_reason"] == kind
    assert status["interventions"][kind] == 1 and status["policy_steps"] == 1
    assert ("NaN/inf" if kind == "policy_nan" else "shape") in status["last_error"]
    assert policy.calls == 2  # nothing runs after the hold
    held = [c.q_rad for c in cmds[25:]]
    np.testing.assert_array_equal(held, np.broadcast_to(cmds[24].q_rad, (len(held), 6)))
    bridge.start(1.0)
    run(bridge, 1.0, 0.5)
    assert bridge.mode == "running" and policy.calls == 5


def test_policy_exception_holds():
    def broken(obs):
        raise RuntimeError("GPU fell off")

    bridge = Bridge(broken, BridgeConfig())
    feed(bridge, 0.0)
    bridge.start(0.0)
    run(bridge, 0.0, 0.1)
    assert bridge.mode == "hold" and "GPU fell off" in bridge.status()["last_error"]


def test_stale_joint_states_hold_within_one_watchdog_period():
    bridge = Bridge(Scripted(SMALL), BridgeConfig())
    feed(bridge, 0.0)
    bridge.start(0.0)
    run(bridge, 0.0, 0.5)
    assert bridge.mode == "running"
    last = bridge.control_step(0.5)
    timeout = bridge.cfg.shield.joint_state_timeout_s
    t = 0.5
    while bridge.mode == "running":  # the driver died at t = 0.49: no more joint states
        t += 0.01
        cmd = bridge.control_step(t)
    assert t <= 0.49 + timeout + 0.01 + 1e-9
    assert "stale_joint_states" in bridge.status()["hold_reason"]
    # Holding: the commands stay at the last safe one, also once joint states come back.
    np.testing.assert_allclose(cmd.q_rad, last.q_rad, atol=wx.VELOCITY_LIMIT_RAD_S * 0.06)
    held = [c.q_rad for c in run(bridge, t + 0.01, 0.5)]
    np.testing.assert_array_equal(held, np.broadcast_to(cmd.q_rad, (len(held), 6)))
    assert bridge.mode == "hold"
    bridge.start(t + 0.6)
    assert bridge.mode == "running"
    run(bridge, t + 0.6, 0.3)
    assert bridge.mode == "running"


def test_effort_over_the_threshold_is_a_safe_stop():
    bridge = Bridge(Scripted(SMALL), BridgeConfig())
    feed(bridge, 0.0)
    bridge.start(0.0)
    last = run(bridge, 0.0, 0.3)[-1].q_rad
    q_now = START_Q + 0.01
    bridge.observe_joints(0.3, q_now, np.zeros(6), OPEN, np.array([0, 5000.0, 0, 0, 0, 0]))
    cmds = [last] + [bridge.control_step(0.3 + 0.01 * i).q_rad for i in range(20)]
    status = bridge.status()
    assert status["mode"] == "hold" and "effort" in status["hold_reason"]
    assert status["shield_mode"] == "stopped"
    # Stop pushing: the command goes to where the arm is, within the step limit (no jump).
    assert np.abs(np.diff(cmds, axis=0)).max() <= wx.VELOCITY_LIMIT_RAD_S * 0.01 + 1e-12
    np.testing.assert_allclose(cmds[-1], q_now)


def test_observations_are_checked():
    bridge = Bridge(Scripted(SMALL), BridgeConfig())
    with pytest.raises(ObservationError, match="shape"):
        bridge.observe_joints(0.0, np.zeros(5), np.zeros(6), OPEN)
    with pytest.raises(ObservationError, match="NaN"):
        bridge.observe_joints(0.0, np.zeros(6), np.full(6, np.nan), OPEN)
    with pytest.raises(ObservationError, match="uint8"):
        bridge.observe_image(0.0, np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ObservationError, match="no joint state"):
        bridge.start(0.0)
    bridge.observe_joints(0.0, START_Q, np.zeros(6), OPEN)
    with pytest.raises(ObservationError, match="no camera image"):
        bridge.start(0.0)
    assert bridge.status()["interventions"] == {"bad_image": 1, "bad_joint_state": 2}
    bridge.observe_image(0.0, np.zeros((480, 640, 3), np.uint8))  # resized, not rejected
    bridge.start(0.0)
    with pytest.raises(ConfigError, match="control_hz"):
        BridgeConfig(policy_hz=10.0, control_hz=5.0)
    with pytest.raises(ConfigError, match="ramp_fraction"):
        BridgeConfig(ramp_fraction=0.0)


def test_status_is_a_json_snapshot():
    bridge = Bridge(Scripted(SMALL), BridgeConfig())
    feed(bridge, 0.0)
    bridge.start(0.0)
    run(bridge, 0.0, 1.0)
    status = json.loads(json.dumps(bridge.status()))
    assert status["mode"] == "running" and status["steps"] == 100
    assert status["policy_steps"] == 5 and status["episodes"] == 1
    assert set(status["tank"]) >= {"energy_j", "alpha", "injected_power_w", "injected_energy_j"}
    assert status["last_action"] == pytest.approx(SMALL.tolist())
    assert status["last_error"] == "" and len(status["command"]) == 6
    assert 0.0 < status["tank"]["energy_j"] <= bridge.cfg.passivity.energy_max_j


def test_policy_runs_outside_the_lock_and_late_results_are_dropped():
    release, started = threading.Event(), threading.Event()

    def slow(obs):
        started.set()
        assert release.wait(10.0)
        return SMALL

    bridge = Bridge(slow, BridgeConfig())
    feed(bridge, 0.0)
    bridge.start(0.0)
    worker = threading.Thread(target=bridge.run_policy, args=(0.0,))
    worker.start()
    assert started.wait(10.0)
    assert not bridge.policy_due(0.0)  # one policy call at a time
    cmd = bridge.control_step(0.01)  # not blocked by the running policy
    assert cmd is not None and not release.is_set()
    bridge.hold(0.02, "operator")
    release.set()
    worker.join(10.0)
    assert bridge.status()["policy_steps"] == 0 and bridge.mode == "hold"


def test_recording_writes_a_store_episode(tmp_path):
    store = tmp_path / "deploy"
    policy = Scripted(SMALL, SMALL * 0.5)
    cfg = BridgeConfig(record_dir=str(store), policy_name="scripted")
    bridge = Bridge(policy, cfg, store_writer(store))
    feed(bridge, 0.0)
    bridge.start(0.0)
    for i in range(100):
        now = i * 0.01
        bridge.observe_joints(now, START_Q, np.full(6, 0.01), OPEN)
        bridge.observe_image(now, np.full((120, 160, 3), i, np.uint8))  # resized to 64x64
        if bridge.policy_due(now):
            bridge.mark_success(i >= 80)
            bridge.run_policy(now)
        bridge.control_step(now)
    bridge.hold(1.0, "operator")
    assert bridge.flush_recording(10.0)
    (path,) = list_episodes(store)
    assert bridge.status()["last_episode"] == str(path)
    episode = read_episode(path)
    assert episode.num_steps == 5
    assert episode.image.shape == (6, 64, 64, 3) and episode.state.shape == (6, 12)
    np.testing.assert_array_equal(episode.image[:5, 0, 0, 0], [0, 20, 40, 60, 80])
    np.testing.assert_allclose(episode.action, [SMALL] + [SMALL * 0.5] * 4)
    np.testing.assert_allclose(episode.proprio[0], wx.proprio(START_Q, OPEN), atol=1e-6)
    np.testing.assert_allclose(episode.state[:, 6:], 0.01)
    assert episode.success.tolist() == [False] * 4 + [True, True]
    meta = episode.meta
    assert meta.source == "robot" and meta.fps == 5.0 and meta.policy == "scripted"
    assert meta.task == "drawer" and meta.extra["bridge"]["end_reason"] == "operator"
    steps = meta.extra["steps"]
    assert len(steps["tank_energy_j"]) == len(steps["alpha_min"]) == 6
    assert all(0 <= a <= 1 for a in steps["alpha_min"])
    # A start followed by a hold before any action records nothing.
    bridge.start(2.0)
    bridge.hold(2.01, "operator")
    assert bridge.flush_recording(10.0)
    assert len(list_episodes(store)) == 1


def test_record_dir_without_a_writer_is_an_error(tmp_path):
    """hardware cannot write an episode store itself: silently recording nothing is no option."""
    with pytest.raises(ConfigError, match="no episode writer"):
        Bridge(Scripted(SMALL), BridgeConfig(record_dir=str(tmp_path / "store")))


class _BlockingWriter:
    """An episode writer that waits for `release` (a hung disk) and notes the thread it ran on."""

    def __init__(self, fail: bool = False):
        self.release, self.entered = threading.Event(), threading.Event()
        self.threads, self.steps, self.fail = [], [], fail

    def __call__(self, meta, observations, actions, success):
        self.threads.append(threading.current_thread())
        self.entered.set()
        assert self.release.wait(10.0)
        if self.fail:
            raise OSError("No space left on device")
        self.steps.append(len(actions))
        assert len(observations) == len(success) == len(actions) + 1 and meta["source"] == "robot"
        return f"episode-{len(self.steps)}"


def test_episodes_are_written_on_the_recording_thread_not_in_the_control_step():
    """A hold decided in control_step (stale joint states) ends the episode there; its write runs
    on the recording thread, so control steps go on while the disk hangs."""
    writer = _BlockingWriter()
    bridge = Bridge(Scripted(SMALL), BridgeConfig(), writer)
    feed(bridge, 0.0)
    bridge.start(0.0)
    run(bridge, 0.0, 0.5)
    t = 0.5
    while bridge.mode == "running":  # no more joint states: the shield holds in control_step
        t += 0.01
        bridge.control_step(t)
    assert writer.entered.wait(10.0)  # the write started, and blocks ...
    for i in range(50):  # ... while the control steps go on
        assert bridge.control_step(t + 0.01 * (i + 1)) is not None
    assert bridge.status()["last_episode"] == "" and not bridge.flush_recording(0.05)
    writer.release.set()
    assert bridge.flush_recording(10.0)
    assert writer.threads[0] is not threading.current_thread()
    assert writer.steps == [3] and bridge.status()["last_episode"] == "episode-1"


def test_a_failed_write_is_reported_and_the_bridge_carries_on():
    writer = _BlockingWriter(fail=True)
    writer.release.set()
    bridge = Bridge(Scripted(SMALL), BridgeConfig(), writer)
    feed(bridge, 0.0)
    bridge.start(0.0)
    run(bridge, 0.0, 0.5)
    bridge.hold(0.5, "operator")
    assert bridge.flush_recording(10.0)
    status = bridge.status()
    assert status["interventions"]["record_error"] == 1 and status["last_episode"] == ""
    assert status["last_error"] == "recording failed: OSError: No space left on device"
    bridge.start(0.6)
    run(bridge, 0.6, 0.3)
    assert bridge.mode == "running"


def test_recording_backlog_is_bounded():
    """With the writer stuck, finished episodes wait up to max_pending; more are dropped and
    reported, never blocking the caller."""
    writer, errors, written = _BlockingWriter(), [], []
    thread = RecordingThread(writer, written.append, lambda t, m: errors.append((t, m)), 2)

    def episode(end_s):
        ep = DeploymentEpisode({"source": "robot", "extra": {}})
        tank = types.SimpleNamespace(energy_j=1.0, injected_energy_j=0.0)
        for _ in range(2):
            ep.observe({"image": np.zeros((8, 8, 3), np.uint8)}, np.zeros(12), False, tank)
            ep.act(SMALL)
        ep.observe({"image": np.zeros((8, 8, 3), np.uint8)}, np.zeros(12), False, tank)
        ep.end("operator", end_s)
        return ep

    thread.submit(episode(1.0))
    assert writer.entered.wait(10.0)  # the first is being written; two more may wait
    for end_s in (2.0, 3.0, 4.0):
        thread.submit(episode(end_s))
    assert [t for t, _ in errors] == [4.0] and "backlog full" in errors[0][1]
    writer.release.set()
    assert thread.wait(10.0)
    assert written == ["episode-1", "episode-2", "episode-3"] and writer.steps == [2, 2, 2]


def test_deploy_sim_records_episodes_and_the_bare_sim_arm_refuses_to(tmp_path, monkeypatch, capsys):
    """`--record DIR` needs robolearn.data: python -m robolearn.runs.deploy sim writes the store,
    python -m robolearn.hardware.sim_arm says to use it (and writes nothing)."""
    import robolearn.hardware.bridge as bridge_module
    from robolearn.hardware import sim_arm

    from robolearn.runs import deploy

    monkeypatch.setattr(bridge_module, "load_policy", lambda spec, task: Scripted(SMALL))
    store = tmp_path / "sim-episodes"
    flags = ["--episodes", "2", "--seconds", "0.6", "--record", str(store)]
    with pytest.raises(SystemExit) as exit_info:
        sim_arm.main(flags)
    assert exit_info.value.code == 2 and "robolearn.runs.deploy sim" in capsys.readouterr().err
    assert not store.exists()
    assert deploy.main(["deploy", "sim", *flags]) == 0
    episodes = [read_episode(path) for path in list_episodes(store)]
    assert [e.num_steps for e in episodes] == [3, 3]  # policy steps at 0, 0.2 and 0.4 s
    for episode in episodes:
        assert episode.meta.source == "robot" and episode.meta.policy == "bundle:drawer/bc"
        assert episode.meta.extra["bridge"]["end_reason"] == "episode end"
        np.testing.assert_allclose(episode.action, np.broadcast_to(SMALL, (3, 7)))


def test_load_policy_errors(tmp_path):
    with pytest.raises(BundleError, match="no shipped bundle part"):
        load_policy("bundle:drawer/nope")
    with pytest.raises(ConfigError, match="no policy at"):
        load_policy(str(tmp_path / "missing"))
    with pytest.raises(Exception, match="images"):
        load_policy("bundle:drawer/bc", image_size=128)


@pytest.fixture(scope="module")
def bc_policy():
    return load_policy("bundle:drawer/bc", "drawer")


def test_closed_loop_bc_policy_opens_the_drawer(bc_policy, tmp_path):
    arm = SimArm("drawer", seed=0)
    cfg = BridgeConfig(record_dir=str(tmp_path / "store"), policy_name="bundle:drawer/bc")
    bridge = Bridge(bc_policy, cfg, store_writer(cfg.record_dir))
    out = run_closed_loop(bridge, arm, seconds=6.0)  # returns once the episode is written
    arm.close()
    status = out["status"]
    assert out["success"] and out["first_success_s"] < 5.0
    assert out["beyond_limits_rad"] == 0.0
    assert out["min_tank_energy_j"] >= cfg.passivity.energy_min_j - 1e-9
    assert status["tank"]["violations"] == 0 and status["hold_reason"] == "episode end"
    assert status["interventions"].get("stale_image", 0) == 0
    assert status["policy_steps"] == 30
    (path,) = list_episodes(tmp_path / "store")
    assert status["last_episode"] == str(path)
    episode = read_episode(path)
    assert episode.num_steps == 30 and episode.succeeded and episode.success[-1]


@pytest.mark.parametrize("extrapolate", [True, False])
def test_joint_states_one_period_old_do_not_drain_the_tank(bc_policy, extrapolate):
    """A real driver's joint states arrive 5-10 ms old. The bridge extrapolates them to the control
    time before the filter; without that the tank pays for energy no command injected and the
    filter stalls the arm (the case that failed over ROS 2 before the fix)."""
    arm = SimArm("drawer", seed=0)
    cfg = BridgeConfig(max_extrapolation_s=0.03 if extrapolate else 0.0)
    out = run_closed_loop(Bridge(bc_policy, cfg), arm, seconds=6.0, joint_latency_s=0.01)
    arm.close()
    tank = out["status"]["tank"]
    assert out["min_tank_energy_j"] >= cfg.passivity.energy_min_j - 1e-9
    if extrapolate:
        assert out["success"] and tank["activations"] < 0.1 * tank["steps"]
    else:
        assert not out["success"] and tank["activations"] > 0.5 * tank["steps"]


@pytest.mark.parametrize("phase_s", [None, 0.005])
def test_closed_loop_camera_free_running_or_fresh_at_every_policy_step(bc_policy, phase_s):
    """camera_phase_s runs the simulated camera on its own clock (frames at phase + k/30 s, as
    over ROS 2), so a policy step can see a frame up to a camera period old; without it a frame
    is rendered right before every policy step (the simulator's timing)."""
    stamps = []

    class Watched(Bridge):
        def observe_image(self, stamp_s, image):
            stamps.append(round(stamp_s - t0, 6))
            super().observe_image(stamp_s, image)

    arm = SimArm("drawer", seed=0)
    t0 = arm.time_s
    run_closed_loop(Watched(bc_policy, BridgeConfig()), arm, seconds=1.0, camera_phase_s=phase_s)
    arm.close()
    policy_steps = [round(0.2 * k, 6) for k in range(5)]
    if phase_s is None:
        assert set(policy_steps) <= set(stamps)
    else:  # the start, then the first 10 ms tick at or after 5 ms + k * 33.3 ms
        expected = [0.0] + [np.ceil((0.005 + k / 30) / 0.01 - 1e-6) * 0.01 for k in range(30)]
        assert stamps == pytest.approx(expected)
        assert not set(policy_steps[1:]) & set(stamps)  # none forced at a policy step


def test_closed_loop_node_timing_steps_after_the_ramp_on_a_fresh_frame(bc_policy):
    """node_timing schedules policy steps as the ROS 2 node does: after the previous action's 20
    commands plus 10 ms of inference, on a camera frame taken after the step became due; with a
    free-running 30 Hz camera that is a step every ~233 ms instead of 200."""
    frames, steps = [], []

    class Watched(Bridge):
        def observe_image(self, stamp_s, image):
            frames.append(stamp_s - t0)
            super().observe_image(stamp_s, image)

        def run_policy(self, now_s):
            steps.append(now_s - t0)
            super().run_policy(now_s)

    arm = SimArm("drawer", seed=1)
    t0 = arm.time_s
    cfg = BridgeConfig()
    run_closed_loop(
        Watched(bc_policy, cfg), arm, seconds=2.0, camera_phase_s=0.01, node_timing=True
    )
    arm.close()
    gaps = np.diff(steps)
    assert len(steps) >= 8 and np.all(gaps >= 0.21 - 1e-9) and np.all(gaps <= 0.21 + 1 / 30 + 0.011)
    assert np.mean(gaps) > 0.22  # slower than 5 Hz: each step waits for a frame
    for before, step in zip(steps[:-1], steps[1:], strict=True):
        latest = max(f for f in frames if f <= step + 1e-9)
        assert latest >= before + 0.21 - 1e-9  # taken after the step became due
