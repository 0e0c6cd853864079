import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from robolearn.cli import main
from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.inspect import summarize_store, validate_store
from robolearn.data.store import (
    MARKER,
    EpisodeError,
    create_store,
    list_episodes,
    list_partial,
    open_store,
    read_episode,
    read_outline,
    write_episode,
)

NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")


def make_episode(steps=5, seed=0, source="expert") -> Episode:
    rng = np.random.default_rng(seed)
    meta = EpisodeMeta(
        task="drawer",
        instruction="open the drawer",
        source=source,
        fps=5.0,
        action_meaning="normalized",
        action_names=NAMES,
        policy="expert",
        seed=seed,
        layout=(0.4, -0.1, 0.2),
        extra={"note": "unit test"},
    )
    return Episode(
        image=rng.integers(0, 256, (steps + 1, 8, 8, 3), dtype=np.uint8),
        proprio=rng.normal(size=(steps + 1, 7)).astype(np.float32),
        state=rng.normal(size=(steps + 1, 4)),
        action=rng.uniform(-1, 1, (steps, 7)).astype(np.float32),
        reward=np.arange(steps, dtype=np.float32),
        success=np.arange(steps + 1) >= steps,
        meta=meta,
    )


def test_round_trip_keeps_every_field(tmp_path):
    create_store(tmp_path)
    episode = make_episode()
    path = write_episode(tmp_path, episode)
    back = read_episode(path)
    for key in ("image", "proprio", "state", "action", "reward", "success"):
        np.testing.assert_array_equal(getattr(back, key), getattr(episode, key), err_msg=key)
        assert getattr(back, key).dtype == getattr(episode, key).dtype
    assert back.meta == episode.meta and back.succeeded and back.num_steps == 5
    assert read_outline(path) == (episode.meta, 5, True)


def test_writers_append_and_never_overwrite(tmp_path):
    create_store(tmp_path)
    paths = [write_episode(tmp_path, make_episode(seed=s)) for s in range(3)]
    assert [p.name for p in paths] == ["ep-000000.npz", "ep-000001.npz", "ep-000002.npz"]
    assert list_episodes(tmp_path) == paths


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("action", np.zeros((5, 6), np.float32), r"action: expected shape \(5, 7\)"),
        ("image", np.zeros((6, 8, 8, 3), np.float32), "image: expected dtype uint8"),
        ("success", np.zeros(5, bool), r"success: expected shape \(6,\)"),
        ("proprio", np.full((6, 7), np.nan, np.float32), "proprio: contains NaN"),
    ],
)
def test_malformed_episodes_are_refused_naming_the_key(tmp_path, field, value, message):
    create_store(tmp_path)
    with pytest.raises(ValueError, match=message):
        write_episode(tmp_path, dataclasses.replace(make_episode(), **{field: value}))
    assert list_episodes(tmp_path) == [] and list_partial(tmp_path) == []


def test_a_partial_name_left_beside_its_published_episode_is_not_torn(tmp_path, capsys):
    """A writer killed after publishing ep-N.npz by hard link and before removing ep-N.partial
    lost nothing: validate reports no torn episode; a real torn .partial is still reported."""
    create_store(tmp_path)
    published = write_episode(tmp_path, make_episode(seed=0))
    os.link(published, published.with_suffix(".partial"))  # the kill's window
    assert list_partial(tmp_path) == [] and validate_store(tmp_path).ok
    assert main(["data", "validate", str(tmp_path)]) == 0
    torn = tmp_path / "episodes" / "ep-000001.partial"
    torn.write_bytes(b"PK\x03\x04 half an episode")
    assert list_partial(tmp_path) == [torn] and validate_store(tmp_path).torn == [torn]
    capsys.readouterr()
    assert main(["data", "validate", str(tmp_path)]) == 1
    assert "ep-000001.partial" in capsys.readouterr().out


