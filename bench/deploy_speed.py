"""Deployment speed: what the robot path costs per control step.

    python -m bench.run deploy_speed [--quick]

Every row has the same columns: `measure`, `n` (samples), `p50_us`, `p99_us`, `max_us` (per
sample, microseconds) and `note`. Each part of the path adds its rows with a function of its own
(`run` concatenates them), so the ROS rows (bridge loop jitter at 100 Hz, observation-to-command
latency on loopback) can come as `ros_rows(quick)` beside `filter_shield_rows(quick)`.

filter_shield_rows: robolearn.hardware.passivity.PassivityFilter.filter and
robolearn.hardware.shield.Shield.check with their default configs, called once per 100 Hz control
step as a bridge calls them, on a realistic command stream built beforehand: reaching moves to a new
random waypoint every 2 s through core.widowx_control.step_target at 5 Hz (IK, the workspace box; up
to 5 cm and pi/5 rad per joint a step), joint targets ramped linearly over each 0.2 s step, and an
arm that follows its command as the port model's overdamped servo (D qdot = K (q_cmd - q), capped at
pi rad/s). Timed with time.perf_counter_ns around each call, Python's garbage collector on, as in a
real
loop; no ROS, no simulator.
"""

from __future__ import annotations

import gc
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from robolearn.hardware.passivity import PassivityConfig, PassivityFilter
from robolearn.hardware.shield import Shield, ShieldConfig

from robolearn.core import widowx as wx
from robolearn.core import widowx_control as wxc

CONTROL_HZ = 100.0
SUBSTEPS = int(CONTROL_HZ / wxc.CONTROL_HZ)  # control steps per policy step (20)
REACH = 10  # policy steps (2 s) per reaching move
WAYPOINT_BOX_M = ((0.15, -0.15, 0.05), (0.40, 0.15, 0.28))  # inside the workspace box


