"""A simulated WidowX driver: a real rclpy node over the MuJoCo scene
(robolearn.hardware.sim_arm.SimArm).

It stands in for the Interbotix driver (or a ros2_control arm) so the whole robot path runs
without hardware: the same topics under the robot namespace (default /wx250s), physics stepped in
real time (wall clock), position commands applied to the simulated servos.

    python -m robolearn.hardware.ros2_sim_driver --ros-args -p task:=drawer -p seed:=0

Publishes: `joint_states` (sensor_msgs/JointState at joint_state_rate, 100 Hz; names = the six
arm joints + left_finger, right_finger (mirrored, negative, as Interbotix publishes it); effort in
mA), `camera/image_raw` (sensor_msgs/Image rgb8, image_size square, image_rate 30 Hz) and, for
tests and studies, `~/success` (std_msgs/Bool: the task is solved now, e.g. the drawer is open)
and `~/contact_force` (std_msgs/Float64: peak contact force on the arm, N), at task_rate 10 Hz.
Subscribes (keeping only the newest message, ros2_msgs.LATEST_ONLY):
`arm_controller/commands` (std_msgs/Float64MultiArray, 6 arm joints [+ finger]) and
`arm_controller/joint_trajectory` (trajectory_msgs/JointTrajectory, arm joints by name [+ a finger
joint]; the last point is the target). The Interbotix command topics are not simulated (their
message package is not installable here). Service `~/reset` (std_srvs/Trigger) re-places the
scene from `seed` (with vary_scene, the next seed at every reset) and puts the arm back in the
task's start pose.

Logging (INFO): `simulating TASK (seed S) on TOPIC` at start; once per episode (from the start
or a ~/reset) when the task is first solved, `task success: the drawer is open (seed S), 2.3 s
after the first command that moved the arm`, the line to watch for without a ROS install; and
`task no longer solved` if it undoes itself later in the episode.

Like the real driver it checks no joint limits (MuJoCo clamps targets to the actuator ranges);
a malformed command is dropped with a log line. If the machine cannot keep up with real time,
simulated time falls behind by at most max_lag_s and the rest is dropped (logged once).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from robolearn.hardware import ros2_msgs as msgs
from robolearn.hardware.sim_arm import PHYSICS_DT_S, SimArm
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robolearn.core.errors import RobolearnError

NODE_NAME = "robolearn_sim_driver"
# What success looks like, for the log line; other tasks say "TASK solved".
TASK_SOLVED = {"drawer": "the drawer is open", "drawer-close": "the drawer is closed"}
MOVED_RAD = 0.01  # a command this far from the start pose moved the arm (starts the clock)
PARAMS = (
    msgs.Param("task", "drawer", "WidowX task scene of robolearn.envs (drawer, push, ...)"),
    msgs.Param("seed", 0, "scene placement seed (also used by ~/reset)"),
    msgs.Param("vary_scene", False, "each ~/reset places the next scene (seed + 1, seed + 2, ...)"),
    msgs.Param("image_size", 64, "camera image side (px); the BC policy was trained on 64"),
    msgs.Param("joint_state_rate", 100.0, "joint_states rate and physics tick (Hz)"),
    msgs.Param("image_rate", 30.0, "camera image rate (Hz), as a camera's"),
    msgs.Param("task_rate", 10.0, "~/success and ~/contact_force rate (Hz)"),
    msgs.Param("max_lag_s", 0.1, "simulated time may fall this far behind the wall clock (s)"),
    msgs.Param("robot_namespace", msgs.ROBOT_NAMESPACE, "namespace of the driver's topics"),
    msgs.Param("camera_frame", "camera", "frame_id of the published images"),
    *(
        msgs.Param(
            name,
            msgs.TOPICS[name],
            f"{name.replace('_', ' ')} (relative to robot_namespace unless /...)",
        )
        for name in (
            "joint_states_topic",
            "image_topic",
            "forward_command_topic",
            "trajectory_topic",
        )
    ),
)


class SimDriverNode(Node):
    """The driver node: SimArm stepped on a wall-clock timer, commands applied as they arrive.

    All callbacks run on one thread (MuJoCo data is not thread-safe): spin it with a
    single-threaded executor (rclpy.spin).
    """

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.p = msgs.declare_params(self, PARAMS)
        self.sim = SimArm(self.p["task"], seed=self.p["seed"], image_size=self.p["image_size"])
        self._finger_m = float(self.sim.joint_state()[2].mean())
        self._t0: float | None = None  # wall clock of simulated time 0; set on the first tick
        self._lag_logged = False
        self.rejected = 0
        self._resets, self._seed = 0, self.p["seed"]
        self._new_episode()

        ns = self.p["robot_namespace"]

        def topic(name):
            return msgs.resolve_name(ns, self.p[name])

        self.joint_pub = self.create_publisher(JointState, topic("joint_states_topic"), 10)
        self.image_pub = self.create_publisher(Image, topic("image_topic"), 10)
        self.success_pub = self.create_publisher(Bool, "~/success", 10)
        self.force_pub = self.create_publisher(Float64, "~/contact_force", 10)
        self.create_subscription(
            Float64MultiArray, topic("forward_command_topic"), self._on_forward, msgs.LATEST_ONLY
        )
        self.create_subscription(
            JointTrajectory, topic("trajectory_topic"), self._on_trajectory, msgs.LATEST_ONLY
        )
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(1.0 / self.p["joint_state_rate"], self._tick)
        self.create_timer(1.0 / self.p["image_rate"], self._publish_image)
        self.create_timer(1.0 / self.p["task_rate"], self._publish_task)
        self.get_logger().info(
            f"simulating {self.p['task']} (seed {self.p['seed']}) on {topic('joint_states_topic')}"
        )

    def _new_episode(self) -> None:
        """Forget the episode's success and first move (at start and on ~/reset)."""
        self._start_q = self.sim.joint_state()[0].copy()
        self._moved_s: float | None = None  # simulated time of the first command that moved
        self._solved = False  # the task is solved now (as last published)
        self._succeeded = False  # it was solved at some point this episode

    def _stamp_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _tick(self) -> None:
        if self._t0 is None:
            self._t0 = time.monotonic() - self.sim.time_s
        due_s = (time.monotonic() - self._t0) - self.sim.time_s
        if due_s > self.p["max_lag_s"]:
            self._t0 += due_s - self.p["max_lag_s"]
            if not self._lag_logged:
                self.get_logger().warning("simulation is slower than real time; dropping time")
                self._lag_logged = True
            due_s = self.p["max_lag_s"]
        if due_s >= 0.5 * PHYSICS_DT_S:
            self.sim.step(due_s)
        q, qdot, finger, effort = self.sim.joint_state()
        self.joint_pub.publish(msgs.joint_state_msg(self._stamp_s(), q, qdot, finger, effort))

    def _publish_image(self) -> None:
        stamp = self._stamp_s()
        self.image_pub.publish(msgs.image_msg(self.sim.render(), stamp, self.p["camera_frame"]))

    def _publish_task(self) -> None:
        solved = bool(self.sim.success())
        self.success_pub.publish(Bool(data=solved))
        self.force_pub.publish(Float64(data=float(self.sim.contact_force_n())))
        if solved and not self._succeeded:
            after = (
                "before any command moved the arm"
                if self._moved_s is None
                else f"{self.sim.time_s - self._moved_s:.1f} s after the first command that "
                "moved the arm"
            )
            what = TASK_SOLVED.get(self.p["task"], f"{self.p['task']} solved")
            self.get_logger().info(f"task success: {what} (seed {self._seed}), {after}")
        elif self._solved and not solved:
            self.get_logger().info(f"task no longer solved ({self.p['task']})")
        self._succeeded |= solved
        self._solved = solved

    def _apply(self, convert, msg) -> None:
        try:
            q, finger = convert(msg)
        except msgs.MessageError as exc:
            self.rejected += 1
            self.get_logger().warning(f"rejected command: {exc}", throttle_duration_sec=1.0)
            return
        if finger is not None:
            self._finger_m = finger
        if self._moved_s is None and np.max(np.abs(np.asarray(q) - self._start_q)) > MOVED_RAD:
            self._moved_s = self.sim.time_s
        self.sim.command(q, self._finger_m)

    def _on_forward(self, msg: Float64MultiArray) -> None:
        self._apply(msgs.forward_command_from_msg, msg)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        self._apply(msgs.trajectory_from_msg, msg)

    def _on_reset(self, request, response):
        self._resets += 1
        seed = self._seed = self.p["seed"] + (self._resets if self.p["vary_scene"] else 0)
        self.sim.reset(seed)
        self._finger_m = float(self.sim.joint_state()[2].mean())
        self._t0 = None
        self._new_episode()
        response.success, response.message = True, f"reset {self.p['task']} seed {seed}"
        self.get_logger().info(response.message)
        return response

    def close(self) -> None:
        """Release the renderer."""
        self.sim.close()


def main(args: list[str] | None = None) -> int:
    """Entry point: `python -m robolearn.hardware.ros2_sim_driver [--ros-args ...]`."""
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    try:
        node = SimDriverNode()
        rclpy.spin(node)
    except (RobolearnError, ValueError) as exc:  # bad parameters: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise  # a real failure; after SIGINT/SIGTERM the context is already shut down
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
