"""The passivity study: a passivity-agnostic policy on the `press` task, with and without filter.

The comparison of the Passive Safe RL paper (REFERENCES.md section 5), in our simulator. The task is
`press` (robolearn/envs/widowx/contact.py): push a spring-loaded button down onto its hard stop. The
passivity-agnostic policy is `AggressivePress`, a scripted end-effector controller that comes to
4 cm above the button and then drives its target at full speed (5 cm per 5 Hz step) to the
workspace floor, about 3 cm past the button's stop -- the way a policy trained for success alone
pushes "harder" to be sure. The reference is the task's gentle scripted expert (it stops its target
7 mm past first contact). The arm is driven as on the robot: robolearn.hardware.sim_arm.SimArm (the
task's MuJoCo scene behind joint position commands) at the 100 Hz driver rate; each 5 Hz action
becomes an end-effector and joint target (robolearn.core.widowx_control), ramped over the first 70 %
of the 0.2 s step as the simulator does, and every 10 ms setpoint goes through the PassivityFilter
(robolearn.hardware.passivity). Filter "off" runs it with enabled=False: commands pass unscaled, the
tank is still accounted and the steps that leave it below E_min are counted as violations. Filter
"on" gates. The shield is left out on purpose: its effort stop would end the pushing episodes and
hide
the filter's effect.

Per episode: success (button >= 8 mm down at the end of any 0.2 s step, as `robolearn eval`
counts), violations (control steps that end with the tank below E_min), injected energy (J, the
sum of the positive dV the commands put into the port), net energy (injected minus what damping
refilled and steps returned: what the commands drew from the tank), activations (control steps
with alpha < 1), the lowest tank level, and the peak contact force between arm and scene (N, the
largest total normal force at any 2 ms physics step). Both conditions see the same placements and
the same policy noise.

Trained policies join the scripted ones (`trained`, "NAME=CHECKPOINT[,CHECKPOINT...]", one
checkpoint per training seed, e.g. a standard and an energy-aware `robolearn finetune --bridge`
run): each acts with its mean action on what the robot bridge would give it at the start of each
step (the camera frame then, proprio of the measured joints), and every checkpoint plays the same
placements. A condition's row pools its checkpoints' episodes; `by_checkpoint` keeps each one's
figures, so the spread over training seeds is in the results too. Time to success is the first
0.2 s step at whose end the button is down, over the episodes that succeed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from robolearn.core import widowx as wx
from robolearn.core import widowx_control as control
from robolearn.core.errors import ConfigError
from robolearn.core.stats import wilson_interval
from robolearn.envs.widowx import contact, experts
from robolearn.hardware.passivity import PassivityConfig, PassivityFilter
from robolearn.hardware.sim_arm import SimArm

TASK = "press"
CONTROL_HZ = 100.0
CONTROL_PER_POLICY_STEP = round(CONTROL_HZ / control.CONTROL_HZ)  # 20 driver periods per action
RAMP_PERIODS = round(CONTROL_PER_POLICY_STEP * control.RAMP_CHUNKS / control.INTERP_CHUNKS)
POLICIES = ("aggressive", "expert")
STEP_S = 1.0 / control.CONTROL_HZ  # one policy step, 0.2 s

# The study's tank (K and D: robolearn.hardware.passivity's port model, the simulated servo's
# gains). The budget E_init - E_min = 0.4 J is calibrated on this task, noise-free: the gentle
# expert spends at most ~0.3 J of it over 60 placements (its approach dips the tank ~0.2 J until
# damping refills it, holding the button down costs ~0.1 J), while the aggressive policy loads
# 0.8-1.2 J into the
# port when it drives past the stop.
ENERGY_INIT_J = 0.5
ENERGY_MIN_J = 0.1
ENERGY_MAX_J = 0.5


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """What the passivity study runs.

    seeds: base seeds; episode i of seed s resets the task with seed 1000 * s + i and draws the
        policy noise from the same number, so both filter conditions see identical episodes.
    episodes: episodes per seed. max_steps: 5 Hz policy steps per episode (10 s at 50).
    policies: "aggressive" (the passivity-agnostic AggressivePress) and/or "expert" (the task's
        gentle scripted expert, a reference for what the filter costs a well-behaved policy).
    trained: trained policies, each "NAME=CHECKPOINT[,CHECKPOINT...]" (checkpoint directories or
        shipped parts of the press task, one per training seed; each plays every episode).
    image_size: the camera frame the trained policies see (their checkpoints must agree).
    noise_std: Gaussian noise added to every action dimension (0: deterministic policies).
    energy_*_j: the tank (robolearn.hardware.passivity.PassivityConfig) of the "on" and "off"
    conditions.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    episodes: int = 20
    max_steps: int = 50
    policies: tuple[str, ...] = POLICIES
    trained: tuple[str, ...] = ()
    image_size: int = 64
    noise_std: float = 0.0
    energy_init_j: float = ENERGY_INIT_J
    energy_min_j: float = ENERGY_MIN_J
    energy_max_j: float = ENERGY_MAX_J

    def __post_init__(self):
        if not self.seeds or self.episodes < 1 or self.max_steps < 1:
            raise ConfigError(
                f"need at least one seed, episode and step, got seeds={self.seeds}, "
                f"episodes={self.episodes}, max_steps={self.max_steps}"
            )
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown:
            raise ConfigError(f"policies must be among {', '.join(POLICIES)}, got {self.policies}")
        names = [name for name, _ in self.trained_policies()] + list(self.policies)
        if not names:
            raise ConfigError("nothing to study: give a scripted policy or a trained one")
        if len(set(names)) != len(names):
            raise ConfigError(f"every policy needs its own name, got {', '.join(names)}")
        if not self.noise_std >= 0:
            raise ConfigError(f"noise_std must be >= 0, got {self.noise_std}")
        self.passivity(enabled=True)  # validates the tank

    def trained_policies(self) -> list[tuple[str, tuple[str, ...]]]:
        """`trained` parsed: (name, checkpoints) pairs; a one-line ConfigError if malformed."""
        parsed = []
        for entry in self.trained:
            name, sep, specs = str(entry).partition("=")
            checkpoints = tuple(c.strip() for c in specs.split(","))
            if not sep or not name.strip() or not all(checkpoints):
                raise ConfigError(
                    f"a trained policy is NAME=CHECKPOINT[,CHECKPOINT...], got {entry!r}"
                )
            parsed.append((name.strip(), checkpoints))
        return parsed

    def passivity(self, enabled: bool) -> PassivityConfig:
        """The filter settings of one condition (dt = the 100 Hz driver period)."""
        return PassivityConfig(
            dt_s=1.0 / CONTROL_HZ,
            energy_init_j=self.energy_init_j,
            energy_min_j=self.energy_min_j,
            energy_max_j=self.energy_max_j,
            enabled=enabled,
        )


