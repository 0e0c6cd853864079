"""`robolearn refine`: argument parsing and dispatch (the work is in robolearn.runs.refine)."""

from __future__ import annotations

import argparse
import dataclasses
import functools

from robolearn.policies.ppo.config import PPOConfig

_PPO_FLAGS = {
    # flag: (PPOConfig field, dotted for a field of a nested config, type, help)
    "--rollouts": ("rollouts", int, "imagined episodes per iteration"),
    "--horizon": ("horizon", int, "imagined steps per episode (default: to the task's end)"),
    "--epochs": ("epochs", int, "PPO epochs per iteration"),
    "--minibatches": ("minibatches", int, "minibatches per epoch"),
    "--actor-lr": ("actor_optim.learning_rate", float, "actor Adam learning rate"),
    "--critic-lr": ("critic_optim.learning_rate", float, "critic Adam learning rate"),
    "--clip": ("clip", float, "PPO ratio clip"),
    "--gamma": ("gamma", float, "discount"),
    "--gae-lambda": ("gae_lambda", float, "GAE lambda"),
    "--target-kl": ("target_kl", float, "freeze the actor for the iteration past this KL"),
    "--critic-warmup": ("critic_warmup", int, "first iterations that train only the critic"),
    "--std-floor": ("std_floor", float, "exploration std floor, <= 1"),
    "--entropy-coef": ("entropy_coef", float, "entropy bonus"),
    "--bc-coef": ("bc_coef", float, "pull of the actor's mean toward the BC policy's"),
    "--early-bc-coef": (
        "early_bc_coef",
        float,
        "the same pull on the recorded frames before --start-step, which imagination never "
        "visits (default with --start-step: 10, else 0)",
    ),
    "--reward-kind": ("reward", str, "binary (thresholded classifier, World4RL) or prob"),
}


def _replace(cfg, field: str, value):
    """dataclasses.replace of a dotted field ("actor_optim.learning_rate") of nested configs."""
    head, _, rest = field.partition(".")
    return dataclasses.replace(
        cfg, **{head: _replace(getattr(cfg, head), rest, value) if rest else value}
    )


def _cmd_refine(args: argparse.Namespace) -> None:
    from robolearn.core.errors import ConfigError
    from robolearn.core.rundir import make_run_dir
    from robolearn.runs.refine import RefineConfig, run_refine

    given = {
        field: getattr(args, flag[2:].replace("-", "_")) for flag, (field, *_) in _PPO_FLAGS.items()
    }
    ppo = PPOConfig()
    for field, value in given.items():
        if value is not None:
            ppo = _replace(ppo, field, value)
    cfg = RefineConfig(
        task=args.task,
        world_model=args.world_model,
        reward=args.reward,
        policy=args.policy,
        data=tuple(args.data or ()),
        iterations=args.iterations,
        seed=args.seed,
        initial_states=args.initial_states,
        save_every=args.save_every,
        start_step=args.start_step,
        ppo=ppo,
    )
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out DIR, the run to continue")
    out = make_run_dir(args.out, "refine", args.task)
    result = run_refine(cfg, out, resume=args.resume, progress=not args.quiet)
    first, last = result["first"], result["last"]
    if first is not None:
        print(
            f"refine {cfg.task}: iteration {result['iterations']} "
            f"({result['trained_iterations']} this run, {result['seconds']:.0f} s); imagined "
            f"success {first['imagined_success']:.0%} (iteration {first['iteration']}) -> "
            f"{last['imagined_success']:.0%}, {last['imagined_steps_per_second']:.0f} imagined "
            "steps/s"
        )
    print(f"policy checkpoint: {out}")
    print(f"evaluate it: robolearn eval --task {cfg.task} --policy {out}")


def add_refine_parser(sub) -> None:
    p = sub.add_parser(
        "refine",
        help="PPO inside the frozen world model: refine a BC policy in imagination",
        description="World4RL's second stage: the policy acts in the frozen diffusion world "
        "model from real first frames, a success classifier scores the imagined frames, PPO "
        "updates the policy. Writes a policy checkpoint that eval/collect/imagine load.",
    )
    p.add_argument("--task", required=True, help="task name, e.g. drawer")
    p.add_argument(
        "--world-model", help="world-model checkpoint (default: bundle:<task>/world-model)"
    )
    p.add_argument("--reward", help="reward-classifier checkpoint (default: bundle:<task>/reward)")
    p.add_argument("--policy", help="policy to refine (default: bundle:<task>/bc)")
    p.add_argument(
        "--data",
        action="append",
        metavar="DIR",
        help="episode store whose first frames start imagined episodes (repeatable; default: "
        "fresh simulator resets)",
    )
    p.add_argument(
        "--start-step",
        type=int,
        default=0,
        help="start imagined episodes at this step of the --data episodes (their real context "
        "window) and imagine to the task's end: drift only has to be survived where success is "
        "decided (default: 0, the first frames)",
    )
    p.add_argument("--iterations", type=int, default=20, help="PPO iterations (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument(
        "--initial-states",
        type=int,
        default=128,
        help="simulator resets in the first-frame pool when no --data (default: 128)",
    )
    p.add_argument(
        "--save-every", type=int, default=5, help="checkpoint interval in iterations (default: 5)"
    )
    defaults = PPOConfig()
    for flag, (field, kind, text) in _PPO_FLAGS.items():
        default = functools.reduce(getattr, field.split("."), defaults)
        shown = "" if default is None else f" (default: {default})"
        p.add_argument(flag, type=kind, default=None, help=f"{text}{shown}")
    p.add_argument("--out", help="run = policy checkpoint directory (default: under ./runs/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_refine)
