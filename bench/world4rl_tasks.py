"""World4RL's six Meta-World tasks at 40 Hz with robolearn's recipe (issue 19 part 4): per task,
BC from 10 expert demonstrations, a world model fine-tuned from one shared Meta-World model, a
reward classifier trained with `--world-model`, PPO refinement inside the world model, and the
BC and the refined policy each evaluated in the simulator over 3 seeds x 50 episodes (Wilson
intervals); a table against World4RL's BC and refined figures (REFERENCES.md section 1) and the
average gain.

The recipe is the one that refined lever-pull at 40 Hz (docs/results.md, "Lever-pull at 40 Hz"),
with World4RL's data mix per task (50 expert, 100 noisy, 30 random episodes for the world model;
150 episodes of the task's BC), except that every task's world model starts from one shared model
trained on all six tasks' expert/noisy/random episodes instead of a per-task 80 Hz model.

    uv run python -m bench.run world4rl_tasks        # CPU: ~2 h for the shared model, ~1.5 h a task

Every step's output is kept in BENCH_W4RL_DIR (default runs/world4rl): a rerun skips the steps
that finished and resumes a world model cut short, so the study can be run a task at a time
(BENCH_W4RL_TASKS=hammer,soccer). BENCH_W4RL_SHARED_STEPS / BENCH_W4RL_FT_STEPS (default 6000 /
3000 at batch 32, the `small` model) size the world-model training, e.g. larger on a GPU;
BENCH_W4RL_SHARED_MODEL skips the shared training and starts every task from that model. Every
command is appended to commands.log in that folder. --quick: one task, two episodes of each kind,
the tiny presets and a few steps (checks the machinery, measures nothing).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from bench.commands import robolearn
from robolearn.core.stats import wilson_interval

# World4RL's Meta-World success %, BC and World4RL (3 seeds; REFERENCES.md section 1)
TASKS = {
    "coffee-pull": (47, 68),
    "soccer": (18, 31),
    "hammer": (79, 91),
    "door-lock": (74, 92),
    "lever-pull": (31, 52),
    "handle-pull": (60, 71),
}
EVAL_SEEDS = (0, 1, 2)
WORLD_MODEL_MARKER = "robolearn-world-model.json"  # world_models/checkpoint.py MARKER


def task_name(short: str) -> str:
    return f"metaworld/{short}-40hz"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each step is: the study's defaults, or --quick's smallest."""

    demos: int = 10
    world_model_mix: tuple[tuple[str, int], ...] = (("expert", 50), ("noisy", 100), ("random", 30))
    heldout_mix: tuple[tuple[str, int], ...] = (("expert", 10), ("noisy", 20), ("random", 6))
    bc_rollouts: int = 150
    heldout_bc: int = 40
    bc: tuple[str, ...] = ("--preset", "base", "--steps", "2000")
    world_model: tuple[str, ...] = ("--preset", "small", "--batch-size", "32")
    shared_steps: int = 6000
    finetune_steps: int = 3000
    reward: tuple[str, ...] = ("--steps", "1500")
    refine: tuple[str, ...] = ()
    eval_episodes: int = 50

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            demos=2,
            world_model_mix=(("expert", 2), ("random", 1)),
            heldout_mix=(("expert", 1), ("random", 1)),
            bc_rollouts=2,
            heldout_bc=1,
            bc=("--preset", "tiny", "--steps", "2", "--batch-size", "4"),
            world_model=("--preset", "tiny", "--batch-size", "2", "--eval-windows", "0"),
            shared_steps=2,
            finetune_steps=2,
            reward=("--preset", "tiny", "--steps", "2", "--batch-size", "4"),
            refine=(
                "--iterations",
                "1",
                "--rollouts",
                "2",
                "--horizon",
                "3",
                "--initial-states",
                "2",
                "--minibatches",
                "1",
            ),  # fmt: skip
            eval_episodes=2,
        )

    @classmethod
    def from_env(cls) -> Sizes:
        return cls(
            shared_steps=int(os.environ.get("BENCH_W4RL_SHARED_STEPS", cls.shared_steps)),
            finetune_steps=int(os.environ.get("BENCH_W4RL_FT_STEPS", cls.finetune_steps)),
        )