class AggressivePress:
    """The passivity-agnostic policy: to 4 cm above the cap (at the expert's half speed), then
    drive the target at full speed to the workspace floor under the cap (about 3 cm past the
    button's stop) and keep it there.

    Acts on the commanded end-effector target (`task.target`) and the cap's position, with the
    pitch of the task's expert and the gripper closed.
    """

    PITCH_RAD = contact.PressExpert.PITCH_RAD
    HOVER_M = 0.04

    def __init__(self, approach_max: float = contact.PressExpert.MAX_ACTION):
        self.approach_max = approach_max
        self.reset()

    def reset(self) -> None:
        """Back to the approach phase."""
        self.diving = False

    def __call__(self, task: contact.PressTask) -> np.ndarray:
        top = task.cap_top_rest()
        hover = top + [0.0, 0.0, self.HOVER_M]
        self.diving = self.diving or bool(np.linalg.norm(task.tip_pos() - hover) < 0.02)
        if self.diving:
            floor = np.array([top[0], top[1], control.WORKSPACE_BOX_M[0, 2]])
            return experts.move_action(task, floor, self.PITCH_RAD, experts.CLOSED)
        action = experts.move_action(task, hover, self.PITCH_RAD, experts.CLOSED)
        action[:6] = contact.slow(action[:6], self.approach_max)
        return action


