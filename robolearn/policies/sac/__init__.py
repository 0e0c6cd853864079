"""The off-policy learner: SAC with an ensemble of LayerNorm critics over images, Cal-QL offline
pre-training, WSRL-style online fine-tuning from a BC or refined actor (config, model, losses,
the jitted update, the flashbax replay buffer)."""
