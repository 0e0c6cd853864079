"""The simulated WidowX: a MuJoCo WidowX scene driven by joint position commands, as a driver is.

`SimArm` is what the robot bridge (robolearn.hardware.bridge) and the simulated ROS 2 driver
(robolearn.hardware.ros2_sim_driver) talk to instead of the Interbotix driver: it takes joint
position targets for the six arm joints and the gripper fingers, advances physics in steps of the
driver period, and reports joint states (position, velocity, effort) and the 64x64 task camera image
the policy was trained on. It wraps a WidowX task of robolearn.envs (`drawer` by default):
`reset(seed)` places the scene and puts the arm in the task's start pose exactly as the task does,
but after that the task's own end-effector control is bypassed, so everything between policy and
joints is the
bridge's.

Effort is reported in the unit the real driver uses, motor current in mA, scaled from the
simulated actuator torque so that a saturated simulated servo (arm.TORQUE_LIMIT) reads the real
arm's nominal current, NOMINAL_CURRENT_MA = [800, 1000, 600, 600, 600, 700] mA (the base of the
Interbotix/BridgeData safe-stop threshold, 1.7x these): effort_mA = NOMINAL_CURRENT_MA * tau /
TORQUE_LIMIT. The simulated servos have strong joint damping, so ordinary fast moves saturate
them (measured with the drawer BC policy); a scale that let saturation cross the threshold would
safe-stop every episode. The default shield therefore never safe-stops the simulated arm on its
own effort; set ShieldConfig.effort_limit below NOMINAL_CURRENT_MA to exercise the safe stop in
simulation.

`run_closed_loop` drives a SimArm with a Bridge in simulated time, and `python -m
robolearn.hardware.sim_arm` measures the closed-loop success of a policy over seeds
(`python -m robolearn.runs.deploy sim` runs the same with `--record DIR` recording the episodes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from robolearn.hardware.recording import WriterFactory

from robolearn import envs
from robolearn.core import widowx as wx
from robolearn.core.widowx_control import JointGoal
from robolearn.envs.widowx.arm import TORQUE_LIMIT
from robolearn.envs.widowx.base import WidowXTask

PHYSICS_DT_S = 0.002
NOMINAL_CURRENT_MA = np.array([800.0, 1000.0, 600.0, 600.0, 600.0, 700.0])


def torque_to_current_ma(tau_nm: np.ndarray) -> np.ndarray:
    """The simulated servos' torque (N m) [6] as motor current (mA) [6] (see the module doc)."""
    return NOMINAL_CURRENT_MA * np.asarray(tau_nm, dtype=np.float64) / TORQUE_LIMIT


class SimArm:
    """A WidowX task's MuJoCo scene behind a joint-position driver interface (no ROS).

    task: a WidowX task name of robolearn.envs (drawer, drawer-close, push, ...).
    seed: the first reset's seed (scene placement as the task draws it).
    image_size: side of the square camera image (the policy's training size, 64).
    """

    def __init__(self, task: str = "drawer", seed: int = 0, image_size: int = 64):
        made = envs.make(task, image_size=image_size)
        if not isinstance(made, WidowXTask):
            made.close()
            raise ValueError(f"task {task!r} is not a WidowX task; SimArm drives WidowX scenes")
        self.task = made
        self.image_size = image_size
        self.seed = seed
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        """Place the scene from `seed` and put the arm at rest in the task's start pose."""
        self.seed = self.seed if seed is None else seed
        self.task.reset(seed=self.seed)

    def command(self, q_rad: np.ndarray, finger_m: float) -> None:
        """Joint position targets: arm (rad) [6] and finger position (m, both fingers)."""
        q = np.asarray(q_rad, dtype=np.float64)
        if q.shape != (wx.NUM_JOINTS,) or not np.all(np.isfinite(q)) or not np.isfinite(finger_m):
            raise ValueError(f"SimArm.command needs 6 finite joint targets, got {q.tolist()}")
        self.task.set_joint_targets(q, finger_m)

    def step(self, dt_s: float) -> None:
        """Advance physics by `dt_s` seconds (whole 2 ms physics steps, at least one)."""
        self.task.advance(max(1, round(dt_s / PHYSICS_DT_S)))

    def joint_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(q rad [6], qdot rad/s [6], finger positions m [2], effort mA [6])."""
        effort = torque_to_current_ma(self.task.arm_torque())
        return self.task.arm_q(), self.task.arm_qdot(), self.task.finger_q(), effort

    def render(self) -> np.ndarray:
        """The task camera's frame of the current state, uint8 [image_size, image_size, 3]."""
        return self.task.camera_image()

    def success(self) -> bool:
        """Whether the task is solved in the current state (e.g. the drawer is open)."""
        return self.task.success_now()

    def contact_force_n(self) -> float:
        """Peak normal contact force (N) between the scene and any arm or gripper part, now."""
        return self.task.arm_contact_force_n()[1]

    @property
    def time_s(self) -> float:
        """Simulated time since the last reset (s)."""
        return float(self.task.data.time)

    def close(self) -> None:
        """Release the renderer."""
        self.task.close()


