"""The world-model commands of `robolearn` (argument parsing and dispatch only):
`train world-model`, `eval world-model`, `imagine`, `bundles`."""

from __future__ import annotations

import argparse


def _cmd_train_world_model(args: argparse.Namespace) -> None:
    from robolearn import bundles
    from robolearn.core.errors import ConfigError
    from robolearn.core.rundir import make_run_dir
    from robolearn.runs.train_world_model import TrainWorldModelConfig, run_train_world_model

    if args.distributed:
        import jax

        # None = auto-detected (TPU pods, SLURM, Open MPI; JAX_COORDINATOR_ADDRESS is read too).
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
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
        init=bundles.resolve(args.init) if args.init else None,
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
    from robolearn.world_models.config import PRESETS

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
    p.add_argument("--batch-size", type=int, default=32, help="global batch size (default: 32)")
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
        "--init",
        metavar="CKPT",
        help="start from another world model's EMA weights (fine-tune, e.g. a new task in the "
        "same scene); its architecture and statistics are kept, --preset is ignored",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: join the other hosts with jax.distributed.initialize() first (each "
        "host loads its shard of the data); auto-detected on TPU pods, SLURM and Open MPI",
    )
    p.add_argument("--coordinator", default=None, help="with --distributed: host:port of process 0")
    p.add_argument(
        "--num-processes", type=int, default=None, help="with --distributed: number of hosts"
    )
    p.add_argument(
        "--process-id", type=int, default=None, help="with --distributed: this host's index"
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_train_world_model)


def _cmd_eval_world_model(args: argparse.Namespace) -> None:
    from robolearn import bundles
    from robolearn.core.rundir import make_run_dir
    from robolearn.runs.eval_world_model import EvalWorldModelConfig, run_eval_world_model
    from robolearn.runs.imagine import sampler_override
    from robolearn.world_models.checkpoint import load_world_model

    cfg = EvalWorldModelConfig(
        model=args.model,
        data=tuple(args.data),
        horizon=args.horizon,
        stride=args.stride,
        batch_size=args.batch_size,
        seed=args.seed,
        max_episodes=args.max_episodes,
        detector_steps=args.detector_steps,
        sampler_steps=args.sampler_steps,
        sampler_method=args.sampler,
    )
    override = sampler_override(cfg.sampler_steps, cfg.sampler_method)
    wm = load_world_model(bundles.resolve(cfg.model), sampler=override)
    out = make_run_dir(args.out, "eval", "world-model")
    result = run_eval_world_model(cfg, wm, out, progress=not args.quiet)
    print(format_fidelity(result))
    print(f"results: {out / 'results.json'}")


def format_fidelity(result: dict) -> str:
    """The fidelity report of `eval world-model` as a plain-text table."""
    ol = result["open_loop"]
    ps = ol["per_step"]
    lines = [
        f"open loop: {ol['windows']} windows from {result['episodes']} episodes, "
        f"model step {result['model_step']}, {result['sampler']['steps']} "
        f"{result['sampler']['method']} steps per frame",
        "  step   PSNR model  PSNR copy-last   SSIM model  SSIM copy-last",
    ]
    for k in range(ol["horizon"]):
        lines.append(
            f"  {k + 1:>4}   {ps['psnr'][k]:>10.2f}  {ps['psnr_baseline'][k]:>14.2f}   "
            f"{ps['ssim'][k]:>10.3f}  {ps['ssim_baseline'][k]:>14.3f}"
        )
    verdict = "beats" if ol["beats_baseline"] else "does NOT beat"
    lines.append(f"  the model {verdict} copy-the-last-frame at every step (PSNR and SSIM)")
    oc = result.get("outcome")
    if oc and "skipped" in oc:
        lines.append(f"outcome fidelity: skipped ({oc['skipped']})")
    elif oc:

        def pct(x):
            return "n/a" if x is None else f"{x:.0%}"

        lines.append(
            f"outcome fidelity ({oc['failed_episodes']} failed, {oc['successful_episodes']} "
            f"successful episodes imagined in full under their recorded actions):"
        )
        lines.append(
            f"  failed episodes whose imagined ending looks successful: "
            f"{pct(oc['imagined_success_on_failed'])} "
            f"(detector on the real endings: {pct(oc['detector_success_on_failed_real'])})"
        )
        lines.append(
            f"  successful episodes whose imagined ending looks successful: "
            f"{pct(oc['imagined_success_on_successful'])} "
            f"(detector on the real endings: {pct(oc['detector_success_on_successful_real'])})"
        )
        lines.append(f"  imagined outcome = real outcome: {pct(oc['outcome_agreement'])}")
    return "\n".join(lines)


