"""Opening and checking a robosuite / robomimic HDF5 demo file before anything is converted.

The layout is described in robolearn.data.robomimic. `inspect_file` reads the attributes (env,
robots, controller, control rate, robosuite version) and checks every demo's arrays (shapes,
finite actions and states, the obs keys the import will read) without decoding any image, so a
bad file fails in one line, naming the file and the key, before a store is touched.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection
from pathlib import Path

import numpy as np

from robolearn.core.errors import ConfigError, RobolearnError
from robolearn.core.spec import ACTION_DIM

POS_SCALE_M = 0.05  # robosuite's default OSC_POSE output_max
ROT_SCALE_RAD = 0.5
OSC_OUTPUT_MAX = (POS_SCALE_M,) * 3 + (ROT_SCALE_RAD,) * 3
DEFAULT_FPS = 20.0  # robosuite's default control_freq
_DEMO = re.compile(r"^demo_(\d+)$")
_PROPRIO_OBS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")


class RobomimicError(RobolearnError, ValueError):
    """A robosuite / robomimic HDF5 file that cannot be read or converted."""


@dataclasses.dataclass(frozen=True)
class RobomimicConfig:
    """How demonstrations become store episodes.

    task: the task name written into each episode (None: the replaying task's, e.g.
        robosuite/lift, else robomimic/<env name>). camera: the obs/<camera>_image to import, or
        the camera to render (None: agentview's images if present, else the first; rendering: the
        task's camera). max_steps: keep the first N actions of each demo. demos: only these.
    """

    task: str | None = None
    image_size: int = 64
    camera: str | None = None
    max_steps: int | None = None
    demos: tuple[str, ...] = ()

    def __post_init__(self):
        if not 16 <= self.image_size <= 256:
            raise ConfigError(f"image_size must be in 16..256 pixels, got {self.image_size}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {self.max_steps}")
        if self.task == "":
            raise ConfigError("task name must not be empty")


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """What `inspect_file` found: env, robots, version, rate, controller, demos and their sizes."""

    path: Path
    env_name: str
    robots: tuple[str, ...]
    version: str
    fps: float
    controller: str
    state_size: int
    demos: tuple[tuple[str, int], ...]  # (name, N) in file order (demo_1, demo_2, ..., demo_10)
    image_key: str | None  # obs/<key> to import, None: render
    replay: bool  # whether the env is one the caller can replay

    @property
    def camera(self) -> str | None:
        """The camera of image_key."""
        return self.image_key.removesuffix("_image") if self.image_key else None

    def steps(self, cfg: RobomimicConfig) -> int:
        """Actions the import writes: sum over demos of min(N-1, max_steps)."""
        return sum(length(n, cfg) for _, n in self.demos if n >= 2)

    def observations(self, cfg: RobomimicConfig) -> int:
        """Observations the import makes (one replayed state each, when replaying)."""
        return sum(length(n, cfg) + 1 for _, n in self.demos if n >= 2)


def inspect_file(path: str | Path, cfg: RobomimicConfig, replayable: Collection[str]) -> FileInfo:
    """Open and check a file before anything is written: attributes, controller, every demo's
    arrays (shapes, finite actions and states), the obs keys needed. `replayable`: the env names
    the caller can replay. Errors name the file and the key at fault."""
    h5py = h5py_module()
    path = Path(path)
    if not path.is_file():
        raise RobomimicError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            return _inspect(f, path, cfg, replayable)
    except OSError as exc:
        raise RobomimicError(f"{path}: not a readable HDF5 file ({_one_line(exc)})") from exc


def length(n: int, cfg: RobomimicConfig) -> int:
    return n - 1 if cfg.max_steps is None else min(n - 1, cfg.max_steps)


def _inspect(f, path: Path, cfg: RobomimicConfig, replayable: Collection[str]) -> FileInfo:
    if "data" not in f:
        raise RobomimicError(f"{path}: no group 'data'; not a robosuite / robomimic demo file")
    data = f["data"]
    env_name, meta = _env_meta(data, path)
    names = sorted((k for k in data if _DEMO.match(k)), key=lambda k: int(_DEMO.match(k)[1]))
    if not names:
        raise RobomimicError(f"{path}: data holds no demo_<i> groups (found: {', '.join(data)})")
    if cfg.demos:
        missing = [d for d in cfg.demos if d not in names]
        if missing:
            raise RobomimicError(
                f"{path}: no demo {missing[0]!r}; the file has {', '.join(names[:20])}"
            )
        names = [n for n in names if n in cfg.demos]
    replay = env_name in replayable
    image_key = _image_key(data[names[0]], path, names[0], cfg, replayable, env_name)
    sizes = []
    for name in names:
        sizes.append(_check_demo(data[name], f"{path}: data/{name}", image_key, replay))
    state_sizes = {s for _, s in sizes}
    if len(state_sizes) > 1:
        raise RobomimicError(f"{path}: demos have states of different sizes {sorted(state_sizes)}")
    robots = meta.get("robots", ())
    return FileInfo(
        path=path,
        env_name=env_name,
        robots=(robots,) if isinstance(robots, str) else tuple(robots),
        version=_text(data.attrs.get("repository_version", "unknown")),
        fps=float(meta.get("control_freq", DEFAULT_FPS)),
        controller=_controller(meta, path),
        state_size=state_sizes.pop(),
        demos=tuple((name, n) for name, (n, _) in zip(names, sizes, strict=True)),
        image_key=image_key,
        replay=replay,
    )


def _env_meta(data, path: Path) -> tuple[str, dict]:
    """(env name, settings: robots, controller_configs, control_freq) from env_args or env_info."""
    if "env_args" in data.attrs:
        args = _json_attr(data, "env_args", path)
        return str(args.get("env_name", "")), dict(args.get("env_kwargs", {}))
    if "env" not in data.attrs:
        raise RobomimicError(f"{path}: data has neither attribute env nor env_args; which env?")
    info = _json_attr(data, "env_info", path) if "env_info" in data.attrs else {}
    return _text(data.attrs["env"]), info


def _controller(meta: dict, path: Path) -> str:
    """Check that actions are OSC_POSE deltas at robosuite's default scale; describe it."""
    config = meta.get("controller_configs")
    if not config:
        return "not recorded (OSC_POSE delta assumed)"
    if "body_parts" in config:  # robosuite >= 1.5: a composite controller; the arm's part
        parts = config["body_parts"]
        config = parts.get("right") or next(iter(parts.values()), {})
    kind = config.get("type")
    delta = config.get("control_delta", config.get("input_type", "delta") == "delta")
    scale = config.get("output_max", OSC_OUTPUT_MAX)
    scale = [scale] * 6 if np.isscalar(scale) else scale
    if kind != "OSC_POSE" or not delta or not np.allclose(scale, OSC_OUTPUT_MAX):
        raise RobomimicError(
            f"{path}: data attrs controller_configs: {kind} (delta {delta}, output_max {scale}); "
            "only OSC_POSE deltas of 0.05 m / 0.5 rad per unit map onto robolearn's actions"
        )
    return "OSC_POSE delta, output_max 0.05 m / 0.5 rad"


def _image_key(demo, path, name, cfg, replayable: Collection[str], env_name: str) -> str | None:
    """The obs/<camera>_image to import, or None to render (see RobomimicConfig.camera)."""
    keys = sorted(k for k in demo.get("obs", {}) if k.endswith("_image"))
    if cfg.camera is not None and f"{cfg.camera}_image" in keys:
        return f"{cfg.camera}_image"
    if cfg.camera is None and keys:
        return "agentview_image" if "agentview_image" in keys else keys[0]
    if env_name in replayable:
        return None
    version = _text(demo.file["data"].attrs.get("repository_version", "unknown"))
    what = f"no obs/{cfg.camera}_image" if cfg.camera else "no image observations (obs/<cam>_image)"
    raise RobomimicError(
        f"{path}: data/{name}: {what}, and robosuite env {env_name!r} (recorded with robosuite "
        f"{version}) has no robolearn task to replay its states in (robolearn replays: "
        f"{', '.join(sorted(replayable)) or 'none'})"
        + (f"; image keys: {', '.join(keys)}" if keys else "")
    )


def _check_demo(demo, where: str, image_key: str | None, replay: bool) -> tuple[int, int]:
    """(N, state size) of one demo, after checking its arrays."""
    for key in ("actions", "states"):
        if key not in demo:
            raise RobomimicError(f"{where}: missing dataset {key!r} (has {', '.join(demo)})")
    actions, states = demo["actions"], demo["states"]
    n = actions.shape[0] if actions.ndim == 2 else -1
    if actions.ndim != 2 or actions.shape[1] != ACTION_DIM:
        raise RobomimicError(
            f"{where}/actions: shape {list(actions.shape)}, need [N, 7] (OSC_POSE: dxyz, "
            "axis-angle, gripper)"
        )
    if states.ndim != 2 or states.shape[0] != n or states.shape[1] < 2:
        raise RobomimicError(f"{where}/states: shape {list(states.shape)}, need [{n}, S]")
    for key, arr in (("actions", actions), ("states", states)):
        if not np.all(np.isfinite(np.asarray(arr, np.float64))):
            raise RobomimicError(f"{where}/{key}: contains NaN or inf")
    for key in ("rewards", "dones"):
        if key in demo and demo[key].shape != (n,):
            raise RobomimicError(f"{where}/{key}: shape {list(demo[key].shape)}, need [{n}]")
    needed = ([image_key] if image_key else []) + ([] if replay else list(_PROPRIO_OBS))
    obs = demo.get("obs", {})
    for key in needed:
        if key not in obs:
            raise RobomimicError(f"{where}: missing obs/{key}, needed without a replay")
        if obs[key].shape[0] != n:
            raise RobomimicError(f"{where}/obs/{key}: {obs[key].shape[0]} rows, need {n}")
    return n, states.shape[1]


def _json_attr(data, key: str, path: Path) -> dict:
    try:
        value = json.loads(_text(data.attrs[key]))
    except json.JSONDecodeError as exc:
        raise RobomimicError(f"{path}: data attrs {key}: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise RobomimicError(f"{path}: data attrs {key}: not a JSON object")
    return value


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def h5py_module():
    import h5py  # the workstation extra; a robot install gets core.optional's one-line error

    return h5py
