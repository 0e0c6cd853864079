"""Refined-policy checkpoints: a BC-format policy directory whose orbax state is a RefineState.

    DIR/robolearn-policy.json   as for BC, with "kind": "ppo" and "parent": the policy refined
    DIR/config.yaml, stats.json the actor's BCConfig and proprio statistics (unchanged from BC)
    DIR/ppo.yaml                the PPOConfig (critic shape and optimizers, needed to restore)
    DIR/checkpoints/<step>/     orbax RefineState (actor `params`, critic, optimizers, rng)

So `load_policy` (eval, collect, imagine) reads a refined checkpoint like a BC one.
"""

from __future__ import annotations

from pathlib import Path

import orbax.checkpoint as ocp

from robolearn.core.checkpoint import CheckpointError, abstract_init
from robolearn.core.config import load_yaml, save_yaml
from robolearn.core.errors import ConfigError
from robolearn.policies.bc.config import BCConfig
from robolearn.policies.ppo.config import PPOConfig
from robolearn.policies.ppo.train import init_refine_state

PPO_CONFIG = "ppo.yaml"


def write_ppo_config(root: Path, cfg: PPOConfig) -> None:
    save_yaml(cfg, root / PPO_CONFIG)


def read_ppo_config(root: str | Path) -> PPOConfig:
    path = Path(root) / PPO_CONFIG
    try:
        return load_yaml(PPOConfig, path)
    except (ConfigError, OSError) as exc:
        raise CheckpointError(f"{root}: broken refined-policy checkpoint ({exc})") from exc


def restore_refine_state(manager: ocp.CheckpointManager, root, actor: BCConfig, step=None):
    """((actor graphdef, critic graphdef), RefineState) of `step` (default: latest complete)."""
    ppo = read_ppo_config(root)
    step = manager.latest_step() if step is None else step
    if step is None:
        raise CheckpointError(f"{manager.directory}: holds no complete checkpoint")
    graphs, abstract = abstract_init(lambda rng: init_refine_state(ppo, actor, rng))
    state = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return graphs, state
