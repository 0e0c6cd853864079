"""The rclpy node `robolearn_bridge`: moves ROS 2 messages in and out of
robolearn.hardware.bridge.Bridge.

    python -m robolearn.runs.deploy --ros-args -p checkpoint:=bundle:drawer/bc -p autostart:=false
    python -m robolearn.hardware.ros2_node --ros-args ...    # the same, but cannot record

Recording (`record_dir`) needs an episode writer, which this module cannot build (hardware never
imports robolearn.data): robolearn.runs.deploy (the `robolearn_bridge` executable of ros_ws) runs
this node with robolearn.data.deployment.store_writer; here a record_dir is a one-line error.
Finished episodes are written on the bridge's recording thread, never in a callback.

Subscribes (under robot_namespace, default /wx250s): `joint_states` (sensor_msgs/JointState,
arm joints and fingers by name, effort in mA) and `camera/image_raw` (sensor_msgs/Image). A
malformed, short or non-finite message is dropped with a log line (at most one a second per
topic) and counted in the status; the node keeps running and the watchdog sees no fresh data.

A control timer (control_rate, 100 Hz) calls Bridge.control_step and publishes exactly the command
it returns (it has passed the passivity filter and the shield), per output_mode:
- forward_position: std_msgs/Float64MultiArray [6 arm joints (rad) + finger (m)] to a ros2_control
  forward position controller (`arm_controller/commands`);
- joint_trajectory: trajectory_msgs/JointTrajectory, one point reached after one control period
  (`arm_controller/joint_trajectory`; the finger is added as joint `trajectory_gripper_joint`
  when that is set);
- interbotix: interbotix_xs_msgs JointGroupCommand (group `arm`, 6 joints) on
  `commands/joint_group` and JointSingleCommand (`gripper`, PWM +-gripper_pwm, sent when it
  changes) on `commands/joint_single`; needs interbotix_xs_msgs importable. Once the driver's
  `set_motor_registers` service is up (and again after a driver restart) the arm group's
  Profile_Velocity / Profile_Acceleration registers are set to 1.25 and 0.5 control periods
  (ms, time-based profile); ~/start is refused until they are.
The policy runs in a worker thread at policy_rate (inference never blocks the control timer).
A policy step is due when the bridge says so and the control timer has sent the previous action's
whole ramp (control_rate / policy_rate commands since the action arrived): the policy then sees the
arm where its commands took it, as in the simulator it was trained in, however late the action
arrived or however many control ticks a stalled process missed. Stepped on the clock alone, a
late action or 20-40 ms without control ticks during the first, fastest move showed the policy an
arm short of its first target, and it took another path (in real time the drawer stayed shut in 2
of 10 starts; in simulated time one 20 ms stall there failed 5 of 5 seeds). With image_sync
(default) each step then waits for a camera frame that arrived after the step became due (at
most image_sync_wait_s, then it runs on the latest): the BC policies were trained on a frame of
the arm at the moment of the step, and one up to a camera period old (the arm still moving) makes
them fail (drawer, in process: 0/4 episodes with 10 Hz frames 50-90 ms old, 8/8 with 10 or 20 Hz
frames taken at the step).

Logging (INFO unless said): `ready: ...` once the policy is loaded and compiled; `episode N
started (~/start | autostart)`, or `start refused: why` (WARNING); every end of a run once, with
its length and why it ended: `episode N ended after 15.0 s (74 policy steps): operator (~/hold)`,
at WARNING when a watchdog, the shield or the policy held the arm (`... : shield hold:
stale_joint_states (...)`), since the arm then stays put until ~/start.

Services (std_srvs/Trigger): `~/start` (start or resume the policy from the measured pose;
refused while joint states or images are missing or stale), `~/hold` (hold position, latched),
`~/status` (JSON in the message). Topic `~/status` (std_msgs/String, JSON, status_rate 1 Hz):
Bridge.status() plus the node's view (ready, output_mode, rejected messages, observation ages,
control timer jitter). A watchdog hold (driver gone, camera gone) is latched: the bridge resumes
only on ~/start. autostart:=true starts once, when the first joint state and image are in.

Parameters: hardware/ros2_config.py (PARAMS). Policies (`checkpoint`): a checkpoint directory
or shipped part (`bundle:drawer/bc`), or `python:MODULE:FACTORY`, a function called with no
arguments that returns a policy `policy({"image": uint8 [S, S, 3], "proprio": float32 [7]}) ->
action [7]` (for tests and benchmarks: e.g. a policy that returns NaN). Watchdog ages are
measured on this node's clock at message arrival, so a driver with another clock works.
"""

