"""World-model fidelity after the same training compute: the cheaper layout against DIAMOND's, on
the same data, so that a faster preset is only claimed where it is not worse.

`small` (4.0M parameters, DIAMOND's size at half the internal resolution) and `base` (DIAMOND's
Atari layout) are trained with `robolearn train world-model` on the same drawer episodes (the
shipped world model's recipe: expert, noisy, random and BC-policy rollouts, robolearn/bundles/
drawer/card.md) at batch 32 for the same training FLOPs: base for BENCH_FIDELITY_BASE_STEPS steps
(default 700, the FLOPs of the shipped model's 5000 small steps), small for that times the FLOP
ratio of one denoiser call (XLA's cost analysis, 5.98 / 0.83 GFLOP: 7.2x), each with a 10 %
warm-up. Both are then scored by `robolearn eval world-model` on held-out episodes (other reset
seeds) open loop under the recorded actions: PSNR and SSIM of the imagined frames at steps 1, 5
and 10 against the real ones, beside copying the last real frame.

    uv run python -m bench.run world_model_fidelity      # hours on a 2-core CPU at the default

Episodes and runs are kept in BENCH_FIDELITY_DIR (default runs/bench-fidelity): a rerun reuses
the collected data and any finished run, and resumes a run cut short from its last checkpoint
(delete the folder to start over). --quick: `tiny` against `small`, three random-action episodes
and a few steps (checks the machinery, measures nothing).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.commands import robolearn as _robolearn

STEPS_SHOWN = (1, 5, 10)
# the shipped world model's data (card.md), per policy: (train episodes, held-out episodes)
FULL_DATA = {
    "expert": (50, 10),
    "noisy": (100, 20),
    "random": (30, 6),
    "bundle:drawer/bc": (50, 10),
}
QUICK_DATA = {"random": (2, 1)}


def collect(root: Path, data: dict[str, tuple[int, int]], log: Path) -> tuple[Path, Path]:
    """The training and held-out stores (seed 0 and seed 1 resets), collected once (a collection
    cut short is thrown away and done again, not appended to)."""
    train, heldout = root / "data" / "train", root / "data" / "heldout"
    marker = root / "data" / "collected"
    if not marker.exists():
        shutil.rmtree(root / "data", ignore_errors=True)
        for policy, (n_train, n_held) in data.items():
            for n, seed, out in ((n_train, 0, train), (n_held, 1, heldout)):
                _robolearn(
                    "collect", "--task", "drawer", "--policy", policy, "--episodes", str(n),
                    "--seed", str(seed), "--out", str(out), "--quiet", log=log,
                )  # fmt: skip
        marker.write_text("done\n")
    return train, heldout


def equal_flop_steps(cheap: str, reference: str, reference_steps: int) -> int:
    """Steps of `cheap` that cost the FLOPs of `reference_steps` steps of `reference` at the same
    batch (the ratio of one denoiser call's FLOPs, XLA's cost analysis)."""
    from bench.world_model_speed import denoiser_flops

    return max(1, round(reference_steps * denoiser_flops(reference) / denoiser_flops(cheap)))


def train(root: Path, name: str, data: Path, steps: int, batch: int, log: Path) -> dict:
    """Train one preset (or reuse the finished run of the same preset, steps and batch); its run
    directory, steps and batch. It saves every tenth of its steps, and a run cut short (killed,
    the machine shut down) resumes from its last checkpoint."""
    out = root / "runs" / f"{name}-{steps}x{batch}"
    done = out / "bench_done.json"
    if done.exists():
        return json.loads(done.read_text())
    started = _last_checkpoint(out) is not None
    if not started:
        shutil.rmtree(out, ignore_errors=True)
    _robolearn(
        "train", "world-model", "--data", str(data), "--preset", name, "--steps", str(steps),
        "--batch-size", str(batch), "--seed", "0", "--eval-windows", "0",
        "--save-every", str(max(1, steps // 10)), "--out", str(out), "--quiet",
        f"model.optim.warmup_steps={max(1, steps // 10)}", *(["--resume"] if started else []),
        log=log,
    )  # fmt: skip
    reached = _last_checkpoint(out) or 0
    if reached < steps:  # stopped early and saved (SIGTERM): not a finished run
        raise RuntimeError(f"{out.name} stopped at step {reached} of {steps}: rerun to resume")
    info = {"run": str(out), "steps": steps, "batch": batch}
    done.write_text(json.dumps(info) + "\n")
    return info


def _last_checkpoint(run: Path) -> int | None:
    """The step of the run's newest training checkpoint (None before its first)."""
    checkpoints = run / "checkpoints"
    steps = (
        [int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()]
        if checkpoints.is_dir()
        else []
    )
    return max(steps, default=None)


def evaluate(run: Path, heldout: Path, horizon: int, stride: int, log: Path) -> dict:
    """`robolearn eval world-model` of a trained run, open loop on the held-out store (no outcome
    detector); kept in the run directory per horizon and stride, and reused."""
    out = run / f"eval-h{horizon}-s{stride}"
    results = out / "results.json"
    if not results.exists():
        shutil.rmtree(out, ignore_errors=True)
        _robolearn(
            "eval", "world-model", "--model", str(run), "--data", str(heldout),
            "--horizon", str(horizon), "--stride", str(stride), "--detector-steps", "0",
            "--out", str(out), "--quiet", log=log,
        )  # fmt: skip
    return json.loads(results.read_text())["open_loop"]


def _params(run: Path) -> int:
    """The trained model's parameter count (from its checkpoint)."""
    from flax import nnx
    from robolearn.world_models.checkpoint import load_world_model
    from robolearn.world_models.model import count_params

    wm = load_world_model(run)
    return count_params(nnx.merge(wm.graphdef, wm.params))


def run(quick: bool = False) -> list[dict]:
    root = Path(os.environ.get("BENCH_FIDELITY_DIR", "runs/bench-fidelity"))
    if quick:
        root = root / "quick"
    root.mkdir(parents=True, exist_ok=True)
    log = root / "commands.log"
    cheap, reference = ("tiny", "small") if quick else ("small", "base")
    reference_steps = 2 if quick else int(os.environ.get("BENCH_FIDELITY_BASE_STEPS", 700))
    horizon, stride = (5, 10) if quick else (10, 20)
    batch = 4 if quick else 32
    train_dir, heldout = collect(root, QUICK_DATA if quick else FULL_DATA, log)
    steps = {
        reference: reference_steps,
        cheap: equal_flop_steps(cheap, reference, reference_steps),
    }
    rows = []
    for name in (cheap, reference):
        info = train(root, name, train_dir, steps[name], batch, log)
        run_dir = Path(info["run"])
        result = evaluate(run_dir, heldout, horizon, stride, log)
        per = result["per_step"]
        row = {
            "preset": name,
            "params": _params(run_dir),
            "steps": info["steps"],
            "batch": info["batch"],
            "windows": result["windows"],
        }
        for h in (s for s in STEPS_SHOWN if s <= horizon):
            row[f"psnr_h{h}"] = per["psnr"][h - 1]
            row[f"copy_psnr_h{h}"] = per["psnr_baseline"][h - 1]
        last = min(STEPS_SHOWN[-1], horizon)
        row[f"ssim_h{last}"] = per["ssim"][last - 1]
        row[f"copy_ssim_h{last}"] = per["ssim_baseline"][last - 1]
        rows.append(row)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return [{k: row.get(k, "") for k in keys} for row in rows]
