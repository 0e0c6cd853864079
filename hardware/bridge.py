"""The robot bridge core (no ROS): the policy at its rate, filter and shield at the driver rate.

    bridge = Bridge(load_policy("bundle:drawer/bc"), BridgeConfig())
    bridge.observe_joints(t, q, qdot, finger_q, effort)   # every joint state (100 Hz)
    bridge.observe_image(t, image)                        # every camera frame
    bridge.start(t)                                       # operator: go
    if bridge.policy_due(t): bridge.run_policy(t)         # 5 Hz, may run in a worker thread
    cmd = bridge.control_step(t)                          # 100 Hz: JointCommand or None

Policy step (policy_hz, 5 Hz): the latest image (resized to image_size with cv2.INTER_AREA when
the camera sends another size) and proprio = core.widowx.proprio(q, finger_q) of the latest joint
state go to the policy; its action [7] is checked (wrong shape or NaN/inf: hold) and mapped exactly
as the simulator maps it (core.widowx_control.step_target: end-effector step, workspace box, IK,
per-step joint limit; a step whose IK fails is skipped; the gripper command is absolute). The
end-effector target starts at the measured pose on `start`.

Control step (control_hz, 100 Hz): the joint setpoint ramps linearly from the previous policy
target to the new one over `ramp_fraction` of the policy period and then holds. The simulator ramps
over 70 % (SIM_RAMP_FRACTION; with that setting at 50 Hz the commands equal its per-chunk targets);
the bridge's default is the whole period: a 70 % ramp moves a joint up to 1/0.7 times the
velocity limit, and on the strongly damped servos that injects more energy than the default tank
holds. Measured on the simulated arm (robolearn.hardware.sim_arm, drawer BC policy, 20 seeds of 15
s): whole period, filter on: 20/20 opened, alpha < 1 on 0.4 % of control steps; 70 %, filter on:
15/20, alpha < 1 on 55 %; 70 %, filter off: 20/20 but every episode overdraws the tank (by up to 31
J). Any ramp is slowed where a joint would exceed the shield's velocity limit, and starts at the
first control step after the action arrived (counted from the policy call, inference time would be a
jump). The setpoint is clipped into the shield's joint limits and per-step limit (Shield.limit)
before the passivity filter (robolearn.hardware.passivity), so the tank pays only for a step that
can be sent: a late control tick or a target past a joint limit asks for more, and charged in full
and cut afterwards it drained the tank over ROS 2 while the arm moved normally. Then the shield
checks everything (robolearn.hardware.shield); only its output is ever returned, and the
filter is
told when the shield changed it.

Modes: idle (not started) -> running (start) -> hold (hold(), a bad action, a policy exception,
or the shield leaving "running": stale joint states or images, NaN, effort safe stop) or closed
(close()). Outside running the command is the hold position: the last command that passed the
shield (the measured position before the first one), still checked by the shield every step
(the image watchdog only applies while running). A hold is latched: the bridge resumes only on the
next `start`, which restarts the end-effector target from the measured pose, refills the tank and
resets the shield (clearing a safe stop).

Recording (record_dir set): each start opens a deployment episode (robolearn.hardware.recording)
that is written to the episode store when the bridge holds, restarts or closes.

Thread safety: every public method takes one lock; the policy itself runs outside it, so a slow
policy call never delays control_step. A policy result that arrives after a hold or a new start is
discarded. Writing a finished episode also happens outside the lock, in the call that ended it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from robolearn.hardware.passivity import PassivityConfig, PassivityFilter
from robolearn.hardware.recording import DeploymentEpisode, jsonable
from robolearn.hardware.shield import CLIP_KINDS, Intervention, Shield, ShieldConfig

from robolearn import bundles
from robolearn.core import widowx as wx
from robolearn.core import widowx_control as control
from robolearn.core.errors import ConfigError, RobolearnError
from robolearn.core.spec import ACTION_DIM, ACTION_NAMES
from robolearn.data.episode import EpisodeMeta

MODES = ("idle", "running", "hold", "closed")
SIM_RAMP_FRACTION = control.RAMP_CHUNKS / control.INTERP_CHUNKS


class ObservationError(RobolearnError, ValueError):
    """A joint state or image of the wrong shape, type or with NaN/inf (rejected, not stored)."""


@dataclasses.dataclass(frozen=True)
class BridgeConfig:
    """Bridge settings. Rates in Hz; the filter's and shield's dt_s are set to 1 / control_hz.

    instruction: recorded with each episode (the task name when empty).
    image_size: the side the policy's images are resized to (its training size).
    record_dir: episode store for deployment episodes; None records nothing.
    task: the task the policy was trained for (checkpoint check, episode meta).
    policy_name: what acted, for the episode meta (e.g. "bundle:drawer/bc").
    ramp_fraction: the share of the policy period over which joint setpoints ramp to the target.
    joint_delay_s: the loop's delay beyond a joint state's age since arrival: how old it already
        was on arrival (the driver's sampling, transport) plus how late a command takes effect
        (transport, the driver's next cycle); default one 100 Hz period. The passivity filter
        sees the measured position extrapolated to when the command acts, q + qdot * (age since
        arrival + joint_delay_s), capped at max_extrapolation_s. With a lagging q the spring
        error along the motion looks larger and the tank pays for energy the command never
        injected: with 10 ms old joint states and no extrapolation the drawer policy stalled in
        4/4 episodes (the filter gating ~96 % of control steps); over ROS 2 with 5 ms it still
        stalled in 1 of 12 runs. A blocked arm has qdot = 0, so pushing into contact is gated
        as before.
    """

    policy_hz: float = control.CONTROL_HZ
    control_hz: float = 100.0
    instruction: str = ""
    image_size: int = 64
    passivity: PassivityConfig = dataclasses.field(default_factory=PassivityConfig)
    shield: ShieldConfig = dataclasses.field(default_factory=ShieldConfig)
    record_dir: str | None = None
    task: str = "drawer"
    policy_name: str = ""
    ramp_fraction: float = 1.0
    joint_delay_s: float = 0.01
    max_extrapolation_s: float = 0.03

    def __post_init__(self):
        for name in ("joint_delay_s", "max_extrapolation_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 0.2:
                raise ConfigError(f"bridge.{name} must be in [0, 0.2] s, got {value!r}")
        if not isinstance(self.ramp_fraction, int | float) or not 0 < self.ramp_fraction <= 1:
            raise ConfigError(f"bridge.ramp_fraction must be in (0, 1], got {self.ramp_fraction!r}")
        for name in ("policy_hz", "control_hz"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"bridge.{name} must be a number > 0 Hz, got {value!r}")
        if self.control_hz < self.policy_hz:
            raise ConfigError(
                f"bridge.control_hz ({self.control_hz}) must be >= policy_hz ({self.policy_hz})"
            )
        if not isinstance(self.image_size, int) or not 16 <= self.image_size <= 256:
            raise ConfigError(
                f"bridge.image_size must be an integer in 16..256, got {self.image_size!r}"
            )
        dt = 1.0 / self.control_hz
        object.__setattr__(self, "passivity", dataclasses.replace(self.passivity, dt_s=dt))
        object.__setattr__(self, "shield", dataclasses.replace(self.shield, dt_s=dt))


@dataclasses.dataclass
class JointCommand:
    """One command that passed the shield: arm joints (rad) [6], finger position (m), time (s)."""

    q_rad: np.ndarray
    finger_m: float
    stamp_s: float


@dataclasses.dataclass
class _JointState:
    stamp_s: float
    q: np.ndarray
    qdot: np.ndarray
    finger: np.ndarray
    effort: np.ndarray | None


def load_policy(spec: str, task: str = "drawer", image_size: int = 64, seed: int = 0):
    """A BC/PPO checkpoint directory or shipped part (`bundle:drawer/bc`) as a bridge policy.

    Returns `policy({"image": uint8 [S, S, 3], "proprio": float32 [7]}) -> float32 [7]` (the mean
    action). One-line errors for a missing path, another task, or another image size.
    """
    from robolearn.policies.bc.checkpoint import CheckpointError, check_compatible
    from robolearn.policies.bc.checkpoint import load_policy as load_checkpoint

    path = bundles.resolve(spec)
    if not Path(path).exists():
        raise ConfigError(f"no policy at {spec!r}: give a checkpoint directory or bundle:TASK/PART")
    info = check_compatible(path, task, ACTION_DIM)
    if info.image_size != image_size:
        raise CheckpointError(
            f"{spec}: policy sees {info.image_size}x{info.image_size} images, the bridge sends "
            f"{image_size}x{image_size}; set image_size {info.image_size}"
        )
    return load_checkpoint(path, task, ACTION_DIM, seed=seed)


class Bridge:
    """Policy -> action mapping -> 100 Hz ramp -> shield limits -> passivity filter -> shield
    -> JointCommand."""

    def __init__(self, policy: Callable[[dict], np.ndarray], cfg: BridgeConfig | None = None):
        self.cfg = cfg = cfg if cfg is not None else BridgeConfig()
        self._policy = policy
        self._lock = threading.RLock()
        self._filter = PassivityFilter(cfg.passivity)
        self._shield = Shield(cfg.shield)
        self._dt = 1.0 / cfg.control_hz
        self._period = 1.0 / cfg.policy_hz
        self._ramp_s = cfg.ramp_fraction * self._period
        self._ramp_len_s = self._ramp_s
        self._max_velocity = cfg.shield.max_velocity_rad_s * (1.0 - 1e-6)
        self._mode = "idle"
        self._joint: _JointState | None = None
        self._image: tuple[float, np.ndarray] | None = None
        self._hold_q: np.ndarray | None = None
        self._hold_finger = wx.FINGER_UPPER_M
        self._target: control.EETarget | None = None
        self._ramp_from = np.zeros(wx.NUM_JOINTS)
        self._ramp_t0 = 0.0
        self._finger_goal = wx.FINGER_UPPER_M
        self._next_policy_s = 0.0
        self._generation = 0
        self._in_flight = False
        self._events: list[Intervention] = []
        self._event_counts: Counter[str] = Counter()
        self._seen_interventions = 0
        self._steps = self._policy_steps = self._skipped_steps = self._episodes = 0
        self._last_action: np.ndarray | None = None
        self._last_error = ""
        self._hold_reason = ""
        self._recording: DeploymentEpisode | None = None
        self._success = False
        self._last_episode = ""

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
        (motor current, mA) or None. ObservationError (not stored) for wrong shapes or NaN/inf."""
        try:
            state = _JointState(
                float(stamp_s),
                _vector(q_rad, wx.NUM_JOINTS, "q"),
                _vector(qdot_rad_s, wx.NUM_JOINTS, "qdot"),
                _vector(finger_q_m, 2, "finger_q"),
                None if effort is None else _vector(effort, wx.NUM_JOINTS, "effort"),
            )
        except ObservationError as exc:
            with self._lock:
                self._event(float(stamp_s), "bad_joint_state", str(exc))
            raise
        with self._lock:
            self._joint = state

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

        Needs a joint state and a camera image (ObservationError otherwise). The first policy
        step is due at `now_s`.
        """
        with self._lock:
            if self._mode == "closed":
                raise RuntimeError("bridge is closed")
            if self._joint is None or self._image is None:
                missing = "joint state" if self._joint is None else "camera image"
                raise ObservationError(f"cannot start: no {missing} received yet")
            finished = self._stop_locked(now_s, "restart") if self._mode == "running" else None
            q = self._joint.q
            pose = wx.fk(q)
            self._target = control.EETarget(pose[:3, 3], wx.mat_to_rpy(pose[:3, :3]), q.copy())
            self._ramp_from, self._ramp_t0 = q.copy(), now_s
            if self._hold_q is None:
                self._hold_q, self._hold_finger = q.copy(), float(np.mean(self._joint.finger))
            self._finger_goal = self._hold_finger
            self._filter.reset(self._hold_q)
            self._shield.reset()
            self._mode = "running"
            self._hold_reason = ""
            self._generation += 1
            self._next_policy_s = now_s
            self._success = False
            self._episodes += 1
            if self.cfg.record_dir is not None:
                self._recording = DeploymentEpisode(self.cfg.record_dir, self._meta())
        self._finish(finished)

    def hold(self, now_s: float, reason: str = "operator") -> None:
        """Hold position (latched until `start`) and finish the recorded episode."""
        with self._lock:
            finished = self._stop_locked(now_s, reason)
        self._finish(finished)

    def close(self, now_s: float = 0.0) -> None:
        """Hold for good: finish the episode; every later command is the hold position."""
        with self._lock:
            finished = self._stop_locked(now_s, "closed")
            self._mode = "closed"
        self._finish(finished)

    # -- policy rate -----------------------------------------------------------------------------

    def policy_due(self, now_s: float) -> bool:
        """Whether a policy step should run now (running, inputs present, none in flight)."""
        with self._lock:
            return (
                self._mode == "running"
                and not self._in_flight
                and self._joint is not None
                and self._image is not None
                and now_s >= self._next_policy_s - 1e-9
            )

    def warmup(self) -> None:
        """Call the policy once on a blank observation (compiles it; the action is discarded)."""
        size = self.cfg.image_size
        start = control.start_target()
        q = start.q_rad
        obs = {
            "image": np.zeros((size, size, 3), np.uint8),
            "proprio": wx.proprio(q, np.full(2, wx.FINGER_UPPER_M)).astype(np.float32),
        }
        self._policy(obs)

    def run_policy(self, now_s: float) -> None:
        """One policy step if due: observe, act (outside the lock), check and map the action."""
        with self._lock:
            if not self.policy_due(now_s):
                return
            joint, (_, image) = self._joint, self._image
            proprio = wx.proprio(joint.q, joint.finger).astype(np.float32)
            obs = {"image": image, "proprio": proprio}
            generation = self._generation
            self._in_flight = True
        action, error = None, None
        try:
            action = self._policy(obs)
        except Exception as exc:  # any policy failure must end in a hold, not a dead thread
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._in_flight = False
            if generation != self._generation or self._mode != "running":
                return
            state = np.concatenate([joint.q, joint.qdot])
            finished = self._apply_action(now_s, obs, state, action, error)
        self._finish(finished)

    def _apply_action(self, now_s, obs, state, action, error) -> DeploymentEpisode | None:
        if error is None:
            act = np.asarray(action, dtype=np.float64) if _numeric(action) else None
            if act is None or act.shape != (ACTION_DIM,):
                shape = "not numbers" if act is None else list(act.shape)
                error = f"policy action must have shape ({ACTION_DIM},), got {shape}"
                kind = "policy_shape"
            elif not np.all(np.isfinite(act)):
                error, kind = f"policy action has NaN/inf: {act.tolist()}", "policy_nan"
        else:
            kind = "policy_error"
        if error is not None:
            self._last_error = error
            self._event(now_s, kind, error)
            return self._stop_locked(now_s, kind)
        act = np.clip(act, -1.0, 1.0)
        if self._recording is not None:
            self._recording.observe(obs, state, self._success, self._filter.state)
            self._recording.act(act)
        target, ok = control.step_target(self._target, act)
        self._skipped_steps += not ok
        # The ramp starts at the next control step, not at now_s (when the policy was called):
        # counted from now_s, the inference time would be a jump in the setpoint.
        self._ramp_from, self._ramp_t0 = self._target.q_rad, None
        self._target = target
        # The simulator's ramp, slowed where a joint would pass the shield's velocity limit.
        slowest = float(np.max(np.abs(target.q_rad - self._ramp_from))) / self._max_velocity
        self._ramp_len_s = min(2.0 * self._period, max(self._ramp_s, slowest))
        self._finger_goal = control.gripper_target_m(act[6])
        self._last_action = act.astype(np.float32)
        self._policy_steps += 1
        self._next_policy_s += self._period
        if self._next_policy_s <= now_s:  # fell behind by a whole period: restart the schedule
            self._next_policy_s = now_s + self._period
        return None

    # -- control rate ----------------------------------------------------------------------------

    def control_step(self, now_s: float) -> JointCommand | None:
        """The command for this control period (None before the first joint state).

        Running: the ramp toward the policy's joint target, within the shield's joint and step
        limits; otherwise the hold position. Either way through the passivity filter and then the
        shield.
        """
        finished = None
        with self._lock:
            joint = self._joint
            if joint is None:
                return None
            if self._hold_q is None:
                self._hold_q, self._hold_finger = joint.q.copy(), float(np.mean(joint.finger))
                self._filter.reset(self._hold_q)
            self._steps += 1
            if self._mode == "running":
                if self._ramp_t0 is None:
                    self._ramp_t0 = now_s
                frac = min(1.0, max(0.0, (now_s - self._ramp_t0 + self._dt) / self._ramp_len_s))
                goal = self._ramp_from + frac * (self._target.q_rad - self._ramp_from)
                # The shield's joint and step limits come before the filter: a late control tick,
                # an unfinished ramp or a target past a joint limit asks for more than can be
                # sent, and the tank would pay for all of it before the shield cut it, again on
                # every step (measured over ROS 2: the tank drained by the first move's clipped
                # steps, or by a target held past a joint limit after success).
                goal = self._shield.limit(now_s, goal, self._filter.command)
                finger = self._finger_goal
            else:
                goal, finger = self._hold_q, self._hold_finger
            age = now_s - joint.stamp_s + self.cfg.joint_delay_s
            q_now = joint.q + joint.qdot * min(max(age, 0.0), self.cfg.max_extrapolation_s)
            q_cmd = self._filter.filter(goal, q_now, joint.qdot)
            # The image watchdog matters only while the policy runs; holding needs no camera.
            image_stamp = now_s
            if self._mode == "running":
                image_stamp = None if self._image is None else self._image[0]
            q_safe, finger_safe = self._shield.check(
                now_s,
                q_cmd,
                finger,
                joint.q,
                joint.stamp_s,
                image_stamp,
                joint.effort,
                float(np.mean(joint.finger)),
            )
            if not np.array_equal(q_safe, q_cmd):
                self._filter.set_command(q_safe)  # the tank measures the next step from here
            new = self._new_interventions()
            if self._recording is not None:
                self._recording.control(self._filter.state.alpha, [i.kind for i in new])
            if self._mode == "running" and self._shield.mode != "running":
                # The reason is what held (a watchdog, NaN, the workspace), not a clip before it.
                held = [i for i in new if i.kind not in CLIP_KINDS] or new
                why = f"{held[0].kind} ({held[0].detail})" if held else "no reason recorded"
                finished = self._stop_locked(now_s, f"shield {self._shield.mode}: {why}")
            self._hold_q = np.array(q_safe, dtype=np.float64)
            self._hold_finger = float(finger_safe)
            command = JointCommand(self._hold_q.copy(), self._hold_finger, float(now_s))
        self._finish(finished)
        return command

    # -- status ----------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """idle | running | hold | closed."""
        return self._mode

    @property
    def tank(self):
        """The passivity filter's TankState after the latest control step."""
        with self._lock:
            return self._filter.state

    @property
    def interventions(self) -> list[Intervention]:
        """Every shield intervention and bridge event (bad action, bad input, hold), by time."""
        with self._lock:
            return sorted(self._shield.interventions + self._events, key=lambda i: i.time_s)

    def status(self) -> dict[str, Any]:
        """A JSON-safe snapshot: mode, counters, tank, interventions by kind, last action/error."""
        with self._lock:
            counts = Counter(self._shield.counts) + self._event_counts
            return {
                "mode": self._mode,
                "hold_reason": self._hold_reason,
                "shield_mode": self._shield.mode,
                "steps": self._steps,
                "policy_steps": self._policy_steps,
                "skipped_steps": self._skipped_steps,
                "episodes": self._episodes,
                "tank": dataclasses.asdict(self._filter.state),
                "interventions": dict(sorted(counts.items())),
                "last_action": None if self._last_action is None else self._last_action.tolist(),
                "last_error": self._last_error,
                "last_episode": self._last_episode,
                "command": None if self._hold_q is None else self._hold_q.tolist(),
                "finger_command_m": self._hold_finger,
            }

    # -- internals -------------------------------------------------------------------------------

    def _event(self, now_s: float, kind: str, detail: str) -> None:
        self._events.append(Intervention(float(now_s), kind, detail))
        self._event_counts[kind] += 1
        del self._events[: -self.cfg.shield.max_records]

    def _new_interventions(self) -> list[Intervention]:
        """The shield's interventions since the previous call (its list may drop old ones)."""
        total = sum(self._shield.counts.values())
        new = total - self._seen_interventions
        self._seen_interventions = total
        return self._shield.interventions[-new:] if new else []

    def _stop_locked(self, now_s: float, reason: str) -> DeploymentEpisode | None:
        """Hold (lock held); returns the episode to write once the lock is released."""
        if self._mode in ("idle", "closed"):
            return None
        if self._mode == "running":
            self._event(now_s, "hold", reason)
            self._hold_reason = reason
            self._generation += 1
        self._mode = "hold"
        recording, self._recording = self._recording, None
        if recording is None or self._joint is None:
            return recording
        if self._image is not None:
            joint = self._joint
            obs = {
                "image": self._image[1],
                "proprio": wx.proprio(joint.q, joint.finger).astype(np.float32),
            }
            recording.observe(
                obs, np.concatenate([joint.q, joint.qdot]), self._success, self._filter.state
            )
        recording.end_reason, recording.end_s = reason, float(now_s)
        return recording

    def _meta(self) -> EpisodeMeta:
        cfg = self.cfg
        return EpisodeMeta(
            task=cfg.task,
            instruction=cfg.instruction or cfg.task,
            source="robot",
            fps=float(cfg.policy_hz),
            action_meaning=control.ACTION_MEANING,
            action_names=ACTION_NAMES,
            policy=cfg.policy_name,
            extra={"bridge": jsonable(dataclasses.asdict(cfg))},
        )

    def _finish(self, recording: DeploymentEpisode | None) -> None:
        """Write a finished episode (outside the lock); a failed write is logged, not raised."""
        if recording is None:
            return
        try:
            path = recording.write()
        except Exception as exc:  # a full disk must not stop the control loop
            with self._lock:
                self._last_error = f"recording failed: {type(exc).__name__}: {exc}"
                self._event(recording.end_s, "record_error", self._last_error)
            return
        if path:
            with self._lock:
                self._last_episode = path


def _numeric(x: Any) -> bool:
    try:
        np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _vector(x: Any, n: int, name: str) -> np.ndarray:
    try:
        arr = np.array(x, dtype=np.float64)  # a copy: callers may reuse their buffers
    except (TypeError, ValueError) as exc:
        raise ObservationError(f"{name} must be {n} numbers, got {x!r}") from exc
    if arr.shape != (n,):
        raise ObservationError(f"{name} must have shape ({n},), got {list(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ObservationError(f"{name} has NaN/inf: {arr.tolist()}")
    return arr