def _expert(task: contact.PressTask) -> np.ndarray:
    return task.expert_action()


class TrainedPolicy:
    """A policy checkpoint (BC, PPO or SAC) acting on `arm` with its mean action, from what the
    robot bridge would give it: the camera frame of now and proprio of the measured joints."""

    def __init__(self, spec: str, arm: SimArm):
        from robolearn.hardware.policy_loader import load_policy

        self.spec, self.arm = spec, arm
        self.policy = load_policy(spec, TASK, image_size=arm.image_size)

    def reset(self) -> None:
        """Forget the previous episode (a policy with a frame history starts afresh)."""
        if hasattr(self.policy, "reset"):
            self.policy.reset()

    def __call__(self, task: contact.PressTask) -> np.ndarray:
        q, _, finger, _ = self.arm.joint_state()
        obs = {"image": self.arm.render(), "proprio": wx.proprio(q, finger).astype(np.float32)}
        return np.asarray(self.policy(obs), dtype=np.float64)


def run_episode(
    arm: SimArm,
    policy: Callable[[contact.PressTask], np.ndarray],
    filt: PassivityFilter,
    seed: int,
    max_steps: int,
    noise_std: float = 0.0,
) -> dict:
    """One episode of `policy` on `arm` (a SimArm of the press task) through `filt`; its metrics."""
    arm.reset(seed)
    task: contact.PressTask = arm.task
    if hasattr(policy, "reset"):
        policy.reset()
    rng = np.random.default_rng(seed)
    q, qdot, *_ = arm.joint_state()
    filt.reset(task.target.q_rad)
    success, lowest, success_step = False, filt.state.energy_j, None
    for step in range(max_steps):
        action = np.asarray(policy(task), dtype=np.float64)
        if noise_std > 0:
            action = action + rng.normal(0.0, noise_std, action.shape)
        action = np.clip(action, -1.0, 1.0)
        q_prev = task.target.q_rad
        task.target, _ = control.step_target(task.target, action)
        finger_m = control.gripper_target_m(action[6])
        for k in range(1, CONTROL_PER_POLICY_STEP + 1):
            q_set = q_prev + min(1.0, k / RAMP_PERIODS) * (task.target.q_rad - q_prev)
            arm.command(filt.filter(q_set, q, qdot), finger_m)
            arm.step(1.0 / CONTROL_HZ)
            q, qdot, *_ = arm.joint_state()
            lowest = min(lowest, filt.state.energy_j)
        if not success and arm.success():
            success, success_step = True, step + 1
    tank = filt.state
    return {
        "seed": seed,
        "success": success,
        "success_at_end": arm.success(),
        "time_to_success_s": None if success_step is None else success_step * STEP_S,
        "violation_steps": tank.violations,
        "control_steps": tank.steps,
        "activations": tank.activations,
        "injected_energy_j": tank.injected_energy_j,
        "harvested_energy_j": tank.harvested_energy_j,
        "lowest_energy_j": lowest,
        "final_energy_j": tank.energy_j,
        "peak_force_n": task.peak_force_n,
        "final_force_n": task.contact_force_n(),
        "final_depth_m": task.button_depth_m(),
    }


