"""Self-describing BC checkpoint directories, and the policy object loaded from one.

Layout of a checkpoint (= training run) directory DIR:

    DIR/robolearn-policy.json  {"format": "robolearn-policy", "version": 1, "kind": "bc",
                                "task": ..., "action_dim": 7, "proprio_dim": 7, "image_size": 64}
    DIR/config.yaml            the BCConfig (model + optimizer) it was trained with
    DIR/stats.json             proprio normalization: {"proprio_mean": [P], "proprio_std": [P]}
    DIR/checkpoints/<step>/    orbax TrainState (params, optimizer state, rng, step)

Orbax writes each step to a temporary directory and renames it when complete, and only lists
complete steps, so `latest_step` after a kill is the last complete checkpoint. Nothing here
unpickles: orbax stores arrays (tensorstore) and JSON metadata, the rest is JSON and YAML.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp

# CheckpointError, make_manager and save_state are part of this module's interface too.
from robolearn.core.checkpoint import (  # noqa: F401
    CheckpointError,
    abstract_init,
    make_manager,
    read_config_and_stats,
    read_marker,
    save_state,
    write_config_and_stats,
    write_marker,
)
from robolearn.policies.bc.config import BCConfig
from robolearn.policies.bc.train import ProprioStats, TrainState, init_train_state, make_act_fn

FORMAT = "robolearn-policy"
VERSION = 1
MARKER = "robolearn-policy.json"
KINDS = ("bc", "ppo")


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


def write_info(root: Path, info: PolicyInfo, cfg: BCConfig, stats: ProprioStats) -> None:
    """Write the marker, config.yaml and stats.json of a new checkpoint directory."""
    write_config_and_stats(root, cfg, stats)
    write_marker(root, MARKER, FORMAT, VERSION, dataclasses.asdict(info))


def read_info(root: str | Path) -> PolicyInfo:
    """The PolicyInfo of a checkpoint directory; CheckpointError (one line) if it is not one."""
    missing = f"not a policy checkpoint (no {MARKER}); train one with `robolearn train bc`"
    data = read_marker(root, MARKER, FORMAT, VERSION, missing)
    try:
        info = PolicyInfo(**data)
    except TypeError as exc:
        raise CheckpointError(f"{Path(root) / MARKER}: malformed ({exc})") from exc
    if info.kind not in KINDS:
        raise CheckpointError(
            f"{Path(root) / MARKER}: unknown policy kind {info.kind!r} (known: {', '.join(KINDS)})"
        )
    return info


def read_config(root: str | Path) -> tuple[BCConfig, ProprioStats]:
    """The BCConfig and normalization stats of a checkpoint directory."""
    return read_config_and_stats(root, BCConfig, ProprioStats)


def restore_state(
    manager: ocp.CheckpointManager, cfg: BCConfig, step: int | None = None
) -> tuple[object, TrainState]:
    """(graphdef, state) of `step` (default: the latest complete one)."""
    step = manager.latest_step() if step is None else step
    if step is None:
        raise CheckpointError(f"{manager.directory}: holds no complete checkpoint")
    graphdef, abstract = abstract_init(lambda rng: init_train_state(cfg, rng))
    state = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return graphdef, state


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