from __future__ import annotations

import collections
import json
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from robolearn.hardware import ros2_msgs as msgs
from robolearn.hardware.bridge import Bridge, ObservationError
from robolearn.hardware.readings import DifferencedVelocity
from robolearn.hardware.recording import WriterFactory
from robolearn.hardware.ros2_config import PARAMS, bridge_config, import_interbotix, make_policy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robolearn.core.errors import ConfigError, RobolearnError

NODE_NAME = "robolearn_bridge"
__all__ = ["PARAMS", "NODE_NAME", "BridgeNode", "RampGate", "main"]


class RampGate:
    """The policy gate of the module doc: a policy step may run once the control loop has sent
    the latest action's whole ramp, `steps` control ticks (control_rate / policy_rate), counted
    from the action's arrival; the first step of a run may run at once.

    tick() after each control step (executor thread); acted() when an action arrived and
    started() on each start (policy thread / service); is_open() before each policy step. Plain
    int reads and writes: a tick counted late only delays the next step by one tick.
    """

    def __init__(self, steps: int):
        self.steps = max(1, int(steps))
        self.ticks = 0
        self._action_tick: int | None = None  # None: no action yet in this run

    def tick(self) -> None:
        self.ticks += 1

    def acted(self) -> None:
        self._action_tick = self.ticks  # its ramp goes out from the next control tick

    def started(self) -> None:
        self._action_tick = None

    def is_open(self) -> bool:
        action_tick = self._action_tick
        return action_tick is None or self.ticks - action_tick >= self.steps


