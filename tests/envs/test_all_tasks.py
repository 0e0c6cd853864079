"""Every registered task honours the one task contract (robolearn/envs/base.py)."""

import numpy as np
import pytest

from robolearn import envs
from robolearn.core.errors import ActionError, ConfigError, UnknownTaskError

SUITE_MARKS = {"metaworld": [pytest.mark.metaworld], "robosuite": [pytest.mark.robosuite]}


def _params():
    return [
        pytest.param(name, id=name, marks=SUITE_MARKS.get(envs.task_info(name).suite, []))
        for name in envs.task_names()
    ]


def test_the_required_tasks_are_registered():
    names = set(envs.task_names())
    assert {"drawer", "drawer-close"} <= names
    assert len([n for n in names if envs.task_info(n).suite == "widowx"]) >= 3
    world4rl = ["coffee-pull", "soccer", "hammer", "door-lock", "lever-pull", "handle-pull"]
    assert {f"metaworld/{t}" for t in world4rl + ["drawer-open", "drawer-close"]} <= names
    assert {"robosuite/lift", "robosuite/door"} <= names


@pytest.mark.parametrize("name", _params())
def test_task_resets_steps_and_renders(name):
    task = envs.make(name, image_size=32)
    try:
        assert task.action_space.shape == (7,)
        obs, info = task.reset(seed=3)
        assert task.observation_space.contains(obs), {k: (v.shape, v.dtype) for k, v in obs.items()}
        assert obs["image"].shape == (32, 32, 3) and obs["image"].dtype == np.uint8
        assert obs["image"].std() > 1.0, "the camera sees a blank image"
        assert info["task"] == name and info["instruction"] and info["step"] == 0
        assert isinstance(info["success"], bool)
        for t in range(2):
            obs, reward, terminated, truncated, info = task.step(task.action_space.sample())
            assert info["step"] == t + 1 and reward in (0.0, 1.0)
            assert not terminated and not truncated
        assert np.array_equal(task.render(), obs["image"])
        assert np.all(np.isfinite(obs["proprio"])) and np.all(np.isfinite(obs["state"]))
        expert = np.asarray(task.expert_action())
        assert expert.shape == (7,) and np.all(np.abs(expert) <= 1.0)
        # the return to the start pose of reset-free practice: WidowX arms only, refused
        # before anything changes elsewhere
        if task.RETURNS_TO_START:
            obs, info = task.continue_as(name, return_to_start=True)
            assert info["at_start"] and info["step"] == 0 and info["return_steps"] >= 1
        else:
            with pytest.raises(ConfigError, match="cannot move its arm back to the start pose"):
                task.continue_as(name, return_to_start=True)
            assert task.task_info.name == name and task.step(np.zeros(7))[4]["step"] == 3
    finally:
        task.close()


def test_bad_actions_name_the_task_and_the_expected_shape():
    task = envs.make("drawer")
    try:
        task.reset(seed=0)
        with pytest.raises(ActionError, match=r"task 'drawer'.*shape \(7,\).*got shape \(4,\)"):
            task.step(np.zeros(4))
        with pytest.raises(ActionError, match=r"task 'drawer'.*NaN/inf in dy, gripper"):
            task.step(np.array([0, np.nan, 0, 0, 0, 0, np.inf]))
        with pytest.raises(ActionError, match=r"task 'drawer'.*must be numbers"):
            task.step(["a"] * 7)
        obs, *_ = task.step(np.full(7, 5.0))  # out of range is clipped, not an error
        assert obs["image"].shape == (64, 64, 3)
    finally:
        task.close()


def test_unknown_task_lists_close_matches():
    with pytest.raises(UnknownTaskError, match=r"unknown task 'drawr'.*did you mean: drawer"):
        envs.make("drawr")
    with pytest.raises(UnknownTaskError, match=r"metaworld/hammer"):
        envs.task_info("hammer")


def test_bad_config_values_are_rejected():
    with pytest.raises(ValueError, match=r"image_size must be an integer in \[16, 256\]"):
        envs.make("drawer", image_size=512)
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        envs.TaskConfig(max_steps=0)
