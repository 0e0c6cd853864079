"""The robot bridge core (no ROS): the policy at its rate, filter and shield at the driver rate.

    bridge = Bridge(load_policy("bundle:drawer/bc"), BridgeConfig())
    bridge.observe_joints(t, q, qdot, finger_q, effort)   # every joint state (100 Hz)
    bridge.observe_image(t, image)                        # every camera frame
    bridge.start(t)                                       # operator: go
    if bridge.policy_due(t): bridge.run_policy(t)         # 5 Hz, may run in a worker thread
    cmd = bridge.control_step(t)                          # 100 Hz: JointCommand or None

Bridge wires four parts, each in its own module:
- the mode machine and the policy schedule (robolearn.hardware.modes): idle, running, hold,
  closed; when the policy is due, and its watchdog.
- policy step (policy_hz, 5 Hz): the latest image (resized to image_size with cv2.INTER_AREA when
  the camera sends another size) and proprio = core.widowx.proprio(q, finger_q) of the latest joint
  state go to the policy; its action [7] is checked (not 7 real finite floats: hold) and moves the
  setpoint ramp (robolearn.hardware.ramp: the simulator's action mapping, then a joint ramp over
  the policy period). The end-effector target starts at the measured pose on `start`.
- control step (control_hz, 100 Hz): the ramp's setpoint, or the hold position outside running,
  through the safety chain (robolearn.hardware.safety_chain: shield limits -> passivity filter ->
  shield check); only its output is ever returned.
- recording (robolearn.hardware.recording): with an episode writer, each start opens a deployment
  episode in memory, handed to the writer's own thread when the bridge holds, restarts or closes.

Modes: idle (not started) -> running (start) -> hold or closed (close()). A run holds on hold(),
a policy output that is not 7 real finite floats, any exception in the policy (SystemExit and
KeyboardInterrupt too: they propagate after the hold), a policy step without a result
policy_deadline after it was due (its result, when it comes, is discarded), an implausible joint
reading (robolearn.hardware.readings: out of range, faster than the arm can move, stamped before
the previous one; refused by observe_joints), or the shield leaving "running" (stale joint states
or images, or ones stamped in the future, NaN, the workspace, an effort safe stop). The hold
reason is in the status. Outside running the command is the hold position: the last command that
passed the shield (the measured position before the first one), still checked by the shield every
step (the image watchdog only applies while running). A hold is latched: the bridge resumes only
on the next `start`, which restarts the end-effector target from the measured pose, refills the
tank and resets the shield (clearing a safe stop). No command ever moves a joint more than the
shield's step limit from the last command sent, in any mode: the restart moves from the last
command toward the measured pose, a safe stop toward the measured position, step by step.

Thread safety: every public method takes one lock; the policy itself runs outside it, so a slow
policy call never delays control_step. A policy result that arrives after a hold or a new start is
discarded. No method writes files: finished episodes go to the recording thread.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from robolearn.hardware.bridge_types import (
    SIM_RAMP_FRACTION,
    BridgeConfig,
    JointCommand,
    MeasuredJoints,
    ObservationError,
    check_vector,
)
from robolearn.hardware.modes import MODES, ModeMachine, PolicySchedule
from robolearn.hardware.policy_loader import load_policy
from robolearn.hardware.ramp import SetpointRamp, check_action
from robolearn.hardware.recording import DeploymentEpisode, EpisodeRecorder, EpisodeWriter
from robolearn.hardware.safety_chain import SafetyChain
from robolearn.hardware.shield import CLIP_KINDS, Intervention

from robolearn.core import widowx as wx
from robolearn.core import widowx_control as control
from robolearn.core.errors import ConfigError

__all__ = [
    "MODES",
    "SIM_RAMP_FRACTION",
    "Bridge",
    "BridgeConfig",
    "JointCommand",
    "ObservationError",
    "load_policy",
]
CLOSE_WAIT_S = 30.0  # how long close() waits for the last episodes to be written


class Bridge:
    """Policy -> setpoint ramp (100 Hz) -> shield limits -> passivity filter -> shield
    -> JointCommand.

    writer: where finished deployment episodes go (robolearn.data.deployment.store_writer(DIR));
    called on the bridge's recording thread only. Needed when cfg.record_dir is set.
    """

    def __init__(
        self,
        policy: Callable[[dict], np.ndarray],
        cfg: BridgeConfig | None = None,
        writer: EpisodeWriter | None = None,
    ):
        self.cfg = cfg = cfg if cfg is not None else BridgeConfig()
        if cfg.record_dir is not None and writer is None:
            raise ConfigError(
                f"bridge.record_dir is {cfg.record_dir!r} but no episode writer was given: pass "
                "writer=robolearn.data.deployment.store_writer(DIR), as python -m "
                "robolearn.runs.deploy does"
            )
        self._policy = policy
        self._lock = threading.RLock()
        self._chain = SafetyChain(cfg)
        self._ramp = SetpointRamp(cfg)
        self._modes = ModeMachine()
        self._schedule = PolicySchedule(1.0 / cfg.policy_hz, cfg.policy_deadline)
        self._joint: MeasuredJoints | None = None
        self._image: tuple[float, np.ndarray] | None = None
        self._events: list[Intervention] = []
        self._event_counts: Counter[str] = Counter()
        self._steps = self._policy_steps = self._skipped_steps = self._episodes = 0
        self._last_action: np.ndarray | None = None
        self._last_error = ""
        self._recorder = EpisodeRecorder(cfg, writer, self._recording_failed)
        self._success = False

    # -- observations ----------------------------------------------------------------------------

    def observe_joints(
        self,
        stamp_s: float,
        q_rad: np.ndarray,
        qdot_rad_s: np.ndarray,
        finger_q_m: np.ndarray,
        effort: np.ndarray | None = None,
    ) -> None:
        """The latest joint state: arm q (rad) [6], qdot (rad/s) [6], fingers (m) [2], effort [6]
        (motor current, mA) or None. ObservationError (not stored) for wrong shapes or NaN/inf,
        and for an implausible reading (robolearn.hardware.readings), which also holds a run."""
        try:
            state = MeasuredJoints(
                float(stamp_s),
                check_vector(q_rad, wx.NUM_JOINTS, "q"),
                check_vector(qdot_rad_s, wx.NUM_JOINTS, "qdot"),
                check_vector(finger_q_m, 2, "finger_q"),
                None if effort is None else check_vector(effort, wx.NUM_JOINTS, "effort"),
            )
        except ObservationError as exc:
            with self._lock:
                self._event(float(stamp_s), "bad_joint_state", str(exc))
            raise
        with self._lock:
            reason = self._chain.check_reading(state)
            if not reason:
                self._joint = state
                return
            self._event(state.stamp_s, "implausible_joint_state", reason)
            finished = self._stop_locked(state.stamp_s, f"implausible_joint_state ({reason})")
        self._recorder.submit(finished)
        raise ObservationError(f"implausible joint state: {reason}")

    def observe_image(self, stamp_s: float, image: np.ndarray) -> None:
        """The latest camera frame, uint8 [H, W, 3]; resized to image_size (cv2.INTER_AREA)."""
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
            with self._lock:
                self._event(float(stamp_s), "bad_image", f"{img.dtype} {list(img.shape)}")
            raise ObservationError(
                f"image must be uint8 [H, W, 3], got {img.dtype} {list(img.shape)}"
            )
        size = self.cfg.image_size
        if img.shape[:2] != (size, size):
            import cv2

            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        with self._lock:
            self._image = (
                float(stamp_s),
                np.array(img, order="C"),
            )  # a copy: callers reuse buffers

    def mark_success(self, success: bool = True) -> None:
        """Task success as known from outside (a simulator, an operator) for the next recorded
        observation; recorded episodes say False otherwise."""
        with self._lock:
            self._success = bool(success)

    # -- operator --------------------------------------------------------------------------------

    def start(self, now_s: float) -> None:
        """Run the policy from the measured pose: new target, full tank, shield reset, new episode.

        Needs a joint state and a camera image, neither stamped in the future (ObservationError
        otherwise). The first policy step is due at `now_s`. The commands move from the last one
        sent toward the measured pose within the step limit, as always.
        """
        with self._lock:
            if self._modes.mode == "closed":
                raise RuntimeError("bridge is closed")
            self._check_startable(now_s)
            finished = self._stop_locked(now_s, "restart") if self._modes.running else None
            self._chain.adopt(self._joint)
            self._ramp.start(self._joint.q, self._chain.last_finger_m, now_s)
            self._chain.restart()
            self._modes.start()
            self._schedule.restart(now_s)
            self._success = False
            self._episodes += 1
            self._recorder.begin()
        self._recorder.submit(finished)

    def hold(self, now_s: float, reason: str = "operator") -> None:
        """Hold position (latched until `start`) and finish the recorded episode."""
        with self._lock:
            finished = self._stop_locked(now_s, reason)
        self._recorder.submit(finished)

    def close(self, now_s: float = 0.0) -> None:
        """Hold for good: finish the episode; every later command is the hold position. Waits (up
        to CLOSE_WAIT_S) for the recording thread to write the finished episodes."""
        with self._lock:
            finished = self._stop_locked(now_s, "closed")
            self._modes.close()
        self._recorder.submit(finished)
        self.flush_recording(CLOSE_WAIT_S)

    def flush_recording(self, timeout_s: float | None = None) -> bool:
        """Wait until every finished episode is written (True) or timeout_s passes (False). For
        shutdown, tests and simulated runs; never from the control loop."""
        return self._recorder.wait(timeout_s)

    # -- policy rate -----------------------------------------------------------------------------

    def policy_due(self, now_s: float) -> bool:
        """Whether a policy step should run now (running, inputs present, none in flight)."""
        with self._lock:
            return (
                self._modes.running
                and self._joint is not None
                and self._image is not None
                and self._schedule.due(now_s)
            )

    def warmup(self) -> None:
        """Call the policy once on a blank observation (compiles it; the action is discarded)."""
        size = self.cfg.image_size
        q = control.start_target().q_rad
        obs = {
            "image": np.zeros((size, size, 3), np.uint8),
            "proprio": wx.proprio(q, np.full(2, wx.FINGER_UPPER_M)).astype(np.float32),
        }
        self._policy(obs)

    def run_policy(self, now_s: float) -> None:
        """One policy step if due: observe, act (outside the lock), check and map the action.

        Any exception from the policy holds; SystemExit, KeyboardInterrupt and other
        BaseExceptions are raised again after the hold (the interpreter is asked to stop).
        """
        with self._lock:
            if not self.policy_due(now_s):
                return
            joint, obs = self._joint, self._observation()
            generation = self._modes.generation
            self._schedule.in_flight = True
        action, error, interrupt = None, None, None
        try:
            action = self._policy(obs)
        except BaseException as exc:  # any policy failure ends in a hold, never a silent "running"
            error = f"{type(exc).__name__}: {exc}"
            interrupt = None if isinstance(exc, Exception) else exc
        with self._lock:
            self._schedule.in_flight = False
            finished = None
            if generation == self._modes.generation and self._modes.running:
                finished = self._apply_action(now_s, obs, joint, action, error)
        self._recorder.submit(finished)
        if interrupt is not None:
            raise interrupt

    def _apply_action(self, now_s, obs, joint, action, error) -> DeploymentEpisode | None:
        if error is None and isinstance(action, control.JointGoal):
            return self._apply_joint_goal(now_s, action)
        act, kind = None, "policy_error"
        if error is None:
            act, kind, error = check_action(action)
        if act is None:
            self._last_error = error
            self._event(now_s, kind, error)
            return self._stop_locked(now_s, kind)
        if self._recorder.recording:
            state = np.concatenate([joint.q, joint.qdot])
            self._recorder.step(obs, state, self._success, self._chain.tank, act)
        self._skipped_steps += not self._ramp.step(act)
        self._last_action = act.astype(np.float32)
        self._policy_steps += 1
        self._schedule.done(now_s)
        return None

    def _apply_joint_goal(self, now_s, goal) -> DeploymentEpisode | None:
        """A step of the return to the start pose (widowx_control.JointGoal, from
        return_to_start, not a learned policy): the joint target moves toward the goal (bounded
        per step, within the joint limits), and ramp, shield and filter treat it as any policy
        step's. Not recorded as a policy action; a goal that is not 6 finite joint angles
        holds."""
        q = np.asarray(goal.q_rad, dtype=np.float64)
        if q.shape != (wx.NUM_JOINTS,) or not np.all(np.isfinite(q)):
            self._last_error = f"joint goal must be {wx.NUM_JOINTS} finite angles, got {q!r:.80}"
            self._event(now_s, "policy_nan", self._last_error)
            return self._stop_locked(now_s, "policy_nan")
        self._ramp.step_joints(control.JointGoal(q, goal.gripper))
        self._last_action = None
        self._policy_steps += 1
        self._schedule.done(now_s)
        return None

    def joint_q(self) -> np.ndarray | None:
        """The latest measured arm joint positions (rad) [6], or None before the first."""
        with self._lock:
            return None if self._joint is None else self._joint.q.copy()

    # -- control rate ----------------------------------------------------------------------------

    def control_step(self, now_s: float) -> JointCommand | None:
        """The command for this control period (None before the first joint state).

        Running: the ramp toward the policy's joint target, within the shield's joint and step
        limits; otherwise the hold position. Either way through the passivity filter and then the
        shield. A policy step late past its deadline holds here.
        """
        finished = None
        with self._lock:
            joint = self._joint
            if joint is None:
                return None
            chain = self._chain
            chain.adopt(joint)
            self._steps += 1
            late = self._schedule.late(now_s) if self._modes.running else ""
            if late:
                self._last_error = late
                self._event(now_s, "policy_late", late)
                finished = self._stop_locked(now_s, "policy_late")
            running = self._modes.running
            if running:
                goal, finger = chain.limit(now_s, self._ramp.setpoint(now_s)), self._ramp.finger_m
            else:
                goal, finger = chain.last_q_rad, chain.last_finger_m
            # The image watchdog matters only while the policy runs; holding needs no camera.
            image_stamp = now_s
            if running:
                image_stamp = None if self._image is None else self._image[0]
            new = chain.step(now_s, goal, finger, joint, image_stamp)
            self._recorder.control(chain.tank.alpha, [i.kind for i in new])
            if running and chain.shield.mode != "running":
                # The reason is what held (a watchdog, NaN, the workspace), not a clip before it.
                held = [i for i in new if i.kind not in CLIP_KINDS] or new
                why = f"{held[0].kind} ({held[0].detail})" if held else "no reason recorded"
                finished = self._stop_locked(now_s, f"shield {chain.shield.mode}: {why}")
            command = JointCommand(chain.last_q_rad.copy(), chain.last_finger_m, float(now_s))
        self._recorder.submit(finished)
        return command

    # -- status ----------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """idle | running | hold | closed."""
        return self._modes.mode

    @property
    def tank(self):
        """The passivity filter's TankState after the latest control step."""
        with self._lock:
            return self._chain.tank

    @property
    def interventions(self) -> list[Intervention]:
        """Every shield intervention and bridge event (bad action, bad input, hold), by time."""
        with self._lock:
            return sorted(self._chain.shield.interventions + self._events, key=lambda i: i.time_s)

    def status(self) -> dict[str, Any]:
        """A JSON-safe snapshot: mode, counters, tank, interventions by kind, last action/error."""
        with self._lock:
            chain = self._chain
            counts = Counter(chain.shield.counts) + self._event_counts
            return {
                "mode": self._modes.mode,
                "hold_reason": self._modes.hold_reason,
                "shield_mode": chain.shield.mode,
                "steps": self._steps,
                "policy_steps": self._policy_steps,
                "skipped_steps": self._skipped_steps,
                "episodes": self._episodes,
                "tank": dataclasses.asdict(chain.tank),
                "interventions": dict(sorted(counts.items())),
                "last_action": None if self._last_action is None else self._last_action.tolist(),
                "last_error": self._last_error,
                "last_episode": self._recorder.last_path,
                "command": None if chain.last_q_rad is None else chain.last_q_rad.tolist(),
                "finger_command_m": chain.last_finger_m,
            }

    # -- internals -------------------------------------------------------------------------------

    def observation(self) -> dict[str, np.ndarray]:
        """What the policy would be given now: the latest image and proprio of the latest joint
        state (both must have arrived)."""
        with self._lock:
            return self._observation()

    def _observation(self) -> dict[str, np.ndarray]:
        """The policy's input from the latest image and joint state (lock held)."""
        joint = self._joint
        proprio = wx.proprio(joint.q, joint.finger).astype(np.float32)
        return {"image": self._image[1], "proprio": proprio}

    def _event(self, now_s: float, kind: str, detail: str) -> None:
        self._events.append(Intervention(float(now_s), kind, detail))
        self._event_counts[kind] += 1
        del self._events[: -self.cfg.shield.max_records]

    def _check_startable(self, now_s: float) -> None:
        """ObservationError when a joint state or image is missing or stamped in the future."""
        if self._joint is None or self._image is None:
            missing = "joint state" if self._joint is None else "camera image"
            raise ObservationError(f"cannot start: no {missing} received yet")
        tolerance = self.cfg.shield.future_tolerance_s
        for what, stamp in (("joint state", self._joint.stamp_s), ("image", self._image[0])):
            if stamp > now_s + tolerance:
                raise ObservationError(
                    f"cannot start: the latest {what} is stamped {stamp - now_s:.3f} s in the "
                    "future (a clock gone wrong)"
                )

    def _stop_locked(self, now_s: float, reason: str) -> DeploymentEpisode | None:
        """Hold (lock held); returns the finished episode to hand over once the lock is released."""
        if self._modes.stop(reason):
            self._event(now_s, "hold", reason)
        if self._modes.mode != "hold":
            return None
        last = None
        if self._recorder.recording and self._joint is not None and self._image is not None:
            state = np.concatenate([self._joint.q, self._joint.qdot])
            last = (self._observation(), state, self._success, self._chain.tank)
        return self._recorder.end(last, reason, now_s)

    def _recording_failed(self, end_s: float, message: str) -> None:
        with self._lock:
            self._last_error = message
            self._event(end_s, "record_error", message)


