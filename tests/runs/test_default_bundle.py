"""The shipped drawer bundle: every part loads, fits the others and imagines (guards the files
committed under robolearn/bundles/ and the README's first command)."""

import json

import pytest
from robolearn.reward_models.checkpoint import read_info as read_reward_info
from robolearn.world_models.checkpoint import read_info

from robolearn import bundles
from robolearn.cli import main
from robolearn.policies.bc.checkpoint import check_compatible

MAX_BUNDLE_BYTES = 50_000_000  # all bundles together, as shipped in the package


def test_drawer_bundle_parts_are_shipped_and_fit_together():
    names = {p.name for p in bundles.list_parts()}
    assert {
        "bundle:drawer/world-model",
        "bundle:drawer/bc",
        "bundle:drawer/bc-3demos",
        "bundle:drawer/reward",
        "bundle:drawer/refined",
    } <= names
    wm = read_info(bundles.resolve("bundle:drawer/world-model"))
    bc = check_compatible(bundles.resolve("bundle:drawer/bc"), "drawer", 7)
    assert "drawer" in wm.tasks and wm.weights == "ema"
    assert (wm.image_size, wm.action_dim) == (bc.image_size, bc.action_dim)
    assert sum(p.size_bytes for p in bundles.list_parts()) <= MAX_BUNDLE_BYTES
    refined = check_compatible(bundles.resolve("bundle:drawer/refined"), "drawer", 7)
    assert (refined.kind, refined.parent) == ("ppo", "bundle:drawer/bc-3demos")
    reward = read_reward_info(bundles.resolve("bundle:drawer/reward"))
    assert "drawer" in reward.tasks and reward.image_size == wm.image_size
    assert 0.5 <= reward.threshold < 1.0
    card = bundles.card("drawer")
    for needed in (
        "robolearn train world-model",
        "robolearn train bc",
        "robolearn train reward",
        "robolearn refine",
        "PSNR",
    ):
        assert needed in card


LEVER = "metaworld/lever-pull-40hz"


def test_the_meta_world_bundle_has_the_four_parts_of_the_recipe_and_they_fit_together():
    parts = {p.part for p in bundles.list_parts() if p.task == LEVER}
    assert parts == {"world-model", "bc", "reward", "refined"}
    wm = read_info(bundles.resolve(f"bundle:{LEVER}/world-model"))
    assert list(wm.tasks) == [LEVER] and wm.weights == "ema"
    bc = check_compatible(bundles.resolve(f"bundle:{LEVER}/bc"), LEVER, 7)
    refined = check_compatible(bundles.resolve(f"bundle:{LEVER}/refined"), LEVER, 7)
    assert (refined.kind, refined.parent) == ("ppo", f"bundle:{LEVER}/bc")
    assert (wm.image_size, wm.action_dim) == (bc.image_size, bc.action_dim)
    reward = read_reward_info(bundles.resolve(f"bundle:{LEVER}/reward"))
    assert list(reward.tasks) == [LEVER] and reward.image_size == wm.image_size
    card = bundles.card(LEVER)
    for needed in (
        "robolearn train world-model --data",
        "--world-model",
        "robolearn refine",
        "96/150",
    ):
        assert needed in card


def test_reset_free_practice_finds_its_backward_parts_in_the_drawer_close_bundle():
    """`finetune --task drawer --backward-task drawer-close` with no parts named: the backward
    policy and classifier it defaults to are shipped, fit the drawer's frames, and are made as
    the card says."""
    from robolearn.runs.finetune import FinetuneConfig, _specs

    specs = _specs(FinetuneConfig(task="drawer", backward_task="drawer-close"))
    assert specs["backward_policy"] == "bundle:drawer-close/bc"
    assert specs["backward_reward"] == "bundle:drawer-close/reward"
    forward = check_compatible(bundles.resolve(specs["policy"]), "drawer", 7)
    backward = check_compatible(bundles.resolve(specs["backward_policy"]), "drawer-close", 7)
    assert (backward.kind, backward.image_size) == ("bc", forward.image_size)
    reward = read_reward_info(bundles.resolve(specs["backward_reward"]))
    assert list(reward.tasks) == ["drawer-close"] and reward.image_size == forward.image_size
    assert 0.0 < reward.threshold < 1.0
    card = bundles.card("drawer-close")
    for needed in ("robolearn train bc", "robolearn train reward", "148/150", "--backward-task"):
        assert needed in card


@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
def test_imagine_on_the_meta_world_task_uses_its_own_bundle(tmp_path, capsys):
    out = tmp_path / "im"
    argv = ["imagine", "--task", LEVER, "--horizon", "2", "--rollouts", "1", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["world_model"] == f"bundle:{LEVER}/world-model"
    assert result["policy"] == f"bundle:{LEVER}/bc"
    assert result["reward"]["classifier"] == f"bundle:{LEVER}/reward"
    assert f"predicted reward (bundle:{LEVER}/reward" in capsys.readouterr().out


@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
def test_imagine_with_no_flags_but_a_short_horizon_uses_the_bundle(tmp_path, capsys):
    out = tmp_path / "im"
    assert main(["imagine", "--horizon", "2", "--rollouts", "1", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["world_model"] == "bundle:drawer/world-model"
    assert result["policy"] == "bundle:drawer/bc"
    printed = capsys.readouterr().out
    assert "imagined vs real sim PSNR" in printed
    assert "predicted reward (bundle:drawer/reward" in printed
    assert result["reward"]["classifier"] == "bundle:drawer/reward"


def test_bundles_command_lists_parts_with_the_card(capsys):
    assert main(["bundles"]) == 0
    printed = capsys.readouterr().out
    assert "bundle:drawer/world-model" in printed and "bundle:drawer/bc" in printed
    assert "robolearn train world-model" not in printed  # the card only on request
    assert main(["bundles", "--card", "drawer"]) == 0
    assert "robolearn train world-model" in capsys.readouterr().out


@pytest.mark.parametrize("part", ["bc", "refined"])
def test_eval_takes_a_bundle_policy(tmp_path, capsys, part):
    argv = ["eval", "--task", "drawer", "--policy", f"bundle:drawer/{part}", "--episodes", "1"]
    assert main(argv + ["--video-episodes", "0", "--out", str(tmp_path), "--quiet"]) == 0
    assert f"drawer / bundle:drawer/{part}: success" in capsys.readouterr().out
