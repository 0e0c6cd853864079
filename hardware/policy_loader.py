"""Loading a trained policy for the bridge (jax is imported only when a policy is loaded)."""

from __future__ import annotations

from pathlib import Path

from robolearn import bundles
from robolearn.core.errors import ConfigError
from robolearn.core.spec import ACTION_DIM


def load_policy(spec: str, task: str = "drawer", image_size: int = 64, seed: int = 0):
    """A BC/PPO checkpoint directory or shipped part (`bundle:drawer/bc`) as a bridge policy.

    Returns `policy({"image": uint8 [S, S, 3], "proprio": float32 [7]}) -> float32 [7]` (the mean
    action). One-line errors (robolearn.core.errors.RobolearnError) for a missing path, a
    malformed checkpoint (any of its files, NaN or inf statistics or weights: CheckpointError),
    another task, or another image size.
    """
    from robolearn.policies.bc.checkpoint import CheckpointError, check_compatible
    from robolearn.policies.bc.checkpoint import load_policy as load_checkpoint

    path = bundles.resolve(spec)
    if not Path(path).exists():
        raise ConfigError(f"no policy at {spec!r}: give a checkpoint directory or bundle:TASK/PART")
    info = check_compatible(path, task, ACTION_DIM)
    if info.image_size != image_size:
        raise CheckpointError(
            f"{spec}: policy sees {info.image_size}x{info.image_size} images, the bridge sends "
            f"{image_size}x{image_size}; set image_size {info.image_size}"
        )
    return load_checkpoint(path, task, ACTION_DIM, seed=seed)
