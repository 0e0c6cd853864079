"""The presets in configs/: each loads strictly into its config class, `base` (and PPO's
`default`) equal the dataclass defaults, so the YAML and the code cannot drift apart."""

import pytest
from robolearn.reward_models.config import RewardConfig
from robolearn.world_models.config import WorldModelConfig

from robolearn.core.config import load_preset, preset_names
from robolearn.policies.bc.config import BCConfig
from robolearn.policies.ppo.config import PPOConfig

CLASSES = {
    "policy": BCConfig,
    "world_model": WorldModelConfig,
    "reward": RewardConfig,
    "ppo": PPOConfig,
}


@pytest.mark.parametrize("kind", CLASSES)
def test_every_preset_loads_and_names_itself(kind):
    names = preset_names(kind)
    assert names
    for name in names:
        cfg = load_preset(CLASSES[kind], name)
        assert getattr(cfg, "preset", name) == name


def test_the_defaults_are_the_base_presets():
    assert load_preset(BCConfig, "base") == BCConfig()
    assert load_preset(WorldModelConfig, "base") == WorldModelConfig()
    assert load_preset(RewardConfig, "base") == RewardConfig()
    assert load_preset(PPOConfig, "default") == PPOConfig()


def test_preset_values_that_matter():
    small = load_preset(WorldModelConfig, "small")
    assert small.model.channels == (32, 64, 96) and small.model.patch == 2
    assert small.training.ema_decay == 0.998 and small.optim.learning_rate == 3e-4
    assert load_preset(BCConfig, "tiny").training.shift_pad == 2
