"""`robolearn train world-model` end to end (tiny preset): train, resume, refuse to overwrite,
fine-tune from another model, run from a config file; the shipped drawer model's run config; what
a run shows (open-loop preview videos and plots, loss curves, an offline W&B run)."""

import dataclasses
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import yaml
from robolearn.world_models import checkpoint as ckpt
from robolearn.world_models.config import with_context_noise

from robolearn import bundles
from robolearn.cli import main
from robolearn.core.config import load_layers, load_yaml
from robolearn.core.errors import ConfigError
from robolearn.data.synthetic import write_random_store
from robolearn.runs.train_world_model import TrainWorldModelConfig

ROOT = Path(__file__).resolve().parents[2]


def _train(data, out, steps, *extra):
    argv = ["train", "world-model", "--data", str(data), "--preset", "tiny"]
    argv += ["--steps", str(steps), "--batch-size", "4", "--save-every", "3", "--log-every", "3"]
    return main([*argv, "--out", str(out), "--quiet", *extra])


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _steps(run):
    return sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


def _image(path):
    return iio.imread(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny world model trained 6 steps (saved, and previewed open loop, at 3 and 6) on 16x16
    random episodes, logged to an offline W&B run too."""
    root = tmp_path_factory.mktemp("wm")
    data = write_random_store(root / "data", 3, 6, image_size=16, task="drawer")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("WANDB_MODE", raising=False)
        assert _train(data, root / "run", 6, "--wandb") == 0
    return data, root / "run"


def test_train_writes_metrics_and_a_self_describing_checkpoint(trained):
    """metrics.jsonl rows at the logged steps, the info of the data, orbax steps 3 and 6; the
    run's train.yaml and the checkpoint's config.yaml hold the model really trained (sizes from
    the data, the learning rate decaying over the run's steps)."""
    data, run = trained
    rows = [r for r in _rows(run) if "loss" in r]  # the training rows (eval/ rows beside them)
    assert [r["step"] for r in rows] == [3, 6]
    for key in ("loss", "denoise_loss", "proprio_loss", "grad_norm", "steps_per_second", "time"):
        assert np.isfinite(rows[-1][key])
    info = ckpt.read_info(run)
    assert (info.tasks, info.image_size, info.context, info.action_dim) == (("drawer",), 16, 4, 7)
    for name in ("config.yaml", "stats.json", "train.yaml"):
        assert (run / name).is_file()
    model_cfg, _ = ckpt.read_config(run)
    assert model_cfg.preset == "tiny" and model_cfg.model.image_size == 16
    assert model_cfg.optim.decay_steps == 6
    resolved = load_yaml(TrainWorldModelConfig, run / "train.yaml")
    assert resolved.data == (str(data),) and resolved.steps == 6 and resolved.model == model_cfg
    assert _steps(run) == [3, 6]
    assert ckpt.load_world_model(run, task="drawer").step == 6


def test_train_shows_open_loop_previews_curves_and_a_wandb_run(trained):
    """At every save (3, 6) the fixed windows (the training data's: named "train") are imagined
    open loop: a video of true | predicted | |error| with a frame per horizon step (8 capped at
    the episodes' 6), a PSNR/SSIM-by-horizon plot and eval/ scalars against copy-last-frame; the
    loss curves at the end; the same images in TensorBoard; an offline W&B run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run = trained
    media = run / "media"
    for step in (3, 6):
        video = iio.imread(media / f"open_loop_train-{step}.mp4")
        assert video.shape[0] == 6 and video.std() > 10
        assert _image(media / f"open_loop_fidelity_train-{step}.png").std() > 10
    assert _image(media / "curves-6.png").std() > 10
    evals = [r for r in _rows(run) if "eval/train_psnr_h1" in r]
    assert [r["step"] for r in evals] == [3, 6]
    for key in ("psnr_h1", "psnr_h5", "psnr_h6", "ssim_h6", "psnr_copy_last_h6"):
        assert np.isfinite(evals[-1][f"eval/train_{key}"])
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    images = {tag: [e.step for e in acc.Images(tag)] for tag in acc.Tags()["images"]}
    assert images["open_loop_train"] == [3, 6] and images["curves"] == [6]
    (wandb_run,) = (run / "wandb").glob("offline-run-*")
    assert list(wandb_run.glob("run-*.wandb"))


def test_resume_continues_to_the_new_step_count(trained, tmp_path, capsys):
    """--resume --steps 8 restores step 6 and trains 2 more; metrics, checkpoints, previews and
    the W&B run (the same run id) continue."""
    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    capsys.readouterr()
    assert _train(data, copy, 8, "--resume", "--wandb") == 0
    assert "world model: step 8 (2 this run" in capsys.readouterr().out
    assert [r["step"] for r in _rows(copy) if "loss" in r] == [3, 6, 8]
    assert _steps(copy) == [6, 8]  # max_to_keep 2
    assert ckpt.load_world_model(copy).step == 8
    assert (copy / "media" / "open_loop_train-8.mp4").stat().st_size > 0
    first, again = sorted((copy / "wandb").glob("offline-run-*"))
    assert first.name.split("-")[-1] == again.name.split("-")[-1]  # offline-run-<time>-<id>[-1]
    state = json.loads((copy / "wandb" / "robolearn-run.json").read_text())
    assert state["step"] == 8 and first.name.endswith(state["id"])


def test_held_out_windows_of_another_size_are_refused_before_anything_is_written(
    trained, tmp_path, capsys
):
    data, _ = trained
    big = write_random_store(tmp_path / "big", 2, 6, image_size=32, task="drawer")
    out = tmp_path / "run"
    capsys.readouterr()
    assert _train(data, out, 1, "--eval-data", str(big)) == 2
    err = capsys.readouterr().err.strip()
    assert f"--eval-data {big}: image_shape" in err and len(err.splitlines()) == 1
    assert not (out / "train.yaml").exists() and not (out / "config.yaml").exists()


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
    assert _train(push, out, 1, "--init", str(run), "--preset", "base", "--eval-windows", "0") == 0
    assert ckpt.read_info(out).tasks == ("push",)
    assert (out / "stats.json").read_text() == (run / "stats.json").read_text()
    assert "preset: tiny" in (out / "config.yaml").read_text()
    # train.yaml: the model init brought (not --preset base) and where init was read from
    resolved = load_yaml(TrainWorldModelConfig, out / "train.yaml")
    assert resolved.init == str(run) and resolved.model.preset == "tiny"
    assert resolved.model.optim.decay_steps == 1
    source, tuned = ckpt.load_world_model(run), ckpt.load_world_model(out)
    # one step later the EMA (decay ~0.99+) is still within a hair of the source's weights,
    # far closer than a fresh initialization would be
    gap = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), source.params, tuned.params)
    assert max(jax.tree.leaves(gap)) < 0.05


def test_init_with_context_noise_fine_tunes_a_model_trained_without_it(trained, tmp_path):
    """model.model.context_noise with --init: the source's architecture plus the context level's
    conditioning (and model.model.context_clean, the share of clean contexts); the fine-tuned
    model is told a noisy context when evaluated with --sampler-context-noise (at most the
    trained level), which the source refuses."""
    import jax

    data, run = trained
    out = tmp_path / "ft"
    extra = ("--init", str(run), "model.model.context_noise=0.3", "--eval-windows", "0")
    assert _train(data, out, 2, *extra, "model.model.context_clean=0.25") == 0
    tuned = ckpt.read_config(out)[0]
    assert tuned.model.context_noise == 0.3 and tuned.model.channels == (8, 16)
    assert tuned.model.context_clean == 0.25
    source, grown = ckpt.load_world_model(run), ckpt.load_world_model(out)
    cd = tuned.model.cond_dim
    new_rows = grown.params["cond_in"]["kernel"][...][cd : 2 * cd]
    assert 0 < float(np.abs(new_rows).max()) < 0.05  # started at zero, trained two steps
    assert jax.tree.structure(source.params) == jax.tree.structure(grown.params)
    evaluated = tmp_path / "eval"
    argv = ["eval", "world-model", "--model", str(out), "--data", str(data), "--horizon", "2"]
    argv += ["--detector-steps", "0", "--out", str(evaluated), "--quiet"]
    assert main([*argv, "--sampler-context-noise", "0.2"]) == 0
    assert json.loads((evaluated / "results.json").read_text())["sampler"]["context_noise"] == 0.2
    config = yaml.safe_load((evaluated / "config.yaml").read_text())
    assert config["sampler_context_noise"] == 0.2
    with pytest.raises(ConfigError, match="above the context noise"):
        ckpt.load_world_model(run, sampler={"context_noise": 0.2})
    with pytest.raises(ConfigError, match=r"model.context_noise 0.3\)"):
        ckpt.load_world_model(out, sampler={"context_noise": 0.5})


def test_distill_from_trains_a_one_step_student_that_runs_as_a_world_model(
    trained, tmp_path, capsys
):
    """--distill-from: the teacher's weights, config and statistics with a 1-step distilled
    sampler, trained on the distillation loss, resumable only with its teacher; imagination
    runs it at 1 step and refuses more; a student is never an --init source."""
    data, run = trained
    out = tmp_path / "student"
    extra = ("--distill-from", str(run), "--distill-steps", "1", "--eval-windows", "0")
    assert _train(data, out, 3, *extra) == 0
    student = ckpt.read_config(out)[0]
    assert (student.sampler.steps, student.sampler.distilled, student.sampler.method) == (
        1, 1, "euler"
    )  # fmt: skip
    assert student.model == ckpt.read_config(run)[0].model
    assert (out / "stats.json").read_text() == (run / "stats.json").read_text()
    rows = _rows(out)
    assert "distill_loss" in rows[-1] and "denoise_loss" not in rows[-1]
    assert load_yaml(TrainWorldModelConfig, out / "train.yaml").distill_from == str(run)
    capsys.readouterr()
    # resumed: only with its teacher
    assert _train(data, out, 6, "--resume", "--eval-windows", "0") == 2
    assert "resume it with the same --distill-from" in capsys.readouterr().err
    # refused before anything was rewritten
    assert load_yaml(TrainWorldModelConfig, out / "train.yaml").distill_from == str(run)
    assert _train(data, out, 6, "--resume", *extra) == 0
    assert _steps(out)[-1] == 6
    # evaluated at its one step; three are refused
    evaluated = tmp_path / "eval"
    argv = ["eval", "world-model", "--model", str(out), "--data", str(data), "--horizon", "2"]
    argv += ["--detector-steps", "0", "--out", str(evaluated), "--quiet"]
    assert main(argv) == 0
    assert json.loads((evaluated / "results.json").read_text())["sampler"]["steps"] == 1
    capsys.readouterr()
    assert main([*argv[:-3], "--out", str(tmp_path / "e3"), "--sampler-steps", "3"]) == 2
    assert "distilled for 1 euler step(s)" in capsys.readouterr().err
    for bad, message in (
        (("--init", str(out)), "a few-step student"),
        (("--distill-from", str(run), "--distill-steps", "3"), "a student takes fewer"),
        (("--distill-from", str(run), "--init", str(run)), "--init and --distill-from"),
    ):
        assert _train(data, tmp_path / "bad", 1, *bad) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_init_refuses_a_model_of_another_image_size(trained, tmp_path, capsys):
    _, run = trained
    big = write_random_store(tmp_path / "big", 2, 6, image_size=32, task="push")
    capsys.readouterr()
    assert _train(big, tmp_path / "ft", 1, "--init", str(run)) == 2
    err = capsys.readouterr().err
    assert "image_size 16" in err and len(err.strip().splitlines()) == 1


def test_train_from_a_config_file_writes_tensorboard_and_the_resolved_config(tmp_path, capsys):
    """`--config FILE` (data, held-out data for the preview, a tiny model with an override
    inside it, the schedule) runs; the metrics reach TensorBoard's own reader; train.yaml and the
    checkpoint's config.yaml hold the resolved model; the preview's windows are held out."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = write_random_store(tmp_path / "data", 2, 5, image_size=16, task="drawer")
    heldout = write_random_store(tmp_path / "heldout", 1, 4, image_size=16, task="drawer", seed=9)
    run_yaml = tmp_path / "run.yaml"
    settings = {
        "data": [str(data)],
        "eval_data": [str(heldout)],
        "eval_horizon": 2,
        "steps": 2,
        "batch_size": 4,
        "log_every": 1,
        "model": {"preset": "tiny", "sampler": {"steps": 2}},
    }
    run_yaml.write_text(yaml.safe_dump(settings))
    out = tmp_path / "run"
    assert main(["train", "world-model", "--config", str(run_yaml), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "world model: step 2 (2 this run" in printed and f"checkpoint: {out}" in printed
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("denoise_loss")] == [1, 2]
    assert {"proprio_loss", "grad_norm", "steps_per_second"} <= set(acc.Tags()["scalars"])
    model_cfg, _ = ckpt.read_config(out)
    assert model_cfg.preset == "tiny" and model_cfg.sampler.steps == 2
    assert (model_cfg.model.image_size, model_cfg.optim.decay_steps) == (16, 2)
    resolved = load_yaml(TrainWorldModelConfig, out / "train.yaml")
    assert resolved.model == model_cfg and resolved.batch_size == 4
    assert [e.step for e in acc.Scalars("eval/heldout_psnr_h2")] == [2]
    assert iio.imread(out / "media" / "open_loop_heldout-2.mp4").shape[0] == 2


def test_the_shipped_drawer_model_s_run_config_loads_and_made_it():
    """configs/runs/world-model-drawer.yaml and world-model-drawer-context-noise.yaml (the
    fine-tune from the first run) load into TrainWorldModelConfig, and the model they resolve to
    (the data's sizes, the decay over the last run's steps) is bundle:drawer/world-model's."""
    cfg = load_layers(TrainWorldModelConfig, ROOT / "configs" / "runs" / "world-model-drawer.yaml")
    assert cfg.data == ("data/wm-train",) and cfg.steps == 5000 and cfg.batch_size == 32
    assert cfg.model.preset == "small" and cfg.save_every == 500
    first = dataclasses.replace(
        cfg.model, optim=dataclasses.replace(cfg.model.optim, decay_steps=cfg.steps)
    )
    # then fine-tuned from that run with noise-augmented context: init's model and optimizer,
    # the context level added and the decay over the fine-tune's steps
    tune_file = ROOT / "configs" / "runs" / "world-model-drawer-context-noise.yaml"
    tune = load_layers(TrainWorldModelConfig, tune_file)
    assert tune.init == "runs/wm-small" and tune.data == cfg.data and tune.steps == 1400
    tuned = with_context_noise(first, tune.model.model.context_noise)
    tuned = dataclasses.replace(
        tuned, optim=dataclasses.replace(first.optim, decay_steps=tune.steps)
    )
    shipped, _ = ckpt.read_config(bundles.resolve("bundle:drawer/world-model"))
    assert tuned == shipped and shipped.model.context_noise == 0.5
