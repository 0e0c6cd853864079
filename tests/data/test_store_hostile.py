"""Damaged and forged episode files and stores: every reader answers with one EpisodeError line
naming the file, `data validate` flags exactly the files read_episode rejects, and `data info`
counts no file that validate rejects for a reason info could have seen."""

import json
import re
import struct

import numpy as np
import pytest
from corruptions import (
    flip_bits,
    npy,
    npy_of,
    overwrite,
    patch_central,
    rezip,
    splice,
    truncate,
    zip_regions,
)

from robolearn.cli import main
from robolearn.data.episode import ARRAY_KEYS, Episode, EpisodeMeta
from robolearn.data.inspect import summarize_store, validate_store
from robolearn.data.store import (
    MARKER,
    EpisodeError,
    create_store,
    list_episodes,
    open_store,
    read_episode,
    read_meta,
    read_outline,
    write_episode,
)

NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
# What only validate sees (read_outline skips these arrays' data): see summarize_store.
VALIDATE_ONLY = re.compile(
    r"key '(image|proprio|state|action)': corrupt array data"
    r"|malformed episode, (proprio|state|action): contains NaN or inf"
)


def tiny_episode(steps=3) -> Episode:
    rng = np.random.default_rng(0)
    return Episode(
        image=rng.integers(0, 256, (steps + 1, 8, 8, 3), dtype=np.uint8),
        proprio=rng.normal(size=(steps + 1, 7)).astype(np.float32),
        state=rng.normal(size=(steps + 1, 4)),
        action=rng.uniform(-1, 1, (steps, 7)).astype(np.float32),
        reward=np.arange(steps, dtype=np.float32),
        success=np.arange(steps + 1) >= steps,
        meta=EpisodeMeta(
            task="drawer",
            instruction="open the drawer",
            source="expert",
            fps=5.0,
            action_meaning="normalized",
            action_names=NAMES,
            seed=3,
            layout=(0.4, -0.1),
            extra={"id": "template"},
        ),
    )


def _meta_variants() -> list[bytes]:
    """meta.npy members: JSON of the wrong shape or types, and arrays that are no JSON string."""
    good = json.loads(json.dumps(tiny_episode().meta.__dict__))
    texts = ["[]", '"drawer"', "1", "null", "{}", "{", "[" * 50_000, '{"task": "\\ud800"}']
    for key, value in [
        ("task", 5),
        ("action_names", "abcdefg"),
        ("action_names", [1, 2, 3, 4, 5, 6, 7]),
        ("layout", "xyz"),
        ("extra", []),
        ("seed", "1"),
        ("seed", True),
        ("fps", "fast"),
        ("source", "alien"),
        ("surprise", 1),
    ]:
        texts.append(json.dumps({**good, key: value}))
    texts += [json.dumps({k: v for k, v in good.items() if k != drop}) for drop in ("task", "fps")]
    members = [npy_of(np.array(text)) for text in texts]
    members += [npy_of(np.array([json.dumps(good)] * 2)), npy_of(np.arange(3))]
    members.append(npy_of(np.array(json.dumps(good).encode())))  # bytes, not str
    return members


