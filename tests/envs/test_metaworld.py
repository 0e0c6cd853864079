"""Meta-World adapter: registration, observations, action mapping, experts, seeded placement."""

import numpy as np
import pytest

from robolearn import envs
from robolearn.envs.base import TaskInfo
from robolearn.envs.metaworld import TASKS, register_all, task_infos

pytest.importorskip("metaworld")
pytestmark = pytest.mark.metaworld

NAMES = [info.name for info in task_infos()]


@pytest.fixture(scope="module", params=NAMES)
def task(request):
    task = envs.make(request.param)
    yield task
    task.close()


def test_register_all_registers_world4rl_tasks_and_drawers():
    got: dict[str, tuple[TaskInfo, str]] = {}
    register_all(lambda info, factory: got.__setitem__(info.name, (info, factory)))
    world4rl = ["coffee-pull", "soccer", "hammer", "door-lock", "lever-pull", "handle-pull"]
    slow = [f"{t}-40hz" for t in world4rl]
    assert set(got) == {f"metaworld/{t}" for t in world4rl + slow + ["drawer-open", "drawer-close"]}
    for info, factory in got.values():
        assert info.suite == "metaworld" and info.instruction
        assert "ignored" in info.action_meaning and "1 cm" in info.action_meaning
        assert factory == "robolearn.envs.metaworld:make_task"
        if info.name.endswith("-40hz"):  # World4RL's 50-step episodes: half the steps, same time
            full = got[info.name.removesuffix("-40hz")][0]
            assert info.control_hz == 40.0 and "2 cm per step" in info.action_meaning
            assert info.max_steps == full.max_steps // 2 and info.instruction == full.instruction
        else:
            assert info.control_hz == 80.0 and 50 <= info.max_steps <= 500


def test_40hz_variant_holds_each_action_for_two_metaworld_steps():
    fast = envs.make("metaworld/lever-pull", image_size=16)
    slow = envs.make("metaworld/lever-pull-40hz", image_size=16)
    try:
        up = np.array([0.3, 0, 1.0, 0, 0, 0, 1.0])
        fast.reset(seed=4)
        slow_obs, _ = slow.reset(seed=4)
        np.testing.assert_array_equal(fast.layout(), slow.layout())
        for _ in range(2):
            fast_obs, *_ = fast.step(up)
        slow_obs, _, _, truncated, info = slow.step(up)
        assert info["step"] == 1 and not truncated
        np.testing.assert_allclose(slow_obs["state"], fast_obs["state"], atol=1e-9)
        np.testing.assert_array_equal(slow_obs["image"], fast_obs["image"])
    finally:
        fast.close()
        slow.close()


def test_reset_step_render_and_proprio(task):
    obs, info = task.reset(seed=0)
    assert task.observation_space.contains(obs)
    image = obs["image"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 5.0
    assert obs["proprio"].shape == (7,) and obs["proprio"].dtype == np.float32
    np.testing.assert_allclose(obs["proprio"][3:6], 0.0, atol=0.15)  # gripper down = nominal
    assert 0.0 <= obs["proprio"][6] <= 1.0
    assert not info["success"] and info["instruction"] == task.task_info.instruction
    obs2, reward, terminated, truncated, info = task.step(np.array([0, 0, 1.0, 0, 0, 0, 1.0]))
    assert reward in (0.0, 1.0) and not terminated and not truncated and info["step"] == 1
    assert obs2["proprio"][2] > obs["proprio"][2]  # +dz moves the hand up
    assert np.array_equal(task.render(), obs2["image"])


def test_gripper_sign_is_bridge_convention():
    task = envs.make("metaworld/drawer-open", image_size=16)
    try:
        obs, _ = task.reset(seed=0)
        assert obs["proprio"][6] > 0.9  # Meta-World resets with the gripper open
        for _ in range(20):  # the fingers take ~15 steps to close
            obs, *_ = task.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
        assert obs["proprio"][6] < 0.4
        for _ in range(20):
            obs, *_ = task.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
        assert obs["proprio"][6] > 0.9
    finally:
        task.close()


def test_equal_seeds_equal_placement_different_seeds_different(task):
    a, _ = task.reset(seed=7)
    placement_a = task.layout()
    b, _ = task.reset(seed=7)
    np.testing.assert_array_equal(placement_a, task.layout())
    np.testing.assert_array_equal(a["state"], b["state"])
    np.testing.assert_array_equal(a["image"], b["image"])
    task.reset(seed=8)
    assert not np.allclose(placement_a, task.layout())


def test_visual_randomization_changes_the_image_not_the_placement():
    task = envs.make("metaworld/soccer", visual_randomization=True)
    try:
        a, _ = task.reset(seed=1)
        b, _ = task.reset(seed=1)
        np.testing.assert_array_equal(a["image"], b["image"])
        placement = task.layout()
        c, _ = task.reset(seed=2)
        assert not np.array_equal(a["image"], c["image"])
        assert not np.allclose(placement, task.layout())
    finally:
        task.close()


def test_expert_action_is_in_our_convention(task):
    task.reset(seed=0)
    action = task.expert_action()
    assert action.shape == (7,) and action.dtype == np.float32
    assert np.all(np.abs(action) <= 1.0) and np.all(action[3:6] == 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_expert_succeeds_within_max_steps(name):
    task = envs.make(name, image_size=16)
    try:
        task.reset(seed=0)
        for _ in range(task.max_steps):
            *_, info = task.step(task.expert_action())
            if info["success"]:
                break
        assert info["success"], f"{name}: expert failed on seed 0 within {task.max_steps} steps"
    finally:
        task.close()


def test_tasks_table_matches_metaworld():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.policies import ENV_POLICY_MAP

    for env_name, *_ in TASKS.values():
        assert env_name in ALL_V3_ENVIRONMENTS and env_name in ENV_POLICY_MAP
