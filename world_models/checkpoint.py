"""Self-describing world-model checkpoint directories, and the frozen model loaded from one.

    DIR/robolearn-world-model.json  {"format": "robolearn-world-model", "version": 1,
                                     "tasks": [...], "image_size": 64, "context": 4,
                                     "action_dim": 7, "proprio_dim": 7, "weights": "train"}
    DIR/config.yaml                 the WorldModelConfig (model, EDM, sampler, optimizer,
                                    training)
    DIR/stats.json                  proprio normalization (robolearn.core.normalize.NormStats):
                                    {"mean": [P], "std": [P], "delta_std": [P]}
    DIR/checkpoints/<step>/         orbax: the whole TrainState ("weights": "train"), or only
                                    {"step", "ema"} ("weights": "ema", what bundles ship)

Loading never unpickles (orbax arrays + JSON + YAML); orbax lists only complete steps, so after
a kill the latest step is the last complete checkpoint. An older config.yaml, with ema_decay and
proprio_weight under `optim` (now `training`), is migrated on reading (migrate_config).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx
from robolearn.world_models.config import WorldModelConfig
from robolearn.world_models.train import init_model, init_train_state

# CheckpointError, make_manager and save_state are part of this module's interface too.
from robolearn.core.checkpoint import (  # noqa: F401
    STATS,
    CheckpointError,
    CheckpointFiles,
    CheckpointFormat,
    abstract_init,
    make_manager,
    move_keys,
    on_this_device,
    require_finite,
    restore,
    restore_latest,
    save_state,
)
from robolearn.core.errors import ConfigError
from robolearn.core.normalize import NormStats

FORMAT = "robolearn-world-model"
VERSION = 1
MARKER = "robolearn-world-model.json"


@dataclasses.dataclass(frozen=True)
class WorldModelInfo:
    """What a checkpoint was trained on (robolearn-world-model.json)."""

    tasks: tuple[str, ...]
    image_size: int
    context: int
    action_dim: int
    proprio_dim: int
    weights: str = "train"


def migrate_config(data: dict) -> dict:
    """config.yaml before robolearn.core.optim: ema_decay and proprio_weight sat in `optim`."""
    return move_keys(data, "optim", "training", ("ema_decay", "proprio_weight"))


CHECKPOINT = CheckpointFormat(
    FORMAT, VERSION, WorldModelInfo, "world-model", "robolearn train world-model"
)
FILES = CheckpointFiles(WorldModelConfig, NormStats, migrate_config)
read_info = CHECKPOINT.read_info  # (root) -> WorldModelInfo; one-line CheckpointErrors


def write_info(root: Path, info: WorldModelInfo, cfg: WorldModelConfig, stats: NormStats) -> None:
    """Write config.yaml, stats.json and the marker of a new checkpoint directory."""
    FILES.write(root, cfg, stats)
    CHECKPOINT.write_info(root, info)


def read_config(root: str | Path) -> tuple[WorldModelConfig, NormStats]:
    """The WorldModelConfig and proprio statistics of a checkpoint (old layouts migrated); a
    one-line CheckpointError when either is malformed, or the statistics have no delta_std or
    are not the model's proprio_dim long."""
    cfg, stats = FILES.read(root)
    if stats.delta_std is None:  # the proprio head's outputs are scaled by it
        raise CheckpointError(f"{root}: broken checkpoint ({STATS} has no delta_std)")
    if stats.mean.shape != (cfg.model.proprio_dim,):
        raise CheckpointError(
            f"{root}: broken checkpoint ({STATS} holds {len(stats.mean)}-D statistics, "
            f"config.yaml has model.proprio_dim {cfg.model.proprio_dim})"
        )
    return cfg, stats


def restore_train_state(manager: ocp.CheckpointManager, cfg: WorldModelConfig, step=None):
    """(graphdef, TrainState) of `step` (default: the latest complete one)."""
    return restore_latest(manager, lambda rng: init_train_state(cfg, rng), step)


class FrozenWorldModel:
    """A trained world model for inference: EMA weights, config, stats, info.

    graphdef/params: the model as (static, arrays), for pure functions
    (robolearn.world_models.sampler). sampler: the SamplerConfig to use: the checkpoint's, with the
    fields given at load replaced
        (e.g. {"steps": 5, "method": "heun"}).
    """

    def __init__(self, root: Path, info: WorldModelInfo, sampler: dict | None = None):
        cfg, stats = read_config(root)
        self.root, self.info, self.stats = root, info, stats
        self.config = cfg
        try:
            # replaced in the whole config, which checks it against the model (context noise)
            self.sampler = dataclasses.replace(
                cfg, sampler=dataclasses.replace(cfg.sampler, **(sampler or {}))
            ).sampler
        except (TypeError, ConfigError) as exc:
            raise ConfigError(f"sampler override: {exc}") from exc
        manager = make_manager(root)
        try:
            step = manager.latest_step()
            if step is None:
                raise CheckpointError(f"{root}: holds no complete checkpoint")
            if info.weights == "ema":
                graphdef, params = abstract_init(lambda rng: nnx.split(init_model(cfg, rng)))
                step_shape = jax.ShapeDtypeStruct((), jnp.int32)
                abstract = on_this_device({"step": step_shape, "ema": params})
                restored = restore(manager, step, ocp.args.StandardRestore(abstract))
                self.graphdef, self.params = graphdef, restored["ema"]
            else:
                self.graphdef, state = restore_train_state(manager, cfg, step)
                self.params = state.ema
            self.step = int(step)
        finally:
            manager.close()
        require_finite(self.params, f"{root / 'checkpoints'}/{self.step}")

    def model(self):
        """The NNX module with the EMA weights."""
        return nnx.merge(self.graphdef, self.params)


def load_world_model(
    path: str | Path,
    task: str | None = None,
    action_dim: int | None = None,
    sampler: dict | None = None,
) -> FrozenWorldModel:
    """Load a checkpoint directory; refuses one not trained on `task` or for another action size."""
    root = Path(path)
    info = read_info(root)
    if task is not None and task not in info.tasks:
        raise CheckpointError(
            f"{path}: world model was trained on {', '.join(info.tasks)}, not {task!r}"
        )
    if action_dim is not None and info.action_dim != action_dim:
        raise CheckpointError(
            f"{path}: world model takes {info.action_dim}-D actions, the task has {action_dim}-D"
        )
    return FrozenWorldModel(root, info, sampler)


def export_ema(src: str | Path, dst: str | Path) -> Path:
    """Copy a training checkpoint's latest EMA weights (no optimizer state, no raw weights) to a
    new, smaller checkpoint directory `dst` (what bundles ship)."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise CheckpointError(f"{dst}: exists and is not empty; export into a new directory")
    frozen = load_world_model(src)
    info = dataclasses.replace(frozen.info, weights="ema")
    write_info(dst, info, frozen.config, frozen.stats)
    manager = make_manager(dst, max_to_keep=1)
    try:
        state = {"step": jnp.asarray(frozen.step, jnp.int32), "ema": frozen.params}
        manager.save(frozen.step, args=ocp.args.StandardSave(state), force=True)
        manager.wait_until_finished()
    finally:
        manager.close()
    return dst