def summarize(episodes: list[dict]) -> dict:
    """The study's metrics over `episodes` (dicts from run_episode) of one condition."""
    n = len(episodes)
    wins = sum(e["success"] for e in episodes)
    violating = sum(e["violation_steps"] > 0 for e in episodes)
    steps = sum(e["control_steps"] for e in episodes)
    injected = np.array([e["injected_energy_j"] for e in episodes])
    net = injected - np.array([e["harvested_energy_j"] for e in episodes])
    peak = np.array([e["peak_force_n"] for e in episodes])
    times = [e["time_to_success_s"] for e in episodes if e.get("time_to_success_s") is not None]
    return {
        "episodes": n,
        "success": wins,
        "success_rate": wins / n,
        "success_ci95": wilson_interval(wins, n),
        "violation_episodes": violating,
        "violation_episode_rate": violating / n,
        "violation_episode_ci95": wilson_interval(violating, n),
        "violation_step_rate": sum(e["violation_steps"] for e in episodes) / steps,
        "injected_energy_j_mean": float(injected.mean()),
        "injected_energy_j_max": float(injected.max()),
        "net_energy_j_mean": float(net.mean()),
        "net_energy_j_max": float(net.max()),
        "activation_rate": sum(e["activations"] for e in episodes) / steps,
        "lowest_energy_j": float(min(e["lowest_energy_j"] for e in episodes)),
        "peak_force_n_mean": float(peak.mean()),
        "peak_force_n_p95": float(np.percentile(peak, 95)),
        "peak_force_n_max": float(peak.max()),
        "final_force_n_mean": float(np.mean([e["final_force_n"] for e in episodes])),
        "time_to_success_s_mean": float(np.mean(times)) if times else None,
    }


