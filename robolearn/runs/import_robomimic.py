"""`robolearn data import robomimic`: robosuite / robomimic HDF5 demonstrations -> an episode store.

Each file is checked first (robolearn.data.robomimic.inspect_file: attributes, controller, every
demo's arrays), and the replay of each env is built and checked against the recorded state size,
before the store is created. Demos of an env robolearn has a robosuite task for (Lift, Door) are
replayed state by state in that task (RobosuiteReplay); others import from their obs/ alone.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from robolearn.core.flags import flag
from robolearn.core.progress import Progress
from robolearn.core.rundir import RunOptions, make_run_dir
from robolearn.data.robomimic import (
    FileInfo,
    ReplayObs,
    RobomimicConfig,
    RobomimicError,
    inspect_file,
    iter_episodes,
)
from robolearn.data.store import create_store, write_episode
from robolearn.envs.robosuite import TASKS
from robolearn.runs.import_data import finish_summary

# robosuite env name -> our task's short name (robosuite/<short>).
REPLAYABLE = {env: short for short, (env, *_) in TASKS.items()}


class RobosuiteReplay:
    """A robolearn robosuite task that sets recorded states and observes them (a
    robolearn.data.robomimic.Replay).

    Built from the env name (the recorded model_file XML of older robosuite versions does not load
    in ours); the task's own camera, proprio (base frame, as collected episodes have it), the
    env's reward() and _check_success() make the observations.
    """

    def __init__(self, info: FileInfo, cfg: RobomimicConfig):
        import robosuite

        from robolearn import envs
        from robolearn.envs.render import Camera

        short = REPLAYABLE[info.env_name]
        if info.robots not in ((), ("Panda",)):
            raise RobomimicError(
                f"{info.path}: data attrs robots: {', '.join(info.robots)}; robolearn's "
                f"{info.env_name} replays the Panda only"
            )
        self.task = f"robosuite/{short}"
        self._camera = None
        self._task = envs.make(self.task, image_size=cfg.image_size)
        model = self._task._model
        size = 1 + model.nq + model.nv
        if info.state_size != size:
            self.close()
            raise RobomimicError(
                f"{info.path}: data/demo_*/states hold {info.state_size} values a step, robosuite "
                f"{robosuite.__version__}'s {info.env_name} has {size} (time, {model.nq} qpos, "
                f"{model.nv} qvel): recorded with robosuite {info.version} in another scene; "
                "cannot replay"
            )
        camera = cfg.camera or TASKS[short][3]
        if info.image_key is None and camera != TASKS[short][3]:
            names = [model.camera(i).name for i in range(model.ncam)]
            if camera not in names:
                self.close()
                raise RobomimicError(
                    f"{info.path}: no camera {camera!r} in robosuite's {info.env_name}; "
                    f"cameras: {', '.join(names)}"
                )
            self._camera = Camera(model, cfg.image_size, camera)
        self.instruction = self._task.task_info.instruction
        self.description = (
            f"replayed in robosuite {robosuite.__version__} {info.env_name} (scene built from the "
            "env name, not the recorded model_file): sim.set_state_from_flattened + forward per "
            f"state; camera {camera}"
        )

    def observe(self, flat_state: np.ndarray, render: bool) -> ReplayObs:
        """Set a recorded state, forward, and read image, proprio, reward and success."""
        env = self._task._env
        env.sim.set_state_from_flattened(flat_state)
        env.sim.forward()
        image = None
        if render:
            image = self._camera.render(self._task._data) if self._camera else self._task._image()
        return ReplayObs(
            image=image,
            proprio=np.asarray(self._task._proprio(), np.float64),
            reward=float(env.reward(None)),
            success=bool(env._check_success()),
        )

    def close(self) -> None:
        """Release the camera and the env."""
        if self._camera is not None:
            self._camera.close()
        self._task.close()


def import_robomimic(
    paths: list[str | Path], out_dir: str | Path | None, cfg: RobomimicConfig, progress=True
) -> dict:
    """Convert every demo of every file into the store at `out_dir` (None: a new run directory).

    Returns a summary: files, episodes, steps, successful episodes, skipped demos, clipped action
    values, input bytes, seconds, episodes per second, MB per second and the store directory.
    """
    infos = [inspect_file(p, cfg, REPLAYABLE) for p in paths]
    replays: dict[str, RobosuiteReplay] = {}
    try:
        for info in infos:
            if info.replay and info.env_name not in replays:
                replays[info.env_name] = RobosuiteReplay(info, cfg)
        store = create_store(make_run_dir(out_dir, "import", "robomimic"))
        return _write(infos, replays, store, cfg, progress)
    finally:
        for replay in replays.values():
            replay.close()


def _write(infos: list[FileInfo], replays: dict, store: Path, cfg, progress: bool) -> dict:
    summary = dict.fromkeys(("episodes", "steps", "successful", "skipped", "clipped"), 0)
    summary["files"] = len(infos)
    summary["input_bytes"] = sum(info.path.stat().st_size for info in infos)
    start = time.perf_counter()
    bar = Progress(sum(info.observations(cfg) for info in infos), "obs", progress)
    seen = [0]

    def step():
        seen[0] += 1
        bar.update(seen[0], f"{summary['episodes']} episodes written")

    try:
        for info in infos:
            for _, episode, note in iter_episodes(info, cfg, replays.get(info.env_name), step):
                if episode is None:
                    summary["skipped"] += 1
                    print(f"skipped: {note}", file=sys.stderr)
                    continue
                write_episode(store, episode)
                summary["episodes"] += 1
                summary["steps"] += episode.num_steps
                summary["successful"] += episode.succeeded
                summary["clipped"] += episode.meta.extra["clipped_action_values"]
    finally:
        bar.close()
    return finish_summary(summary, start, store)


@dataclasses.dataclass(frozen=True)
class ImportRobomimicConfig:
    """What `robolearn data import robomimic` converts: robosuite / robomimic HDF5 demo files
    (data/demo_i/{states, actions, obs/..., rewards, dones}). Lift and Door demos are replayed
    state by state in robolearn's robosuite task (images rendered unless the file has them,
    proprio, reward and success from the simulator); other envs need obs/<camera>_image and the
    robot0 eef obs. Actions: OSC_POSE deltas mapped to the 7-D convention of robolearn's
    robosuite tasks (rpy instead of axis-angle, gripper +1 open); the final action of each demo,
    which has no next state, is dropped."""

    paths: tuple[str, ...] = dataclasses.field(
        default=(), metadata=flag(positional=True, metavar="FILE")
    )
    """robosuite / robomimic .hdf5 files"""
    task: str | None = None
    """task name written into each episode (default: the replaying task, e.g. robosuite/lift)"""
    image_size: int = 64
    """image side in pixels (rendered, or obs images resized)"""
    camera: str | None = None
    """camera: the obs/<camera>_image to import, or the camera to render (default: agentview)"""
    max_steps: int | None = None
    """keep only the first N actions of each demo (rendering runs at ~13 steps/s)"""
    demo: tuple[str, ...] = ()
    """import only this demo (repeatable), e.g. demo_1"""


def main(cfg: ImportRobomimicConfig, options: RunOptions) -> None:
    """`robolearn data import robomimic`: import and print what was written."""
    robomimic = RobomimicConfig(
        task=cfg.task,
        image_size=cfg.image_size,
        camera=cfg.camera,
        max_steps=cfg.max_steps,
        demos=cfg.demo,
    )
    result = import_robomimic(list(cfg.paths), options.out, robomimic, options.progress)
    print(
        f"imported {result['episodes']} episodes, {result['steps']} steps from "
        f"{result['files']} file(s), {result['successful']} successful "
        f"({result['episodes_per_second']:.2f} episodes/s; {result['skipped']} skipped, "
        f"{result['clipped']} action values clipped to [-1, 1])"
    )
    print(f"store: {result['out']}")