def add_eval_parser(eval_parser: argparse.ArgumentParser) -> None:
    """`robolearn eval world-model`, a subcommand of `eval`."""
    sub = eval_parser.add_subparsers(dest="eval_target", metavar="[world-model]")
    p = sub.add_parser(
        "world-model",
        help="fidelity of a world model on held-out episodes",
        description="Open-loop rollouts from real context frames under the recorded actions "
        "(PSNR and SSIM at every step against copy-the-last-frame), and outcome fidelity: "
        "every episode imagined in full, its ending judged by a success detector fitted to "
        "the real frames (see robolearn/runs/eval_world_model.py for the exact method).",
    )
    p.add_argument(
        "--model", required=True, help="world-model checkpoint or bundle:<task>/world-model"
    )
    p.add_argument(
        "--data", action="append", required=True, metavar="DIR", help="held-out episode store"
    )
    p.add_argument("--horizon", type=int, default=15, help="open-loop steps (default: 15)")
    p.add_argument(
        "--stride", type=int, default=10, help="frames between window starts (default: 10)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="rollouts per batch (default: 32)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--max-episodes", type=int, default=None, help="use only the first N episodes")
    p.add_argument(
        "--detector-steps",
        type=int,
        default=400,
        help="training steps of the success detector; 0 skips outcome fidelity (default: 400)",
    )
    _add_sampler_args(p)
    p.add_argument("--out", default=None, help="output directory (default: under ./runs/)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_eval_world_model)


def _cmd_imagine(args: argparse.Namespace) -> None:
    from robolearn.core.rundir import make_run_dir
    from robolearn.runs.imagine import ImagineConfig, run_imagine

    cfg = ImagineConfig(
        task=args.task,
        world_model=args.world_model,
        policy=args.policy,
        reward=args.reward,
        horizon=args.horizon,
        rollouts=args.rollouts,
        seed=args.seed,
        sample=args.sample,
        sampler_steps=args.sampler_steps,
        sampler_method=args.sampler,
    )
    out = make_run_dir(args.out, "imagine", cfg.task)
    r = run_imagine(cfg, out)
    print(
        f"{cfg.task}: {r['rollouts']} rollouts x {r['horizon']} steps imagined in "
        f"{r['imagine_seconds']:.1f} s ({r['imagined_frames_per_second']:.1f} frames/s, "
        f"compile {r['compile_seconds']:.0f} s); imagined vs real sim PSNR "
        f"{r['psnr_first_step']:.1f} dB at step 1, {r['psnr_last_step']:.1f} dB at step "
        f"{r['horizon']}; the same actions succeed in the real sim "
        f"{r['real_successes']}/{r['rollouts']}"
    )
    if "reward" in r:
        rew = r["reward"]
        print(
            f"predicted reward ({rew['classifier']}, threshold {rew['threshold']:.2f}): imagined "
            f"success in {rew['predicted_successes']}/{r['rollouts']} rollouts; plot: {rew['plot']}"
        )
    print(f"video:   {r['video']}")
    print(f"plot:    {r['plot']}")
    print(f"results: {out / 'results.json'}")


def add_imagine_parser(sub) -> None:
    p = sub.add_parser(
        "imagine",
        help="a policy acting inside the world model, filmed beside the real simulator",
        description="Start from a real first frame (a fresh reset of the task), let the policy "
        "act inside the world model, then replay its actions in the real simulator; writes a "
        "video (imagined | real, per-step PSNR and predicted-reward plots), psnr.png, "
        "reward.png and results.json. Without flags "
        "it uses the task's shipped bundle.",
    )
    p.add_argument("--task", default="drawer", help="task name (default: drawer)")
    p.add_argument(
        "--world-model",
        default=None,
        help="world-model checkpoint or bundle part (default: bundle:<task>/world-model)",
    )
    p.add_argument(
        "--policy",
        default=None,
        help="policy checkpoint or bundle part (default: bundle:<task>/bc)",
    )
    p.add_argument(
        "--reward",
        default=None,
        help="reward classifier scoring the imagined frames, or 'none' (default: "
        "bundle:<task>/reward when shipped)",
    )
    p.add_argument(
        "--horizon", type=int, default=None, help="imagined steps (default: the task's length)"
    )
    p.add_argument(
        "--rollouts", type=int, default=4, help="parallel rollouts, first 4 filmed (default: 4)"
    )
    p.add_argument("--seed", type=int, default=0, help="reset and sampling seed (default: 0)")
    p.add_argument(
        "--sample", action="store_true", help="sample policy actions instead of the mean"
    )
    _add_sampler_args(p)
    p.add_argument("--out", default=None, help="output directory (default: under ./runs/)")
    p.set_defaults(func=_cmd_imagine)


def _cmd_bundles(args: argparse.Namespace) -> None:
    from robolearn import bundles

    parts = bundles.list_parts()
    if not parts:
        print("no bundles are shipped in this installation")
        return
    tasks = sorted({p.task for p in parts})
    for task in tasks:
        print(f"== {task} ==")
        for p in (p for p in parts if p.task == task):
            print(f"  {p.name:<32} {p.size_bytes / 1e6:6.1f} MB  {p.path}")
        text = bundles.card(task)
        if text and not args.brief:
            print()
            print(text.rstrip())
            print()


def add_bundles_parser(sub) -> None:
    p = sub.add_parser("bundles", help="list the shipped model bundles with their cards")
    p.add_argument("--brief", action="store_true", help="parts only, without the cards")
    p.set_defaults(func=_cmd_bundles)


def _cmd_export_world_model(args: argparse.Namespace) -> None:
    from robolearn import bundles
    from robolearn.world_models.checkpoint import export_ema

    path = export_ema(bundles.resolve(args.model), args.out)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print(f"exported the EMA weights of {args.model} to {path} ({size / 1e6:.1f} MB)")


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="write inference-only copies of checkpoints")
    export_sub = p.add_subparsers(dest="export_command", required=True, metavar="<model>")
    q = export_sub.add_parser(
        "world-model",
        help="keep only the latest EMA weights (no optimizer state): what bundles ship",
    )
    q.add_argument("--model", required=True, help="world-model training run directory")
    q.add_argument("--out", required=True, help="new checkpoint directory")
    q.set_defaults(func=_cmd_export_world_model)


def _add_sampler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sampler-steps",
        type=int,
        default=None,
        help="denoising steps per frame (default: the model's, 3)",
    )
    p.add_argument(
        "--sampler",
        choices=["euler", "heun"],
        default=None,
        help="ODE solver per frame (default: the model's, euler)",
    )