def run_study(cfg: StudyConfig, log: Callable[[str], None] = print) -> dict:
    """Every (policy, filter on/off) condition over cfg.seeds x cfg.episodes (for each checkpoint
    of a trained policy); the results dict."""
    arm = SimArm(TASK, image_size=cfg.image_size, seed=0)
    rows, start = [], time.perf_counter()
    try:
        policies = [(name, [AggressivePress() if name == "aggressive" else _expert], [name])
                    for name in cfg.policies]  # fmt: skip
        for name, specs in cfg.trained_policies():  # loaded (and checked) before any episode
            policies.append((name, [TrainedPolicy(spec, arm) for spec in specs], list(specs)))
        for name, players, labels in policies:
            for enabled in (False, True):
                filt = PassivityFilter(cfg.passivity(enabled))
                played = [
                    [
                        run_episode(arm, policy, filt, 1000 * s + i, cfg.max_steps, cfg.noise_std)
                        for s in cfg.seeds
                        for i in range(cfg.episodes)
                    ]
                    for policy in players
                ]
                episodes = [e for per_policy in played for e in per_policy]
                row = {"policy": name, "filter": "on" if enabled else "off"}
                if name not in cfg.policies:  # trained: each checkpoint's own figures too
                    row["by_checkpoint"] = [
                        {"checkpoint": label, **summarize(per_policy)}
                        for label, per_policy in zip(labels, played, strict=True)
                    ]
                rows.append({**row, **summarize(episodes), "per_episode": episodes})
                log(f"{name}, filter {row['filter']}: {len(episodes)} episodes, "
                    f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    finally:
        arm.close()
    config = dataclasses.asdict(cfg)
    config["passivity"] = dataclasses.asdict(cfg.passivity(enabled=True))
    return {"config": config, "conditions": rows, "seconds": time.perf_counter() - start}


def markdown_table(results: dict) -> str:
    """The study's table (one row per condition) as GitHub markdown; with trained policies, a
    second table of each checkpoint (training seed) on its own."""
    head = (
        "| policy | filter | success (95 % CI) | episodes with violations (95 % CI) | "
        "control steps in violation | injected J (mean / max) | net J (mean / max) | "
        "activation rate | lowest tank J | peak force N (mean / p95 / max) | force at end N | "
        "time to success s |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results["conditions"]:
        lines.append(f"| {r['policy']} | {r['filter']} | {_figures(r)} |")
    seeds = [(r, c) for r in results["conditions"] for c in r.get("by_checkpoint", [])]
    if seeds:
        lines += ["", head.replace("| policy |", "| policy | checkpoint |", 1)]
        lines.append("|" + "---|" * (head.count(" | ") + 1) + "---|")
        for r, c in seeds:
            lines.append(f"| {r['policy']} | {c['checkpoint']} | {r['filter']} | {_figures(c)} |")
    return "\n".join(lines)


PLOTTED = (  # (key, its 95 % interval or None, panel title)
    ("success_rate", "success_ci95", "success (95 % CI)"),
    ("violation_episode_rate", "violation_episode_ci95", "episodes over the energy budget"),
    ("net_energy_j_mean", None, "net energy drawn, J (mean)"),
    ("peak_force_n_mean", None, "peak contact force, N (mean)"),
)


def plot(results: dict, dpi: int = 100) -> np.ndarray:
    """The study as bars, uint8 RGB [H, W, 3]: one panel per PLOTTED metric, each policy a pair of
    bars (filter off, on), rates with their Wilson intervals."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = results["conditions"]
    names = list(dict.fromkeys(r["policy"] for r in rows))
    width_in = max(8.0, 1.1 * len(names) * 2)
    fig = Figure(figsize=(width_in, 6.0), dpi=dpi, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    x = np.arange(len(names))
    found = {(r["policy"], r["filter"]): r for r in rows}

    def column(state: str, key: str) -> np.ndarray:  # [policies] or [policies, 2] (an interval)
        missing = (np.nan, np.nan) if key.endswith("ci95") else np.nan
        return np.array(
            [found[n, state][key] if (n, state) in found else missing for n in names], float
        )

    for i, (key, ci_key, title) in enumerate(PLOTTED):
        ax = fig.add_subplot(2, 2, i + 1)
        for k, (state, colour) in enumerate((("off", "tab:red"), ("on", "tab:blue"))):
            values, errors = column(state, key), None
            if ci_key is not None:
                interval = column(state, ci_key)
                errors = np.stack([values - interval[:, 0], interval[:, 1] - values])
            ax.bar(x + (k - 0.5) * 0.38, values, 0.38, yerr=errors, capsize=3, color=colour,
                   label=f"filter {state}")  # fmt: skip
        ax.set_xticks(x, names, fontsize=8, rotation=15)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if ci_key is not None:
            ax.set_ylim(0, 1)
        if key == "net_energy_j_mean":  # from a fraction of the budget to a runaway's 100 J
            ax.set_yscale("symlog", linthresh=0.1)
            tank = results.get("config", {})
            if "energy_init_j" in tank:
                budget = tank["energy_init_j"] - tank["energy_min_j"]
                ax.axhline(budget, color="black", ls="--", lw=1, label=f"budget {budget:.1f} J")
                ax.legend(fontsize=8)
        if i == 0:
            ax.legend(fontsize=8)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _figures(r: dict) -> str:
    """The metric cells of one table row (a condition, or one checkpoint of it)."""
    time_s = r.get("time_to_success_s_mean")
    return (
        f"{_rate(r['success'], r['episodes'], r['success_ci95'])} | "
        f"{_rate(r['violation_episodes'], r['episodes'], r['violation_episode_ci95'])} | "
        f"{100 * r['violation_step_rate']:.1f} % | "
        f"{r['injected_energy_j_mean']:.2f} / {r['injected_energy_j_max']:.2f} | "
        f"{r['net_energy_j_mean']:.2f} / {r['net_energy_j_max']:.2f} | "
        f"{100 * r['activation_rate']:.1f} % | {r['lowest_energy_j']:.2f} | "
        f"{r['peak_force_n_mean']:.1f} / {r['peak_force_n_p95']:.1f} / "
        f"{r['peak_force_n_max']:.1f} | {r['final_force_n_mean']:.1f} | "
        f"{'-' if time_s is None else f'{time_s:.2f}'}"
    )


def _rate(k: int, n: int, ci: tuple[float, float]) -> str:
    return f"{k}/{n} ({100 * ci[0]:.1f}-{100 * ci[1]:.1f} %)"
