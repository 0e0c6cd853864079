"""Self-describing BC checkpoint directories, and the policy object loaded from one.

Layout of a checkpoint (= training run) directory DIR:

    DIR/robolearn-policy.json  {"format": "robolearn-policy", "version": 1, "kind": "bc",
                                "task": ..., "action_dim": 7, "proprio_dim": 7, "image_size": 64}
    DIR/config.yaml            the BCConfig (model, optimizer, training) it was trained with
    DIR/stats.json             proprio normalization (robolearn.core.normalize.NormStats):
                               {"mean": [P], "std": [P]}
    DIR/checkpoints/<step>/    orbax TrainState (params, optimizer state, rng, step); a refined
                               policy's RefineState (robolearn.policies.ppo.checkpoint)
    DIR/policy/                the actor-only export of the latest step (below), written by
                               `train bc` and `refine` at every save

An actor-only export (what bundles ship and the robot PC loads; `robolearn export policy`) is the
same layout with "weights": "actor" in the marker and checkpoints/<step>/ holding only
{"step", "params"}: no optimizer state, no critic. Every consumer (eval, collect, imagine, the
bridge) loads a policy the same way from either: only the actor's parameters are read from disk
(orbax partial restore), so loading never needs PPO or an optimizer.

Orbax writes each step to a temporary directory and renames it when complete, and only lists
complete steps, so `latest_step` after a kill is the last complete checkpoint. Nothing here
unpickles: orbax stores arrays (tensorstore) and JSON metadata, the rest is JSON and YAML.

Older layouts, migrated on reading (migrate_config, migrate_stats): config.yaml with shift_pad
and nll_beta under `optim` (now `training`), stats.json as {"proprio_mean", "proprio_std"}.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

# CheckpointError, make_manager and save_state are part of this module's interface too.
from robolearn.core.checkpoint import (  # noqa: F401
    CONFIG,
    STATS,
    CheckpointError,
    CheckpointFiles,
    CheckpointFormat,
    abstract_init,
    make_manager,
    move_keys,
    require_finite,
    restore_latest,
    restore_part,
    save_state,
    save_tree,
)
from robolearn.core.normalize import NormStats
from robolearn.core.train_state import TrainState
from robolearn.policies.bc.config import BCConfig
from robolearn.policies.bc.model import GaussianActor
from robolearn.policies.bc.train import init_train_state, make_act_fn

FORMAT = "robolearn-policy"
VERSION = 1
MARKER = "robolearn-policy.json"
KINDS = ("bc", "ppo", "sac")
WEIGHTS = ("train", "actor")
EXPORT_DIR = "policy"
# The run's settings and curve travel with an export, so it still says how it was made.
PROVENANCE = ("train.yaml", "refine.yaml", "finetune.yaml", "metrics.jsonl")
OLD_STATS_KEYS = {"proprio_mean": "mean", "proprio_std": "std"}


@dataclasses.dataclass(frozen=True)
class PolicyInfo:
    """What a checkpoint was trained for (robolearn-policy.json).

    kind: "bc" (robolearn train bc), "ppo" (robolearn refine) or "sac" (robolearn finetune);
    parent: the policy it was refined or fine-tuned from. weights: "train" (a training run:
    checkpoints hold its whole training state) or "actor" (an export: checkpoints hold
    {"step", "params"} only).
    """

    task: str
    action_dim: int
    proprio_dim: int
    image_size: int
    kind: str = "bc"
    parent: str = ""
    weights: str = "train"

    def __post_init__(self):
        for name in ("action_dim", "proprio_dim", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown policy kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.weights not in WEIGHTS:
            raise ValueError(f"unknown weights {self.weights!r} (known: {', '.join(WEIGHTS)})")


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
# read_info(root) -> PolicyInfo, old layouts migrated; one-line CheckpointErrors for a directory
# that is not a (complete) policy checkpoint.
read_info = CHECKPOINT.read_info


def read_config(root: str | Path) -> tuple[BCConfig, NormStats]:
    """The BCConfig and proprio statistics of a checkpoint (old layouts migrated, both built
    strictly); a one-line CheckpointError when either is missing or malformed, or the
    statistics are not the model's proprio_dim long."""
    cfg, stats = FILES.read(root)
    if stats.mean.shape != (cfg.model.proprio_dim,):
        raise CheckpointError(
            f"{root}: broken checkpoint ({STATS} holds {len(stats.mean)}-D statistics, "
            f"{CONFIG} has model.proprio_dim {cfg.model.proprio_dim})"
        )
    return cfg, stats


