"""Does success in imagination predict real success? `robolearn eval imagination` over policies of
different quality on one task, each beside its real success in the simulator from the same 50
scenes, and the correlation between the two across policies (WorldGym reports r ~0.78, IRASim
0.99).

The drawer policies: the shipped BC (50+ demonstrations), BC from 10, 3 (shipped) and 1
demonstrations (the 3-demo recipe of robolearn/bundles/drawer/card.md: base preset, 1000 steps at
batch 64; 32 from one demonstration), the shipped refined policy, and noisy versions of them
(Gaussian noise of a fixed std added to the mean action, in imagination and in the simulator
alike: --action-noise). Every
policy imagines in the shipped world model (or BENCH_TRUST_WORLD_MODEL), judged by the shipped
reward classifier at its threshold.

    uv run python -m bench.run imagination_trust          # ~30 min on a 2-core CPU

Demonstrations, policies and results are kept in BENCH_TRUST_DIR (default runs/bench-trust): a
rerun reuses what is finished (delete the folder to start over). --quick: two policies, three
episodes of 5 steps (checks the machinery, measures nothing).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from bench.commands import robolearn

TASK = "drawer"
# (name, policy, action noise std); "bc-<n>demos" policies are trained by the bench
POLICIES = (
    ("bc", "bundle:drawer/bc", 0.0),
    ("bc", "bundle:drawer/bc", 0.5),
    ("bc", "bundle:drawer/bc", 1.0),
    ("bc-10demos", "bc-10demos", 0.0),
    ("refined", "bundle:drawer/refined", 0.0),
    ("refined", "bundle:drawer/refined", 0.5),
    ("bc-3demos", "bundle:drawer/bc-3demos", 0.0),
    ("bc-3demos", "bundle:drawer/bc-3demos", 0.5),
    ("bc-1demo", "bc-1demo", 0.0),
)
QUICK_POLICIES = (("bc", "bundle:drawer/bc", 0.0), ("bc", "bundle:drawer/bc", 1.0))
DEMOS = {"bc-10demos": 10, "bc-1demo": 1}


def train_bc(root: Path, name: str, log: Path) -> Path:
    """BC from the first n expert demonstrations (collection seed 0), the 3-demo recipe (at
    batch 32 from one demonstration's 50 samples); reused once finished (a run cut short
    starts over)."""
    out = root / "policies" / name
    if (out / "bench_done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    demos = root / "data" / f"demos-{DEMOS[name]}"
    shutil.rmtree(demos, ignore_errors=True)
    robolearn(
        "collect", "--task", TASK, "--policy", "expert", "--episodes", str(DEMOS[name]),
        "--seed", "0", "--out", str(demos), "--quiet", log=log,
    )  # fmt: skip
    robolearn(
        "train", "bc", "--data", str(demos), "--preset", "base", "--steps", "1000",
        "--batch-size", "64" if DEMOS[name] > 1 else "32", "--seed", "0", "--out", str(out),
        "--quiet", log=log,
    )  # fmt: skip
    (out / "bench_done").write_text("done\n")
    return out


def evaluate(root: Path, name: str, policy: str, noise: float, quick: bool, log: Path) -> dict:
    """`robolearn eval imagination` of one policy (with its real evaluation), reused once
    finished."""
    out = root / "evals" / f"{name}-noise{noise:g}"
    results = out / "results.json"
    if not results.exists():
        shutil.rmtree(out, ignore_errors=True)
        extra = ["--episodes", "3", "--horizon", "5"] if quick else ["--episodes", "50"]
        world_model = os.environ.get("BENCH_TRUST_WORLD_MODEL")
        robolearn(
            "eval", "imagination", "--task", TASK, "--policy", policy,
            "--action-noise", str(noise), "--seed", "0", "--video-episodes", "0",
            *(["--world-model", world_model] if world_model else []),
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
    rows, points = [], []
    for name, policy, noise in QUICK_POLICIES if quick else POLICIES:
        path = str(train_bc(root, name, log)) if name in DEMOS else policy
        r = evaluate(root, name, policy=path, noise=noise, quick=quick, log=log)
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
