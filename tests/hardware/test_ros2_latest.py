"""Streamed topics keep only the newest message (ros2_msgs.LATEST_ONLY), in both nodes.

rclpy's executor takes one message per subscription per wait: with a deeper history a loaded
machine works a backlog off oldest first, so the driver applies commands, and the bridge uses
joint states, that are tens of ms old, as if they were new (the bridge then pays the energy tank
for a spring its stale joint states show stretched). Here several messages are queued before the
node spins: it must act on the newest only. Real rclpy and Fast DDS, both nodes in this process,
on their own domain.
"""

import random
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from robolearn.hardware import ros2_msgs as msgs
from robolearn.hardware.ros2_node import BridgeNode
from robolearn.hardware.ros2_sim_driver import SimDriverNode
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from robolearn.core import widowx as wx

QUEUED = 5


@pytest.fixture
def context(monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=random.SystemRandom().randint(1, 200))
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _queue_then_spin(context, node, msg_type, topic_key: str, messages) -> None:
    """Publish `messages` on the robot's `topic_key` topic while `node` does not spin, give DDS
    time to deliver them all, then spin `node` for half a second."""
    sender = rclpy.create_node("robolearn_test_sender", context=context)
    try:
        topic = msgs.resolve_name(msgs.ROBOT_NAMESPACE, msgs.TOPICS[topic_key])
        publisher = sender.create_publisher(msg_type, topic, 10)
        deadline = time.monotonic() + 10.0
        while publisher.get_subscription_count() < 1:
            assert time.monotonic() < deadline, "the node's subscription was never discovered"
            time.sleep(0.01)
        for msg in messages:
            publisher.publish(msg)
        time.sleep(0.5)
    finally:
        sender.destroy_node()
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.02)
    executor.remove_node(node)
    executor.shutdown()


def test_the_driver_applies_only_the_newest_of_queued_commands(context):
    driver = SimDriverNode(context=context, parameter_overrides=[Parameter("seed", value=0)])
    try:
        applied = []
        command = driver.sim.command
        driver.sim.command = lambda q, finger: (applied.append(np.array(q)), command(q, finger))
        start = driver.sim.joint_state()[0]
        targets = [start + 0.002 * (k + 1) for k in range(QUEUED)]
        messages = [msgs.forward_command_msg(q, wx.FINGER_UPPER_M) for q in targets]
        _queue_then_spin(context, driver, Float64MultiArray, "forward_command_topic", messages)
        assert len(applied) == 1, f"applied {len(applied)} of {QUEUED} queued commands"
        np.testing.assert_allclose(applied[0], targets[-1])
    finally:
        driver.close()
        driver.destroy_node()


def test_the_bridge_uses_only_the_newest_of_queued_joint_states(context, tmp_path, monkeypatch):
    (tmp_path / "latest_policies.py").write_text(
        "import numpy as np\ndef make_zero():\n    return lambda obs: np.zeros(7, np.float32)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    params = [Parameter("checkpoint", value="python:latest_policies:make_zero")]
    bridge = BridgeNode(context=context, parameter_overrides=params)
    try:
        seen = []
        observe = bridge.bridge.observe_joints
        bridge.bridge.observe_joints = lambda t, q, *rest: (
            seen.append(np.array(q)),
            observe(t, q, *rest),
        )
        pose = np.array([0.0, -0.9, 0.9, 0.0, 0.6, 0.0])
        states = [pose + 0.002 * k for k in range(QUEUED)]
        finger = np.full(2, wx.FINGER_UPPER_M)
        messages = [
            msgs.joint_state_msg(1.0 + 0.01 * k, q, np.zeros(6), finger, np.zeros(6))
            for k, q in enumerate(states)
        ]
        _queue_then_spin(context, bridge, JointState, "joint_states_topic", messages)
        assert len(seen) == 1, f"used {len(seen)} of {QUEUED} queued joint states"
        np.testing.assert_allclose(seen[0], states[-1])
    finally:
        bridge.shutdown()
        bridge.destroy_node()