def check_fits(root: str | Path, info: PolicyInfo, cfg: BCConfig) -> None:
    """A one-line CheckpointError where the marker and config.yaml disagree on the image size,
    proprio or action size (the marker is what users and the bridge check; the config is what
    the model is built from)."""
    for name in ("image_size", "proprio_dim", "action_dim"):
        ours, marked = getattr(cfg.model, name), getattr(info, name)
        if ours != marked:
            raise CheckpointError(
                f"{root}: broken checkpoint ({CONFIG} has model.{name} {ours}, {MARKER} "
                f"says {marked})"
            )


def read_checkpoint(root: str | Path) -> tuple[PolicyInfo, BCConfig, NormStats]:
    """The marker, config and statistics of a policy checkpoint, each built strictly and
    checked against the others (read_info, read_config, check_fits); nothing is loaded."""
    info = read_info(root)
    cfg, stats = read_config(root)
    check_fits(root, info, cfg)
    return info, cfg, stats


def write_info(root: Path, info: PolicyInfo, cfg: BCConfig, stats: NormStats) -> None:
    """Write the marker, config.yaml and stats.json of a new checkpoint directory."""
    FILES.write(root, cfg, stats)
    CHECKPOINT.write_info(root, info)


def restore_actor(root: str | Path, cfg: BCConfig, step: int | None = None):
    """(graphdef, params, step) of the actor of a policy checkpoint of any kind and weights:
    only {"step", "params"} are read (robolearn.core.checkpoint.restore_part). A one-line
    CheckpointError when they are damaged, do not fit `cfg`, or hold NaN or inf."""
    graphdef, params = abstract_init(lambda rng: nnx.split(GaussianActor(cfg.model, nnx.Rngs(rng))))
    abstract = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": params}
    manager = make_manager(root)
    try:
        restored = restore_part(manager, abstract, step)
    finally:
        manager.close()
    step = int(restored["step"])
    require_finite(restored["params"], f"{Path(root) / 'checkpoints'}/{step}")
    return graphdef, restored["params"], step


def export_actor(root: str | Path, dst: str | Path, params=None, step: int | None = None) -> Path:
    """Write the actor-only export of policy checkpoint `root` into `dst` (replaced if it is an
    export already; refused if it is anything else that is not empty). params/step: the actor to
    write (default: the latest checkpoint's). Returns `dst`."""
    root, dst = Path(root), Path(dst)
    info, cfg, stats = read_checkpoint(root)
    if params is None:
        _, params, step = restore_actor(root, cfg)
    if dst.exists() and any(dst.iterdir()):
        try:
            replace = read_info(dst).weights == "actor"
        except CheckpointError:
            replace = False
        if not replace:
            raise CheckpointError(f"{dst}: exists and is not a policy export; choose a new --out")
    tmp = dst.with_name(dst.name + ".writing")
    shutil.rmtree(tmp, ignore_errors=True)
    write_info(tmp, dataclasses.replace(info, weights="actor"), cfg, stats)
    save_tree(tmp, {"step": jnp.asarray(step, jnp.int32), "params": params}, step)
    for name in PROVENANCE:
        if (root / name).is_file():
            shutil.copy2(root / name, tmp / name)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)  # a reader sees the old export or the new one, never half of one
    return dst


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
        check_fits(root, info, cfg)
        graphdef, params, step = restore_actor(root, cfg)
        self.root, self.info, self.config, self.step = root, info, cfg, step
        self.params, self.graphdef, self.stats = params, graphdef, stats
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
    """The marker of a policy checkpoint whose files are all well-formed and agree
    (read_checkpoint); a one-line CheckpointError if not, or if the task or action size differ."""
    info, _, _ = read_checkpoint(path)
    if task is not None and info.task != task:
        raise CheckpointError(f"{path}: policy was trained for task {info.task!r}, not {task!r}")
    if action_dim is not None and info.action_dim != action_dim:
        raise CheckpointError(
            f"{path}: policy outputs {info.action_dim}-D actions, the task takes {action_dim}-D"
        )
    return info