def _targets(policy_steps: int, seed: int = 0) -> np.ndarray:
    """Joint targets [policy_steps + 1, 6] at 5 Hz: reaching moves as a policy makes them, the
    tip driven toward a new random waypoint every REACH policy steps (orientation held at the
    start pose), each action through core.widowx_control.step_target (IK, the workspace box)."""
    rng = np.random.default_rng(seed)
    target = wxc.start_target()
    out = [target.q_rad]
    for k in range(policy_steps):
        if k % REACH == 0:
            goal = rng.uniform(*WAYPOINT_BOX_M)
        action = np.zeros(7)
        action[:3] = (goal - target.pos_m) / wxc.POS_SCALE_M
        action[3:6] = (wxc.START_RPY_RAD - target.rpy_rad) / wxc.ROT_SCALE_RAD
        action[:6] += 0.1 * rng.normal(size=6)
        action[6] = 1.0 if (k // REACH) % 2 else -1.0
        target, _ = wxc.step_target(target, np.clip(action, -1.0, 1.0))
        out.append(target.q_rad)
    return np.array(out)


def _percentiles(name: str, samples_ns: np.ndarray, note: str) -> dict:
    us = samples_ns / 1e3
    p50, p99 = np.percentile(us, [50, 99])
    return {
        "measure": name,
        "n": len(us),
        "p50_us": float(p50),
        "p99_us": float(p99),
        "max_us": float(us.max()),
        "note": note,
    }


def filter_shield_rows(quick: bool = False) -> list[dict]:
    """Rows `filter`, `shield` and `filter+shield`: time per 100 Hz control step (20k steps,
    5k with --quick), and what they did (alpha < 1 steps, interventions) in the note."""
    steps = 5_000 if quick else 20_000
    targets = _targets(steps // SUBSTEPS + 1)
    dt = 1.0 / CONTROL_HZ
    passivity = PassivityFilter(PassivityConfig(dt_s=dt))
    shield = Shield(ShieldConfig(dt_s=dt))
    k_over_d = np.asarray(passivity.cfg.stiffness) / np.asarray(passivity.cfg.damping)
    q = targets[0].copy()
    qdot = np.zeros(wx.NUM_JOINTS)
    effort = np.full(wx.NUM_JOINTS, 200.0)
    passivity.reset(q)
    times = np.empty((steps, 2), dtype=np.int64)
    clock = time.perf_counter_ns
    for k in range(steps):
        i, j = divmod(k, SUBSTEPS)
        q_target = targets[i] + (j + 1) / SUBSTEPS * (targets[i + 1] - targets[i])
        now = k * dt
        t0 = clock()
        q_cmd = passivity.filter(q_target, q, qdot)
        t1 = clock()
        q_safe, _ = shield.check(now, q_cmd, 0.03, q, now, now, effort)
        t2 = clock()
        passivity.set_command(q_safe)
        times[k] = (t1 - t0, t2 - t1)
        qdot = np.clip(k_over_d * (q_safe - q), -np.pi, np.pi)
        q = q + dt * qdot
    tank = passivity.state
    counts = ", ".join(f"{n} {c}" for c, n in sorted(shield.counts.items())) or "none"
    gc_note = "gc on" if gc.isenabled() else "gc off"
    return [
        _percentiles(
            "filter",
            times[:, 0],
            f"alpha<1 on {tank.activations} steps, tank {tank.energy_j:.2f} J at the end",
        ),
        _percentiles("shield", times[:, 1], f"interventions: {counts}"),
        _percentiles("filter+shield", times.sum(axis=1), f"per 10 ms control step, {gc_note}"),
    ]


def zero_policy():
    """A policy that never moves (action 0): the bridge node's `python:` policy for the ROS rows."""
    return lambda obs: np.zeros(7, np.float32)


def ros_rows(quick: bool = False) -> list[dict]:
    """Rows over real ROS 2 on loopback (rclpy + Fast DDS, nodes in subprocesses):

    `bridge loop jitter`: |period - 10 ms| of the bridge node's 100 Hz control timer, as the node
    measures it (its status), while the BC drawer policy (bundle:drawer/bc, JAX on CPU) runs at
    5 Hz in its worker thread against the simulated driver: the last 2000 periods (20 s).
    `obs->command latency`: from publishing a joint state to the arrival of the command computed
    from it. The bench publishes the joint states itself (100 Hz); each sample publishes a pose
    with an effort over the shield's limit, whose safe stop holds exactly that measured pose, so
    the first command equal to it is that observation's answer; ~/start re-arms between samples.
    Includes the wait for the next control tick (0-10 ms). 50 samples (20 with --quick).
    """
    with tempfile.TemporaryDirectory() as tmp:
        return [
            _jitter_row(Path(tmp), 20.0),
            _latency_row(Path(tmp), 20 if quick else 50),
        ]


def _start(probe, bridge_name: str) -> None:
    ok, message = probe.call(f"{bridge_name}/start")
    if not ok:
        raise RuntimeError(f"bridge did not start: {message}")


def _ros_env(tmp: Path) -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {"ROS_LOG_DIR": str(tmp / "ros_log"), "PYTHONPATH": root}


def _jitter_row(tmp: Path, seconds: float) -> dict:
    from bench.ros2_probe import BRIDGE, BRIDGE_MODULE, NodeProcess, Probe

    domain = random.SystemRandom().randint(1, 200)
    env = _ros_env(tmp)
    driver = NodeProcess("robolearn.hardware.ros2_sim_driver", {}, domain, tmp / "driver.log", env)
    # A wide watchdog: a stall of this shared machine must not stop the measurement.
    params = {"checkpoint": "bundle:drawer/bc", "joint_state_timeout_s": 1.0}
    bridge = NodeProcess(BRIDGE_MODULE, params, domain, tmp / "bridge.log", env)
    probe = Probe(domain)
    try:
        probe.wait_for_node(f"{BRIDGE}/start", bridge, timeout_s=300)
        probe.wait_until(lambda: probe.status()["ready"], timeout_s=30)
        _start(probe, BRIDGE)
        time.sleep(seconds)
        status = probe.status()
    finally:
        probe.close()
        bridge.stop()
        driver.stop()
    period = status["control_period_ms"]
    return {
        "measure": "bridge loop jitter",
        "n": period["samples"],
        "p50_us": period["jitter_p50"] * 1e3,
        "p99_us": period["jitter_p99"] * 1e3,
        "max_us": period["jitter_max"] * 1e3,
        "note": (
            f"|period - 10 ms| of the 100 Hz timer, BC policy running "
            f"({status['policy_steps']} steps, mode {status['mode']}); median period "
            f"{period['p50']:.3f} ms"
        ),
    }


def _latency_row(tmp: Path, samples: int) -> dict:
    from robolearn.hardware import ros2_msgs as msgs
    from sensor_msgs.msg import Image, JointState

    from bench.ros2_probe import BRIDGE, BRIDGE_MODULE, NodeProcess, Probe

    domain = random.SystemRandom().randint(1, 200)
    params = {"checkpoint": "python:bench.deploy_speed:zero_policy", "joint_state_timeout_s": 1.0}
    bridge = NodeProcess(BRIDGE_MODULE, params, domain, tmp / "latency.log", _ros_env(tmp))
    probe = Probe(domain)
    q0 = wxc.start_target().q_rad
    state = {"q": q0, "effort": np.zeros(wx.NUM_JOINTS)}
    stop = threading.Event()
    joint_pub = probe.publisher(JointState, "/wx250s/joint_states")
    image_pub = probe.publisher(Image, "/wx250s/camera/image_raw")
    image = msgs.image_msg(np.zeros((64, 64, 3), np.uint8), 0.0)

    def drive():  # the bench is the arm driver: joint states at 100 Hz, images at 10 Hz
        k = 0
        while not stop.wait(0.01):
            q, effort = state["q"], state["effort"]
            joint_pub.publish(msgs.joint_state_msg(0.0, q, np.zeros(6), np.full(2, 0.03), effort))
            if k % 10 == 0:
                image_pub.publish(image)
            k += 1

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    latencies = []
    try:
        probe.wait_for_node(f"{BRIDGE}/start", bridge, timeout_s=120)
        probe.wait_until(lambda: probe.status()["ready"], timeout_s=30)
        over = 10.0 * np.asarray(ShieldConfig().effort_limit)
        for i in range(samples):
            state["q"], state["effort"] = q0, np.zeros(wx.NUM_JOINTS)
            time.sleep(0.05)  # the bridge's latest joint state is the normal one again
            _start(probe, BRIDGE)
            time.sleep(0.2)
            pose = q0 + (0.02 if i % 2 else -0.02) * np.eye(wx.NUM_JOINTS)[i % wx.NUM_JOINTS]
            t_pub = time.monotonic()
            joint_pub.publish(msgs.joint_state_msg(0.0, pose, np.zeros(6), np.full(2, 0.03), over))
            state["q"], state["effort"] = pose, over  # the arm keeps pushing until it stops

            def answered(pose=pose, t_pub=t_pub):
                _, commands = probe.commands_since(t_pub)
                return bool(np.any(np.all(np.abs(commands[:, :6] - pose) < 1e-9, axis=1)))

            if not probe.wait_until(answered, timeout_s=2.0, poll_s=0.001):
                raise RuntimeError(f"no safe-stop command after 2 s: {probe.status()}")
            times, commands = probe.commands_since(t_pub)
            hit = np.argmax(np.all(np.abs(commands[:, :6] - pose) < 1e-9, axis=1))
            latencies.append(times[hit] - t_pub)
    finally:
        stop.set()
        driver.join()
        probe.close()
        bridge.stop()
    return _percentiles(
        "obs->command latency",
        np.asarray(latencies) * 1e9,
        "joint state published -> its command received, ROS 2 loopback; includes the wait for "
        "the next 100 Hz control tick (0-10 ms)",
    )


def run(quick: bool = False) -> list[dict]:
    """All deployment-speed rows (see the module docstring)."""
    return filter_shield_rows(quick) + ros_rows(quick)
