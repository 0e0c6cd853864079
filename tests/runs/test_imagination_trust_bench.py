"""bench.imagination_trust: its correlations (Pearson with a Fisher-z interval, Spearman with
tied ranks) and its table from eval-imagination results, each evaluation reused on a rerun."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench import imagination_trust as trust


def test_pearson_and_spearman():
    x = [0.1, 0.4, 0.5, 0.9, 0.2]
    r, low, high = trust.pearson(x, [2 * v + 1 for v in x])
    assert r == pytest.approx(1.0) and math.isnan(low)  # exact: no interval
    y = [0.2, 0.3, 0.7, 0.8, 0.1]
    r, low, high = trust.pearson(x, y)
    assert r == pytest.approx(np.corrcoef(x, y)[0, 1]) and low < r < high
    # monotone but not linear: rank correlation 1; ties get their mean rank
    assert trust.spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)
    assert trust.spearman([1, 1, 2, 3], [5, 5, 6, 7]) == pytest.approx(1.0)
    assert math.isnan(trust.pearson([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])[0])  # no spread


def _result(imagined, real, n=10):
    def rate(k):
        return {"successes": k, "episodes": n, "success_rate": k / n, "ci95": [0.0, 1.0]}

    same = n - abs(imagined - real)
    return {
        "episodes": n,
        "imagined": rate(imagined),
        "imagined_at_end": rate(imagined),
        "real": rate(real),
        "agreement": {"same": same, "imagined_only": max(0, imagined - real), "real_only": 0},
    }


def test_the_table_from_each_policys_results_reused_on_a_rerun(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_TRUST_DIR", str(tmp_path))
    counts = {("bc", 0.0): (8, 9), ("bc", 1.0): (2, 1)}
    calls = []

    def fake(*args, log):
        calls.append(args)
        out = args[args.index("--out") + 1]
        policy = args[args.index("--policy") + 1].split("/")[-1]
        noise = float(args[args.index("--action-noise") + 1])
        Path(out).mkdir(parents=True)
        (Path(out) / "results.json").write_text(json.dumps(_result(*counts[(policy, noise)])))

    monkeypatch.setattr(trust, "robolearn", fake)
    rows = trust.run(quick=True)
    assert [r["policy"] for r in rows[:2]] == ["bc", "bc"]
    assert (rows[0]["imagined"], rows[0]["real"], rows[1]["flattered"]) == (
        "80% (0%-100%)", "90% (0%-100%)", 1
    )  # fmt: skip
    # two policies: no correlation to speak of (nan), said so rather than a number
    assert rows[2]["policy"] == "imagined vs real" and "Pearson r nan" in rows[2]["imagined"]
    assert all(set(r) == set(rows[0]) for r in rows)  # one table
    assert len(calls) == 2 and all("--episodes" in c and c[0] == "eval" for c in calls)
    trust.run(quick=True)
    assert len(calls) == 2  # finished evaluations are reused


def test_lever_pull_uses_the_world4rl_parts_and_trains_its_bcs(tmp_path, monkeypatch):
    """BENCH_TRUST_TASK=metaworld/lever-pull-40hz with BENCH_TRUST_PARTS = a folder as
    bench/world4rl_tasks.py leaves it: every evaluation imagines in its wm judged by its reward,
    the 10-demo BC and refined policy are its own, BC from 1, 3 and 50 demonstrations is trained
    (at batch 32 from one); every command is one robolearn's real parser accepts."""
    from robolearn import cli

    parts = tmp_path / "lever-pull"
    for name in ("bc", "refined", "wm", "reward"):
        (parts / name).mkdir(parents=True)
    monkeypatch.setenv("BENCH_TRUST_DIR", str(tmp_path / "trust"))
    monkeypatch.setenv("BENCH_TRUST_TASK", "metaworld/lever-pull-40hz")
    monkeypatch.setenv("BENCH_TRUST_PARTS", str(parts))
    calls = []

    def fake(*args, log):
        calls.append(args)
        command, parsed, flags = cli.parse(list(args))
        assert cli.resolve_config(command, parsed, flags) is not None  # strict config
        out = Path(args[args.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        if args[0] == "eval":
            k = len(calls) % 7
            (out / "results.json").write_text(json.dumps(_result(k, k // 2)))

    monkeypatch.setattr(trust, "robolearn", fake)
    rows = trust.run(quick=False)
    evals = [c for c in calls if c[0] == "eval"]
    assert len(evals) == 9 and len(rows) == 11
    for c in evals:
        assert c[c.index("--task") + 1] == "metaworld/lever-pull-40hz"
        assert c[c.index("--world-model") + 1] == str(parts / "wm")
        assert c[c.index("--reward") + 1] == str(parts / "reward")
    policies = {c[c.index("--policy") + 1] for c in evals}
    assert {str(parts / "bc"), str(parts / "refined")} <= policies
    bcs = [c for c in calls if c[:2] == ("train", "bc")]
    assert len(bcs) == 3 and all("--steps" in c and "2000" in c for c in bcs)
    collects = [c for c in calls if c[0] == "collect"]
    assert sorted(int(c[c.index("--episodes") + 1]) for c in collects) == [1, 3, 50]
    one = next(c for c in bcs if c[c.index("--data") + 1].endswith("demos-1"))
    assert one[one.index("--batch-size") + 1] == "32"
    # a folder without a part, and an unknown task, are one-line errors
    (parts / "wm").rename(parts / "elsewhere")
    with pytest.raises(SystemExit, match="no world-model in"):
        trust.part("metaworld/lever-pull-40hz", "world-model")
    monkeypatch.setenv("BENCH_TRUST_TASK", "drawr")
    with pytest.raises(SystemExit, match="unknown 'drawr'"):
        trust.run(quick=False)


def test_drawer_defaults_to_the_shipped_parts(monkeypatch):
    monkeypatch.delenv("BENCH_TRUST_PARTS", raising=False)
    monkeypatch.delenv("BENCH_TRUST_WORLD_MODEL", raising=False)
    assert trust.part("drawer", "world-model") == "bundle:drawer/world-model"
    assert trust.part("drawer", "bc-3demos") == "bundle:drawer/bc-3demos"
    monkeypatch.setenv("BENCH_TRUST_WORLD_MODEL", "runs/wm")
    assert trust.part("drawer", "world-model") == "runs/wm"
