"""Hostile reward checkpoints: a malformed marker, config or stats.json, or a config that would
build an absurd classifier, is one CheckpointError line naming the file, before any parameter is
allocated (as tests/policies/test_policy_checkpoint_hostile.py checks in depth for policies)."""

import pytest
from corruptions import edit_json, edit_yaml, write
from robolearn.reward_models import checkpoint as ckpt
from robolearn.reward_models.config import RewardConfig

INFO = ckpt.RewardInfo("cnn", ("drawer",), {"drawer": "open the drawer"}, 16, 2.0, 0.5, 0.02)
STATS = ckpt.LabelStats({"train": 2}, {"train": {"drawer": {"positives": 1, "negatives": 3}}})
NOT_UTF8 = b"\xff\xfe\x80 not utf-8\n"


@pytest.fixture
def root(tmp_path):
    """A reward checkpoint's marker, config and stats (loading stops before the weights)."""
    ckpt.write_config(tmp_path, RewardConfig(), STATS)
    ckpt.write_info(tmp_path, INFO)
    return tmp_path


MARKER = ckpt.MARKER
CASES = {
    "marker-not-utf8": (write(MARKER, NOT_UTF8), MARKER),
    "marker-null": (write(MARKER, "null"), MARKER),
    "marker-temperature-nan": (edit_json(MARKER, temperature=float("nan")), MARKER),
    "marker-temperature-zero": (edit_json(MARKER, temperature=0.0), MARKER),
    "marker-instructions-list": (edit_json(MARKER, instructions=["open"]), MARKER),
    "marker-instruction-missing": (edit_json(MARKER, instructions={}), MARKER),
    "marker-no-tasks": (edit_json(MARKER, tasks=[]), MARKER),
    "config-not-utf8": (write("config.yaml", NOT_UTF8), "config.yaml"),
    "config-empty": (write("config.yaml", ""), "config.yaml"),
    "config-negative-channels": (edit_yaml("cnn", channels=[-16, 32]), "config.yaml"),
    "config-huge-hidden": (edit_yaml("cnn", hidden=10**12), "config.yaml"),
    "config-huge-image": (edit_yaml("cnn", image_size=10**6), "config.yaml"),
    "config-typo": (edit_yaml("cnn", hiden=8), "config.yaml"),
    "stats-not-utf8": (write("stats.json", NOT_UTF8), "stats.json"),
    "stats-list": (write("stats.json", "[1, 2]"), "stats.json"),
    "stats-number": (write("stats.json", "7"), "stats.json"),
    "stats-missing-key": (write("stats.json", '{"episodes": {}}'), "stats.json"),
}


def test_the_intact_files_read_back(root):
    assert ckpt.read_info(root) == INFO
    assert ckpt.read_config(root) == (RewardConfig(), STATS)


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_reward_checkpoint_is_one_checkpoint_error_line(root, case):
    corrupt, name = CASES[case]
    corrupt(root)
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_reward_model(root, "drawer")
    message = str(err.value)
    assert len(message.splitlines()) == 1 and name in message, message
