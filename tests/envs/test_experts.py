import numpy as np
import pytest

from robolearn import envs
from robolearn.envs.experts import ScriptedPolicy


@pytest.fixture(scope="module")
def drawer():
    task = envs.make("drawer", image_size=32)
    yield task
    task.close()


def test_modes_differ_as_documented(drawer):
    obs, _ = drawer.reset(seed=0)
    expert = ScriptedPolicy(drawer, "expert")(obs)
    assert np.allclose(expert, np.clip(drawer.expert_action(), -1, 1))
    noisy = ScriptedPolicy(drawer, "noisy", noise_std=0.3, seed=1)(obs)
    assert not np.allclose(noisy, expert) and np.all(np.abs(noisy) <= 1)
    rand = [ScriptedPolicy(drawer, "random", seed=2)(obs) for _ in range(2)]
    assert np.array_equal(rand[0], rand[1])  # same seed, same stream
    assert rand[0].dtype == np.float32 and rand[0].shape == (7,)


def test_noise_is_reproducible_per_seed(drawer):
    obs, _ = drawer.reset(seed=0)
    a = ScriptedPolicy(drawer, "noisy", seed=5)
    b = ScriptedPolicy(drawer, "noisy", seed=5)
    assert np.array_equal(a(obs), b(obs))


def test_bad_mode_and_noise(drawer):
    with pytest.raises(ValueError, match="expert, noisy, random"):
        ScriptedPolicy(drawer, "expret")
    with pytest.raises(ValueError, match="noise_std"):
        ScriptedPolicy(drawer, "noisy", noise_std=float("nan"))
