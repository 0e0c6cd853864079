"""Scripted-expert success per task over seeds 0..N-1, clean and with action noise.

    python -m bench.run expert_success            # 50 seeds per task
    python -m bench.run expert_success --quick    # 10 seeds, one task per suite

Episode i resets with seed i. "success" counts an episode that reached success at any step (as
`robolearn eval` does); "at end" counts those still successful at the last step. The noisy expert
adds N(0, 0.3^2) to every action dimension, the mix World4RL-style data collection draws on.
"""

from __future__ import annotations

import time

from robolearn import envs
from robolearn.envs.experts import ScriptedPolicy
from robolearn.runs.eval import run_episode

QUICK_TASKS = ["drawer", "metaworld/drawer-open", "robosuite/lift"]


def measure(name: str, seeds: int, mode: str) -> dict:
    """Success counts of the `mode` policy on `seeds` episodes of task `name`."""
    task = envs.make(name)
    policy = ScriptedPolicy(task, mode, seed=0)
    wins = at_end = steps = 0
    start = time.perf_counter()
    try:
        for seed in range(seeds):
            episode = run_episode(task, policy, seed)
            wins += episode["success"]
            at_end += episode["success_at_end"]
            steps += episode["steps"]
    finally:
        task.close()
    return {"wins": wins, "at_end": at_end, "steps_per_s": steps / (time.perf_counter() - start)}


def run(quick: bool = False) -> list[dict]:
    seeds = 10 if quick else 50
    names = QUICK_TASKS if quick else envs.task_names()
    rows = []
    for name in names:
        expert = measure(name, seeds, "expert")
        noisy = measure(name, seeds, "noisy")
        rows.append(
            {
                "task": name,
                "seeds": seeds,
                "expert success": f"{expert['wins']}/{seeds}",
                "expert at end": f"{expert['at_end']}/{seeds}",
                "noisy success": f"{noisy['wins']}/{seeds}",
                "expert steps/s": expert["steps_per_s"],
            }
        )
    return rows