def _array_forgeries(template: bytes) -> list[bytes]:
    """Whole files whose zip is sound but whose arrays lie or break the episode contract."""
    image = npy_of(tiny_episode().image)
    payload = image[10 + struct.unpack("<H", image[8:10])[0] :]
    forged = [
        npy({"descr": "|u1", "fortran_order": False, "shape": (2**40, 8, 8, 3)}, payload),
        npy({"descr": "|u1", "fortran_order": False, "shape": (2**31, 2**31)}, payload),
        npy({"descr": "|u1", "fortran_order": False, "shape": (-1, 8, 8, 3)}, payload),
        npy({"descr": "|O", "fortran_order": False, "shape": (4,)}, payload),
        npy({"descr": "|V0", "fortran_order": False, "shape": (2**40,)}, b""),
        npy({"descr": [("a", "<f4")], "fortran_order": False, "shape": (4,)}, payload[:16]),
        npy({"descr": "|u1", "fortran_order": "yes", "shape": (4, 8, 8, 3)}, payload),
        npy({"descr": "|u1", "fortran_order": False, "shape": [4, 8, 8, 3]}, payload),
        npy({"descr": "|u1", "fortran_order": False, "shape": (4, 8, 8, 3)}, payload, (3, 0)),
        npy({"descr": "|u1", "fortran_order": False}, payload),
        npy("{" * 5000, payload),
        npy("not a dict at all", payload),
        npy({"descr": "|u1", "fortran_order": False, "shape": (4, 8, 8, 3)}, payload[:-1]),
        npy({"descr": "|u1", "fortran_order": False, "shape": (4, 8, 8, 3)}, payload + b"x"),
        b"\x93NUMPY\x09\x09" + image[8:],
        b"NOTNUMPY" + image[8:],
        image[:9],
        b"",
    ]
    files = [rezip(template, replace={"image.npy": member}) for member in forged]
    files += [rezip(template, replace={"meta.npy": member}) for member in _meta_variants()]
    ep = tiny_episode()
    for key, value in [
        ("image", ep.image.astype(np.float32)),
        ("image", ep.image[:, :, :, :2]),
        ("proprio", np.full_like(ep.proprio, np.nan)),
        ("state", np.full_like(ep.state, np.inf)),
        ("action", ep.action[:, :6]),
        ("reward", np.full_like(ep.reward, np.nan)),
        ("success", ep.success[:-1]),
        ("success", ep.success.astype(np.uint8)),
        ("action", ep.action.astype(">f4")),
        ("proprio", np.asfortranarray(ep.proprio)),  # Fortran order: still the same episode
    ]:
        files.append(rezip(template, replace={f"{key}.npy": npy_of(value)}))
    files += [rezip(template, drop={f"{key}.npy"}) for key in (*ARRAY_KEYS, "meta")]
    files.append(rezip(template, add={"image.npy": npy_of(ep.image[:2])}))  # stored twice
    files.append(rezip(template, add={"notes.txt": b"extra members are ignored"}))
    files.append(rezip(template, compression=0))  # stored, not deflated: still the same episode
    for method in (1, 12, 14, 99):
        files.append(patch_central(template, "image.npy", method=method))
    files.append(patch_central(template, "meta.npy", flags=1))  # "encrypted"
    for field, value in [("usize", 2**32 - 2), ("usize", 0), ("csize", 2**32 - 2), ("crc", 0)]:
        files.append(patch_central(template, "state.npy", **{field: value}))
    files.append(patch_central(template, "reward.npy", offset=2**32 - 2))
    return files


def corruptions(template: bytes, rng, count: int) -> list[bytes]:
    """`count` damaged copies of `template`: the forgeries above, then random bit flips,
    overwrites (anywhere, or in one part of the zip), truncations and splices."""
    files = _array_forgeries(template)
    regions = zip_regions(template)
    parts = [r for name in ("local", "data", "central", "end") for r in regions[name]]
    while len(files) < count:
        kind = int(rng.integers(6))
        region = parts[int(rng.integers(len(parts)))]
        if kind == 0:
            files.append(flip_bits(template, rng, count=int(rng.integers(1, 9))))
        elif kind == 1:
            files.append(flip_bits(template, rng, region, count=int(rng.integers(1, 4))))
        elif kind == 2:
            fill = [None, 0, 0xFF][int(rng.integers(3))]
            files.append(overwrite(template, rng, region if rng.random() < 0.7 else None, fill))
        elif kind == 3:
            files.append(truncate(template, rng))
        elif kind == 4:
            files.append(splice(template, rng))
        else:
            files.append(flip_bits(truncate(template, rng) + template[-22:], rng))
    return files[:count]


def _outcome(read, path) -> str | None:
    """None when `read(path)` succeeds, else its EpisodeError message (anything else raises)."""
    try:
        read(path)
    except EpisodeError as exc:
        return str(exc)
    return None


def _same(a: Episode, b: Episode) -> bool:
    return a.meta == b.meta and all(
        a_.dtype == b_.dtype and np.array_equal(a_, b_)
        for a_, b_ in ((getattr(a, k), getattr(b, k)) for k in ARRAY_KEYS)
    )


