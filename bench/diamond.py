"""DIAMOND's diffusion world model (PyTorch), measured in the same run as ours.

The code is DIAMOND's own, unchanged, from ../shared/reference/diamond (eloialonso/diamond @
5bcd159, MIT; never copied into the project): its EDM `Denoiser` and U-Net (`InnerModel`) and its
`DiffusionSampler`, at its Atari layout (`config/agent/default.yaml`: 4 conditioning frames, cond
channels 256, depths [2, 2, 2, 2], channels [64, 64, 64, 64], no attention; 18 discrete actions) and
sampler (3 Euler steps). Its `denoiser.py` imports `data.Batch` (whose package imports DIAMOND's
loaders) and `utils.LossAndLogs` (whose module imports wandb and omegaconf): two stand-in modules
with just those names are registered while DIAMOND's modules import, then removed.

What is measured, at 64x64 like ours, on random frames (speed does not depend on the values):

    imagine  autoregressive rollouts of `horizon` frames with DIAMOND's sampler: each frame is 3
             denoiser calls (the same work per frame as our default sampler), frames/s = batch x
             horizon / seconds.
    train    one optimizer step (AdamW, DIAMOND's trainer's optimizer) of `Denoiser.forward` on a
             batch whose sequences hold 4 + `passes` frames: DIAMOND's loss loops over the targets,
             one U-Net pass each (its default trainer: 2 passes; ours does 1 per step).

Each runs eager and under torch.compile (the U-Net compiled; first calls excluded from timing).
torch uses every core, like XLA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
import types
from pathlib import Path

import numpy as np

from bench.timing import timed

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "diamond" / "src"
IMAGE = 64
CONTEXT = 4
NUM_ACTIONS = 18


@contextlib.contextmanager
def _stand_ins():
    """`utils` and `data` as the two names DIAMOND's diffusion modules import, on sys.path with
    its src/ while they import; sys.modules and sys.path restored afterwards."""
    import torch

    @dataclasses.dataclass
    class Batch:
        obs: torch.Tensor
        act: torch.Tensor
        mask_padding: torch.Tensor

    class StateDictMixin:
        pass

    utils = types.ModuleType("utils")
    utils.LossAndLogs = tuple
    utils.StateDictMixin = StateDictMixin
    data = types.ModuleType("data")
    data.Batch = Batch
    saved = {name: sys.modules.get(name) for name in ("utils", "data", "models")}
    sys.modules.update(utils=utils, data=data)
    sys.modules.pop("models", None)
    sys.path.insert(0, str(SOURCE))
    try:
        yield Batch
    finally:
        sys.path.remove(str(SOURCE))
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def available() -> str | None:
    """None when DIAMOND can be measured here, else why not (one line)."""
    if not (SOURCE / "models" / "diffusion" / "denoiser.py").is_file():
        return f"DIAMOND's code is not at {SOURCE}"
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed (the `reference` extra)"
    return None


@dataclasses.dataclass
class Diamond:
    """DIAMOND's denoiser at its Atari layout, its sampler, and the Batch type its loss takes."""

    denoiser: object
    sampler: object
    batch_type: type
    params: int
    compiled: bool


def build(compiled: bool, seed: int = 0) -> Diamond:
    """DIAMOND's Denoiser (set up for training with its default sigma distribution) and its
    3-step DiffusionSampler; the U-Net under torch.compile when `compiled`."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count() or 1)
    with _stand_ins() as batch_type:
        from models.diffusion import (
            Denoiser,
            DenoiserConfig,
            DiffusionSampler,
            DiffusionSamplerConfig,
            InnerModelConfig,
            SigmaDistributionConfig,
        )
    inner = InnerModelConfig(3, CONTEXT, 256, [2, 2, 2, 2], [64] * 4, [0] * 4, NUM_ACTIONS)
    denoiser = Denoiser(DenoiserConfig(inner, sigma_data=0.5, sigma_offset_noise=0.3))
    # DIAMOND's trainer's sigma distribution (config/trainer: denoiser.sigma_distribution)
    denoiser.setup_training(SigmaDistributionConfig(-0.4, 1.2, 2e-3, 20))
    params = sum(p.numel() for p in denoiser.parameters())
    if compiled:
        denoiser.inner_model = torch.compile(denoiser.inner_model)
    sampler = DiffusionSampler(denoiser, DiffusionSamplerConfig(num_steps_denoising=3))
    return Diamond(denoiser, sampler, batch_type, params, compiled)


def imagine_seconds(model: Diamond, batch: int, horizon: int, reps: int, warmup: int):
    """(median seconds of a `horizon`-frame rollout at `batch`, reps timed, compile seconds)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    obs = torch.rand(batch, CONTEXT, 3, IMAGE, IMAGE, generator=gen) * 2 - 1
    act = torch.randint(0, NUM_ACTIONS, (batch, horizon + CONTEXT), generator=gen)
    model.denoiser.eval()

    def rollout():
        window = obs
        with torch.no_grad():
            for k in range(horizon):
                frame, _ = model.sampler.sample(window, act[:, k : k + CONTEXT])
                window = torch.cat((window[:, 1:], frame[:, None]), 1)
        return window

    start = time.perf_counter()
    rollout()  # the first call compiles under torch.compile
    compile_s = time.perf_counter() - start
    sec, reps = timed(rollout, reps, max(warmup - 1, 0) + model.compiled)
    return _check(sec), reps, compile_s


def train_seconds(model: Diamond, batch: int, passes: int, reps: int):
    """(median seconds of one AdamW step of DIAMOND's loss with `passes` U-Net passes, reps
    timed, compile seconds)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    frames = CONTEXT + passes
    data = model.batch_type(
        obs=torch.rand(batch, frames, 3, IMAGE, IMAGE, generator=gen) * 2 - 1,
        act=torch.randint(0, NUM_ACTIONS, (batch, frames), generator=gen),
        mask_padding=torch.ones(batch, frames, dtype=torch.bool),
    )
    model.denoiser.train()
    optimizer = torch.optim.AdamW(model.denoiser.parameters(), lr=1e-4, weight_decay=1e-2)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.denoiser(data)
        loss.backward()
        optimizer.step()
        return loss.detach().item()

    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start
    # compiled: the second call still compiles (the backward graph's guards), so one more warm-up
    sec, reps = timed(step, reps, warmup=2 if model.compiled else 0)
    return _check(sec), reps, compile_s


def denoiser_gflop(model: Diamond) -> float:
    """GFLOP of one denoiser call at batch 1 (torch's FlopCounterMode: convolutions and matrix
    products, 2 per multiply-add, as XLA's cost analysis counts them)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    obs = torch.zeros(1, CONTEXT * 3, IMAGE, IMAGE)
    act = torch.zeros(1, CONTEXT, dtype=torch.long)
    noisy = torch.zeros(1, 3, IMAGE, IMAGE)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.denoiser.denoise(noisy, torch.ones(1), obs, act)
    return counter.get_total_flops() / 1e9


def _check(value: float) -> float:
    if not np.isfinite(value):
        raise RuntimeError(f"DIAMOND measured a non-finite time: {value}")
    return value
