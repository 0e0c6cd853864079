"""A WidowX task acted over ROS 2: the robot bridge node (robolearn.hardware.ros2_node) in this
process, the arm's driver on the ROS 2 graph, behind the task interface of robolearn.envs (reset,
step, continue_as, layout, close). `robolearn finetune --ros2` learns through it on the real arm or
on the simulated driver (robolearn.hardware.ros2_sim_driver), in real time.

Every action goes the bridge node's way: joint-space ramp at the control rate (100 Hz), shield,
passivity filter, published to the driver; the next observation is what the bridge hands its
policy at the next policy step (after the ramp, on a camera frame that arrived after the step was
due), exactly as when it deploys a policy. The node's policy is a hand-over: its policy thread
gives the observation to `step` and waits for the action the caller chooses for it. A caller that
answers later than the bridge's policy deadline (two policy periods, 0.4 s at 5 Hz) makes it hold:
the episode ends truncated, and `info["held"]` says why. So whatever learns through this task must
choose actions promptly and do its slow work elsewhere (robolearn finetune updates its learner in
a thread beside acting).

Resets (`reset_service`, a std_srvs/Trigger): the simulated driver's `~/reset` re-places the scene
and teleports the arm to its start pose; the node then publishes nothing (the driver keeps the
start pose as its target), gets a fresh bridge (full tank, no readings of before the jump: joint
states and images stamped before the reset's answer are dropped, however late they arrive) and
starts once joint states and a camera frame of after the reset are in. Without a reset service (a
real arm) `reset` holds and starts again from where the arm is: practise reset-free
(--backward-task, with --return-to-start to move the arm back to its start pose between phases)
or reset the scene by hand while the arm holds between episodes.

`success_topic` (std_msgs/Bool, the simulated driver's `~/success`) is recorded as the episodes'
success for people to read, never given to a learner; without one it is always False.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from robolearn.hardware.bridge import return_through, step_info
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from robolearn.core.errors import RobolearnError
from robolearn.core.spec import ACTION_NAMES
from robolearn.core.widowx_control import JointGoal

FRESH_INPUTS_TIMEOUT_S = 20.0
"""How long reset waits for the driver's joint states and camera frames (and its reset)."""
START_TRIES = 5
"""How many times an episode's start is tried when the bridge refuses it or holds before its first
policy step (a driver's reading that came late on a loaded machine): each try starts from the
measured pose and commands nothing before the policy's first action."""


class Ros2TaskError(RobolearnError, RuntimeError):
    """The driver did not answer (no reset service, no joint states or images)."""


