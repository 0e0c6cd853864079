"""Policies: arrays in, actions out. BC Gaussian actor (bc/); critics and PPO later.

Never imports robolearn.envs, world_models, reward_models or hardware (ARCHITECTURE.md).
"""
