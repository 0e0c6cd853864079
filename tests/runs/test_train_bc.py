"""`robolearn train bc` end to end (tiny preset): train, resume, eval the checkpoint, errors."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from robolearn.cli import main
from robolearn.data.store import create_store
from robolearn.data.synthetic import write_random_store
from robolearn.policies.bc import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]


def _store(path, task="drawer", episodes=3, steps=6, action_dim=7, size=64):
    return write_random_store(path, episodes, steps, size, task=task, action_dim=action_dim)


def _train(data, out, steps, *extra):
    argv = ["train", "bc", "--data", str(data), "--preset", "tiny", "--steps", str(steps)]
    return main(argv + ["--batch-size", "4", "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny checkpoint trained 2 steps (saved at step 2), and its data."""
    root = tmp_path_factory.mktemp("bc")
    data = _store(root / "data")
    assert _train(data, root / "run", 2, "--save-every", "1", "--log-every", "1") == 0
    return data, root / "run"


def test_train_writes_a_self_describing_checkpoint(trained):
    _, run = trained
    info = ckpt.read_info(run)
    assert (info.task, info.action_dim, info.image_size) == ("drawer", 7, 64)
    for name in ("config.yaml", "stats.json", "train.yaml", "metrics.jsonl"):
        assert (run / name).is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and np.isfinite(rows[-1]["nll"])
    assert "preset: tiny" in (run / "config.yaml").read_text()


def test_train_draws_its_curves_at_the_end(trained):
    """OUT/media/curves-<last step>.png: the logged NLL, MSE, std and gradient norm, drawn from
    metrics.jsonl (not blank), also in TensorBoard's images."""
    import imageio.v3 as iio
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run = trained
    image = iio.imread(run / "media" / "curves-2.png")
    assert image.ndim == 3 and image.shape[1] > 600 and image.std() > 10
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    assert [e.step for e in acc.Images("curves")] == [2]


def test_resume_continues_from_the_last_complete_checkpoint(trained, tmp_path, capsys):
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    cfg, _ = ckpt.read_config(copy)
    manager = ckpt.make_manager(copy)
    _, saved = ckpt.restore_state(manager, cfg)
    manager.close()
    # A save torn by a kill: orbax's temporary directory, which must be ignored.
    (copy / "checkpoints" / "3.orbax-checkpoint-tmp-1").mkdir()
    policy = ckpt.load_policy(copy)
    assert policy.step == 2
    assert all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(saved.params), jax.tree.leaves(policy.params), strict=True)
    )
    assert _train(data, copy, 4, "--resume", "--log-every", "1") == 0
    rows = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert ckpt.load_policy(copy).step == 4
    assert "step 4 (2 this run" in capsys.readouterr().out


def test_eval_runs_the_checkpoint(trained, tmp_path, capsys):
    _, run = trained
    argv = ["eval", "--task", "drawer", "--policy", str(run), "--episodes", "1"]
    argv += ["--max-steps", "3", "--video-episodes", "0", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["episodes"] == 1 and result["per_episode"][0]["steps"] == 3
    assert f"drawer / {run}: success" in capsys.readouterr().out


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_data_errors(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert f"{missing}: no such dataset directory" in _error(
        ["train", "bc", "--data", str(missing), "--out", str(tmp_path / "a")], capsys
    )
    create_store(tmp_path / "empty")
    assert "holds no complete episodes" in _error(
        ["train", "bc", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "b")], capsys
    )
    bad = _store(tmp_path / "bad", episodes=1)
    (bad / "episodes" / "ep-000001.npz").write_bytes(b"torn")
    err = _error(["train", "bc", "--data", str(bad), "--out", str(tmp_path / "c")], capsys)
    assert "ep-000001.npz: torn or corrupt episode file" in err


def test_resume_refuses_other_data_and_non_checkpoints(trained, tmp_path, capsys):
    _, run = trained
    push = _store(tmp_path / "push", task="push")
    argv = ["train", "bc", "--preset", "tiny", "--batch-size", "4", "--resume", "--out", str(run)]
    argv.append("--data")
    assert "checkpoint has task 'drawer' but the data has 'push'" in _error(
        [*argv, str(push)], capsys
    )
    small = _store(tmp_path / "small", action_dim=4)
    assert "checkpoint has action_dim 7 but the data has 4" in _error([*argv, str(small)], capsys)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("x")
    data = _store(tmp_path / "data")
    err = _error(["train", "bc", "--data", str(data), "--resume", "--out", str(plain)], capsys)
    assert f"{plain}: not a policy checkpoint" in err
    err = _error(["train", "bc", "--data", str(data), "--out", str(run)], capsys)
    assert f"{run}: already holds a checkpoint; pass --resume" in err


def test_eval_refuses_checkpoints_of_another_task(trained, tmp_path, capsys):
    _, run = trained
    err = _error(["eval", "--task", "push", "--policy", str(run), "--out", str(tmp_path)], capsys)
    assert f"{run}: policy was trained for task 'drawer', not 'push'" in err
    err = _error(["eval", "--task", "drawer", "--policy", str(tmp_path)], capsys)
    assert f"{tmp_path}: not a policy checkpoint" in err
    err = _error(["eval", "--task", "drawer", "--policy", str(run), "--image-size", "32"], capsys)
    assert "evaluate with --image-size 64" in err


def test_train_from_a_config_file_with_overrides_writes_tensorboard_and_the_resolved_config(
    tmp_path,
):
    """`--config configs/runs/bc-drawer.yaml` with the data and size overridden: the run's
    train.yaml holds the resolved model (data-derived sizes, decay over the run's steps), and the
    metrics reach TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from robolearn.core.config import load_yaml
    from robolearn.runs.train_bc import TrainBCConfig

    data = _store(tmp_path / "data", size=32)
    config = ROOT / "configs" / "runs" / "bc-drawer.yaml"
    argv = ["train", "bc", "--config", str(config), "--steps", "3", "--out", str(tmp_path / "run")]
    argv += ["--quiet", f"data=[{data}]", "model.preset=tiny", "log_every=1", "batch_size=4"]
    assert main(argv) == 0
    resolved = load_yaml(TrainBCConfig, tmp_path / "run" / "train.yaml")
    assert resolved.data == (str(data),) and resolved.steps == 3
    assert resolved.model.preset == "tiny" and resolved.model.model.image_size == 32
    assert resolved.model.optim.decay_steps == 3
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("nll")] == [1, 2, 3]
    export = ckpt.read_info(tmp_path / "run" / ckpt.EXPORT_DIR)
    assert export.weights == "actor" and ckpt.load_policy(tmp_path / "run" / "policy").step == 3


def test_the_actor_export_holds_no_optimizer_state(trained):
    """OUT/policy: only the actor's parameters (and the step), a third of the training state."""
    import orbax.checkpoint as ocp

    _, run = trained
    step_dir = run / ckpt.EXPORT_DIR / "checkpoints" / "2" / "default"
    tree = ocp.StandardCheckpointer().metadata(step_dir).item_metadata.tree
    assert set(tree) == {"step", "params"}

    def size(path):
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

    assert size(run / ckpt.EXPORT_DIR / "checkpoints") < size(run / "checkpoints") / 2
