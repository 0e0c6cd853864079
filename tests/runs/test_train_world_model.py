"""`robolearn train world-model` end to end (tiny preset): train, resume, refuse to overwrite."""

import json
import shutil

import numpy as np
import pytest
from robolearn.world_models import checkpoint as ckpt

from robolearn.cli import main
from robolearn.data.synthetic import write_random_store


def _train(data, out, steps, *extra):
    argv = ["train", "world-model", "--data", str(data), "--preset", "tiny"]
    argv += ["--steps", str(steps), "--batch-size", "4", "--save-every", "3", "--log-every", "3"]
    return main([*argv, "--out", str(out), "--quiet", *extra])


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _steps(run):
    return sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny world model trained 6 steps (saved at 3 and 6) on 16x16 random episodes."""
    root = tmp_path_factory.mktemp("wm")
    data = write_random_store(root / "data", 3, 6, image_size=16, task="drawer")
    assert _train(data, root / "run", 6) == 0
    return data, root / "run"


def test_train_writes_metrics_and_a_self_describing_checkpoint(trained):
    """metrics.jsonl rows at the logged steps, the info of the data, orbax steps 3 and 6."""
    _, run = trained
    rows = _rows(run)
    assert [r["step"] for r in rows] == [3, 6]
    for key in ("loss", "denoise_loss", "proprio_loss", "grad_norm", "steps_per_second"):
        assert np.isfinite(rows[-1][key])
    info = ckpt.read_info(run)
    assert (info.tasks, info.image_size, info.context, info.action_dim) == (("drawer",), 16, 4, 7)
    for name in ("config.yaml", "stats.json", "train.yaml"):
        assert (run / name).is_file()
    assert "preset: tiny" in (run / "config.yaml").read_text()
    assert _steps(run) == [3, 6]
    assert ckpt.load_world_model(run, task="drawer").step == 6


def test_resume_continues_to_the_new_step_count(trained, tmp_path, capsys):
    """--resume --steps 8 restores step 6 and trains 2 more; metrics and checkpoints continue."""
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    capsys.readouterr()
    assert _train(data, copy, 8, "--resume") == 0
    assert "world model: step 8 (2 this run" in capsys.readouterr().out
    assert [r["step"] for r in _rows(copy)] == [3, 6, 8]
    assert _steps(copy) == [6, 8]  # max_to_keep 2
    assert ckpt.load_world_model(copy).step == 8


def test_training_again_without_resume_is_refused(trained, capsys):
    """An existing run directory is never overwritten: exit code 2 and a one-line error."""
    data, run = trained
    capsys.readouterr()
    assert _train(data, run, 8) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert f"{run}: already holds a checkpoint; pass --resume" in err
    assert _steps(run) == [3, 6]


def test_init_fine_tunes_from_another_model(trained, tmp_path):
    """--init starts from the source's EMA weights with its config, context and statistics,
    and trains on the new data (another task in the same scene)."""
    import jax

    _, run = trained
    push = write_random_store(tmp_path / "push", 2, 6, image_size=16, task="push")
    out = tmp_path / "ft"
    assert _train(push, out, 1, "--init", str(run), "--preset", "base") == 0
    assert ckpt.read_info(out).tasks == ("push",)
    assert (out / "stats.json").read_text() == (run / "stats.json").read_text()
    assert "preset: tiny" in (out / "config.yaml").read_text()
    source, tuned = ckpt.load_world_model(run), ckpt.load_world_model(out)
    # one step later the EMA (decay ~0.99+) is still within a hair of the source's weights,
    # far closer than a fresh initialization would be
    gap = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), source.params, tuned.params)
    assert max(jax.tree.leaves(gap)) < 0.05


def test_init_refuses_a_model_of_another_image_size(trained, tmp_path, capsys):
    _, run = trained
    big = write_random_store(tmp_path / "big", 2, 6, image_size=32, task="push")
    capsys.readouterr()
    assert _train(big, tmp_path / "ft", 1, "--init", str(run)) == 2
    err = capsys.readouterr().err
    assert "image_size 16" in err and len(err.strip().splitlines()) == 1
