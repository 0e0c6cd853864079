"""The world-model commands of `robolearn` (argument parsing and dispatch only):
`train world-model`, `eval world-model`, `imagine`, `bundles`."""

from __future__ import annotations

import argparse


def _cmd_train_world_model(args: argparse.Namespace) -> None:
    from robolearn.core.errors import ConfigError
    from robolearn.core.rundir import make_run_dir
    from robolearn.runs.train_world_model import TrainWorldModelConfig, run_train_world_model

    if args.distributed:
        import jax

        jax.distributed.initialize()
    cfg = TrainWorldModelConfig(
        data=tuple(args.data),
        preset=args.preset,
        tasks=tuple(args.task or ()),
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        save_every=args.save_every,
        log_every=args.log_every,
        dtype=args.dtype,
    )
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out DIR, the run to continue")
    out = make_run_dir(args.out, "train", f"world-model-{args.preset}")
    result = run_train_world_model(cfg, out, resume=args.resume, progress=not args.quiet)
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items())
    print(
        f"world model: step {result['step']} ({result['trained_steps']} this run, "
        f"{result['steps_per_second']:.2f} steps/s on {result['devices']} device(s), "
        f"{result['dtype']})  {metrics}"
    )
    print(f"checkpoint: {out}")


def add_train_parser(train_sub) -> None:
    """`robolearn train world-model`, under the `train` command's subparsers."""
    from world_models.config import PRESETS

    p = train_sub.add_parser(
        "world-model",
        help="diffusion world model (EDM U-Net) of the next frame given 4 frames and actions",
        description="Train the diffusion world model on episode stores: EMA weights, orbax "
        "checkpoints with --resume, metrics.jsonl in the run directory, data-parallel over "
        "every local device (the global batch is split over them).",
    )
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="DIR",
        help="episode store directory (repeat for several; several tasks are fine)",
    )
    p.add_argument(
        "--task",
        action="append",
        default=None,
        help="only this task's episodes (repeat for several; default: all)",
    )
    p.add_argument(
        "--preset",
        default="base",
        choices=list(PRESETS),
        help="model size: tiny (tests), small (CPU, half internal resolution), base (DIAMOND "
        "size, default), large (GPU/TPU)",
    )
    p.add_argument("--steps", type=int, default=20_000, help="total optimizer steps")
    p.add_argument(
        "--batch-size", type=int, default=32, help="global batch size (default: 32)"
    )
    p.add_argument("--seed", type=int, default=0, help="init and data-order seed (default: 0)")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="computation dtype (default auto: bfloat16 on GPU/TPU, float32 on CPU)",
    )
    p.add_argument(
        "--save-every", type=int, default=1000, help="checkpoint interval in steps (default: 1000)"
    )
    p.add_argument("--log-every", type=int, default=50, help="metrics interval (default: 50)")
    p.add_argument(
        "--out", default=None, help="run = checkpoint directory (default: a new one in ./runs/)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() first (each host loads its shard)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_train_world_model)
