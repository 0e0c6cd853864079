"""`robolearn <command>`: argument parsing and dispatch only; the work lives in robolearn.runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

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
    seen = {}
    for i in infos:
        seen.setdefault(i.suite, i.action_meaning)
    for suite, meaning in seen.items():
        print(f"  {suite}: {meaning}")


def _cmd_eval(args: argparse.Namespace) -> None:
    from robolearn import envs
    from robolearn.core.rundir import make_run_dir
    from robolearn.runs.eval import EvalConfig, run_eval

    cfg = EvalConfig(
        task=args.task,
        policy=args.policy,
        episodes=args.episodes,
        seed=args.seed,
        image_size=args.image_size,
        max_steps=args.max_steps,
        video_episodes=args.video_episodes,
        noise_std=args.noise_std,
    )
    # Bad task names and sizes fail here, before a run directory is created.
    envs.task_info(cfg.task)
    envs.TaskConfig(image_size=cfg.image_size, max_steps=cfg.max_steps)
    out = make_run_dir(args.out, "eval", f"{cfg.task}-{cfg.policy}")
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
    p.add_argument("--task", required=True, help="task name (see `robolearn tasks`), e.g. drawer")
    p.add_argument(
        "--policy",
        default="expert",
        help="expert | noisy | random: the task's scripted expert, the expert with "
        "Gaussian action noise, or uniform random actions (default: expert)",
    )
    p.add_argument("--episodes", type=int, default=50, help="number of episodes (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the episodes (default: 0)")
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
        "--video-episodes",
        type=int,
        default=3,
        help="how many of the first episodes to film into video.mp4 (default: 3; 0: none)",
    )
    p.add_argument(
        "--noise-std",
        type=float,
        default=0.3,
        help="action noise std of the noisy expert, normalized units (default: 0.3)",
    )
    p.add_argument(
        "--out", default=None, help="output directory (default: a new directory under ./runs/)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `robolearn` console script."""
    args = make_parser().parse_args(argv)
    try:
        args.func(args)
    except RobolearnError as exc:
        print(f"robolearn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robolearn {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
