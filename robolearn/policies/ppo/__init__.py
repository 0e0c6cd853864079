"""PPO refinement of a pre-trained Gaussian actor (World4RL's second stage): config.py, the critic
(model.py), losses.py, the state and jitted update (train.py), checkpoint.py. Arrays in, arrays
out: the imagined episodes come from robolearn.imagination. Importing the package loads only the
config (no JAX), so the CLI can build its flags cheaply."""

from robolearn.policies.ppo.config import PPOConfig

__all__ = ["PPOConfig"]
