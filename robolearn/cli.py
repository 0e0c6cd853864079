"""`robolearn <command>`: argument parsing and dispatch only; the work lives in robolearn.runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from robolearn import cli_refine, cli_reward, cli_world
from robolearn.core.errors import RobolearnError


def _cmd_tasks(args: argparse.Namespace) -> None:
    from robolearn import envs

    suites = ["widowx", "metaworld", "robosuite"]
    infos = sorted(
        (envs.task_info(n) for n in envs.task_names()),
        key=lambda i: (suites.index(i.suite) if i.suite in suites else 9, i.name),
    )
    if args.suite:
        infos = [i for i in infos if i.suite == args.suite]
    if args.json:
        print(json.dumps([dataclasses.asdict(i) for i in infos], indent=2))
        return
    width = max(len(i.name) for i in infos)
    print(f"{'task':<{width}}  {'suite':<9}  {'rate':>6}  {'steps':>5}  instruction")
    for i in infos:
        print(
            f"{i.name:<{width}}  {i.suite:<9}  {i.control_hz:>4.0f}Hz  {i.max_steps:>5}  "
            f"{i.instruction}"
        )
    print(
        "\naction (7-D, normalized to [-1, 1]): delta xyz, delta roll/pitch/yaw, gripper (+1 open)"
    )
    seen: dict[str, list[str]] = {}  # one line per distinct meaning, e.g. Meta-World at 80/40 Hz
    for i in infos:
        meanings = seen.setdefault(i.suite, [])
        if i.action_meaning not in meanings:
            meanings.append(i.action_meaning)
    for suite, meanings in seen.items():
        for meaning in meanings:
            print(f"  {suite}: {meaning}")


def _check_run_args(cfg) -> None:
    """Task name, image size, episode length and policy of an eval/collect config, checked
    before any output directory is created (each failure is a one-line error)."""
    from robolearn import envs
    from robolearn.runs.eval import check_policy

    envs.task_info(cfg.task)
    envs.TaskConfig(image_size=cfg.image_size, max_steps=cfg.max_steps)
    check_policy(cfg, cfg.task, envs.ACTION_DIM)


def _cmd_eval(args: argparse.Namespace) -> None:
    from robolearn.core.errors import ConfigError
    from robolearn.core.rundir import make_run_dir

    if args.task is None:
        raise ConfigError("eval needs --task TASK (or `eval world-model` for a world model)")
    from robolearn.runs.eval import EvalConfig, run_eval

    cfg = EvalConfig(**_rollout_fields(args), video_episodes=args.video_episodes)
    _check_run_args(cfg)
    out = make_run_dir(args.out, "eval", f"{cfg.task}-{cfg.policy.rstrip('/').split('/')[-1]}")
    result = run_eval(cfg, out, progress=not args.quiet)
    low, high = result["ci95"]
    print(
        f"{cfg.task} / {cfg.policy}: success {result['successes']}/{result['episodes']} "
        f"= {result['success_rate']:.0%} (95% CI {low:.0%}-{high:.0%}), "
        f"{result['steps_per_second']:.1f} env steps/s"
    )
    print(f"results: {out / 'results.json'}")
    if "video" in result:
        print(f"video:   {result['video']}")


def _cmd_collect(args: argparse.Namespace) -> None:
    from pathlib import Path

    from robolearn.runs.collect import CollectConfig, run_collect

    cfg = CollectConfig(**_rollout_fields(args), visual_randomization=args.visual_randomization)
    _check_run_args(cfg)
    result = run_collect(cfg, Path(args.out), progress=not args.quiet)
    print(
        f"{cfg.task} / {cfg.policy}: wrote {result['episodes']} episodes "
        f"({result['steps']} steps, {result['successes']} successful, "
        f"{result['steps_per_second']:.0f} steps/s) to {args.out}"
    )


def _cmd_data_info(args: argparse.Namespace) -> None:
    from robolearn.data.inspect import store_size, summarize_store

    groups, problems = summarize_store(args.dir)
    episodes = sum(g.episodes for g in groups)
    steps = sum(g.steps for g in groups)
    print(
        f"{args.dir}: {episodes} episodes, {steps} steps, "
        f"{store_size(args.dir) / 1e6:.1f} MB on disk"
    )
    if groups:
        width = max(len(g.task) for g in groups)
        print(
            f"  {'task':<{width}}  {'source':<8}  {'episodes':>8}  {'steps':>7}  "
            f"{'success':>7}  {'MB':>6}"
        )
        for g in groups:
            print(
                f"  {g.task:<{width}}  {g.source:<8}  {g.episodes:>8}  {g.steps:>7}  "
                f"{g.success_rate:>7.0%}  {g.bytes / 1e6:>6.1f}"
            )
    for line in problems:
        print(f"  problem: {line}")


def _cmd_data_validate(args: argparse.Namespace) -> int:
    from robolearn.data.inspect import validate_store

    report = validate_store(args.dir)
    for line in report.bad:
        print(f"bad: {line}")
    for path in report.torn:
        print(f"torn: {path}: its writer stopped mid-episode; readers ignore it (delete it)")
    verdict = "ok" if report.ok else "problems"
    print(
        f"{verdict}: {report.episodes} readable episodes ({report.steps} steps), "
        f"{len(report.bad)} bad, {len(report.torn)} torn"
    )
    return 0 if report.ok else 1


def _cmd_data_import_rlds(args: argparse.Namespace) -> None:
    from robolearn.data.rlds import RldsConfig
    from robolearn.runs.import_data import import_rlds

    cfg = RldsConfig(image_key=args.image_key, image_size=args.image_size, task=args.task)
    result = import_rlds(args.paths, args.out, cfg, progress=not args.quiet)
    print(
        f"imported {result['episodes']} episodes, {result['steps']} steps "
        f"({result['episodes_per_second']:.1f} episodes/s; {result['skipped']} skipped, "
        f"{result['clipped_action_values']} action values clipped to [-1, 1])"
    )
    print(f"store: {result['out']}")


def _add_data_import_parser(data_sub) -> None:
    """`robolearn data import <format>`: add under the `data` command's subparsers."""
    imp = data_sub.add_parser("import", help="convert recorded episodes into an episode store")
    formats = imp.add_subparsers(dest="format", required=True, metavar="<format>")
    p = formats.add_parser(
        "rlds",
        help="RLDS / Open X-Embodiment TFRecord files (BridgeData V2 layout)",
        description="Convert RLDS TFRecord episodes (one tf.train.Example per episode, "
        "steps/<key> features) into an episode store. Actions are normalized to [-1, 1] "
        "in the BridgeData convention (xyz/0.05 m, rpy/0.25 rad, gripper +1 open); the final "
        "step's action, which has no next observation, is dropped.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="TFRecord file(s) to import")
    p.add_argument(
        "--out", default=None, help="store directory (default: a new directory under ./runs/)"
    )
    p.add_argument(
        "--image-key",
        default="observation/image_0",
        help="camera key without the steps/ prefix (default: observation/image_0)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="resize frames to N x N pixels (default: keep the source size)",
    )
    p.add_argument(
        "--task", default="bridge", help="task name written into each episode (default: bridge)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_data_import_rlds)
    _add_rosbag_import_parser(formats)


def _cmd_data_import_rosbag(args: argparse.Namespace) -> None:
    from robolearn.data.rosbag import RosbagConfig
    from robolearn.runs.import_data import import_rosbag

    cfg = RosbagConfig(
        joint_topic=args.joint_topic,
        image_topic=args.image_topic,
        command_topic=args.command_topic,
        rate_hz=args.rate,
        image_size=args.image_size or None,
        episode_gap_s=args.episode_gap,
        max_age_s=args.max_age,
        task=args.task,
        instruction=args.instruction,
    )
    result = import_rosbag(args.paths, args.out, cfg, progress=not args.quiet)
    print(
        f"imported {result['episodes']} episodes, {result['steps']} steps at {cfg.rate_hz:g} Hz "
        f"from {result['bags']} bag(s) ({result['dropped_steps']} steps dropped for a stale "
        f"frame or joint state, {result['clipped_action_values']} action values clipped to "
        "[-1, 1])"
    )
    print(f"store: {result['out']}")


def _add_rosbag_import_parser(formats) -> None:
    """`robolearn data import rosbag`: add under the `data import` formats."""
    p = formats.add_parser(
        "rosbag",
        help="ROS 2 bags (MCAP or sqlite3) of a WidowX: joint states, camera, commands",
        description="Convert ROS 2 bags (a bag directory, or its .mcap/.db3 file) into an "
        "episode store, sampled at --rate on a grid aligned with the camera: each step's image "
        "is the latest frame and its proprio the tip pose (forward kinematics) of the latest "
        "joint state. Actions are reconstructed from the measured motion in the BridgeData "
        "convention (delta xyz/0.05 m, delta rpy/0.25 rad, gripper +1 open from the commanded "
        "finger target or the measured opening), clipped to [-1, 1]. A pause in the joint states "
        "longer than --episode-gap starts a new episode.",
    )
    p.add_argument("paths", nargs="+", metavar="BAG", help="bag directories or .mcap/.db3 files")
    p.add_argument(
        "--out", default=None, help="store directory (default: a new directory under ./runs/)"
    )
    p.add_argument(
        "--joint-topic",
        default="/wx250s/joint_states",
        help="sensor_msgs/JointState topic (default: /wx250s/joint_states)",
    )
    p.add_argument(
        "--image-topic",
        default="/wx250s/camera/image_raw",
        help="sensor_msgs/Image or CompressedImage topic (default: /wx250s/camera/image_raw)",
    )
    p.add_argument(
        "--command-topic",
        default=None,
        help="Float64MultiArray, JointGroupCommand or JointTrajectory topic; 'none' ignores "
        "commands (default: the first present of /wx250s/arm_controller/commands, "
        "/wx250s/commands/joint_group, /wx250s/arm_controller/joint_trajectory)",
    )
    p.add_argument(
        "--rate", type=float, default=5.0, help="steps per second (default: 5, the policy rate)"
    )
    p.add_argument(
        "--image-size",
        type=int,
        default=64,
        help="resize frames to N x N pixels; 0 keeps the source size (default: 64)",
    )
    p.add_argument(
        "--episode-gap",
        type=float,
        default=1.0,
        help="a pause in the joint states longer than this many seconds splits episodes "
        "(default: 1.0)",
    )
    p.add_argument(
        "--max-age",
        type=float,
        default=0.2,
        help="drop a step whose frame or joint state is older than this many seconds "
        "(default: 0.2)",
    )
    p.add_argument(
        "--task", default="widowx", help="task name written into each episode (default: widowx)"
    )
    p.add_argument("--instruction", default="", help="language instruction of the episodes")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_data_import_rosbag)


def _cmd_train_bc(args: argparse.Namespace) -> None:
    from robolearn.core.errors import ConfigError
    from robolearn.core.rundir import make_run_dir
    from robolearn.runs.train_bc import TrainBCConfig, run_train_bc

    cfg = TrainBCConfig(
        data=tuple(args.data),
        preset=args.preset,
        task=args.task,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        save_every=args.save_every,
        log_every=args.log_every,
    )
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out DIR, the run to continue")
    out = make_run_dir(args.out, "train", f"bc-{args.task or args.preset}")
    result = run_train_bc(cfg, out, resume=args.resume, progress=not args.quiet)
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items())
    print(
        f"bc: step {result['step']} ({result['trained_steps']} this run, "
        f"{result['steps_per_second']:.1f} steps/s)  {metrics}"
    )
    print(f"checkpoint: {out}")


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model from episode stores")
    train_sub = p.add_subparsers(dest="train_command", required=True, metavar="<model>")
    p = train_sub.add_parser("bc", help="behaviour cloning: Gaussian actor, NLL on demonstrations")
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="DIR",
        help="episode store directory (repeat for several)",
    )
    p.add_argument(
        "--task", default=None, help="train on this task's episodes (default: the data's only task)"
    )
    p.add_argument(
        "--preset",
        default="base",
        choices=["tiny", "base"],
        help="model size: tiny (tests, seconds) or base (default)",
    )
    p.add_argument("--steps", type=int, default=5000, help="total optimizer steps (default: 5000)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="init and data-order seed (default: 0)")
    p.add_argument(
        "--save-every", type=int, default=1000, help="checkpoint interval in steps (default: 1000)"
    )
    p.add_argument("--log-every", type=int, default=50, help="metrics interval (default: 50)")
    p.add_argument(
        "--out",
        default=None,
        help="run = checkpoint directory (default: a new directory under ./runs/)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last complete checkpoint",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_train_bc)
    cli_world.add_train_parser(train_sub)
    cli_reward.add_train_parser(train_sub)


def _add_rollout_args(
    p: argparse.ArgumentParser, episodes: int, seed_help: str, task_required: bool = True
) -> None:
    """The flags of every command that runs a policy in a task (eval, collect)."""
    p.add_argument(
        "--task", required=task_required, help="task name (see `robolearn tasks`), e.g. drawer"
    )
    p.add_argument(
        "--policy",
        default="expert",
        help="expert | noisy | random: the task's scripted expert, the expert with "
        "Gaussian action noise, or uniform random actions; or a checkpoint directory from "
        "`robolearn train bc`, or a shipped part such as bundle:drawer/bc (default: expert)",
    )
    p.add_argument(
        "--episodes", type=int, default=episodes, help=f"number of episodes (default: {episodes})"
    )
    p.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default: 0)")
    p.add_argument(
        "--image-size",
        type=int,
        default=64,
        help="camera image side in pixels, 16..256 (default: 64)",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="episode length in control steps (default: the task's)",
    )
    p.add_argument(
        "--noise-std",
        type=float,
        default=0.3,
        help="action noise std of the noisy expert, normalized units (default: 0.3)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")