def test_truncated_and_corrupted_files_are_named(tmp_path):
    create_store(tmp_path)
    good, cut, flipped = (write_episode(tmp_path, make_episode(seed=s)) for s in range(3))
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    data = bytearray(flipped.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside a member: the zip CRC catches it
    flipped.write_bytes(bytes(data))
    for path in (cut, flipped):
        with pytest.raises(EpisodeError, match=str(path)):
            read_episode(path)
    report = validate_store(tmp_path)
    assert report.episodes == 1 and not report.ok
    assert [line.split(":")[0] for line in report.bad] == [str(cut), str(flipped)]
    read_episode(good)


def test_store_directory_errors(tmp_path):
    with pytest.raises(EpisodeError, match="no such dataset directory"):
        open_store(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(EpisodeError, match="not an episode store"):
        open_store(tmp_path / "other")
    with pytest.raises(EpisodeError, match="not empty and not an episode store"):
        create_store(tmp_path / "other")
    create_store(tmp_path / "new")
    (tmp_path / "new" / MARKER).write_text(
        json.dumps({"format": "robolearn-episodes", "version": 99})
    )
    with pytest.raises(EpisodeError, match="newer than this robolearn reads"):
        open_store(tmp_path / "new")


def _collect(out, episodes, *extra):
    return [
        sys.executable,
        "-m",
        "robolearn.cli",
        "collect",
        "--task",
        "drawer",
        "--episodes",
        str(episodes),
        "--out",
        str(out),
        "--image-size",
        "16",
        "--quiet",
        *extra,
    ]


def test_sigkill_mid_episode_loses_only_that_episode(tmp_path):
    out = tmp_path / "store"
    proc = subprocess.Popen(
        _collect(out, 1000),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            episodes = sorted((out / "episodes").glob("*")) if (out / "episodes").exists() else []
            if sum(p.suffix == ".npz" for p in episodes) >= 2 and episodes[-1].suffix == ".partial":
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
        with proc.stderr:
            err = proc.stderr.read().decode()
    assert proc.returncode == -signal.SIGKILL, err
    complete = list_episodes(out)
    assert len(complete) >= 2
    for path in complete:
        assert read_episode(path).num_steps == 50  # every finished episode is whole
    report = validate_store(out)
    assert report.bad == []
    # the kill lands mid-episode (its .partial is torn) or, rarely (under load), between
    # publishing an episode and removing its .partial name (nothing torn, nothing lost)
    assert [p.name for p in report.torn] in ([f"ep-{len(complete):06d}.partial"], [])
    leftover = set((out / "episodes").glob("*.partial")) - set(report.torn)
    assert all(any(p.samefile(c) for c in complete) for p in leftover)
    _, problems = summarize_store(out)
    assert problems == [f"{report.torn[0]}: torn episode (its writer stopped before finishing it)"]


def test_collect_resumes_with_fresh_seeds_and_cli_reports(tmp_path, capsys):
    out = tmp_path / "store"
    assert main(_collect(out, 2)[3:]) == 0
    assert main(_collect(out, 1, "--policy", "random")[3:]) == 0
    metas = [read_episode(p).meta for p in list_episodes(out)]
    assert [m.source for m in metas] == ["expert", "expert", "random"]
    assert len({m.seed for m in metas}) == 3 and all(len(m.layout) == 3 for m in metas)
    assert all(m.extra == {} for m in metas)  # no robot-timing augmentation asked for
    assert (
        main(_collect(out, 1, "--camera-lag-max-s", "0.03", "--step-dwell-max-s", "0.02")[3:]) == 0
    )
    last = read_episode(list_episodes(out)[-1]).meta
    assert last.extra == {"camera_lag_max_s": 0.03, "step_dwell_max_s": 0.02}
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "4 episodes, 200 steps" in info and "random" in info
    assert main(["data", "validate", str(out)]) == 0
    assert "ok: 4 readable episodes (200 steps), 0 bad, 0 torn" in capsys.readouterr().out
    next(iter(list_episodes(out))).write_bytes(b"garbage")
    assert main(["data", "validate", str(out)]) == 1
    assert "bad: " in capsys.readouterr().out


def test_data_commands_on_a_missing_dir_are_one_line_errors(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("no such dataset directory") and len(err.splitlines()) == 1