def step_info(bridge: Bridge, task_info, step: int, success: bool) -> dict:
    """A task step's info for a task acted through `bridge` (the simulated arm's BridgeTask, the
    ROS 2 task): the task's keys, and the bridge's view: `tank_energy_j` (the passivity filter's
    tank), `injected_energy_j` (injected through the virtual port since the bridge started),
    `filter_activations` and `interventions` (counts), `held` (why it held; "" while running)."""
    status = bridge.status()
    return {
        "success": bool(success),
        "instruction": task_info.instruction,
        "task": task_info.name,
        "step": step,
        "tank_energy_j": float(status["tank"]["energy_j"]),
        "injected_energy_j": float(status["tank"]["injected_energy_j"]),
        "filter_activations": int(status["tank"]["activations"]),
        "interventions": int(sum(status["interventions"].values())),
        "held": "" if status["mode"] == "running" else str(status["hold_reason"]),
    }


def return_through(task) -> tuple[int, bool]:
    """The scripted return to the start pose (widowx_control.return_to_start) acted by a task
    driven through a bridge (sim_arm.BridgeTask, ros2_task.Ros2Task: step, observation_now,
    restart, bridge) through its step(), so ramp, shield and filter gate every command of it: a
    hold ends the move, and the bridge then restarts from the measured pose so that the episode
    can begin. Returns (control steps taken, whether the arm got there)."""

    def step(command):
        obs, _, _, _, info = task.step(command)
        return obs["proprio"], task.bridge.joint_q(), bool(info["held"])

    steps, there = control.return_to_start(
        step, task.observation_now()["proprio"], task.bridge.joint_q()
    )
    if task.bridge.mode != "running":
        task.restart()
    return steps, there
