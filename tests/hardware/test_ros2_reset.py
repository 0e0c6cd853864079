"""A bridge renewed after a simulated driver's reset (robolearn finetune --ros2 between episodes)
drops the joint states and images the driver stamped before the reset: on a loaded machine they
can still be arriving after it, and one would read as the arm jumping away from its reset pose
and back (a held episode: "implausible joint state"). Real rclpy messages, handed to the node's
own subscription callbacks."""

import time

import numpy as np
from rclpy.parameter import Parameter
from robolearn.hardware import ros2_msgs as msgs
from robolearn.hardware.ros2_node import BridgeNode
from test_ros2_latest import context  # noqa: F401  (the fixture: rclpy on its own domain)

from robolearn.core import widowx as wx
from robolearn.core import widowx_control as control


def test_a_bridge_renewed_after_a_reset_drops_what_was_stamped_before_it(
    context,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    (tmp_path / "reset_policies.py").write_text(
        "import numpy as np\ndef make_zero():\n    return lambda obs: np.zeros(7, np.float32)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    params = [Parameter("checkpoint", value="python:reset_policies:make_zero")]
    node = BridgeNode(context=context, parameter_overrides=params)
    finger, image = np.full(2, wx.FINGER_UPPER_M), np.zeros((64, 64, 3), np.uint8)

    def joints(stamp_s, q):
        node._on_joint_state(msgs.joint_state_msg(stamp_s, q, np.zeros(6), finger, np.zeros(6)))
        time.sleep(0.02)

    try:
        before = control.start_target().q_rad + np.array([0.5, 0.2, 0, 0, 0, 0])
        after = control.start_target().q_rad  # the driver's reset put the arm here
        joints(10.0, before)
        node.pause(True)
        node.renew_bridge(not_before_s=20.0)
        node.pause(False)
        seen = []
        observe = node.bridge.observe_joints
        node.bridge.observe_joints = lambda t, q, *rest: (
            seen.append(q.copy()),
            observe(t, q, *rest),
        )
        joints(19.99, before)  # sent before the reset, arriving after it
        node._on_image(msgs.image_msg(image, 19.99))
        assert node.inputs_problem() is not None  # nothing of after the reset yet
        for k in range(3):
            joints(20.01 + 0.01 * k, after)
        node._on_image(msgs.image_msg(image, 20.04))
        assert node.dropped_stale == 2 and not node.rejected
        assert len(seen) == 3 and all(np.allclose(q, after) for q in seen)
        assert node.inputs_problem() is None
        ok, message = node.start("test")
        assert ok, message
        assert node.bridge.mode == "running"
        assert node.status()["episodes"] == 1
        # the next episode, on a bridge renewed again: the node counts on from the last one (its
        # log and status say episode 2, not the fresh bridge's 1)
        node.hold("test: episode end")
        node.pause(True)
        node.renew_bridge(not_before_s=30.0)
        node.pause(False)
        for k in range(3):
            joints(30.01 + 0.01 * k, after)
        node._on_image(msgs.image_msg(image, 30.04))
        ok, message = node.start("test")
        assert ok, message
        assert node.status()["episodes"] == 2 and node.bridge.status()["episodes"] == 1
    finally:
        node.shutdown()
        node.destroy_node()
