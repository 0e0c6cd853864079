"""End to end over real ROS 2 (rclpy + Fast DDS on loopback, nodes in subprocesses).

The simulated WidowX driver (MuJoCo drawer scene, real time) and the bridge node with the shipped
BC drawer policy run for a fixed time after ~/start; a probe node records every command the bridge
publishes, its status, and the driver's task-success topic. Checked on every start: every command
inside the shield's joint and finger limits and its per-step limit, the tip inside the workspace
box, the energy tank never below E_min (and no violations), the policy acting throughout, and the
drawer open. Each scene runs once, in fresh processes, and every start must open the drawer: the
starts that did not (2 of 40, then 2 of 10) missed control ticks during the first move, which the
bridge now rides out (tests/hardware/test_stalls.py); the last misses (seed 0, 2 of 100) were the
first BC policy's sensitivity to the node's step timing, gone since it was retrained on data with
that timing (bench.camera_phase; bench.ros2_drawer: 100 of 100 starts). A start on a loaded CI
machine ran the tank dry at the first move (a backlog of stale commands and joint states): both
nodes now act on the newest message only (test_ros2_latest.py; bench.ros2_drawer --busy).
"""

import random
import time

import numpy as np
import pytest
from robolearn.hardware.passivity import PassivityConfig
from robolearn.hardware.shield import ShieldConfig, tip_position_m

from bench.ros2_probe import (
    BRIDGE,
    BRIDGE_MODULE,
    NodeProcess,
    Probe,
    driver_and_bridge,
    nodes_and_probe,
    real_time_fractions,
)

pytestmark = pytest.mark.slow