class BridgeNode(Node):
    """The bridge node. Callbacks (observations, control timer, services) run one at a time on
    the executor's thread (a SingleThreadedExecutor: the cheapest on CPU, and nothing in them
    blocks); the policy runs in its own thread, woken by each control tick and camera frame.

    make_writer: builds the episode writer for the record_dir parameter (needed when it is set).
    policy: the policy callable itself, instead of loading the `checkpoint` parameter's (which
        then only names it): `robolearn finetune --ros2` hands in its learner's actor.
    """

    def __init__(self, make_writer: WriterFactory | None = None, policy=None, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.p = p = msgs.declare_params(self, PARAMS)
        cfg = bridge_config(p)
        writer = None
        if cfg.record_dir is not None:
            if make_writer is None:
                raise ConfigError(
                    f"record_dir {cfg.record_dir!r}: this entry point cannot record; run the "
                    "bridge as python -m robolearn.runs.deploy (ros2 run robolearn_ros "
                    "robolearn_bridge)"
                )
            writer = make_writer(cfg.record_dir)
        self.interbotix = import_interbotix() if p["output_mode"] == "interbotix" else None
        if p["output_mode"] == "interbotix" and self.interbotix is None:
            raise ConfigError("output_mode interbotix needs interbotix_xs_msgs (not importable)")
        if policy is None:
            self.get_logger().info(f"loading policy {p['checkpoint']} ...")
            policy = make_policy(p["checkpoint"], p["task"], p["image_size"])
        self._policy, self._cfg, self._writer = policy, cfg, writer
        self.bridge = Bridge(policy, cfg, writer)
        self.bridge.warmup()
        self._paused = False
        # renew_bridge(not_before_s): messages stamped earlier are from before a driver's reset
        self._not_before_s: float | None = None
        self.dropped_stale = 0
        self._renewing = threading.Lock()  # renew_bridge against the observation callbacks
        self._t_joint = self._t_image = None
        # Joint velocities for a driver that publishes none (over >= 10 ms, not per message).
        self._differenced = DifferencedVelocity()
        self._finger_meas: float | None = None
        self.rejected = collections.Counter()
        self._reject_loggers = {}
        self._periods = collections.deque(maxlen=2000)
        self._last_tick: float | None = None
        self._last_mode = self.bridge.mode
        self._autostarted = not p["autostart"]
        self._gate = RampGate(round(p["control_rate"] / p["policy_rate"]))
        self._episode_start: tuple[float, int] | None = None  # (time, policy steps) at start
        self._episodes_before = 0  # episodes of the bridges renew_bridge replaced
        self._registers = "unset"  # interbotix: unset | pending | set (per driver lifetime)
        self._gripper_cmd: float | None = None
        self._make_interfaces()
        self._stop, self._wake = threading.Event(), threading.Event()
        self._worker = threading.Thread(target=self._policy_loop, name="policy", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: {p['output_mode']} at {p['control_rate']:g} Hz, policy at "
            f"{p['policy_rate']:g} Hz; call ~/start to run"
            + (" (autostart on)" if p["autostart"] else "")
        )

    def _make_interfaces(self) -> None:
        p, ns = self.p, self.p["robot_namespace"]

        def name(key):
            return msgs.resolve_name(ns, p[key])

        latest = msgs.LATEST_ONLY  # a backlog of old states or frames would be taken as fresh
        self.create_subscription(
            JointState, name("joint_states_topic"), self._on_joint_state, latest
        )
        self.create_subscription(Image, name("image_topic"), self._on_image, latest)
        mode = p["output_mode"]
        if mode == "forward_position":
            self.cmd_pub = self.create_publisher(
                Float64MultiArray, name("forward_command_topic"), 10
            )
        elif mode == "joint_trajectory":
            self.cmd_pub = self.create_publisher(JointTrajectory, name("trajectory_topic"), 10)
        else:
            xs_msg, xs_srv = self.interbotix
            self.cmd_pub = self.create_publisher(
                xs_msg.JointGroupCommand, name("group_command_topic"), 10
            )
            self.gripper_pub = self.create_publisher(
                xs_msg.JointSingleCommand, name("single_command_topic"), 10
            )
            self.registers = self.create_client(xs_srv.RegisterValues, name("registers_service"))
            self.create_timer(1.0, self._set_profile_registers)
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.create_service(Trigger, "~/start", self._on_start)
        self.create_service(Trigger, "~/hold", self._on_hold)
        self.create_service(Trigger, "~/status", self._on_status)
        self.create_timer(1.0 / p["control_rate"], self._on_control)
        self.create_timer(1.0 / p["status_rate"], self._publish_status)

    # -- observations ----------------------------------------------------------------------------

    def _reject(self, topic: str, exc: Exception) -> None:
        self.rejected[topic] += 1
        if topic not in self._reject_loggers:  # one logger each, so each topic has its throttle
            self._reject_loggers[topic] = self.get_logger().get_child(topic)
        self._reject_loggers[topic].warning(
            f"rejected {topic} message: {exc}", throttle_duration_sec=1.0
        )

    def _on_joint_state(self, msg: JointState) -> None:
        with self._renewing:
            if not self._paused:
                self._joint_state(msg)

    def _stale(self, msg) -> bool:
        """Stamped before the reset the bridge was renewed after (renew_bridge's not_before_s)."""
        if self._not_before_s is None or msgs.stamp_to_s(msg.header.stamp) >= self._not_before_s:
            return False
        self.dropped_stale += 1
        return True

    def _joint_state(self, msg: JointState) -> None:
        now = time.monotonic()
        if self._stale(msg):
            return
        try:
            s = msgs.joint_state_from_msg(msg)
            qdot = s.qdot_rad_s
            if qdot is None:  # a driver without velocities: differenced on arrival times
                qdot = self._differenced.update(now, s.q_rad)
            self.bridge.observe_joints(now, s.q_rad, qdot, s.finger_m, s.effort_ma)
        except (msgs.MessageError, ObservationError) as exc:
            self._reject("joint_states", exc)
            return
        self._t_joint = now
        self._finger_meas = float(np.mean(s.finger_m))

    def _on_image(self, msg: Image) -> None:
        with self._renewing:
            if not self._paused:
                self._image(msg)

    def _image(self, msg: Image) -> None:
        now = time.monotonic()
        if self._stale(msg):
            return
        try:
            self.bridge.observe_image(now, msgs.image_from_msg(msg))
        except (msgs.MessageError, ObservationError) as exc:
            self._reject("image", exc)
            return
        self._t_image = now
        self._wake.set()

    # -- control and policy ----------------------------------------------------------------------

    def _on_control(self) -> None:
        now = time.monotonic()
        if self._last_tick is not None:
            self._periods.append(now - self._last_tick)
        self._last_tick = now
        if not self._autostarted and self._inputs_problem(now) is None:
            self._autostarted = True
            self._start(now, "autostart")
        command = self.bridge.control_step(now)
        self._gate.tick()
        self._wake.set()
        if command is not None and not self._paused:
            self._publish(command)
        mode = self.bridge.mode
        if mode != self._last_mode:
            if self._last_mode == "running":
                reason = self.bridge.status()["hold_reason"]
                self._log_episode_end(now, reason)
                if "stale_joint_states" in reason and self._registers == "set":
                    self._registers = "unset"  # a restarted driver has its default profile
            self._last_mode = mode

    def _episodes(self) -> int:
        """Episodes started since the node started, across renewed bridges."""
        return self._episodes_before + self.bridge.status()["episodes"]

    def _log_episode_end(self, now: float, reason: str) -> None:
        """One line for the end of a run: its length, policy steps and why it ended; a WARNING
        when anything but the operator (~/hold, a restart, shutdown) stopped it."""
        if self._episode_start is None:
            return
        t0, steps0 = self._episode_start
        self._episode_start = None
        status = self.bridge.status()
        text = (
            f"episode {self._episodes()} ended after {now - t0:.1f} s "
            f"({status['policy_steps'] - steps0} policy steps): {reason or 'hold'}"
        )
        by_operator = reason.startswith(("operator", "restart", "closed"))
        if by_operator:
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text + "; the arm holds until ~/start")

    def _publish(self, command) -> None:
        mode = self.p["output_mode"]
        if mode == "forward_position":
            self.cmd_pub.publish(msgs.forward_command_msg(command.q_rad, command.finger_m))
        elif mode == "joint_trajectory":
            self.cmd_pub.publish(
                msgs.trajectory_msg(
                    command.q_rad,
                    command.finger_m,
                    1.0 / self.p["control_rate"],
                    gripper_joint=self.p["trajectory_gripper_joint"],
                )
            )
        else:
            xs_msg, _ = self.interbotix
            self.cmd_pub.publish(
                msgs.interbotix_group_msg(xs_msg, command.q_rad, self.p["arm_group"])
            )
            pwm = msgs.gripper_pwm(command.finger_m, self._finger_meas, self.p["gripper_pwm"])
            if pwm != self._gripper_cmd:
                self.gripper_pub.publish(
                    msgs.interbotix_single_msg(xs_msg, self.p["gripper_name"], pwm)
                )
                self._gripper_cmd = pwm

    def _policy_loop(self) -> None:
        """Run each due policy step once the previous action's ramp is sent, on a camera frame
        that arrived after it became due (waiting up to image_sync_wait_s; see PARAMS
        image_sync), so the policy sees the arm as it is where its commands took it."""
        due_since = None
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            now = time.monotonic()
            if not (self.bridge.policy_due(now) and self._gate.is_open()):
                due_since = None
                continue
            due_since = now if due_since is None else due_since
            waiting = self._t_image is None or self._t_image < due_since
            if self.p["image_sync"] and waiting and now - due_since < self.p["image_sync_wait_s"]:
                continue
            self.bridge.run_policy(now)
            self._gate.acted()
            due_since = None

    # -- services --------------------------------------------------------------------------------

    def _inputs_problem(self, now: float) -> str | None:
        """Why the policy cannot start now (missing or stale observations), or None."""
        checks = (
            ("joint states", self._t_joint, self.p["joint_state_timeout_s"]),
            ("camera images", self._t_image, self.p["image_timeout_s"]),
        )
        for what, t, timeout in checks:
            if t is None:
                return f"no {what} received yet"
            if now - t > timeout:
                return f"{what} are stale (last {now - t:.2f} s ago)"
        return None

    def _start(self, now: float, how: str) -> tuple[bool, str]:
        problem = self._inputs_problem(now)
        if problem is None and self.interbotix is not None and self._registers != "set":
            problem = (
                f"the arm's motor profile is not set yet (waiting for the driver's "
                f"{self.registers.srv_name} service)"
            )
        running = self.bridge.mode == "running"
        if problem is None:
            try:
                self.bridge.start(now)
            except (ObservationError, RuntimeError) as exc:
                problem = str(exc)
        if problem is not None:
            self.get_logger().warning(f"start refused: {problem}")
            return False, f"cannot start: {problem}"
        if running:  # a restart ends the run before it
            self._log_episode_end(now, "restart")
        self._gate.started()
        self._episode_start = (now, self.bridge.status()["policy_steps"])
        self._last_mode = self.bridge.mode
        episode = self._episodes()
        source = self.p["checkpoint"] or "the policy given in process"
        self.get_logger().info(f"episode {episode} started ({how}): {source}")
        return True, "started"

    def _set_profile_registers(self) -> None:
        """Interbotix (1 Hz timer): once the driver's set_motor_registers service is up, set the
        arm group's time-based profile for the control rate (again after a driver restart)."""
        if self._registers != "unset" or not self.registers.service_is_ready():
            return
        _, xs_srv = self.interbotix
        values = msgs.profile_registers_ms(self.p["control_rate"])
        futures = [
            self.registers.call_async(
                xs_srv.RegisterValues.Request(
                    cmd_type="group", name=self.p["arm_group"], reg=reg, value=value
                )
            )
            for reg, value in values.items()
        ]
        self._registers = "pending"

        def done(_):
            if all(f.done() for f in futures):
                ok = all(f.result() is not None for f in futures)
                self._registers = "set" if ok else "unset"
                if ok:
                    self.get_logger().info(f"motor profile registers set: {values} (ms)")
                else:
                    self.get_logger().error(f"setting motor profile registers {values} failed")

        for future in futures:
            future.add_done_callback(done)

    def _on_start(self, request, response):
        response.success, response.message = self._start(time.monotonic(), "~/start")
        return response

    def _on_hold(self, request, response):
        self.bridge.hold(time.monotonic(), "operator (~/hold)")
        response.success, response.message = True, "holding"
        return response

    def status(self) -> dict:
        """Bridge.status() plus the node's view (JSON-safe)."""
        now = time.monotonic()
        periods = np.asarray(self._periods) * 1e3
        nominal_ms = 1e3 / self.p["control_rate"]
        jitter = np.abs(periods - nominal_ms) if periods.size else np.zeros(1)
        return {
            **self.bridge.status(),
            "episodes": self._episodes(),
            "ready": self._inputs_problem(now) is None,
            "inputs_problem": self._inputs_problem(now) or "",
            "output_mode": self.p["output_mode"],
            "motor_registers": self._registers if self.interbotix is not None else None,
            "checkpoint": self.p["checkpoint"],
            "rejected": dict(self.rejected),
            "joint_state_age_s": None if self._t_joint is None else now - self._t_joint,
            "image_age_s": None if self._t_image is None else now - self._t_image,
            "control_period_ms": {
                "nominal": nominal_ms,
                "p50": float(np.median(periods)) if periods.size else None,
                "jitter_p50": float(np.percentile(jitter, 50)),
                "jitter_p99": float(np.percentile(jitter, 99)),
                "jitter_max": float(jitter.max()),
                "samples": int(periods.size),
            },
        }

    def _on_status(self, request, response):
        response.success, response.message = True, json.dumps(self.status())
        return response

    def _publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps(self.status())))

    # -- for a program that drives the node in its own process (robolearn finetune --ros2) -------

    def inputs_problem(self) -> str | None:
        """Why the policy cannot start now (joint states or images missing or stale), or None."""
        return self._inputs_problem(time.monotonic())

    def start(self, how: str) -> tuple[bool, str]:
        """Start (or restart) the policy from the measured pose, as ~/start does: (started,
        message); refused while observations are missing or stale."""
        return self._start(time.monotonic(), how)

    def hold(self, reason: str) -> None:
        """Hold position (latched until start), as ~/hold does."""
        self.bridge.hold(time.monotonic(), reason)

    def pause(self, paused: bool) -> None:
        """While paused, publish no commands (the driver keeps its last target) and drop joint
        states and images: for a simulated driver that re-places the arm on a reset, so neither
        the hold position of before pulls it back nor the held bridge takes the jump for a
        reading (renew_bridge, then unpause)."""
        self._paused = paused

    def renew_bridge(self, not_before_s: float | None = None) -> None:
        """A fresh bridge for the same policy (full tank, no readings): after a simulated driver
        moved the arm by a reset, which no bridge watching the joints would take for a reading.
        It commands nothing before its first joint state; inputs count as fresh only once they
        arrive after this call. not_before_s: from now on, joint states and images stamped
        earlier (ROS time, s) are dropped: sent before the reset, they can still be arriving
        (a late one would read as the arm jumping back and forth)."""
        with self._renewing:
            self._not_before_s = not_before_s
            old = self.bridge
            self._episodes_before += old.status()["episodes"]
            self.bridge = Bridge(self._policy, self._cfg, self._writer)
            self._t_joint = self._t_image = None
            self._differenced = DifferencedVelocity()
            self._episode_start = None
            self._last_mode = self.bridge.mode
        old.close(time.monotonic())

    def shutdown(self) -> None:
        """Stop the policy thread and close the bridge (waits for recorded episodes' writes)."""
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=5.0)
        now = time.monotonic()
        if self.bridge.mode == "running":
            self._log_episode_end(now, "closed (node shutdown)")
        self.bridge.close(now)


def main(args: list[str] | None = None, make_writer: WriterFactory | None = None) -> int:
    """Run the node until SIGINT: `python -m robolearn.hardware.ros2_node --ros-args -p ...`.

    args: the command line (sys.argv by default); make_writer: see BridgeNode (robolearn.runs.deploy
    passes the episode store's). Returns the exit code: 2 after a one-line configuration error.
    """
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    try:
        node = BridgeNode(make_writer)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except RobolearnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise  # a real failure; after SIGINT/SIGTERM the context is already shut down
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
