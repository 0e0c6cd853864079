"""RLDS / Open X-Embodiment episodes (BridgeData V2) converted to store episodes.

An RLDS TFRecord holds one `tf.train.Example` per episode with every step's values concatenated
under `steps/<key>` (N = number of steps):

    steps/observation/image_0..3        N JPEG images
    steps/observation/state             float32 [N*7]
    steps/action                        float32 [N*7]
    steps/language_instruction          N strings
    steps/reward, steps/discount        float32 [N]
    steps/is_first/is_last/is_terminal  int64 [N]
    episode_metadata/...                per-episode values (file_path, episode_id, has_image_i)

Time alignment. RLDS step i holds the observation o_i and the action a_i taken at it, so N steps
have N observations and N actions; a store episode has T actions and T+1 observations. We keep all
N observations and the first T = N-1 actions: the final step's action has no observation after it
(in RLDS it is often padding, and at best its outcome was never recorded), so it is dropped.

    image, proprio [T+1] = o_0 .. o_{N-1}        action, reward [T] = a_0 .. a_{N-2}, r_0 .. r_{N-2}

The dropped step's reward r_{N-1} is added to reward[T-1], so the return is kept (Bridge gives a
sparse 1 on the final step of a finished demo).

Success (heuristic, RLDS has no success flag): success[i] = is_terminal_i, or the reward after the
action leading to o_i is positive (r_{i-1} > 0); for the final observation also r_{N-1} > 0.
A shard cut short (no is_last step) records `truncated: true` in meta.extra.

Actions, BridgeData V2 convention (found on the real data: xyz deltas within +-0.033 m, rpy deltas
within +-0.26 rad, gripper continuous in [0, 1] with 1 = open, as the state's gripper opening
~1.0 while the action is 1 and falling after it goes to 0) are normalized to [-1, 1]:

    dxyz / 0.05 m,  drpy / 0.25 rad,  gripper 2*g - 1 (+1 open, -1 closed)

then clipped to [-1, 1]; meta.extra["clipped_action_values"] counts the values clipped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from robolearn.core.errors import ConfigError
from robolearn.core.spec import ACTION_DIM, ACTION_NAMES
from robolearn.core.spec import PROPRIO_DIM as STATE_DIM
from robolearn.data.episode import Episode, EpisodeMeta
from robolearn.data.tfrecord import TFRecordError, Value, iter_examples

XYZ_SCALE_M = 0.05
RPY_SCALE_RAD = 0.25
BRIDGE_FPS = 5.0
DEFAULT_IMAGE_KEY = "observation/image_0"
ACTION_MEANING = (
    "BridgeData V2 (imported): a[:3]*0.05 m end-effector delta xyz, a[3:6]*0.25 rad delta "
    "roll/pitch/yaw, a[6] gripper absolute: +1 open, -1 closed (source g in [0, 1] -> 2g-1)"
)


@dataclasses.dataclass(frozen=True)
class RldsConfig:
    """How RLDS episodes become store episodes.

    image_key: the camera, as in the source without the `steps/` prefix (None: the first image
        feature of the dataset's features.json, else DEFAULT_IMAGE_KEY).
    image_size: resize frames to [image_size, image_size] (INTER_AREA; non-square frames are
        stretched); None keeps the source size.
    task: the task name written into every episode's meta.
    """

    image_key: str | None = None
    image_size: int | None = None
    task: str = "bridge"

    def __post_init__(self):
        if self.image_size is not None and not 8 <= self.image_size <= 1024:
            raise ConfigError(f"image_size must be in 8..1024 pixels, got {self.image_size}")
        if not self.task:
            raise ConfigError("task name must not be empty")


def normalize_bridge_action(action: np.ndarray) -> tuple[np.ndarray, int]:
    """BridgeData actions [T, 7] in physical units -> float32 [T, 7] in [-1, 1], #values clipped."""
    action = np.asarray(action, dtype=np.float64)
    out = np.empty_like(action)
    out[:, :3] = action[:, :3] / XYZ_SCALE_M
    out[:, 3:6] = action[:, 3:6] / RPY_SCALE_RAD
    out[:, 6] = 2.0 * action[:, 6] - 1.0
    clipped = int(np.count_nonzero(np.abs(out) > 1.0))
    return np.clip(out, -1.0, 1.0).astype(np.float32), clipped


def iter_rlds_episodes(
    path: str | Path, cfg: RldsConfig
) -> Iterator[tuple[int, Episode | None, str]]:
    """Yield (byte offset, episode, note) for every record of an RLDS TFRecord file.

    `episode` is None for a record that cannot make an episode (fewer than 2 steps); `note`
    says why. Errors (missing keys, bad JPEG, wrong sizes) raise TFRecordError naming the file
    and the record's byte offset.
    """
    path = Path(path)
    for offset, features in iter_examples(path):
        where = f"{path}: record at byte {offset}"
        steps = _num_steps(features, where)
        if steps < 2:
            yield offset, None, f"{where}: {steps} step(s), need 2 or more; skipped"
            continue
        yield offset, rlds_to_episode(features, cfg, path, offset), ""


def rlds_to_episode(
    features: dict[str, Value], cfg: RldsConfig, path: Path, offset: int = 0
) -> Episode:
    """One decoded RLDS Example (see the module docstring) -> an Episode with T = N-1 steps."""
    where = f"{path}: record at byte {offset}"
    n = _num_steps(features, where)
    state = _float_steps(features, "observation/state", n, STATE_DIM, where)
    raw_action = _float_steps(features, "action", n, ACTION_DIM, where)
    reward_src = _scalar_steps(features, "reward", n, where, default=0.0)
    terminal = _scalar_steps(features, "is_terminal", n, where, default=0.0) > 0
    is_last = _scalar_steps(features, "is_last", n, where, default=0.0) > 0

    action, clipped = normalize_bridge_action(raw_action[:-1])
    reward = reward_src[:-1].astype(np.float32)
    reward[-1] += reward_src[-1]
    success = terminal.copy()
    success[1:] |= reward_src[:-1] > 0
    success[-1] |= reward_src[-1] > 0

    instructions = _strings(features, "language_instruction")
    distinct = list(dict.fromkeys(s for s in instructions if s))
    extra = {
        "source_file": str(path),
        "source_offset": offset,
        "source_steps": n,
        "image_key": _image_key(features, cfg.image_key or DEFAULT_IMAGE_KEY, where),
        "keys": sorted(features),
        "episode_metadata": _metadata(features),
        "clipped_action_values": clipped,
        "dropped_final_action": raw_action[-1].tolist(),
        "truncated": not bool(is_last.any()),
    }
    if len(distinct) > 1:
        extra["instructions"] = distinct
    meta = EpisodeMeta(
        task=cfg.task,
        instruction=distinct[0] if distinct else "",
        source="imported",
        fps=BRIDGE_FPS,
        action_meaning=ACTION_MEANING,
        action_names=ACTION_NAMES,
        policy=f"rlds:{path.stem}",
        extra=extra,
    )
    return Episode(
        image=_images(features, extra["image_key"], n, cfg.image_size, where),
        proprio=state.astype(np.float32),
        state=np.zeros((n, 0), np.float64),
        action=action,
        reward=reward,
        success=success,
        meta=meta,
    )


def _num_steps(features: dict[str, Value], where: str) -> int:
    for key in ("steps/is_first", "steps/reward", "steps/language_instruction"):
        if key in features:
            return len(features[key])
    if "steps/action" in features:
        return len(features["steps/action"]) // ACTION_DIM
    raise TFRecordError(f"{where}: not an RLDS episode (no steps/is_first or steps/action key)")


def _require(features: dict[str, Value], key: str, where: str) -> Value:
    if f"steps/{key}" not in features:
        found = ", ".join(k for k in sorted(features) if k.startswith("steps/")) or "none"
        raise TFRecordError(f"{where}: missing RLDS key steps/{key} (step keys: {found})")
    return features[f"steps/{key}"]


def _float_steps(features, key: str, n: int, dim: int, where: str) -> np.ndarray:
    value = _require(features, key, where)
    if not isinstance(value, np.ndarray) or value.dtype != np.float32 or value.size != n * dim:
        size = len(value)
        raise TFRecordError(
            f"{where}: steps/{key} should be {n}x{dim} floats, got {size} values of "
            f"{'bytes' if isinstance(value, list) else value.dtype}"
        )
    if not np.all(np.isfinite(value)):
        raise TFRecordError(f"{where}: steps/{key} contains NaN or inf")
    return value.reshape(n, dim)


def _scalar_steps(features, key: str, n: int, where: str, default: float) -> np.ndarray:
    value = features.get(f"steps/{key}")
    if value is None:
        return np.full(n, default, np.float64)
    if isinstance(value, list) or value.size != n:
        raise TFRecordError(f"{where}: steps/{key} should hold {n} numbers, got {len(value)}")
    return value.astype(np.float64)


def _strings(features, key: str) -> list[str]:
    value = features.get(f"steps/{key}", [])
    if not isinstance(value, list):
        return []
    return [v.decode("utf-8", errors="replace").strip() for v in value]


def _metadata(features) -> dict:
    out = {}
    for key, value in features.items():
        if not key.startswith("episode_metadata/"):
            continue
        if isinstance(value, list):
            items = [v.decode("utf-8", errors="replace") for v in value]
        else:
            items = value.tolist()
        out[key.removeprefix("episode_metadata/")] = items[0] if len(items) == 1 else items
    return out


def _image_key(features, key: str, where: str) -> str:
    key = key.removeprefix("steps/")
    if f"steps/{key}" not in features:
        images = [k[6:] for k in sorted(features) if k.startswith("steps/") and "image" in k]
        raise TFRecordError(
            f"{where}: no image key {key!r}; use --image-key with one of: "
            f"{', '.join(images) or 'none (this file has no images)'}"
        )
    return key


def _images(features, key: str, n: int, size: int | None, where: str) -> np.ndarray:
    jpegs = features[f"steps/{key}"]
    if not isinstance(jpegs, list) or len(jpegs) != n:
        raise TFRecordError(f"{where}: steps/{key} should hold {n} encoded images")
    frames = []
    for i, data in enumerate(jpegs):
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise TFRecordError(f"{where}: steps/{key} step {i} is not a decodable image")
        if size is not None and bgr.shape[:2] != (size, size):
            bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
        if frames and bgr.shape != frames[0].shape:
            raise TFRecordError(
                f"{where}: steps/{key} step {i} is {bgr.shape[1]}x{bgr.shape[0]}, step 0 is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}; pass --image-size to resize"
            )
        frames.append(bgr)
    return np.ascontiguousarray(np.stack(frames)[..., ::-1])


TFDS_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"


@dataclasses.dataclass(frozen=True)
class RldsInputs:
    """The TFRecord files an import reads, in order, and what TFDS metadata says about them.

    records: path -> the record count dataset_info.json gives for that shard (checked on read).
    image_keys: the image features under steps/ that features.json lists; None without one.
    """

    files: tuple[Path, ...]
    records: dict[Path, int]
    image_keys: tuple[str, ...] | None


def rlds_inputs(paths: list[str | Path]) -> RldsInputs:
    """Expand files and TFDS dataset directories into the shards to import, in order.

    A directory with dataset_info.json yields every shard of every split it lists (in its order,
    shards by index; a missing shard is an error naming it); without one, its *.tfrecord* files in
    name order. features.json, where present, gives the image keys.
    """
    files: list[Path] = []
    records: dict[Path, int] = {}
    keys: set[str] | None = None
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        shards, counts = _dataset_shards(path)
        files += shards
        records.update(counts)
        features = path / "features.json"
        if features.is_file():
            keys = (keys or set()) | set(_image_features(_read_json(features)))
    return RldsInputs(tuple(files), records, None if keys is None else tuple(sorted(keys)))


def _dataset_shards(root: Path) -> tuple[list[Path], dict[Path, int]]:
    info_path = root / "dataset_info.json"
    if not info_path.is_file():
        shards = sorted(p for p in root.iterdir() if ".tfrecord" in p.name and p.is_file())
        if not shards:
            raise TFRecordError(f"{root}: no dataset_info.json and no *.tfrecord* files")
        return shards, {}
    info = _read_json(info_path)
    name, fmt = str(info.get("name", "")), str(info.get("fileFormat", "tfrecord"))
    if fmt != "tfrecord":
        raise TFRecordError(f"{info_path}: fileFormat {fmt!r}; only tfrecord shards are read")
    shards, counts = [], {}
    for split in info.get("splits", []):
        lengths = [int(n) for n in split.get("shardLengths", [])]
        template = split.get("filepathTemplate", TFDS_TEMPLATE)
        found = []
        for i, length in enumerate(lengths):
            shard = root / (
                template.replace("{DATASET}", name)
                .replace("{SPLIT}", str(split.get("name", "")))
                .replace("{FILEFORMAT}", fmt)
                .replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{len(lengths):05d}")
                .replace("{SHARD_INDEX}", f"{i:05d}")
            )
            if not shard.is_file():
                raise TFRecordError(
                    f"{info_path}: split {split.get('name')!r} has {len(lengths)} shards; "
                    f"{shard.name} is missing"
                )
            found.append(shard)
            counts[shard] = length
        shards += found
    if not shards:
        raise TFRecordError(f"{info_path}: lists no shards (splits/shardLengths)")
    return shards, counts


def _image_features(node, prefix: tuple[str, ...] = ()) -> list[str]:
    """Paths (without steps/) of the Image features of a TFDS features.json, depth first."""
    if not isinstance(node, dict):
        return []
    found = []
    if str(node.get("pythonClassName", "")).endswith("image_feature.Image") and prefix[:1] == (
        "steps",
    ):
        found.append("/".join(prefix[1:]))
    features = node.get("featuresDict", {}).get("features", {})
    for key, child in features.items() if isinstance(features, dict) else ():
        found += _image_features(child, (*prefix, key))
    sequence = node.get("sequence", {}).get("feature")
    return found + _image_features(sequence, prefix)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TFRecordError(f"{path}: unreadable JSON ({' '.join(str(exc).split())})") from exc
