"""Self-describing BC checkpoint directories, and the policy object loaded from one.

Layout of a checkpoint (= training run) directory DIR:

    DIR/robolearn-policy.json  {"format": "robolearn-policy", "version": 1, "kind": "bc",
                                "task": ..., "action_dim": 7, "proprio_dim": 7, "image_size": 64}
    DIR/config.yaml            the BCConfig (model, optimizer, training) it was trained with
    DIR/stats.json             proprio normalization (robolearn.core.normalize.NormStats):
                               {"mean": [P], "std": [P]}
    DIR/checkpoints/<step>/    orbax TrainState (params, optimizer state, rng, step)

Orbax writes each step to a temporary directory and renames it when complete, and only lists
complete steps, so `latest_step` after a kill is the last complete checkpoint. Nothing here
unpickles: orbax stores arrays (tensorstore) and JSON metadata, the rest is JSON and YAML.

Older layouts, migrated on reading (migrate_config, migrate_stats): config.yaml with shift_pad
and nll_beta under `optim` (now `training`), stats.json as {"proprio_mean", "proprio_std"}.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp

# CheckpointError, make_manager and save_state are part of this module's interface too.
from robolearn.core.checkpoint import (  # noqa: F401
    CheckpointError,
    CheckpointFiles,
    CheckpointFormat,
    make_manager,
    move_keys,
    restore_latest,
    save_state,
)
from robolearn.core.normalize import NormStats
from robolearn.core.train_state import TrainState
from robolearn.policies.bc.config import BCConfig
from robolearn.policies.bc.train import init_train_state, make_act_fn

FORMAT = "robolearn-policy"
VERSION = 1
MARKER = "robolearn-policy.json"
KINDS = ("bc", "ppo")
OLD_STATS_KEYS = {"proprio_mean": "mean", "proprio_std": "std"}


@dataclasses.dataclass(frozen=True)
class PolicyInfo:
    """What a checkpoint was trained for (robolearn-policy.json).

    kind: "bc" (robolearn train bc) or "ppo" (robolearn refine; its orbax state is a
    RefineState, see robolearn.policies.ppo.checkpoint); parent: the policy it was refined from.
    """

    task: str
    action_dim: int
    proprio_dim: int
    image_size: int
    kind: str = "bc"
    parent: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown policy kind {self.kind!r} (known: {', '.join(KINDS)})")


def migrate_config(data: dict) -> dict:
    """config.yaml before robolearn.core.optim: shift_pad and nll_beta sat in `optim`."""
    return move_keys(data, "optim", "training", ("shift_pad", "nll_beta"))


def migrate_stats(data: dict) -> dict:
    """stats.json before robolearn.core.normalize: {"proprio_mean", "proprio_std"}."""
    if not isinstance(data, dict):
        return data
    return {OLD_STATS_KEYS.get(key, key): value for key, value in data.items()}


CHECKPOINT = CheckpointFormat(FORMAT, VERSION, PolicyInfo, "policy", "robolearn train bc")
FILES = CheckpointFiles(BCConfig, NormStats, migrate_config, migrate_stats)
# read_info(root) -> PolicyInfo and read_config(root) -> (BCConfig, NormStats), old layouts
# migrated; one-line CheckpointErrors for a directory that is not a (complete) policy checkpoint.
read_info = CHECKPOINT.read_info
read_config = FILES.read


def write_info(root: Path, info: PolicyInfo, cfg: BCConfig, stats: NormStats) -> None:
    """Write the marker, config.yaml and stats.json of a new checkpoint directory."""
    FILES.write(root, cfg, stats)
    CHECKPOINT.write_info(root, info)


def restore_state(
    manager: ocp.CheckpointManager, cfg: BCConfig, step: int | None = None
) -> tuple[object, TrainState]:
    """(graphdef, state) of `step` (default: the latest complete one)."""
    return restore_latest(manager, lambda rng: init_train_state(cfg, rng), step)


class BCPolicy:
    """A trained BC actor behind the scripted-policy contract.

    `policy(obs) -> action float32 [A]` with obs = {"image": uint8 [H, W, 3], "proprio": [P]};
    the mean action by default, a sample of N(mu, std^2) clipped to [-1, 1] with
    deterministic=False. `reset(seed)` reseeds the sampling noise.
    """

    def __init__(self, root: Path, info: PolicyInfo, deterministic: bool = True, seed: int = 0):
        cfg, stats = read_config(root)
        manager = make_manager(root)
        try:
            if info.kind == "ppo":
                from robolearn.policies.ppo.checkpoint import restore_refine_state

                (graphdef, _), state = restore_refine_state(manager, root, cfg)
            else:
                graphdef, state = restore_state(manager, cfg)
        finally:
            manager.close()
        self.root, self.info, self.config, self.step = root, info, cfg, int(state.step)
        self.params, self.graphdef, self.stats = state.params, graphdef, stats
        self.deterministic = deterministic
        # apply(params, image [B, H, W, 3] uint8, proprio [B, P]) -> (mean, log_std) [B, A]:
        # pure and jitted, so imagination can call it inside lax.scan.
        self.apply = make_act_fn(graphdef, stats)
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Reseed the sampling noise for a new episode (None keeps the running stream)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        image, proprio = np.asarray(obs["image"]), np.asarray(obs["proprio"], np.float32)
        size, p = self.info.image_size, self.info.proprio_dim
        if image.shape != (size, size, 3) or image.dtype != np.uint8:
            raise CheckpointError(
                f"{self.root}: expects image uint8 [{size}, {size}, 3], got {image.dtype} "
                f"{list(image.shape)} (evaluate with --image-size {size})"
            )
        if proprio.shape != (p,):
            raise CheckpointError(f"{self.root}: expects proprio [{p}], got {list(proprio.shape)}")
        mean, log_std = self.apply(self.params, image[None], proprio[None])
        action = np.asarray(mean[0], np.float64)
        if not self.deterministic:
            action = action + np.exp(np.asarray(log_std[0])) * self._rng.normal(size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def load_policy(
    path: str | Path,
    task: str | None = None,
    action_dim: int | None = None,
    deterministic: bool = True,
    seed: int = 0,
) -> BCPolicy:
    """Load a checkpoint directory as a policy; refuses one trained for another task/action size."""
    root = Path(path)
    info = check_compatible(root, task, action_dim)
    return BCPolicy(root, info, deterministic=deterministic, seed=seed)


def check_compatible(
    path: str | Path, task: str | None = None, action_dim: int | None = None
) -> PolicyInfo:
    """read_info, plus a one-line CheckpointError if the task or action size differ."""
    info = read_info(path)
    if task is not None and info.task != task:
        raise CheckpointError(f"{path}: policy was trained for task {info.task!r}, not {task!r}")
    if action_dim is not None and info.action_dim != action_dim:
        raise CheckpointError(
            f"{path}: policy outputs {info.action_dim}-D actions, the task takes {action_dim}-D"
        )
    return info