def _rollout_fields(args: argparse.Namespace) -> dict:
    """The config fields shared by EvalConfig and CollectConfig, from the rollout flags."""
    names = ("task", "policy", "episodes", "seed", "image_size", "max_steps", "noise_std")
    return {name: getattr(args, name) for name in names}


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (also used to test that --help works)."""
    parser = argparse.ArgumentParser(
        prog="robolearn",
        description="Robot learning in JAX: world models, rewards, imagination RL, safe robots.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    p = sub.add_parser("tasks", help="list every task with its suite, rate and instruction")
    p.add_argument(
        "--suite", choices=["widowx", "metaworld", "robosuite"], help="only the tasks of this suite"
    )
    p.add_argument("--json", action="store_true", help="print the task table as JSON")
    p.set_defaults(func=_cmd_tasks)

    p = sub.add_parser("eval", help="run a policy in a task's simulator: success rate and a video")
    # --task is checked in _cmd_eval: `eval world-model` does not take it.
    _add_rollout_args(p, episodes=50, seed_help="base seed of the episodes", task_required=False)
    p.add_argument(
        "--video-episodes",
        type=int,
        default=3,
        help="how many of the first episodes to film into video.mp4 (default: 3; 0: none)",
    )
    p.add_argument(
        "--out", default=None, help="output directory (default: a new directory under ./runs/)"
    )
    p.set_defaults(func=_cmd_eval)
    cli_world.add_eval_parser(p)

    p = sub.add_parser("collect", help="record episodes of a policy in a task into a store")
    _add_rollout_args(
        p,
        episodes=10,
        seed_help="base seed; episode k of the store resets with a seed derived from (seed, k), "
        "so appending never repeats an initial state",
    )
    p.add_argument(
        "--out", required=True, help="episode store directory; created if new, appended to"
    )
    p.add_argument(
        "--visual-randomization",
        action="store_true",
        help="randomize light, colours and camera pose per episode",
    )
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("data", help="inspect, validate and import episode stores")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="<subcommand>")
    q = data_sub.add_parser("info", help="episodes, steps, success rate per task and source, size")
    q.add_argument("dir", help="episode store directory")
    q.set_defaults(func=_cmd_data_info)
    q = data_sub.add_parser("validate", help="read every episode; name the torn or malformed ones")
    q.add_argument("dir", help="episode store directory")
    q.set_defaults(func=_cmd_data_validate)
    _add_data_import_parser(data_sub)
    _add_train_parser(sub)
    cli_world.add_imagine_parser(sub)
    cli_reward.add_label_parser(sub)
    cli_refine.add_refine_parser(sub)
    cli_world.add_bundles_parser(sub)
    cli_world.add_export_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `robolearn` console script."""
    args = make_parser().parse_args(argv)
    try:
        code = args.func(args)
    except RobolearnError as exc:
        print(f"robolearn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robolearn {args.command}: interrupted", file=sys.stderr)
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
