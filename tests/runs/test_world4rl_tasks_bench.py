"""bench.world4rl_tasks: every command of the six-task study is one robolearn accepts (flags and
config checked by the real CLI parser), finished steps are skipped on a rerun, a world model cut
short resumes, and the table holds each task's per-seed successes with Wilson intervals beside
World4RL's figures and the average gain."""

import json
from pathlib import Path

import pytest

from bench import world4rl_tasks as w4rl
from robolearn import cli


def _plan(root: Path, sizes) -> list[w4rl.Step]:
    steps = [s for t in w4rl.TASKS for s in w4rl.data_steps(root, t, sizes)]
    steps.append(w4rl.shared_step(root, list(w4rl.TASKS), sizes))
    steps += [s for t in w4rl.TASKS for s in w4rl.task_steps(root, t, "runs/shared", sizes)]
    return steps


@pytest.mark.parametrize("sizes", [w4rl.Sizes(), w4rl.Sizes.quick()], ids=["study", "quick"])
def test_every_command_is_one_robolearn_accepts(tmp_path, sizes):
    for step in _plan(tmp_path, sizes):
        for argv in step.commands:
            for extra in (["--resume"] if step.resumable else []), []:
                command, args, flags = cli.parse([*argv, *extra])
                cfg = cli.resolve_config(command, args, flags)  # strict: a mistyped key fails
                assert args.out == str(step.out) and cfg is not None
        step.out.mkdir(parents=True)  # what later steps read (a policy path must exist)
    # a task's data, world model, reward, refined policy and 3 x 2 evaluations, in that order
    names = [s.out.name for s in w4rl.task_steps(tmp_path, "hammer", "shared", w4rl.Sizes())]
    assert names[:3] == ["wm", "reward", "refined"] and len(names) == 9
    wm = w4rl.task_steps(tmp_path, "hammer", "shared", w4rl.Sizes())[0].commands[0]
    assert wm[wm.index("--init") + 1] == "shared"


def _fake_robolearn(calls):
    def fake(*argv, log):
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        if argv[:2] == ("train", "world-model"):
            (out / w4rl.WORLD_MODEL_MARKER).write_text("{}")
        if argv[0] == "eval":
            seed = int(argv[argv.index("--seed") + 1])
            refined = argv[argv.index("--policy") + 1].endswith("refined")
            wins = (30 if refined else 20) + seed
            (out / "results.json").write_text(json.dumps({"episodes": 50, "successes": wins}))

    return fake


def test_a_rerun_skips_what_finished_and_resumes_a_world_model(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_W4RL_DIR", str(tmp_path))
    monkeypatch.setenv("BENCH_W4RL_TASKS", "hammer, soccer")
    calls = []
    monkeypatch.setattr(w4rl, "robolearn", _fake_robolearn(calls))
    rows = w4rl.run()
    # data for all six tasks (the shared model learns from every one), refinement for two
    collected = {a[a.index("--task") + 1] for a in calls if a[0] == "collect"}
    assert collected == {w4rl.task_name(t) for t in w4rl.TASKS}
    shared = [a for a in calls if a[:2] == ("train", "world-model") and "--init" not in a]
    assert len(shared) == 1 and shared[0].count("--data") == 6
    assert {a[a.index("--task") + 1] for a in calls if a[0] == "refine"} == {
        "metaworld/hammer-40hz", "metaworld/soccer-40hz"
    }  # fmt: skip
    assert [r["task"] for r in rows] == [
        "metaworld/hammer-40hz",
        "metaworld/soccer-40hz",
        "average of 2",
    ]
    assert rows[0]["bc"] == "20, 21, 22: 63/150 = 42.0% (34.4%-50.0%)"
    assert rows[0]["refined"].startswith("30, 31, 32: 93/150 = 62.0%")
    assert rows[0]["gain_points"] == 20.0 and rows[0]["world4rl_gain"] == 12
    assert rows[2]["gain_points"] == 20.0 and rows[2]["world4rl_gain"] == pytest.approx(12.5)

    # everything finished: nothing runs again; a world model cut short resumes, any other step
    # cut short starts over
    calls.clear()
    assert w4rl.run() == rows and calls == []
    (tmp_path / "hammer" / "wm" / "bench_done").unlink()
    (tmp_path / "hammer" / "reward" / "bench_done").unlink()
    (tmp_path / "hammer" / "reward" / "stale").write_text("half-written")
    w4rl.run()
    assert [a[:2] for a in calls] == [("train", "world-model"), ("train", "reward")]
    assert calls[0][-1] == "--resume" and "--resume" not in calls[1]
    assert not (tmp_path / "hammer" / "reward" / "stale").exists()  # a cut-short step starts over


def test_unknown_task_names_are_one_line_errors(monkeypatch):
    monkeypatch.setenv("BENCH_W4RL_TASKS", "hammer,socer")
    with pytest.raises(SystemExit, match="unknown socer; known: coffee-pull, soccer"):
        w4rl.selected(quick=False)
    monkeypatch.setenv("BENCH_W4RL_TASKS", "")
    assert w4rl.selected(quick=False) == list(w4rl.TASKS)
    assert w4rl.selected(quick=True) == ["coffee-pull"]