def test_fuzzed_episode_files_fail_as_one_line_naming_the_file(tmp_path, capsys):
    root = tmp_path / "store"
    create_store(root)
    original = tiny_episode()
    template = write_episode(root, original).read_bytes()
    files = corruptions(template, np.random.default_rng(17), count=500)
    episodes = root / "episodes"
    paths = []
    for i, data in enumerate(files, start=1):
        paths.append(episodes / f"ep-{i:06d}.npz")
        paths[-1].write_bytes(data)
    (episodes / f"ep-{len(paths) + 1:06d}.npz").mkdir()  # a directory where a file should be
    (episodes / f"ep-{len(paths) + 2:06d}.npz").symlink_to(tmp_path / "nowhere")
    paths += [episodes / f"ep-{len(paths) + k:06d}.npz" for k in (1, 2)]

    outline_bad, episode_bad = {}, {}
    for path in paths:
        meta, outline, episode = (
            _outcome(r, path) for r in (read_meta, read_outline, read_episode)
        )
        for message in (meta, outline, episode):
            assert message is None or (message.startswith(f"{path}: ") and "\n" not in message), (
                message
            )
        if meta is not None:
            assert outline is not None
        if outline is not None:
            assert episode is not None, outline  # what info rejects, validate rejects
            outline_bad[path] = outline
        if episode is not None:
            episode_bad[path] = episode
            if outline is None:  # info counts it: validate may only object to unread data
                assert VALIDATE_ONLY.search(episode), episode
        else:
            assert _same(read_episode(path), original), path  # nothing damaged reads silently
    assert len(episode_bad) > 0.8 * len(paths)  # the corruptions are real

    report = validate_store(root)
    assert report.bad == [episode_bad[p] for p in paths if p in episode_bad]
    assert report.episodes == 1 + len(paths) - len(episode_bad)
    groups, problems = summarize_store(root)
    assert sum(g.episodes for g in groups) == 1 + len(paths) - len(outline_bad)
    assert problems == [outline_bad[p] for p in paths if p in outline_bad]

    capsys.readouterr()
    assert main(["data", "validate", str(root)]) == 1
    out, err = capsys.readouterr()
    assert err == "" and out.splitlines()[:-1] == [f"bad: {line}" for line in report.bad]
    assert main(["data", "info", str(root)]) == 0
    out, err = capsys.readouterr()
    assert err == "" and [f"  problem: {p}" for p in problems] == [
        line for line in out.splitlines() if line.startswith("  problem: ")
    ]


@pytest.mark.parametrize(
    "content",
    [
        b"[]",
        b"{}",
        b"null",
        b"1",
        b"",
        b"\xff\xfe{\x00}",
        b"[" * 100_000,
        b" " * 70_000,
        json.dumps({"format": "robolearn-episodes", "version": "1"}).encode(),
        json.dumps({"format": "robolearn-episodes", "version": True}).encode(),
        json.dumps({"format": "robolearn-episodes", "version": 0}).encode(),
        json.dumps({"format": "robolearn-episodes"}).encode(),
        None,  # a directory where the marker should be
    ],
)
def test_damaged_store_markers_are_one_line_errors(tmp_path, capsys, content):
    root = tmp_path / "store"
    create_store(root)
    write_episode(root, tiny_episode())
    marker = root / MARKER
    if content is None:
        marker.unlink()
        marker.mkdir()
    else:
        marker.write_bytes(content)
    for call in (open_store, list_episodes, summarize_store, validate_store, create_store):
        with pytest.raises(EpisodeError) as caught:
            call(root)
        assert str(caught.value).startswith(f"{marker}: ") and "\n" not in str(caught.value)
    for command in ("info", "validate"):
        capsys.readouterr()
        assert main(["data", command, str(root)]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and str(marker) in err


def test_damaged_store_layout_is_a_one_line_error(tmp_path, capsys):
    root = tmp_path / "store"
    create_store(root)
    (root / "episodes").rmdir()
    (root / "episodes").write_bytes(b"not a directory")
    for call in (list_episodes, summarize_store, validate_store, create_store):
        with pytest.raises(EpisodeError, match="episodes: "):
            call(root)
    assert main(["data", "validate", str(root)]) == 2
    assert "episodes: " in capsys.readouterr().err
    with pytest.raises(EpisodeError, match="not a directory"):
        create_store(root / MARKER)
