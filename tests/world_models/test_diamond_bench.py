"""bench.diamond: DIAMOND's own PyTorch denoiser and sampler (../shared/reference/diamond) load at
its Atari layout and run a train step and a rollout, without leaving its stand-in modules behind;
bench.world_model_speed's ratios compare equal work."""

import math
import sys

import pytest

from bench import diamond
from bench.world_model_speed import compare, denoiser_flops

pytest.importorskip("torch")


@pytest.mark.slow  # DIAMOND's training step and our base preset's compilation, ~20 s
def test_diamond_loads_its_own_layout_and_runs():
    assert diamond.available() is None
    before = {name: sys.modules.get(name) for name in ("utils", "data")}
    model = diamond.build(compiled=False)
    assert {name: sys.modules.get(name) for name in ("utils", "data")} == before
    assert model.params == 4_406_851  # DIAMOND's Atari denoiser, 4.4M
    # equal work: our base preset (DIAMOND's layout) costs what DIAMOND's denoiser costs per call
    theirs, ours = diamond.denoiser_gflop(model), denoiser_flops("base") / 1e9
    assert ours == pytest.approx(theirs, rel=0.05)
    for passes in (1, 2):
        sec, reps, _ = diamond.train_seconds(model, batch=2, passes=passes, reps=1)
        assert sec > 0 and reps == 1
    sec, reps, _ = diamond.imagine_seconds(model, batch=1, horizon=2, reps=1, warmup=0)
    assert sec > 0 and reps == 1


def test_ratios_are_ours_over_theirs_at_equal_work():
    def row(preset, measure, batch, per_s):
        return {"preset": preset, "measure": measure, "batch": batch, "per_s": per_s,
                "vs_diamond": "", "vs_eager": ""}  # fmt: skip

    rows = [
        row("base", "train", 16, 0.5),
        row("base", "imagine", 32, 6.0),
        row("tiny", "imagine", 32, 100.0),
        row("diamond-eager", "train", 16, 0.25),
        row("diamond-compiled", "train", 16, 1.0),
        row("diamond-compiled", "train-2pass", 16, 0.1),
        row("diamond-compiled", "imagine", 32, 12.0),
    ]
    compare(rows)
    assert rows[0]["vs_diamond"] == 0.5 and rows[0]["vs_eager"] == 2.0  # 1-pass vs 1-pass
    assert rows[1]["vs_diamond"] == 0.5 and rows[1]["vs_eager"] == ""
    assert rows[2]["vs_diamond"] == ""  # only the presets of DIAMOND's size are compared
    assert not any(isinstance(r["vs_diamond"], float) and math.isnan(r["vs_diamond"]) for r in rows)
