"""Off-policy learner updates/s (robolearn.policies.sac, what `robolearn finetune` runs after every
environment step) against the 5 Hz a real WidowX acts at, for WSRL's settings and lighter ones:
one update = `utd` critic steps of `batch` transitions and one actor step, the actor the BC
`base` preset (what the drawer bundles ship), 64 x 64 frames, after compilation. `realtime` says
whether one update per step keeps up with 5 Hz; `30k_steps_h` is the learner's share of a
30,000-step run (acting and the classifier come on top). `critic encoder`: the critics' own CNN,
trained with them, or the actor's, frozen (`--critic-encoder actor`: no encoder backward pass).

    uv run python -m bench.run learner_speed
"""

from __future__ import annotations

import jax
import numpy as np

from bench.timing import timed
from robolearn.core.normalize import NormStats
from robolearn.policies.bc.config import preset
from robolearn.policies.sac.config import SACConfig
from robolearn.policies.sac.train import Transitions, init_sac_state, make_update

CONTROL_HZ = 5.0
# (name, batch per critic step, utd, ensemble, critic encoder): WSRL's online settings, then
# lighter ones, then both on the actor's frozen encoder
SETTINGS = (
    ("wsrl", 256, 4, 10, "own"),
    ("utd 1", 256, 1, 10, "own"),
    ("batch 64", 64, 4, 10, "own"),
    ("batch 64, utd 1, 2 critics", 64, 1, 2, "own"),
    ("wsrl, actor's encoder", 256, 4, 10, "actor"),
    ("batch 64, utd 1, 2 critics, actor's encoder", 64, 1, 2, "actor"),
)


def measure(name: str, batch: int, utd: int, ensemble: int, encoder: str, reps: int) -> dict:
    actor = preset("base", image_size=64)
    cfg = SACConfig(batch_size=batch, utd=utd, ensemble=ensemble, critic_encoder=encoder)
    graphs, state = init_sac_state(cfg, actor, jax.random.key(0))
    update = make_update(cfg, graphs, NormStats(np.zeros(7, np.float32), np.ones(7, np.float32)))
    rng = np.random.default_rng(0)
    shape = (utd, batch)
    images = rng.integers(0, 256, (*shape, 64, 64, 3), dtype=np.uint8)
    data = Transitions(
        image=images,
        proprio=rng.normal(size=(*shape, 7)).astype(np.float32),
        action=rng.uniform(-1, 1, (*shape, 7)).astype(np.float32),
        reward=rng.integers(0, 2, shape).astype(np.float32),
        next_image=np.roll(images, 1, axis=1),
        next_proprio=rng.normal(size=(*shape, 7)).astype(np.float32),
        terminal=np.zeros(shape, np.float32),
        mc_return=np.zeros(shape, np.float32),
    )
    holder = {"state": state}

    def once():
        holder["state"], metrics = update(holder["state"], data)
        return metrics

    seconds, calls = timed(once, reps=reps, warmup=1, budget_s=60.0)
    rate = 1.0 / seconds
    return {
        "setting": name,
        "batch": batch,
        "utd": utd,
        "critics": ensemble,
        "critic_encoder": encoder,
        "updates_per_s": rate,
        "transitions_per_s": rate * utd * batch,
        "realtime_5hz": "yes" if rate >= CONTROL_HZ else f"no ({rate / CONTROL_HZ:.2f}x)",
        "30k_steps_h": 30_000 / rate / 3600,
        "timed_calls": calls,
    }


def run(quick: bool = False) -> list[dict]:
    settings = (SETTINGS[3], SETTINGS[-1]) if quick else SETTINGS
    return [measure(*s, reps=2 if quick else 10) for s in settings]