class _HandOver:
    """The bridge's policy thread and the task's caller meet here: the thread leaves the
    observation and waits for the caller's action."""

    def __init__(self, action_dim: int, wait_s: float):
        self._cv = threading.Condition()
        self._obs: dict | None = None
        self._action: np.ndarray | None = None
        self._episode = 0  # an answer for another episode than the call's is never given
        self._warm = False
        self.active = False
        self._action_dim, self.wait_s = action_dim, wait_s

    def policy(self, obs: dict) -> np.ndarray:
        """The bridge node's policy (its policy thread): the caller's action for `obs`."""
        with self._cv:
            if not self._warm:  # Bridge.warmup's blank call, before any episode
                self._warm = True
                return np.zeros(self._action_dim, np.float32)
            if not self.active:
                raise RuntimeError("no episode is running (robolearn finetune ended it)")
            episode, self._obs, self._action = self._episode, obs, None
            self._cv.notify_all()
            deadline = time.monotonic() + self.wait_s
            while self._action is None and self.active and self._episode == episode:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no action within {self.wait_s:.2f} s")
                self._cv.wait(left)
            if self._action is None or self._episode != episode:
                raise RuntimeError("the episode ended before an action came")
            action, self._action = self._action, None
            return action

    def begin(self) -> None:
        with self._cv:
            self._episode += 1
            self._obs, self._action, self.active = None, None, True
            self._cv.notify_all()

    def end(self) -> None:
        with self._cv:
            self._episode += 1
            self._obs, self._action, self.active = None, None, False
            self._cv.notify_all()

    def give(self, action) -> None:
        """The caller's action [7] (or a JointGoal of the return to the start pose, as is)."""
        with self._cv:
            self._action = (
                action if isinstance(action, JointGoal) else np.asarray(action, np.float32)
            )
            self._cv.notify_all()

    def next_observation(self, timeout_s: float, stopped) -> dict | None:
        """The bridge's next observation, or None when `stopped()` (the bridge held) or after
        timeout_s."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while self._obs is None:
                left = deadline - time.monotonic()
                if left <= 0 or stopped():
                    return None
                self._cv.wait(min(left, 0.02))
            obs, self._obs = self._obs, None
            return obs


class Ros2Task:
    """A WidowX task over ROS 2 (see the module doc): the bridge node runs in this process, on its
    own rclpy context and executor thread.

    task: the task's name (the driver's scene must be this task's). describe: name -> (the
        task's info: name, instruction, max_steps, suite; the tasks it can continue as without a
        reset): robolearn finetune passes robolearn.envs' (hardware does not import it).
        image_size: the policy's image side. max_steps: the episode length in policy steps
        (default: the task's).
    node_params: robolearn_bridge parameters as "name:=value" (hardware/ros2_config.py PARAMS:
        robot_namespace, output_mode, control_rate, ...); task and image_size are set from the
        arguments, autostart is off.
    reset_service: the driver's std_srvs/Trigger reset ("" : none, see the module doc).
    success_topic: std_msgs/Bool of the task's success, recorded and logged only ("" : none).
    """

    def __init__(self, task: str, describe, image_size: int = 64, max_steps: int | None = None,
                 node_params: tuple[str, ...] = (), reset_service: str = "",
                 success_topic: str = ""):  # fmt: skip
        from robolearn.hardware.ros2_node import BridgeNode

        self._describe = describe
        self.task_info, self._partners = describe(task)
        if self.task_info.suite != "widowx":
            raise Ros2TaskError(f"{task!r} is not a WidowX task: the bridge drives the WidowX")
        self._fixed_max = max_steps
        self.max_steps = max_steps or self.task_info.max_steps
        self._context = rclpy.Context()
        rclpy.init(context=self._context)
        self.node = self._aux = self._executor = None
        try:
            for item in node_params:
                if ":=" not in item:
                    raise Ros2TaskError(f"bridge parameter {item!r}: expected name:=value")
            args = ["--ros-args"]
            for item in (*node_params, f"task:={task}", f"image_size:={image_size}",
                         "autostart:=false"):  # fmt: skip
                args += ["-p", item]
            # The hand-over waits as long as the bridge lets a policy step take (its deadline).
            self._hand = _HandOver(len(ACTION_NAMES), wait_s=1.0)
            self.node = BridgeNode(policy=self._hand.policy, context=self._context, cli_args=args)
            self._hand.wait_s = self.node.bridge.cfg.policy_deadline + 0.1
            self._aux = Node("robolearn_finetune", context=self._context)
            self._reset_client = (
                self._aux.create_client(Trigger, reset_service) if reset_service else None
            )
            self._success = False
            if success_topic:
                self._aux.create_subscription(Bool, success_topic, self._on_success, 10)
            self._executor = SingleThreadedExecutor(context=self._context)
            self._executor.add_node(self.node)
            self._executor.add_node(self._aux)
            self._spinner = threading.Thread(
                target=self._spin, name="ros2-task-executor", daemon=True
            )
            self._spinner.start()
        except BaseException:
            self._shutdown()
            raise
        self._t = 0
        self._obs: dict | None = None

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # the context was shut down under it (close)
            if self._context.ok():
                raise

    def _on_success(self, msg: Bool) -> None:
        self._success = bool(msg.data)

    # -- the task interface ----------------------------------------------------------------------

    def reset(self, *, seed: int | None = None):
        """A new episode: the driver's reset (when there is one), then the bridge starts from the
        measured pose; the first observation and info. `seed` is unused (the driver places its
        scene: the simulated driver's vary_scene parameter gives a new one at every reset)."""
        self._stop_episode()
        if self._reset_client is not None:
            self.node.pause(True)
            try:
                self._call_reset()
                # the driver answered after its reset: what it stamped before now is older
                # (the simulated driver runs beside this process, on the same clock)
                self.node.renew_bridge(not_before_s=self.node.get_clock().now().nanoseconds * 1e-9)
            finally:
                self.node.pause(False)
        self._success = False
        return self._start()

    def continue_as(self, name: str, return_to_start: bool = False):
        """The next episode as task `name` (one of reset_free_partners), from where the arm is.
        return_to_start: first the scripted return to the start pose
        (widowx_control.return_to_start) as policy steps of the bridge node, its ramp, shield
        and filter gating every command; info then adds `return_steps` and `at_start`."""
        if name != self.task_info.name and name not in self._partners:
            raise Ros2TaskError(f"{self.task_info.name!r} cannot continue as {name!r}")
        self._stop_episode()  # the arm holds while the next task is looked up
        self.task_info, self._partners = self._describe(name)
        self.max_steps = self._fixed_max or self.task_info.max_steps
        obs, info = self._start()
        if not return_to_start:
            return obs, info
        self.max_steps = None  # the move is not the episode: no step limit ends it
        try:
            moved = return_through(self)
        finally:
            self.max_steps = self._fixed_max or self.task_info.max_steps
        self._t = 0
        info = self._info()
        info["return_steps"], info["at_start"] = moved
        return self._obs, info

    def observation_now(self) -> dict:
        """The observation the bridge gave its policy last."""
        return self._obs

    def restart(self) -> None:
        """Start the held bridge again from the measured pose (the episode goes on)."""
        self._start()

    def reset_free_partners(self) -> tuple[str, ...]:
        return self._partners

    def step(self, action):
        """Hand `action` to the bridge and wait for its next policy step: obs, reward (1.0 when
        the success topic says so), terminated (never), truncated (the episode length, or the
        bridge held: info["held"] says why), info."""
        self._hand.give(action)
        wait = 4.0 / self.node.bridge.cfg.policy_hz + FRESH_INPUTS_TIMEOUT_S / 10
        obs = self._hand.next_observation(wait, lambda: self.node.bridge.mode != "running")
        self._t += 1
        info = self._info()
        if obs is None and not info["held"]:  # neither a step nor a hold: the node stalled
            self.node.hold("robolearn finetune: no policy step came")
            info = self._info()
        if obs is not None:
            self._obs = obs
        truncated = (self.max_steps is not None and self._t >= self.max_steps) or bool(info["held"])
        if truncated:
            self._stop_episode()
        return self._obs, float(info["success"]), False, truncated, info

    def hold(self) -> None:
        """End the episode now: the arm holds where it is (robolearn finetune, when it stops)."""
        self._stop_episode()

    def layout(self) -> np.ndarray:
        """Unknown: the scene is the driver's."""
        return np.zeros(0)

    def close(self) -> None:
        self._shutdown()

    # -- inside ----------------------------------------------------------------------------------

    def _call_reset(self) -> None:
        client = self._reset_client
        if not client.wait_for_service(timeout_sec=FRESH_INPUTS_TIMEOUT_S):
            raise Ros2TaskError(f"no reset service {client.srv_name} (is the driver running?)")
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + FRESH_INPUTS_TIMEOUT_S
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not future.done() or future.result() is None or not future.result().success:
            raise Ros2TaskError(f"the driver's reset ({client.srv_name}) failed or did not answer")

    def _start(self):
        """Start the bridge once its inputs are fresh; the first observation and info. A start
        the bridge refuses or holds before its first policy step (its inputs went stale for a
        moment, a reading it could not take) is tried again, START_TRIES times in all: one late
        joint state must not end a run of hours."""
        why = ""
        for _ in range(START_TRIES):
            obs, why = self._start_once()
            if obs is not None:
                self._obs = obs
                return obs, self._info()
            self.node.get_logger().warning(
                f"the bridge took no first policy step ({why}); starting again"
            )
            time.sleep(0.2)
        raise Ros2TaskError(f"the bridge took no first policy step in {START_TRIES} starts: {why}")

    def _start_once(self) -> tuple[dict | None, str]:
        """One start: (the first observation, "") or (None, why it did not come). Raises when
        the driver's inputs stay missing or stale for FRESH_INPUTS_TIMEOUT_S."""
        deadline = time.monotonic() + FRESH_INPUTS_TIMEOUT_S
        while (problem := self.node.inputs_problem()) is not None:
            if time.monotonic() > deadline:
                raise Ros2TaskError(f"the bridge cannot start: {problem} (is the driver running?)")
            time.sleep(0.02)
        self._hand.begin()
        ok, message = self.node.start("robolearn finetune")
        if not ok:
            self._hand.end()
            return None, message
        self._t = 0
        obs = self._hand.next_observation(
            FRESH_INPUTS_TIMEOUT_S, lambda: self.node.bridge.mode != "running"
        )
        if obs is None:
            status = self.node.bridge.status()
            self._stop_episode()
            return None, status["hold_reason"] or status["mode"]
        return obs, ""

    def _stop_episode(self) -> None:
        self._hand.end()
        if self.node is not None and self.node.bridge.mode == "running":
            self.node.hold("operator (robolearn finetune: episode end)")

    def _info(self) -> dict[str, Any]:
        return step_info(self.node.bridge, self.task_info, self._t, self._success)

    @property
    def bridge(self):
        """The node's current bridge (renewed by simulated resets)."""
        return self.node.bridge

    def _shutdown(self) -> None:
        if self.node is not None:
            self._hand.end()
            self.node.shutdown()
        if self._executor is not None:
            self._executor.shutdown()
        for node in (self.node, self._aux):
            if node is not None:
                node.destroy_node()
        if self._context.ok():
            rclpy.shutdown(context=self._context)
        if self._executor is not None:
            self._spinner.join(timeout=5.0)
