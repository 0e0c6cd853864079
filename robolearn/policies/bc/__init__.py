"""Behaviour cloning: a Gaussian actor pi(a | image, proprio) trained by NLL on demonstrations."""

from robolearn.policies.bc.checkpoint import BCPolicy, CheckpointError, load_policy, read_info
from robolearn.policies.bc.config import PRESETS, BCConfig, ModelConfig, OptimConfig

__all__ = [
    "PRESETS",
    "BCConfig",
    "BCPolicy",
    "CheckpointError",
    "ModelConfig",
    "OptimConfig",
    "load_policy",
    "read_info",
]
