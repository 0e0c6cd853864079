"""Writers appending to one store at once never lose or replace an episode: real processes, and
the interleavings that broke it, run by hand."""

import dataclasses
import errno
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from robolearn.data import store
from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.store import (
    claim_slot,
    commit_slot,
    create_store,
    list_episodes,
    list_partial,
    read_meta,
    write_episode,
)

META = EpisodeMeta(
    task="drawer",
    instruction="open the drawer",
    source="expert",
    fps=5.0,
    action_meaning="normalized",
    action_names=("dx",),
)


def tiny(tag: str) -> Episode:
    """A 2-step episode with 8x8 images, told apart by meta.extra["id"]."""
    return Episode(
        image=np.zeros((3, 8, 8, 3), np.uint8),
        proprio=np.zeros((3, 7), np.float32),
        state=np.zeros((3, 0)),
        action=np.zeros((2, 1), np.float32),
        reward=np.zeros(2, np.float32),
        success=np.zeros(3, bool),
        meta=dataclasses.replace(META, extra={"id": tag}),
    )


def ids(root) -> dict[str, str]:
    """{episode file name: its id} for every complete episode."""
    return {p.name: read_meta(p).extra["id"] for p in list_episodes(root)}


WRITER = textwrap.dedent(
    """
    import errno, os, sys, time
    from pathlib import Path

    sys.path.insert(0, sys.argv[5])
    from test_store_concurrent import tiny
    from robolearn.data.store import create_store, write_episode

    root, name, count, mode = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if mode == "nolink":  # as on a filesystem without hard links (FAT, some SMB mounts)
        def link(src, dst):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(dst))
        os.link = link
    (root.parent / f"ready-{name}").touch()
    while not (root.parent / "go").exists():
        time.sleep(0.001)
    create_store(root)  # both create the new store at once, then append
    for i in range(count):
        write_episode(root, tiny(f"{name}-{i}"))
    """
)


@pytest.mark.parametrize("mode,count", [("link", 200), ("nolink", 100)])
def test_two_writer_processes_lose_no_episode(tmp_path, mode, count):
    root = tmp_path / "store"
    here = os.path.dirname(__file__)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), name, str(count), mode, here],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in "ab"
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in "ab"):
        assert time.monotonic() < deadline and all(w.poll() is None for w in writers)
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for writer in writers:
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
    written = ids(root)
    assert sorted(written.values()) == sorted(f"{n}-{i}" for n in "ab" for i in range(count))
    assert sorted(written) == [f"ep-{i:06d}.npz" for i in range(2 * count)]
    assert list_partial(root) == []


def test_a_writer_paused_between_listing_and_claiming_replaces_nothing(tmp_path, monkeypatch):
    create_store(tmp_path)
    listed = store.next_index
    pause = [True]

    def next_index_then_pause(root):
        index = listed(root)
        if pause:  # while this writer is paused, another one finishes index 0
            pause.clear()
            write_episode(root, tiny("other"))
        return index

    monkeypatch.setattr(store, "next_index", next_index_then_pause)
    mine = write_episode(tmp_path, tiny("mine"))
    assert mine.name == "ep-000001.npz"
    assert ids(tmp_path) == {"ep-000000.npz": "other", "ep-000001.npz": "mine"}
    assert list_partial(tmp_path) == []


def _no_link(src, dst):
    raise PermissionError(errno.EPERM, "Operation not permitted", str(dst))


@pytest.mark.parametrize("publish", ["link", "locked rename", "unguarded rename"])
def test_commit_never_replaces_an_episode_that_took_its_index(tmp_path, monkeypatch, publish):
    root, elsewhere = create_store(tmp_path / "store"), create_store(tmp_path / "other")
    slot = claim_slot(root)
    assert slot.name == "ep-000000.partial"
    # A writer that ignores claims (an older robolearn, a copy by hand) puts index 0 in place.
    os.rename(write_episode(elsewhere, tiny("intruder")), root / "episodes" / "ep-000000.npz")
    if publish != "link":
        monkeypatch.setattr(os, "link", _no_link)
    if publish == "unguarded rename":
        monkeypatch.setattr(store, "fcntl", None)
    assert commit_slot(slot, tiny("mine")).name == "ep-000001.npz"
    assert ids(root) == {"ep-000000.npz": "intruder", "ep-000001.npz": "mine"}
    assert list_partial(root) == [] and not slot.exists()


def test_a_link_that_was_made_but_reported_as_existing_counts_as_committed(tmp_path, monkeypatch):
    create_store(tmp_path)
    link = os.link

    def nfs_link(src, dst):  # NFS answering a retransmitted, successful link
        link(src, dst)
        raise FileExistsError(errno.EEXIST, "File exists", str(dst))

    monkeypatch.setattr(os, "link", nfs_link)
    assert write_episode(tmp_path, tiny("mine")).name == "ep-000000.npz"
    assert ids(tmp_path) == {"ep-000000.npz": "mine"} and list_partial(tmp_path) == []


@pytest.mark.parametrize("fails", ["fsync", "link"])
def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch, fails):
    create_store(tmp_path)

    def broken(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, fails, broken)
    with pytest.raises(OSError, match="Input/output error"):
        write_episode(tmp_path, tiny("lost"))
    monkeypatch.undo()
    assert list(os.listdir(tmp_path / "episodes")) == []
    assert write_episode(tmp_path, tiny("next")).name == "ep-000000.npz"


def test_a_creator_that_sees_the_marker_appear_mid_check_joins_the_store(tmp_path, monkeypatch):
    # The interleaving that failed CI: this process finds no marker, another process then
    # finishes creating the same store, and this one lists the directory and finds the marker.
    root = tmp_path / "store"
    create_store(root)  # "the other process"
    write_episode(root, tiny("other"))
    real = os.path.lexists
    first = [True]

    def marker_not_yet_there(path):
        if first and str(path).endswith(store.MARKER):
            first.clear()
            return False
        return real(path)

    monkeypatch.setattr(store.os.path, "lexists", marker_not_yet_there)
    assert create_store(root) == root
    assert not first  # the race was exercised
    write_episode(root, tiny("mine"))
    assert ids(root) == {"ep-000000.npz": "other", "ep-000001.npz": "mine"}
    # A directory of other data is still refused.
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(store.EpisodeError, match="not empty and not an episode store"):
        create_store(tmp_path / "photos")