def run_closed_loop(
    bridge,
    arm: SimArm,
    seconds: float = 10.0,
    camera_hz: float = 30.0,
    joint_latency_s: float = 0.0,
    camera_phase_s: float | None = None,
    node_timing: bool = False,
    inference_s: float = 0.01,
    image_sync_wait_s: float = 0.1,
) -> dict[str, Any]:
    """Drive `arm` with a robolearn.hardware.bridge.Bridge in simulated time (no sleeping), from
    `start`.

    Each control period (1 / bridge.cfg.control_hz): joint state -> bridge; a camera frame when
    one is due (camera_hz, and always right before a policy step, so the policy sees the current
    scene as in the simulator); the policy step when due; control_step; command; physics.
    joint_latency_s delays the joint states the bridge sees (with their sampling stamps), as a
    real driver and transport do. camera_phase_s: run the camera free, as a real one does (over
    ROS 2 too): frames at camera_phase_s + k / camera_hz after the start (and one at the start),
    none forced before a policy step, so the policy sees a frame up to one camera period older
    than the joint state it is paired with (bench.camera_phase sweeps it). node_timing: schedule
    the policy steps as the ROS 2 node does (robolearn.hardware.ros2_node `_policy_loop`): a step
    runs once it is due, the previous action's whole ramp has been commanded (control_hz /
    policy_hz commands) plus `inference_s` (the time the action took to arrive), and a camera
    frame arrived at or after the step became due (image_sync, waiting at most
    image_sync_wait_s); with a free-running camera a step then comes every ~233 ms, not 200.
    The episode ends with a hold (and a recorded episode written, when the bridge records).
    Returns success (at any time), the first success time (s), the bridge's status, the lowest
    tank level (J), the largest command excursion beyond the hardware joint limits (rad, 0 when
    inside) and the peak contact force (N).
    """
    dt = 1.0 / bridge.cfg.control_hz
    t0, last_frame = arm.time_s, -np.inf
    next_frame = camera_phase_s
    first_success, min_energy, beyond, peak_force = None, np.inf, 0.0, 0.0
    lag = round(joint_latency_s / dt)
    states: list[tuple] = []
    gate = round(bridge.cfg.control_hz / bridge.cfg.policy_hz) + round(inference_s / dt)
    since_action, due_since = gate, None  # node_timing: commands since the last action
    for i in range(round(seconds / dt)):
        now = t0 + i * dt  # from the counter: summed 2 ms steps drift off the policy schedule
        states = [*states[-lag:], (now, *arm.joint_state())] if lag else [(now, *arm.joint_state())]
        stamp, q, qdot, finger, effort = states[0]
        bridge.observe_joints(stamp, q, qdot, finger, effort)
        success = arm.success()
        if success and first_success is None:
            first_success = round(now - t0, 9)
        if next_frame is not None:  # a free-running camera
            frame = i == 0 or i * dt >= next_frame - 1e-9
            while i * dt >= next_frame - 1e-9:
                next_frame += 1.0 / camera_hz
        else:
            frame = i == 0 or bridge.policy_due(now) or now - last_frame >= 1.0 / camera_hz - 1e-9
        if frame:
            bridge.observe_image(now, arm.render())
            last_frame = now
        if i == 0:
            bridge.start(now)
        due = bridge.policy_due(now)
        if node_timing:
            due = due and since_action >= gate
            due_since = (now if due_since is None else due_since) if due else None
            if due and last_frame < due_since - 1e-9 and now - due_since < image_sync_wait_s:
                due = False  # image_sync: wait for a frame taken after the step became due
        if due:
            bridge.mark_success(success)
            bridge.run_policy(now)
            since_action, due_since = 0, None
        cmd = bridge.control_step(now)
        since_action += 1
        beyond = max(beyond, _beyond_limits(cmd.q_rad, cmd.finger_m))
        min_energy = min(min_energy, bridge.tank.energy_j)
        arm.command(cmd.q_rad, cmd.finger_m)
        arm.step(dt)
        peak_force = max(peak_force, arm.contact_force_n())
    bridge.mark_success(arm.success())
    bridge.hold(t0 + round(seconds / dt) * dt, "episode end")
    bridge.flush_recording()  # simulated time: waiting for the writer stalls no arm
    return {
        "success": first_success is not None,
        "first_success_s": first_success,
        "min_tank_energy_j": float(min_energy),
        "beyond_limits_rad": float(beyond),
        "peak_contact_force_n": float(peak_force),
        "status": bridge.status(),
    }


