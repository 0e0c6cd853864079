"""Does success in imagination predict real success? `robolearn eval imagination` over policies of
different quality on one task, each beside its real success in the simulator from the same 50
scenes, and the correlation between the two across policies (WorldGym reports r ~0.78, IRASim
0.99).

BENCH_TRUST_TASK chooses the task (default drawer; also metaworld/lever-pull-40hz). Its policies:

- drawer: the shipped BC (50+ demonstrations), BC from 10, 3 (shipped) and 1 demonstrations (the
  3-demo recipe of robolearn/bundles/drawer/card.md: base preset, 1000 steps at batch 64; 32 from
  one demonstration), the shipped refined policy, and noisy versions of them.
- metaworld/lever-pull-40hz: the 10-demo BC and its refinement of bench/world4rl_tasks.py, BC from
  1, 3 and 50 demonstrations (that bench's BC recipe: base preset, 2000 steps; batch 32 from one
  demonstration), and noisy versions.

"Noisy": Gaussian noise of a fixed std added to the mean action, in imagination and in the
simulator alike (--action-noise). Every policy imagines in the task's world model, judged by its
reward classifier at its threshold. The parts (bc, refined, world-model, reward) are the shipped
bundle's (`bundle:<task>/<part>`), or those in BENCH_TRUST_PARTS, a folder holding them as
bench/world4rl_tasks.py leaves them (runs/world4rl/<task>: bc, refined, wm, reward);
BENCH_TRUST_WORLD_MODEL / BENCH_TRUST_REWARD override one part.

    uv run python -m bench.run imagination_trust          # ~30 min on a 2-core CPU
    BENCH_TRUST_TASK=metaworld/lever-pull-40hz BENCH_TRUST_PARTS=runs/world4rl/lever-pull \
        BENCH_TRUST_DIR=runs/bench-trust-lp40 uv run python -m bench.run imagination_trust

Demonstrations, policies and results are kept in BENCH_TRUST_DIR (default runs/bench-trust): a
rerun reuses what is finished (delete the folder to start over). --quick: two policies, three
episodes of 5 steps (checks the machinery, measures nothing).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from bench.commands import robolearn


@dataclasses.dataclass(frozen=True)
class TrustTask:
    """One task's policies: (name, policy, action-noise std). A policy is a part name (bc,
    refined, bc-3demos: the task's own, see part()) or a key of `demos`, a BC the bench trains
    from that many expert demonstrations with `bc_args`."""

    policies: tuple[tuple[str, str, float], ...]
    demos: dict[str, int]
    bc_args: tuple[str, ...]
    batch_size: int | None = None  # the BC's (None: train bc's default); 32 from one demo


TASKS = {
    "drawer": TrustTask(
        policies=(
            ("bc", "bc", 0.0),
            ("bc", "bc", 0.5),
            ("bc", "bc", 1.0),
            ("bc-10demos", "bc-10demos", 0.0),
            ("refined", "refined", 0.0),
            ("refined", "refined", 0.5),
            ("bc-3demos", "bc-3demos", 0.0),
            ("bc-3demos", "bc-3demos", 0.5),
            ("bc-1demo", "bc-1demo", 0.0),
        ),
        demos={"bc-10demos": 10, "bc-1demo": 1},
        bc_args=("--preset", "base", "--steps", "1000"),
        batch_size=64,
    ),
    "metaworld/lever-pull-40hz": TrustTask(
        policies=(
            ("bc-50demos", "bc-50demos", 0.0),
            ("bc-10demos", "bc", 0.0),
            ("bc-10demos", "bc", 0.5),
            ("bc-10demos", "bc", 1.0),
            ("refined", "refined", 0.0),
            ("refined", "refined", 0.5),
            ("bc-3demos", "bc-3demos", 0.0),
            ("bc-3demos", "bc-3demos", 0.5),
            ("bc-1demo", "bc-1demo", 0.0),
        ),
        demos={"bc-50demos": 50, "bc-3demos": 3, "bc-1demo": 1},
        bc_args=("--preset", "base", "--steps", "2000"),  # bench/world4rl_tasks.py's BC
    ),
}
QUICK_POLICIES = (("bc", "bc", 0.0), ("bc", "bc", 1.0))
# the folder names bench/world4rl_tasks.py gives a task's parts
FOLDERS = {"world-model": "wm"}


def task() -> tuple[str, TrustTask]:
    """BENCH_TRUST_TASK (default drawer) and its policies; an unknown task is a one-line error."""
    name = os.environ.get("BENCH_TRUST_TASK", "drawer")
    if name not in TASKS:
        raise SystemExit(f"BENCH_TRUST_TASK: unknown {name!r}; known: {', '.join(TASKS)}")
    return name, TASKS[name]


def part(task_name: str, name: str) -> str:
    """A part of the task (bc, refined, world-model, reward, ...): BENCH_TRUST_WORLD_MODEL /
    BENCH_TRUST_REWARD, else BENCH_TRUST_PARTS/<folder> (the folder must be there), else the
    shipped `bundle:<task>/<part>`."""
    override = os.environ.get(f"BENCH_TRUST_{name.upper().replace('-', '_')}")
    if override and name in ("world-model", "reward"):
        return override
    root = os.environ.get("BENCH_TRUST_PARTS")
    if not root:
        return f"bundle:{task_name}/{name}"
    path = Path(root) / FOLDERS.get(name, name)
    if not path.exists() and name in FOLDERS:
        path = Path(root) / name
    if not path.exists():
        raise SystemExit(f"BENCH_TRUST_PARTS: no {name} in {root} (looked for {path})")
    return str(path)


def train_bc(root: Path, task_name: str, spec: TrustTask, name: str, log: Path) -> Path:
    """BC from the first n expert demonstrations (collection seed 0) with the task's recipe (at
    batch 32 from one demonstration's 50 samples); reused once finished (a run cut short
    starts over)."""
    out = root / "policies" / name
    if (out / "bench_done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    n = spec.demos[name]
    demos = root / "data" / f"demos-{n}"
    shutil.rmtree(demos, ignore_errors=True)
    robolearn(
        "collect", "--task", task_name, "--policy", "expert", "--episodes", str(n),
        "--seed", "0", "--out", str(demos), "--quiet", log=log,
    )  # fmt: skip
    batch = 32 if n == 1 else spec.batch_size
    robolearn(
        "train", "bc", "--data", str(demos), *spec.bc_args,
        *(["--batch-size", str(batch)] if batch else []),
        "--seed", "0", "--out", str(out), "--quiet", log=log,
    )  # fmt: skip
    (out / "bench_done").write_text("done\n")
    return out


def evaluate(
    root: Path, task_name: str, name: str, policy: str, noise: float, quick: bool, log: Path
) -> dict:
    """`robolearn eval imagination` of one policy (with its real evaluation), reused once
    finished."""
    out = root / "evals" / f"{name}-noise{noise:g}"
    results = out / "results.json"
    if not results.exists():
        shutil.rmtree(out, ignore_errors=True)
        extra = ["--episodes", "3", "--horizon", "5"] if quick else ["--episodes", "50"]
        robolearn(
            "eval", "imagination", "--task", task_name, "--policy", policy,
            "--action-noise", str(noise), "--seed", "0", "--video-episodes", "0",
            "--world-model", part(task_name, "world-model"),
            "--reward", part(task_name, "reward"),
            *extra, "--out", str(out), "--quiet", log=log,
        )  # fmt: skip
    return json.loads(results.read_text())


def pearson(x, y) -> tuple[float, float, float]:
    """Pearson r with its 95 % interval (Fisher z; nan where it is undefined)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return math.nan, math.nan, math.nan
    r = float(np.corrcoef(x, y)[0, 1])
    if len(x) < 4 or abs(r) >= 1:
        return r, math.nan, math.nan
    z, half = math.atanh(r), 1.959963984540054 / math.sqrt(len(x) - 3)
    return r, math.tanh(z - half), math.tanh(z + half)


