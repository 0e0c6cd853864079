"""Behaviour cloning: a Gaussian actor pi(a | image, proprio) trained by NLL on demonstrations.

The configs import eagerly (no JAX, so the CLI can declare flags from them); the checkpoint API
(BCPolicy, load_policy, read_info, CheckpointError) loads JAX on first use.
"""

from robolearn.policies.bc.config import BCConfig, ModelConfig, TrainingConfig, preset

_LAZY = ("BCPolicy", "CheckpointError", "load_policy", "read_info")

__all__ = ["BCConfig", "ModelConfig", "TrainingConfig", "preset", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        from robolearn.policies.bc import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