class BridgeTask:
    """A WidowX task acted through the robot bridge on the simulated arm, in simulated time, behind
    the task interface of robolearn.envs (reset, step, continue_as, layout, close): every action
    goes ramp -> shield -> passivity filter -> shield -> SimArm at the bridge's control rate, and
    the next observation is the one the bridge gives its policy at the next policy step (the
    camera frame of that moment, proprio from the measured joints), as on the robot. What learns
    through it (robolearn finetune --bridge) is what would run on the real arm.

    info of a step adds the bridge's view: `tank_energy_j` (the passivity filter's tank),
    `injected_energy_j` (the energy the commands injected through the virtual port since the
    bridge started, the filter's accounting),
    `filter_activations` and `interventions` (counts since the reset), `held` (why the bridge
    held, "" while it runs). A hold (the shield, the policy's NaN action, ...) ends the episode:
    truncated, the arm kept where the bridge held it.
    """

    def __init__(self, task: str = "drawer", image_size: int = 64, max_steps: int | None = None,
                 bridge_cfg=None):  # fmt: skip
        from robolearn.hardware.bridge import Bridge, BridgeConfig

        self.arm = SimArm(task, image_size=image_size)
        self.task_info = self.arm.task.task_info
        self.config = self.arm.task.config
        self.max_steps = max_steps or self.task_info.max_steps
        self._fixed_max = max_steps
        self._bridge_cfg = bridge_cfg or BridgeConfig(task=task, image_size=image_size)
        self._make_bridge = lambda: Bridge(self._policy, self._bridge_cfg)
        self.bridge = self._make_bridge()
        self._dt = 1.0 / self._bridge_cfg.control_hz
        self._action: np.ndarray | None = None
        self._origin, self._tick, self._t = 0.0, 0, 0

    def _policy(self, obs: dict) -> np.ndarray:
        return self._action

    def _now(self) -> float:
        return self._origin + self._tick * self._dt

    def _observe_joints(self, now: float) -> None:
        """Give the bridge the measured joints. A reading it finds implausible (a finger whipped
        past its limits by a violent move, say) makes it hold, as on the robot: the episode then
        ends held, where before the bridge's ObservationError ended the whole run."""
        from robolearn.hardware.bridge_types import ObservationError

        q, qdot, finger, effort = self.arm.joint_state()
        try:
            self.bridge.observe_joints(now, q, qdot, finger, effort)
        except ObservationError:
            if self.bridge.mode == "running":  # not a hold: a reading the bridge cannot take
                raise

    def _until_policy_step(self) -> None:
        """Control periods until the bridge wants its next policy step (a fresh camera frame
        then), or until it holds."""
        while True:
            now = self._now()
            self._observe_joints(now)
            if self.bridge.mode != "running":
                return
            if self.bridge.policy_due(now):
                self.bridge.observe_image(now, self.arm.render())
                return
            self._control(now)

    def _control(self, now: float) -> None:
        cmd = self.bridge.control_step(now)
        if cmd is not None:
            self.arm.command(cmd.q_rad, cmd.finger_m)
        self.arm.step(self._dt)
        self._tick += 1

    def _obs(self) -> dict[str, np.ndarray]:
        obs = self.bridge.observation()  # the policy's own input
        return {**obs, "state": np.concatenate([self.arm.task.data.qpos, self.arm.task.data.qvel])}

    def _info(self) -> dict[str, Any]:
        from robolearn.hardware.bridge import step_info

        return step_info(self.bridge, self.task_info, self._t, self.arm.success())

    def reset(self, *, seed: int | None = None):
        """Place the scene, start a new bridge from the measured start pose (full tank): the arm
        jumps to its start pose, which no bridge watching the joints would take for a reading."""
        self.bridge.close(self._now())
        self.bridge = self._make_bridge()
        self.arm.reset(seed)
        self._origin, self._tick, self._t = self.arm.time_s, 0, 0
        self._start_bridge()
        return self._obs(), self._info()

    def _start_bridge(self) -> None:
        """Start the bridge from the measured pose and run to its first policy step."""
        now = self._now()
        self._observe_joints(now)
        self.bridge.observe_image(now, self.arm.render())
        self.bridge.start(now)
        self._until_policy_step()

    def reset_free_partners(self) -> tuple[str, ...]:
        return self.arm.task.reset_free_partners()

    def observation_now(self) -> dict[str, np.ndarray]:
        """The observation the bridge gave its policy last."""
        return self._obs()

    def restart(self) -> None:
        """Start a held bridge again from the measured pose (the episode goes on)."""
        self._start_bridge()

    def continue_as(self, name: str, return_to_start: bool = False):
        """The next episode as task `name` of the same scene, from where the arm is (no reset; a
        held bridge restarts from the measured pose). return_to_start: first the scripted return
        to the start pose (widowx_control.return_to_start) through the bridge, its ramp, shield
        and filter gating every command; info then adds `return_steps` and `at_start`, as the
        simulated tasks' does."""
        from robolearn.hardware.bridge import return_through

        self.arm.task.continue_as(name)
        self.task_info = self.arm.task.task_info
        self.max_steps = self._fixed_max or self.task_info.max_steps
        if self.bridge.mode != "running":
            self._start_bridge()
        moved = return_through(self) if return_to_start else None
        self._t = 0
        info = self._info()
        if moved is not None:
            info["return_steps"], info["at_start"] = moved
        return self._obs(), info

    def step(self, action):
        """One policy step through the bridge: the action's ramp, shield and filter at the
        control rate until the next policy step; obs, reward (1.0 on success), terminated
        (never), truncated (the episode length, or a hold), info."""
        # (a JointGoal of the return to the start pose goes to the bridge as it is)
        self._action = action if isinstance(action, JointGoal) else np.asarray(action)
        now = self._now()
        self.bridge.mark_success(self.arm.success())
        self.bridge.run_policy(now)
        if self.bridge.mode == "running":
            self._control(now)
            self._until_policy_step()
        self._t += 1
        info = self._info()
        truncated = self._t >= self.max_steps or bool(info["held"])
        return self._obs(), float(info["success"]), False, truncated, info

    def layout(self) -> np.ndarray:
        return self.arm.task.layout()

    def close(self) -> None:
        self.bridge.close(self._now())
        self.arm.close()