def spearman(x, y) -> float:
    """Spearman's rank correlation (ties get their mean rank)."""
    from scipy.stats import rankdata

    return pearson(rankdata(x), rankdata(y))[0]


def _pct(rate: dict) -> str:
    low, high = rate["ci95"]
    return f"{rate['success_rate']:.0%} ({low:.0%}-{high:.0%})"


def run(quick: bool = False) -> list[dict]:
    root = Path(os.environ.get("BENCH_TRUST_DIR", "runs/bench-trust"))
    if quick:
        root = root / "quick"
    root.mkdir(parents=True, exist_ok=True)
    log = root / "commands.log"
    task_name, spec = task()
    rows, points = [], []
    for name, policy, noise in QUICK_POLICIES if quick else spec.policies:
        if policy in spec.demos:
            path = str(train_bc(root, task_name, spec, policy, log))
        else:
            path = part(task_name, policy)
        r = evaluate(root, task_name, name, path, noise=noise, quick=quick, log=log)
        points.append(
            (r["imagined"]["success_rate"], r["imagined_at_end"]["success_rate"],
             r["real"]["success_rate"])
        )  # fmt: skip
        rows.append(
            {
                "policy": name,
                "noise": noise,
                "episodes": r["episodes"],
                "imagined": _pct(r["imagined"]),
                "imagined_at_end": _pct(r["imagined_at_end"]),
                "real": _pct(r["real"]),
                "same_outcome": f"{r['agreement']['same']}/{r['episodes']}",
                "flattered": r["agreement"]["imagined_only"],
                "missed": r["agreement"]["real_only"],
            }
        )
    im, end, real = (np.array(p) for p in zip(*points, strict=True))
    for label, x in (("imagined", im), ("imagined_at_end", end)):
        r, low, high = pearson(x, real)
        rows.append(
            {
                "policy": f"{label} vs real",
                "imagined": f"Pearson r {r:.2f} ({low:.2f}-{high:.2f})",
                "real": f"Spearman {spearman(x, real):.2f}",
                "same_outcome": f"mean |gap| {np.abs(x - real).mean():.0%}",
            }
        )
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return [{k: row.get(k, "") for k in keys} for row in rows]
