"""Refined-policy checkpoints: a BC-format policy directory whose orbax state is a RefineState.

    DIR/robolearn-policy.json   as for BC, with "kind": "ppo" and "parent": the policy refined
    DIR/config.yaml, stats.json the actor's BCConfig and proprio statistics (unchanged from BC)
    DIR/ppo.yaml                the PPOConfig (critic shape and optimizers, needed to restore)
    DIR/checkpoints/<step>/     orbax RefineState (actor `params`, critic, optimizers, rng)

So `load_policy` (eval, collect, imagine) reads a refined checkpoint like a BC one. An older
ppo.yaml, with actor_lr, critic_lr and one grad_clip where actor_optim and critic_optim are now,
is migrated on reading (migrate_ppo).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from robolearn.core.checkpoint import CheckpointError, load_config, restore_latest
from robolearn.core.config import save_yaml
from robolearn.core.errors import ConfigError
from robolearn.policies.bc.config import BCConfig
from robolearn.policies.ppo.config import PPOConfig
from robolearn.policies.ppo.train import init_refine_state

PPO_CONFIG = "ppo.yaml"
# PPOConfig before robolearn.core.optim: key -> (the OptimConfig it went into, its field there).
OLD_OPTIM_KEYS = {
    "actor_lr": (("actor_optim", "learning_rate"),),
    "critic_lr": (("critic_optim", "learning_rate"),),
    "grad_clip": (("actor_optim", "grad_clip"), ("critic_optim", "grad_clip")),
}


def migrate_ppo(data: Any) -> Any:
    """A PPOConfig mapping of the older layout (actor_lr, critic_lr, grad_clip: Adam at a
    constant rate, one clip for both) in the current one; any other mapping as it is."""
    if not isinstance(data, dict) or not set(data) & set(OLD_OPTIM_KEYS):
        return data
    data = dict(data)
    for key, targets in OLD_OPTIM_KEYS.items():
        if key not in data:
            continue
        value = data.pop(key)
        for section, field in targets:
            existing = data.get(section)
            data[section] = {**(existing if isinstance(existing, dict) else {}), field: value}
    return data


def migrate_ppo_section(data: Any) -> Any:
    """A mapping whose `ppo` section is a PPOConfig (a refine run's refine.yaml) with that
    section migrated (migrate_ppo)."""
    if not isinstance(data, dict) or "ppo" not in data:
        return data
    return {**data, "ppo": migrate_ppo(data["ppo"])}


def write_ppo_config(root: Path, cfg: PPOConfig) -> None:
    """Write root/ppo.yaml."""
    save_yaml(cfg, root / PPO_CONFIG)


def read_ppo_config(root: str | Path) -> PPOConfig:
    """The PPOConfig of a refined-policy checkpoint (old layout migrated); one-line
    CheckpointError when it is missing or malformed."""
    try:
        return load_config(PPOConfig, Path(root) / PPO_CONFIG, migrate_ppo)
    except (ConfigError, OSError) as exc:
        raise CheckpointError(f"{root}: broken refined-policy checkpoint ({exc})") from exc


def restore_refine_state(manager: ocp.CheckpointManager, root, actor: BCConfig, step=None):
    """((actor graphdef, critic graphdef), RefineState) of `step` (default: latest complete)."""
    ppo = read_ppo_config(root)
    return restore_latest(manager, lambda rng: init_refine_state(ppo, actor, rng), step)
