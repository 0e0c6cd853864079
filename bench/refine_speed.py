"""Refinement speed: imagined environment steps/s of `robolearn refine` against the real
simulator steps/s it replaces (drawer, 64x64 camera), and the ratio of the two.

Parts: the shipped world model `bundle:drawer/world-model` and policy `bundle:drawer/bc`, and
`bundle:drawer/reward` when it is shipped; otherwise a tiny CNN classifier trained here for 3
steps on 8 synthetic episodes (its weights do not change its speed; the `reward` column says
which one was used). Rows:

    imagine  `robolearn.imagination.make_scored_rollout` as refinement builds it: the policy
             samples, the world model imagines (its sampler, 3 Euler steps = 3 denoiser calls a
             frame), the classifier scores every imagined frame; `batch` rollouts x `horizon`
             steps from real first frames. steps/s = batch * horizon / sec.
    iterate  one whole PPO iteration, `robolearn.runs.refine.make_iteration`: draw first frames,
             the scored rollout above, then the PPO update (critic values, GAE, epochs x
             minibatches of actor and critic steps); same steps/s definition.
    sim      the task's MuJoCo simulator, one environment on one core, every step rendering the
             64x64 camera, episodes run as `robolearn eval` runs them (`run_episode`: reset,
             then one policy call and one step per step): with the BC policy acting (one jitted
             batch-1 policy call a step), and with random actions (simulation + rendering only).
             Resets are inside the timed episodes; steps/s = steps / seconds (the note gives
             the resets' share of the time and the rate without them: short episodes, as
             with --quick, are dominated by resets).

BENCH_REFINE_WORLD_MODELS: comma-separated world models (checkpoints or shipped parts) to imagine
with, one after another in the same run (default: the shipped one), e.g. a 3-step teacher and
its few-step student (`robolearn train world-model --distill-from`).

compile_s: imagined rows, the ahead-of-time lower + compile of exactly the executable that is
then timed; sim rows with the BC policy, its first (compiling) call. sec: median seconds of a
few timed calls (`jax.block_until_ready`) for imagined rows, of one episode for sim rows.
vs_sim_bc / vs_sim_random: imagined steps/s over the drawer simulator's steps/s with the BC
policy / random actions (>1: imagination is faster). The simulator here is a single process;
it would scale with more cores or processes, imagination with a bigger accelerator and batch.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bench.timing import timed as _timed

TASK = "drawer"
IMAGE = 64
EXTRA_SIM = "metaworld/coffee-pull"
POOL = 8  # real first frames (simulator resets) the imagined rollouts start from


def _n_params(tree) -> int:
    return int(sum(x.size for x in jax.tree.leaves(tree)))


def _reward_spec(tmp: Path) -> tuple[str, str]:
    """(checkpoint path, description) of the reward classifier: the shipped one, or a tiny one
    trained in `tmp` for 3 steps on 8 synthetic 64x64 episodes (output of the CLI swallowed)."""
    from robolearn import bundles

    shipped = f"{bundles.PREFIX}{TASK}/reward"
    if any(p.name == shipped for p in bundles.list_parts()):
        return bundles.resolve(shipped), shipped
    from robolearn.cli import main
    from robolearn.data.synthetic import write_random_store

    data = write_random_store(tmp / "data", 8, image_size=IMAGE, task=TASK, successes=True)
    argv = ["train", "reward", "--data", str(data), "--preset", "tiny", "--steps", "3"]
    argv += ["--batch-size", "8", "--out", str(tmp / "reward"), "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()):
        if main(argv) != 0:
            raise RuntimeError("training the stand-in reward classifier failed")
    return str(tmp / "reward"), "tiny cnn, 3 steps on synthetic data (none shipped)"


def _imagined_row(measure, batch, horizon, sec, compile_s, reps, parts_note) -> dict:
    return {
        "measure": measure,
        "backend": jax.default_backend(),
        "batch": batch,
        "horizon": horizon,
        "steps_per_s": batch * horizon / sec,
        "sec": sec,
        "compile_s": compile_s,
        "reps": reps,
        "vs_sim_bc": "",
        "vs_sim_random": "",
        "note": parts_note,
    }


def measure_imagined(parts, pool, batch: int, horizon: int, reps: int, note: str) -> list[dict]:
    """The `imagine` and `iterate` rows of one batch size."""
    from robolearn.imagination import make_scored_rollout
    from robolearn.policies.ppo.config import PPOConfig
    from robolearn.policies.ppo.train import init_refine_state
    from robolearn.runs.refine import make_iteration

    ppo = PPOConfig(rollouts=batch, horizon=horizon)
    warmup = 0 if jax.default_backend() == "cpu" else 1  # a CPU call can take minutes
    reward = parts.reward
    rollout = make_scored_rollout(
        parts.world_model,
        parts.policy.apply,
        reward.make_logit_fn(TASK),
        horizon,
        ppo.std_floor,
        reward.info.threshold,
        ppo.reward,
    )
    idx = np.arange(batch) % len(pool[0])
    args = (
        parts.world_model.params,
        parts.policy.params,
        reward.params,
        jax.random.key(1),
        *(jnp.asarray(x[idx]) for x in pool),
    )
    start = time.perf_counter()
    compiled = rollout.lower(*args).compile()
    compile_s = time.perf_counter() - start
    sec, n = _timed(lambda: compiled(*args), reps, warmup)
    rows = [_imagined_row("imagine", batch, horizon, sec, compile_s, n, note)]

    graphs, state = init_refine_state(
        ppo, parts.policy.config, jax.random.key(0), parts.policy.params
    )
    iteration = make_iteration(ppo, parts, graphs)
    frozen = (parts.world_model.params, reward.params, parts.policy.params, *map(jnp.asarray, pool))
    start = time.perf_counter()
    compiled = iteration.lower(state, *frozen).compile()
    compile_s = time.perf_counter() - start
    box = [state]

    def one_iteration():
        box[0], metrics = compiled(box[0], *frozen)
        return metrics

    sec, n = _timed(one_iteration, reps, warmup)
    rows.append(_imagined_row("iterate", batch, horizon, sec, compile_s, n, note))
    return rows


class _RandomPolicy:
    """Uniform random actions in [-1, 1] behind the scripted-policy contract."""

    def __init__(self, action_dim: int = 7):
        self.action_dim, self._rng = action_dim, np.random.default_rng(0)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def __call__(self, obs) -> np.ndarray:
        return self._rng.uniform(-1, 1, self.action_dim).astype(np.float32)


def measure_sim(name: str, policy, label: str, episodes: int, max_steps: int) -> dict:
    """One sim row: `episodes` episodes of at most `max_steps` steps with rendering at 64x64."""
    from robolearn import envs
    from robolearn.core.seeds import episode_seed
    from robolearn.runs.eval import run_episode

    task = envs.make(name, image_size=IMAGE, max_steps=max_steps)
    try:
        compile_s = ""
        if not isinstance(policy, _RandomPolicy):  # the policy's first, compiling call
            obs, _ = task.reset(seed=episode_seed(1, 0))
            start = time.perf_counter()
            policy(obs)
            compile_s = time.perf_counter() - start
        steps, times, resets = 0, [], []
        reset = task.reset

        def timed_reset(**kwargs):  # run_episode resets the task itself
            start = time.perf_counter()
            out = reset(**kwargs)
            resets.append(time.perf_counter() - start)
            return out

        task.reset = timed_reset
        for i in range(episodes):
            start = time.perf_counter()
            steps += run_episode(task, policy, episode_seed(0, i))["steps"]
            times.append(time.perf_counter() - start)
    finally:
        task.close()
    return {
        "measure": "sim",
        "backend": f"mujoco {name}",
        "batch": 1,
        "horizon": max_steps,
        "steps_per_s": steps / sum(times),
        "sec": statistics.median(times),
        "compile_s": compile_s,
        "reps": episodes,
        "vs_sim_bc": "",
        "vs_sim_random": "",
        "note": f"{label}; resets {sum(resets) / sum(times):.0%} of the time, "
        f"{steps / (sum(times) - sum(resets)):.0f} steps/s without them",
    }


def _sim_rows(policy, episodes: int, horizon: int) -> list[dict]:
    bc, rand = "bc policy acting (bundle:drawer/bc), 64x64 render", "random actions, 64x64 render"
    rows = [
        measure_sim(TASK, policy, bc, episodes, horizon),
        measure_sim(TASK, _RandomPolicy(), rand, episodes, horizon),
    ]
    try:
        rows.append(measure_sim(EXTRA_SIM, _RandomPolicy(), rand, episodes, horizon))
    except Exception as exc:  # noqa: BLE001 - an optional simulator; report why instead
        blank = dict.fromkeys(rows[0], "")
        note = f"could not be measured: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
        rows.append({**blank, "measure": "sim", "backend": f"mujoco {EXTRA_SIM}", "note": note})
    return rows


def run(quick: bool = False) -> list[dict]:
    """Sim rows first (the reference), then imagine/iterate rows per batch with the ratios."""
    from robolearn import envs
    from robolearn.runs.parts import load_parts
    from robolearn.runs.refine import RefineConfig, initial_windows

    batches = (8,) if quick else (8, 32)
    horizon = 10 if quick else envs.task_info(TASK).max_steps
    episodes = 1 if quick else 3
    reps = 1 if quick else 3
    # the world models to imagine with, in one run: e.g. a teacher and its few-step student
    specs = os.environ.get("BENCH_REFINE_WORLD_MODELS", "").split(",")
    with tempfile.TemporaryDirectory(prefix="refine-speed-") as tmp:
        reward_path, reward_note = _reward_spec(Path(tmp))
        cfg = RefineConfig(task=TASK, reward=reward_path, initial_states=POOL)
        all_parts = [load_parts(TASK, world_model=s or None, reward=reward_path) for s in specs]
    rows = _sim_rows(all_parts[0].policy, episodes, horizon)
    sim_bc, sim_random = rows[0]["steps_per_s"], rows[1]["steps_per_s"]
    pool = initial_windows(cfg, all_parts[0].world_model.info)
    for parts in all_parts:
        wm = parts.world_model
        note = (
            f"wm {parts.specs['world_model']} {_n_params(wm.params) / 1e6:.1f}M "
            f"({wm.sampler.steps} {wm.sampler.method} steps), "
            f"bc {_n_params(parts.policy.params) / 1e6:.1f}M, "
            f"reward {_n_params(parts.reward.params) / 1e6:.2f}M: {reward_note}"
        )
        for batch in batches:
            for row in measure_imagined(parts, pool, batch, horizon, reps, note):
                row["vs_sim_bc"] = row["steps_per_s"] / sim_bc
                row["vs_sim_random"] = row["steps_per_s"] / sim_random
                rows.append(row)
    return rows
