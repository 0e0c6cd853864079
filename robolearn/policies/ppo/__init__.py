"""PPO refinement of a pre-trained Gaussian actor (World4RL's second stage): config, critic,
losses, state and the jitted update. Arrays in, arrays out: the imagined episodes come from
robolearn.imagination."""

from robolearn.policies.ppo.config import PPOConfig
from robolearn.policies.ppo.train import RefineState, Trajectory, init_refine_state, make_update

__all__ = ["PPOConfig", "RefineState", "Trajectory", "init_refine_state", "make_update"]