@dataclasses.dataclass(frozen=True)
class Step:
    """Commands (robolearn argv lists) that together make `out`; done once out/bench_done is
    there. A world-model step cut short resumes (its commands get --resume)."""

    out: Path
    commands: tuple[tuple[str, ...], ...]
    resumable: bool = False


def _collect(task: str, policy: str, episodes: int, seed: int, out: Path) -> tuple[str, ...]:
    return (
        "collect", "--task", task, "--policy", policy, "--episodes", str(episodes),
        "--seed", str(seed), "--out", str(out), "--quiet",
    )  # fmt: skip


def data_steps(root: Path, short: str, sizes: Sizes) -> list[Step]:
    """A task's episodes and its BC: demonstrations, the BC, the world model's data, the BC's
    rollouts, held-out episodes of both."""
    task, d = task_name(short), root / short
    mix, held, bc = sizes.world_model_mix, sizes.heldout_mix, str(d / "bc")
    return [
        Step(d / "demos", (_collect(task, "expert", sizes.demos, 0, d / "demos"),)),
        Step(
            d / "bc",
            (("train", "bc", "--data", str(d / "demos"), *sizes.bc, "--seed", "0",
              "--out", str(d / "bc"), "--quiet"),),
        ),  # fmt: skip
        Step(d / "train", tuple(_collect(task, p, n, 0, d / "train") for p, n in mix)),
        Step(d / "heldout", tuple(_collect(task, p, n, 1, d / "heldout") for p, n in held)),
        Step(d / "bc-rollouts", (_collect(task, bc, sizes.bc_rollouts, 3, d / "bc-rollouts"),)),
        Step(d / "heldout-bc", (_collect(task, bc, sizes.heldout_bc, 1, d / "heldout-bc"),)),
    ]  # fmt: skip


def shared_step(root: Path, shorts, sizes: Sizes) -> Step:
    """The shared Meta-World world model: every task's expert/noisy/random episodes."""
    data = [a for s in shorts for a in ("--data", str(root / s / "train"))]
    out = root / "shared-wm"
    return Step(
        out,
        (("train", "world-model", *data, *sizes.world_model, "--steps", str(sizes.shared_steps),
          "--seed", "0", "--out", str(out), "--quiet"),),
        resumable=True,
    )  # fmt: skip


def task_steps(root: Path, short: str, shared: str, sizes: Sizes) -> list[Step]:
    """A task's world model (fine-tuned from `shared`), reward, refined policy and evaluations."""
    task, d = task_name(short), root / short
    data = ("--data", str(d / "train"), "--data", str(d / "bc-rollouts"))
    heldout = ("--heldout", str(d / "heldout"), "--heldout", str(d / "heldout-bc"))
    steps = [
        Step(
            d / "wm",
            (("train", "world-model", *data, *sizes.world_model, "--init", shared,
              "--steps", str(sizes.finetune_steps), "--seed", "0", "--out", str(d / "wm"),
              "--quiet"),),
            resumable=True,
        ),
        Step(
            d / "reward",
            (("train", "reward", *data, *heldout, "--world-model", str(d / "wm"), *sizes.reward,
              "--out", str(d / "reward"), "--quiet"),),
        ),
        Step(
            d / "refined",
            (("refine", "--task", task, "--world-model", str(d / "wm"), "--reward",
              str(d / "reward"), "--policy", str(d / "bc"), "--out", str(d / "refined"),
              "--quiet", *sizes.refine),),
        ),
    ]  # fmt: skip
    for policy in ("bc", "refined"):
        for seed in EVAL_SEEDS:
            out = d / "evals" / f"{policy}-seed{seed}"
            steps.append(
                Step(
                    out,
                    (("eval", "--task", task, "--policy", str(d / policy), "--episodes",
                      str(sizes.eval_episodes), "--seed", str(seed), "--video-episodes", "0",
                      "--out", str(out), "--quiet"),),
                )
            )  # fmt: skip
    return steps


