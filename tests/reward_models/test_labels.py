"""RoboFuME's labelling recipe on synthetic episodes, indices worked by hand."""

import numpy as np
import pytest
from robolearn.reward_models.config import LabelConfig
from robolearn.reward_models.labels import (
    IGNORED,
    NEGATIVE,
    POSITIVE,
    LabelError,
    balanced_batch,
    flag_labels,
    frame_labels,
    label_dataset,
    paraphrases,
    split_episodes,
    success_runs,
)


def flags(n, *runs):
    """success bool [n], True on each [start, end) of `runs`."""
    s = np.zeros(n, bool)
    for a, b in runs:
        s[a:b] = True
    return s


def indices(labels, value):
    return np.flatnonzero(labels == value).tolist()


def test_success_runs():
    assert success_runs(flags(10)) == []
    assert success_runs(flags(10, (0, 2), (5, 10))) == [(0, 2), (5, 10)]


def test_episode_that_succeeds_mid_way_and_stays_successful():
    # 30 frames, success from frame 20 to the end: positives 27-29 (the last 3), frames 20-26
    # of the run and the 10 before it (10-19) left out, 0-9 negative.
    labels = frame_labels(flags(30, (20, 30)))
    assert indices(labels, POSITIVE) == [27, 28, 29]
    assert indices(labels, IGNORED) == list(range(10, 27))
    assert indices(labels, NEGATIVE) == list(range(10))


def test_episode_that_undoes_its_success():
    # 40 frames, success 15-19 only: positives 17-19 (end of its last run), left out 5-16 and
    # the 10 frames after the run (20-29), negatives 0-4 and 30-39.
    labels = frame_labels(flags(40, (15, 20)))
    assert indices(labels, POSITIVE) == [17, 18, 19]
    assert indices(labels, IGNORED) == list(range(5, 17)) + list(range(20, 30))
    assert indices(labels, NEGATIVE) == list(range(5)) + list(range(30, 40))


def test_positives_come_from_the_last_of_several_runs():
    # runs 3-4 and 25-29 of 30 frames: an earlier success frame is never a negative.
    labels = frame_labels(flags(30, (3, 5), (25, 30)))
    assert indices(labels, POSITIVE) == [27, 28, 29]
    assert indices(labels, NEGATIVE) == []  # 0-2 before run 1, 5-14 after it, 15-24 before run 2
    labels = frame_labels(flags(30, (3, 5), (25, 30)), LabelConfig(ambiguous_before=2))
    assert indices(labels, POSITIVE) == [27, 28, 29]
    assert indices(labels, NEGATIVE) == [0] + list(range(7, 23))


def test_short_run_and_configurable_counts():
    labels = frame_labels(flags(12, (10, 12)), LabelConfig(positives_last=5, ambiguous_before=3))
    assert indices(labels, POSITIVE) == [10, 11]
    assert indices(labels, IGNORED) == [7, 8, 9]
    assert indices(labels, NEGATIVE) == list(range(7))


def test_failed_episode_is_all_negative():
    assert indices(frame_labels(flags(8)), NEGATIVE) == list(range(8))


def test_dataset_labels_with_another_task():
    # Episode 0 (task a, 15 frames, success 12-14), episode 1 (task a, failed, 4 frames),
    # episode 2 (task b, 5 frames, success 3-4). Frames are numbered across episodes.
    successes = [flags(15, (12, 15)), flags(4), flags(5, (3, 5))]
    out = label_dataset(successes, ["a", "a", "b"], ["a"])
    pairs = sorted(zip(out.frame.tolist(), out.label.tolist(), strict=True))
    positives = [f for f, y in pairs if y]
    negatives = [f for f, y in pairs if not y]
    assert positives == [12, 13, 14]
    assert negatives == [0, 1] + [15, 16, 17, 18] + [19, 20, 21, 22, 23]
    assert set(out.task.tolist()) == {0}
    assert out.counts(["a"]) == {"a": {"positives": 3, "negatives": 11}}
    # Covering both tasks: b's own recipe on its episode, a's frames negatives for b.
    both = label_dataset(successes, ["a", "a", "b"], ["a", "b"], LabelConfig(ambiguous_before=2))
    b = both.task == 1
    assert sorted(both.frame[b & both.label].tolist()) == [22, 23]
    assert sorted(both.frame[b & ~both.label].tolist()) == list(range(19)) + [19]
    # Other tasks' frames left out when they may be successes of this task too.
    off = label_dataset(successes, ["a", "a", "b"], ["a"], LabelConfig(other_tasks_negative=False))
    assert off.frame.max() < 19


def test_no_positive_is_a_one_line_error():
    with pytest.raises(LabelError) as err:
        label_dataset([flags(20), flags(20)], ["drawer", "drawer"], ["drawer"])
    message = str(err.value)
    assert "nothing positive to learn from" in message and "none of its 2 episodes" in message
    assert "robolearn collect --task drawer --policy expert" in message and "\n" not in message


def test_flag_labels_use_every_frame_of_the_own_task():
    out = flag_labels([flags(4, (2, 4)), flags(3, (0, 3))], ["a", "b"], ["a"])
    assert out.frame.tolist() == [0, 1, 2, 3] and out.label.tolist() == [0, 0, 1, 1]


def test_split_keeps_whole_episodes_and_a_success_on_each_side():
    successes = [flags(5, (4, 5))] * 6 + [flags(5)] * 4
    tasks = ["a"] * 10
    train, val = split_episodes(successes, tasks, ["a"], 0.3, seed=0)
    assert sorted(train.tolist() + val.tolist()) == list(range(10))
    assert sum(v < 6 for v in val) == 2 and sum(v >= 6 for v in val) == 1
    assert split_episodes(successes, tasks, ["a"], 0.3, seed=0)[1].tolist() == val.tolist()
    with pytest.raises(LabelError, match="1 successful episode"):
        split_episodes([flags(5, (4, 5)), flags(5)], ["a", "a"], ["a"], 0.5)


def test_balanced_batch_is_half_positive():
    label = np.array([True] + [False] * 99)
    idx = balanced_batch(np.random.default_rng(0), label, 8)
    assert label[idx].tolist() == [True] * 4 + [False] * 4


def test_paraphrases_are_deterministic():
    p = paraphrases("Open the drawer.")
    assert p[0] == "open the drawer" and "did the robot open the drawer?" in p
    assert len(set(p)) == len(p) >= 5 and paraphrases("Open the drawer.") == p