RUN_S = 10.0
CONTROL_HZ = 100.0
# Two scenes: seed 0, and seed 2, which failed in real time before the fix.
SEEDS = (0, 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_bc_policy_opens_the_drawer_within_limits_on_every_start(tmp_path, seed):
    outcome = _attempt(tmp_path, seed)
    print(outcome["summary"])
    assert outcome["success"], (
        f"the drawer was not opened (every limit held): {outcome['summary']}"
        + (f"; slower than real time: {outcome['slow']}" if outcome["slow"] else "")
    )


def _attempt(directory, seed: int) -> dict:
    """One fresh start: both nodes on a new DDS domain, RUN_S seconds after ~/start."""
    with driver_and_bridge(directory, seed) as (probe, driver, bridge):
        return _run(probe, driver, bridge)


def _run(probe: Probe, driver: NodeProcess, bridge: NodeProcess) -> dict:
    # The policy is loaded and compiled before the node offers its services.
    probe.wait_for_node(f"{BRIDGE}/start", bridge, timeout_s=180)
    assert probe.wait_until(lambda: probe.status()["ready"], timeout_s=30), probe.status()
    assert probe.status()["mode"] == "idle"
    # The probe may discover the driver later than the bridge did: it counts the driver's topics.
    assert probe.wait_until(lambda: probe.joint_states and probe.success, timeout_s=30)
    t0 = time.monotonic()
    ok, message = probe.call(f"{BRIDGE}/start")
    assert ok, message
    time.sleep(RUN_S)
    status = probe.status()
    ok, _ = probe.call(f"{BRIDGE}/hold")
    assert ok

    times, commands = probe.commands_since(t0)
    shield, tank = ShieldConfig(), PassivityConfig()
    # The control timer ran and its commands arrived (loose: a loaded machine may stall).
    assert len(commands) > 0.5 * RUN_S * CONTROL_HZ, len(commands)
    q, finger = commands[:, :6], commands[:, 6]
    assert np.all(q >= np.array(shield.q_lower_rad) - 1e-9)
    assert np.all(q <= np.array(shield.q_upper_rad) + 1e-9)
    assert np.all(
        (finger >= shield.finger_lower_m - 1e-9) & (finger <= shield.finger_upper_m + 1e-9)
    )
    # Per-step limit between consecutive commands. A command the probe never got (a stall longer
    # than the publisher's history) widens the allowance by the control periods that passed.
    max_step = shield.max_velocity_rad_s / CONTROL_HZ
    periods = np.maximum(1, np.ceil(np.diff(times) * CONTROL_HZ - 1e-6))
    steps = np.abs(np.diff(q, axis=0)).max(axis=1)
    assert np.all(steps <= periods * max_step + 1e-9), steps.max()
    assert steps.max() > 0.2 * max_step, "the arm never moved"
    lo, hi = (np.array(c) for c in shield.workspace_box_m)
    tips = np.array([tip_position_m(row) for row in q])
    margin = shield.workspace_margin_m + 1e-6
    assert np.all((tips >= lo - margin) & (tips <= hi + margin))

    statuses = [s for t, s in probe.statuses if t > t0]
    assert len(statuses) >= RUN_S / 2  # the 1 Hz status topic
    energies = [s["tank"]["energy_j"] for s in statuses] + [status["tank"]["energy_j"]]
    assert min(energies) >= tank.energy_min_j - 1e-9, energies
    assert status["tank"]["violations"] == 0
    assert status["mode"] == "running", status["hold_reason"]
    assert status["policy_steps"] >= 0.5 * RUN_S * 5.0, status["policy_steps"]
    assert status["rejected"] == {}

    success = [ok for t, ok in probe.success if t > t0]
    assert len(success) >= RUN_S * 5  # the driver's 10 Hz success topic kept coming
    assert driver.alive() and bridge.alive()
    rates = real_time_fractions(probe, status, t0, RUN_S, control_hz=CONTROL_HZ)
    tk = status["tank"]
    summary = (
        f"success {any(success)}, tank min {min(energies):.3f} J, alpha < 1 on "
        f"{tk['activations']}/{tk['steps']} steps, interventions {status['interventions']}, "
        f"fraction of real time: " + ", ".join(f"{k} {v:.2f}" for k, v in rates.items())
    )
    slow = {k: round(v, 2) for k, v in rates.items() if v < 0.9}
    return {"success": any(success), "slow": slow, "summary": summary}


SIDEWAYS = """
import numpy as np


def sideways():
    return lambda obs: np.array([0.0, 0.4, 0.0, 0.0, 0.0, 0.0, -1.0], np.float32)
"""


def test_joint_trajectory_mode_drives_the_simulated_arm(tmp_path):
    """The second standard output: trajectory_msgs/JointTrajectory (arm + finger by name)."""
    (tmp_path / "e2e_policies.py").write_text(SIDEWAYS)
    domain = random.SystemRandom().randint(1, 200)
    env = {"ROS_LOG_DIR": str(tmp_path / "ros_log"), "PYTHONPATH": str(tmp_path)}
    driver = NodeProcess(
        "robolearn.hardware.ros2_sim_driver", {}, domain, tmp_path / "driver.log", env
    )
    params = {
        "checkpoint": "python:e2e_policies:sideways",
        "output_mode": "joint_trajectory",
        "trajectory_gripper_joint": "left_finger",
        "joint_state_timeout_s": 0.5,
        "image_timeout_s": 1.0,
    }
    bridge = NodeProcess(BRIDGE_MODULE, params, domain, tmp_path / "bridge.log", env)
    with nodes_and_probe(domain, driver, bridge) as probe:
        probe.wait_for_node(f"{BRIDGE}/start", bridge, timeout_s=60)
        assert probe.wait_until(lambda: probe.status()["ready"], timeout_s=30)
        assert probe.wait_until(lambda: len(probe.joint_states) > 0, timeout_s=30)
        with probe.lock:
            q0 = probe.joint_states[-1][2]
        ok, message = probe.call(f"{BRIDGE}/start")
        assert ok, message
        t0 = time.monotonic()
        assert probe.wait_until(
            lambda: abs(probe.joint_states[-1][2][0] - q0[0]) > 0.2, timeout_s=10
        ), "the waist did not turn"
        assert probe.status()["output_mode"] == "joint_trajectory"
        assert len(probe.commands_since(t0)[1]) == 0  # nothing on the forward position topic