def run_step(step: Step, log: Path) -> None:
    """Run `step` unless it finished before; a resumable step cut short continues, any other
    starts over."""
    if (step.out / "bench_done").exists():
        return
    resume = step.resumable and (step.out / WORLD_MODEL_MARKER).exists()
    if not resume:
        shutil.rmtree(step.out, ignore_errors=True)
    for argv in step.commands:
        robolearn(*argv, *(["--resume"] if resume else []), log=log)
    (step.out / "bench_done").write_text("done\n")


def successes(root: Path, short: str, policy: str) -> tuple[list[int], int]:
    """Successes per evaluation seed and the episodes in all, from each eval's results.json."""
    counts, n = [], 0
    for seed in EVAL_SEEDS:
        r = json.loads(
            (root / short / "evals" / f"{policy}-seed{seed}" / "results.json").read_text()
        )
        counts.append(int(r["successes"]))
        n += int(r["episodes"])
    return counts, n


def _cell(counts: list[int], n: int) -> str:
    low, high = wilson_interval(sum(counts), n)
    per_seed = ", ".join(str(c) for c in counts)
    return f"{per_seed}: {sum(counts)}/{n} = {sum(counts) / n:.1%} ({low:.1%}-{high:.1%})"


def table(root: Path, shorts) -> list[dict]:
    """One row per task, then the average over the tasks (ours beside World4RL's)."""
    rows, gains, theirs = [], [], []
    for short in shorts:
        bc, n = successes(root, short, "bc")
        refined, m = successes(root, short, "refined")
        gain = 100 * (sum(refined) / m - sum(bc) / n)
        w_bc, w_refined = TASKS[short]
        rows.append(
            {
                "task": task_name(short),
                "bc": _cell(bc, n),
                "refined": _cell(refined, m),
                "gain_points": round(gain, 1),
                "world4rl_bc": w_bc,
                "world4rl_refined": w_refined,
                "world4rl_gain": w_refined - w_bc,
            }
        )
        gains.append(gain)
        theirs.append(w_refined - w_bc)
    if len(rows) > 1:
        rows.append(
            {
                "task": f"average of {len(rows)}",
                "bc": "",
                "refined": "",
                "gain_points": round(sum(gains) / len(gains), 1),
                "world4rl_bc": "",
                "world4rl_refined": "",
                "world4rl_gain": round(sum(theirs) / len(theirs), 1),
            }
        )
    return rows


def selected(quick: bool) -> list[str]:
    """The tasks of this run: BENCH_W4RL_TASKS (short names, comma-separated) or all six; one with
    --quick. Unknown names are a one-line error."""
    names = [s.strip() for s in os.environ.get("BENCH_W4RL_TASKS", "").split(",") if s.strip()]
    unknown = [s for s in names if s not in TASKS]
    if unknown:
        raise SystemExit(
            f"BENCH_W4RL_TASKS: unknown {', '.join(unknown)}; known: {', '.join(TASKS)}"
        )
    names = names or list(TASKS)
    return names[:1] if quick else names


def run(quick: bool = False) -> list[dict]:
    root = Path(os.environ.get("BENCH_W4RL_DIR", "runs/world4rl"))
    if quick:
        root = root / "quick"
    root.mkdir(parents=True, exist_ok=True)
    log = root / "commands.log"
    sizes = Sizes.quick() if quick else Sizes.from_env()
    shorts = selected(quick)
    # the shared model learns from all six tasks' episodes whichever tasks this run refines
    data_tasks = shorts if quick else list(TASKS)
    for short in data_tasks:
        for step in data_steps(root, short, sizes):
            run_step(step, log)
    shared = os.environ.get("BENCH_W4RL_SHARED_MODEL")
    if not shared:
        step = shared_step(root, data_tasks, sizes)
        run_step(step, log)
        shared = str(step.out)
    for short in shorts:
        for step in task_steps(root, short, shared, sizes):
            run_step(step, log)
    return table(root, shorts)