def _beyond_limits(q_rad: np.ndarray, finger_m: float) -> float:
    """How far a command lies outside the hardware joint / finger limits (0 inside)."""
    over = np.maximum(q_rad - wx.Q_UPPER_RAD, 0.0) + np.maximum(wx.Q_LOWER_RAD - q_rad, 0.0)
    finger = max(finger_m - wx.FINGER_UPPER_M, wx.FINGER_LOWER_M - finger_m, 0.0)
    return float(max(over.max(), finger))


def main(
    argv: list[str] | None = None,
    make_writer: WriterFactory | None = None,
    prog: str = "python -m robolearn.hardware.sim_arm",
) -> None:
    """The bridge driving the simulated arm over seeds: a JSON line per episode, then the count.

    argv: the flags (sys.argv[1:] by default). make_writer: builds the episode writer for
    `--record DIR` (robolearn.runs.deploy passes the episode store's; without one, --record is an
    error, since hardware never imports robolearn.data).
    """
    import argparse
    import json

    from robolearn.hardware.bridge import Bridge, BridgeConfig, load_policy

    parser = argparse.ArgumentParser(
        prog=prog, description="The bridge driving the simulated arm; success over seeds."
    )
    parser.add_argument("--policy", default="bundle:drawer/bc")
    parser.add_argument("--task", default="drawer")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="episode i resets with seed + i")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-filter", action="store_true", help="passivity filter off")
    parser.add_argument("--record", default=None, help="episode store for the episodes")
    args = parser.parse_args(argv)
    if args.record is not None and make_writer is None:
        parser.error("--record writes an episode store: run python -m robolearn.runs.deploy sim")
    writer = None if args.record is None else make_writer(args.record)
    policy = load_policy(args.policy, args.task)
    cfg = BridgeConfig(task=args.task, record_dir=args.record, policy_name=args.policy)
    if args.no_filter:
        cfg = dataclasses.replace(cfg, passivity=dataclasses.replace(cfg.passivity, enabled=False))
    arm, wins = SimArm(args.task, seed=args.seed), 0
    try:
        for i in range(args.episodes):
            arm.reset(args.seed + i)
            out = run_closed_loop(Bridge(policy, cfg, writer), arm, args.seconds)
            wins += out["success"]
            status = out["status"]
            print(
                json.dumps(
                    {
                        "seed": args.seed + i,
                        "success": out["success"],
                        "first_success_s": out["first_success_s"],
                        "min_tank_energy_j": round(out["min_tank_energy_j"], 3),
                        "filter_activations": status["tank"]["activations"],
                        "interventions": status["interventions"],
                        "peak_contact_force_n": round(out["peak_contact_force_n"], 1),
                    }
                )
            )
    finally:
        arm.close()
    print(f"success {wins}/{args.episodes} in {args.seconds:g} s episodes ({args.policy})")


if __name__ == "__main__":
    main()
