"""The reward-model commands of `robolearn` (argument parsing and dispatch only):
`train reward` and `label`."""

from __future__ import annotations

import argparse


def _cmd_train_reward(args: argparse.Namespace) -> None:
    from robolearn.core.rundir import make_run_dir
    from robolearn.runs.train_reward import TrainRewardConfig, run_train_reward, summary_lines

    cfg = TrainRewardConfig(
        data=tuple(args.data),
        tasks=tuple(args.task or ()),
        heldout=tuple(args.heldout or ()),
        preset=args.preset,
        val_fraction=args.val_fraction,
        target_fpr=args.target_fpr,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        log_every=args.log_every,
        kind=args.kind,
        siglip=args.siglip or "",
        finetune_towers=args.finetune_towers,
        world_model=args.world_model or "",
    )
    out = make_run_dir(args.out, "train", f"reward-{'-'.join(cfg.tasks) or args.preset}")
    result = run_train_reward(cfg, out, progress=not args.quiet)
    tr = result["training"]
    print(
        f"reward classifier for {', '.join(result['tasks'])}: {tr['steps']} steps "
        f"({tr['steps_per_second']:.1f} steps/s), train loss {tr['last']['loss']:.4f}"
    )
    print("\n".join(summary_lines(result)))
    print(f"metrics: {out / 'metrics.json'}")
    print(f"checkpoint: {out}")


def add_train_parser(train_sub) -> None:
    """`robolearn train reward`, under the `train` command's subparsers."""
    from robolearn.reward_models.config import KINDS, PRESETS

    p = train_sub.add_parser(
        "reward",
        help="success classifier (reward model): RoboFuME labels, calibrated threshold",
        description="Train a success classifier on the episodes of episode stores. Frames are "
        "labelled by RoboFuME's recipe: the last 3 frames of each success are positives, the "
        "10 frames before it are left out, earlier frames, failed episodes and other tasks' "
        "frames are negatives; batches are 50/50. Whole episodes are split off for validation, "
        "where a temperature and a decision threshold (for --target-fpr) are fitted; then the "
        "classifier is scored on --heldout episodes against the recipe's labels and the "
        "stores' per-frame success flags. --kind siglip trains a head on SigLIP towers "
        "prompted with each task's instruction (paraphrased at training time); the checkpoint "
        "keeps its own copy of the SigLIP files.",
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
        help="a task the classifier covers (repeat for several; default: every task in the "
        "data). Episodes of other tasks are still used, as negatives",
    )
    p.add_argument(
        "--heldout",
        action="append",
        default=None,
        metavar="DIR",
        help="store of held-out episodes (other seeds) to report on (repeat for several; "
        "default: report on the validation split)",
    )
    p.add_argument(
        "--kind",
        default="cnn",
        choices=list(KINDS),
        help="classifier: cnn (a small CNN from scratch, default) or siglip (SigLIP towers and "
        "a success head, conditioned on the task's instruction; needs --siglip)",
    )
    p.add_argument(
        "--siglip",
        default=None,
        metavar="DIR",
        help="--kind siglip: Hugging Face SigLIP checkpoint directory to start from "
        "(config.json, model.safetensors and spiece.model or tokenizer.json, as in "
        "google/siglip-base-patch16-224); copied into the checkpoint",
    )
    p.add_argument(
        "--finetune-towers",
        action="store_true",
        help="--kind siglip: train the SigLIP towers too, at a small learning rate (default: "
        "frozen towers, only the head trains)",
    )
    p.add_argument(
        "--world-model",
        default=None,
        metavar="CKPT",
        help="world-model checkpoint (or shipped part, e.g. bundle:drawer/world-model): every "
        "episode of the covered tasks is also imagined by it, open loop under its recorded "
        "actions, and the imagined frames are trained, calibrated and scored on with the "
        "label of the recorded frame at the same step, so the classifier judges imagined "
        "frames by what really happened: the reward for `robolearn refine` with that model",
    )
    p.add_argument(
        "--preset",
        default="base",
        choices=list(PRESETS),
        help="model size (CNN, or the siglip head): tiny (tests, seconds) or base (default)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="share of each task's episodes held out for calibration (default: 0.15)",
    )
    p.add_argument(
        "--target-fpr",
        type=float,
        default=0.02,
        help="false-positive rate on validation negatives the threshold is chosen for; the "
        "threshold never goes below probability 0.5 (default: 0.02)",
    )
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps (default: 2000)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="init, split and data seed (default: 0)")
    p.add_argument("--log-every", type=int, default=50, help="metrics interval (default: 50)")
    p.add_argument(
        "--out",
        default=None,
        help="checkpoint directory, new or empty (default: a new directory under ./runs/)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_train_reward)


def _cmd_label(args: argparse.Namespace) -> None:
    from pathlib import Path

    from robolearn.runs.label import LabelRunConfig, run_label

    cfg = LabelRunConfig(data=args.data, reward=args.reward, tasks=tuple(args.task or ()))
    result = run_label(cfg, Path(args.out), progress=not args.quiet)
    print(
        f"labelled {result['episodes']} episodes ({result['steps']} steps, "
        f"{result['reward_steps']} rewarded; agrees with the success flags on "
        f"{result['agreement_with_flags']:.1%} of steps) in {result['seconds']:.1f}s"
    )
    print(f"store: {args.out}")


def add_label_parser(sub) -> None:
    """`robolearn label`, a top-level command."""
    p = sub.add_parser(
        "label",
        help="copy an episode store with rewards from a reward classifier",
        description="Write a new episode store with every episode of --data copied and its "
        "reward replaced by the reward classifier's binary reward on the frame after each "
        "action; the calibrated probabilities and the checkpoint go into each episode's "
        "meta.extra. The source store is never modified.",
    )
    p.add_argument("--data", required=True, metavar="DIR", help="source episode store")
    p.add_argument(
        "--reward",
        required=True,
        metavar="CKPT",
        help="reward checkpoint from `robolearn train reward`, or a shipped part such as "
        "bundle:drawer/reward",
    )
    p.add_argument("--out", required=True, help="new episode store directory (new or empty)")
    p.add_argument(
        "--task",
        action="append",
        default=None,
        help="label only this task's episodes (repeat for several; default: every episode, "
        "whose tasks the checkpoint must all cover)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_label)
