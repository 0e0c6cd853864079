"""`robolearn <command>`: parsing and dispatch only. Every command's flags come from its typed run
config (robolearn.core.flags); the work, and what it prints, lives in robolearn.runs.

A command is a row of COMMANDS: its words, a help line, its run config class and its entry point
`main(cfg, options) -> exit code | None`, both named as "module:attribute" and imported only
when that command runs (so `robolearn tasks` never imports JAX). Train commands (and the others
that take a config) also take `--config FILE` (YAML of the run config) and dotted overrides
`KEY=VALUE` after the flags, resolved as defaults < file < flags < overrides.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import sys
from collections.abc import Sequence

from robolearn.core.config import load_layers, parse_overrides, preset_names
from robolearn.core.errors import ConfigError, RobolearnError
from robolearn.core.flags import Alias, add_config_flags
from robolearn.core.optional import report_missing_extra
from robolearn.core.rundir import RunOptions

PROG = "robolearn"
DESCRIPTION = "Robot learning in JAX: world models, rewards, imagination RL, safe robots."


@dataclasses.dataclass(frozen=True)
class Command:
    """One command. options: which of the shared flags it takes: out (or out_required), resume,
    quiet, config (--config FILE and KEY=VALUE overrides), distributed (multi-host flags), wandb
    (--wandb and --wandb-project)."""

    words: str
    help: str
    config: str
    run: str
    options: tuple[str, ...] = ()
    aliases: tuple[Alias, ...] = ()


def _presets(kind: str):
    return lambda: preset_names(kind)


_TRAIN = ("out", "resume", "quiet", "config", "wandb")
COMMANDS = (
    Command("tasks", "list every task: suite, rate, length, instruction, action meaning",
            "robolearn.runs.tasks:TasksConfig", "robolearn.runs.tasks:main"),
    Command("eval", "run a policy in a task's simulator: success rate with an interval, a video",
            "robolearn.runs.eval:EvalConfig", "robolearn.runs.eval:main",
            ("out", "quiet", "config")),
    Command("eval world-model", "fidelity of a world model on held-out episodes",
            "robolearn.runs.eval_world_model:EvalWorldModelConfig",
            "robolearn.runs.eval_world_model:main", ("out", "quiet", "config")),
    Command("eval imagination", "a policy's success inside a world model, beside the real one",
            "robolearn.runs.eval_imagination:EvalImaginationConfig",
            "robolearn.runs.eval_imagination:main", ("out", "quiet", "config")),
    Command("collect", "record episodes of a policy in a task into an episode store",
            "robolearn.runs.collect:CollectConfig", "robolearn.runs.collect:main",
            ("out_required", "quiet", "config")),
    Command("data info", "episodes, steps, success rate per task and source, size of a store",
            "robolearn.runs.data:StoreConfig", "robolearn.runs.data:info"),
    Command("data validate", "read every episode of a store; name the torn or malformed ones",
            "robolearn.runs.data:StoreConfig", "robolearn.runs.data:validate"),
    Command("data pack", "decode a store into flat files that training streams from",
            "robolearn.runs.pack:PackConfig", "robolearn.runs.pack:main", ("quiet",)),
    Command("data import rlds", "RLDS / Open X-Embodiment TFRecord files -> an episode store",
            "robolearn.runs.import_data:ImportRldsConfig", "robolearn.runs.import_data:main_rlds",
            ("out", "quiet")),
    Command("data import rosbag", "ROS 2 or ROS 1 bags of an Interbotix WidowX -> an episode store",
            "robolearn.runs.import_data:ImportRosbagConfig",
            "robolearn.runs.import_data:main_rosbag", ("out", "quiet")),
    Command("data import robomimic", "robosuite / robomimic HDF5 demos -> an episode store",
            "robolearn.runs.import_robomimic:ImportRobomimicConfig",
            "robolearn.runs.import_robomimic:main", ("out", "quiet")),
    Command("data import lerobot", "a LeRobot dataset (v2.1 or v3.0, local) -> an episode store",
            "robolearn.runs.lerobot:ImportLeRobotConfig", "robolearn.runs.lerobot:main_import",
            ("out", "quiet")),
    Command("data export lerobot", "an episode store -> a LeRobot v3.0 dataset (parquet + mp4)",
            "robolearn.runs.lerobot:ExportLeRobotConfig", "robolearn.runs.lerobot:main_export",
            ("out_required", "quiet")),
    Command("train bc", "behaviour cloning: Gaussian actor, NLL on demonstrations",
            "robolearn.runs.train_bc:TrainBCConfig", "robolearn.runs.train_bc:main",
            (*_TRAIN, "distributed"),
            (Alias("--preset", "model.preset", "model size (configs/policy/)",
                   _presets("policy")),)),
    Command("train world-model", "diffusion world model of the next frame given frames and actions",
            "robolearn.runs.train_world_model:TrainWorldModelConfig",
            "robolearn.runs.train_world_model:main", (*_TRAIN, "distributed"),
            (Alias("--preset", "model.preset", "model size (configs/world_model/): tiny (tests), "
                   "small (CPU), base (DIAMOND's), large (GPU/TPU)", _presets("world_model")),)),
    Command("train reward", "success classifier (reward model) with a calibrated threshold",
            "robolearn.runs.train_reward:TrainRewardConfig", "robolearn.runs.train_reward:main",
            ("out", "quiet", "config", "distributed", "wandb"),
            (Alias("--preset", "model.preset", "model size (configs/reward/)", _presets("reward")),
             Alias("--kind", "model.kind", "cnn: a small CNN from scratch; siglip: SigLIP towers "
                   "and a success head prompted with the task's instruction (needs --siglip)",
                   lambda: _load("robolearn.reward_models.config:KINDS")),
             Alias("--finetune-towers", "model.siglip.finetune_towers", "--kind siglip: train "
                   "the towers too, at a small learning rate (default: only the head trains)"))),
    Command("imagine", "a policy acting inside the world model, filmed beside the real simulator",
            "robolearn.runs.imagine:ImagineConfig", "robolearn.runs.imagine:main",
            ("out", "config")),
    Command("label", "copy an episode store with rewards from a reward classifier",
            "robolearn.runs.label:LabelRunConfig", "robolearn.runs.label:main",
            ("out_required", "quiet")),
    Command("refine", "PPO inside the frozen world model: refine a policy in imagination",
            "robolearn.runs.refine:RefineConfig", "robolearn.runs.refine:main", _TRAIN,
            (*(Alias("--" + f.replace("_", "-"), "ppo." + f) for f in (
                "rollouts", "horizon", "epochs", "minibatches")),
             Alias("--actor-lr", "ppo.actor_optim.learning_rate", "actor Adam learning rate"),
             Alias("--critic-lr", "ppo.critic_optim.learning_rate", "critic Adam learning rate"),
             *(Alias("--" + f.replace("_", "-"), "ppo." + f) for f in (
                 "clip", "gamma", "gae_lambda", "target_kl", "critic_warmup", "std_floor",
                 "std_floor_end", "entropy_coef", "bc_coef", "early_bc_coef")),
             Alias("--reward-kind", "ppo.reward", choices=("binary", "prob")))),
    Command("finetune", "online RL from a pre-trained policy, rewarded only by a reward classifier",
            "robolearn.runs.finetune:FinetuneConfig", "robolearn.runs.finetune:main", _TRAIN,
            (*(Alias("--" + f.replace("_", "-"), "sac." + f) for f in (
                "utd", "batch_size", "ensemble", "gamma", "tau", "bc_coef", "std_floor")),
             Alias("--actor-lr", "sac.actor_optim.learning_rate", "actor Adam learning rate"),
             Alias("--critic-lr", "sac.critic_optim.learning_rate", "critic Adam learning rate"),
             Alias("--bc-loss", "sac.bc_loss", choices=("nll", "mse")),
             Alias("--actor-q", "sac.actor_q", choices=("mean", "min")),
             Alias("--critic-encoder", "sac.critic_encoder", choices=("own", "actor")),
             Alias("--actor-loss", "sac.actor_loss", choices=("sac", "awac", "awr")))),
    Command("bundles", "the shipped model bundles, one line per part (a task's card on request)",
            "robolearn.runs.bundles:BundlesConfig", "robolearn.runs.bundles:main"),
    Command("export world-model", "keep a world model's EMA weights only (what bundles ship)",
            "robolearn.runs.export:ExportConfig", "robolearn.runs.export:world_model"),
    Command("export policy", "keep a policy's actor weights only (what eval and the robot load)",
            "robolearn.runs.export:ExportConfig", "robolearn.runs.export:policy"),
)  # fmt: skip


def _load(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _module_doc(command: Command) -> str:
    """The run module's docstring: what the command does, at length (its --help description)."""
    return importlib.import_module(command.run.partition(":")[0]).__doc__ or ""


def _usage_line(command: Command) -> str:
    return f"usage: {PROG} {command.words} [flags]  (`{PROG} {command.words} --help` lists them)"


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line under the command's own usage line."""

    def __init__(self, command: Command, **kwargs):
        super().__init__(prog=f"{PROG} {command.words}", **kwargs)
        self.command = command

    def error(self, message: str):
        sys.stderr.write(f"{_usage_line(self.command)}\n{self.prog}: error: {message}\n")
        sys.exit(2)


def build_parser(command: Command) -> tuple[CommandParser, object]:
    """The parser of one command and the FlagSet of its config's flags."""
    parser = CommandParser(
        command,
        description=_module_doc(command) or command.help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    opts = set(command.options)
    flags = add_config_flags(parser, _load(command.config), command.aliases)
    if "out" in opts:
        parser.add_argument("--out", help="output directory (default: a new one under ./runs/)")
    if "out_required" in opts:
        parser.add_argument("--out", required=True, help="output directory (created if new)")
    if "resume" in opts:
        parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    if "quiet" in opts:
        parser.add_argument("--quiet", action="store_true", help="no progress line")
    if "config" in opts:
        parser.add_argument(
            "--config",
            metavar="FILE",
            help="YAML of this command's settings "
            "(see configs/); flags and KEY=VALUE overrides go over it",
        )
        parser.epilog = (
            "Any setting, nested ones too, can also be given as a dotted override "
            "after the flags: KEY=VALUE, e.g. model.optim.learning_rate=1e-4 "
            "(values are read as YAML)."
        )
    if "distributed" in opts:
        parser.add_argument(
            "--distributed",
            action="store_true",
            help="multi-host: join the "
            "other processes with jax.distributed.initialize() first (auto-"
            "detected on TPU pods, SLURM and Open MPI)",
        )
        parser.add_argument("--coordinator", help="with --distributed: host:port of process 0")
        parser.add_argument("--num-processes", type=int, help="with --distributed: processes")
        parser.add_argument("--process-id", type=int, help="with --distributed: this process")
    if "wandb" in opts:
        parser.add_argument("--wandb", action="store_true", help="also log metrics, plots and "
                            "videos to a W&B run in OUT/wandb/ (offline unless WANDB_MODE says "
                            "otherwise; `wandb sync` uploads it; `tracking` extra)")  # fmt: skip
        parser.add_argument("--wandb-project", default="robolearn", metavar="NAME",
                            help="with --wandb: the W&B project")  # fmt: skip
    return parser, flags  # fmt: skip


def find_command(argv: Sequence[str]) -> tuple[Command | None, list[str]]:
    """The command named by the longest run of leading words of argv, and the rest of argv."""
    for command in sorted(COMMANDS, key=lambda c: -len(c.words.split())):
        words = command.words.split()
        if list(argv[: len(words)]) == words:
            return command, list(argv[len(words) :])
    return None, list(argv)


def parse(argv: Sequence[str]) -> tuple[Command, argparse.Namespace, object]:
    """(command, parsed flags, flag set); exits 2 with a one-line error on a bad command line."""
    command, rest = find_command(argv)
    if command is None:
        _top_level(argv)
    parser, flags = build_parser(command)
    args, unknown = parser.parse_known_args(rest)
    takes_overrides = "config" in command.options
    args.overrides = [u for u in unknown if takes_overrides and _is_override(u)]
    unknown = [u for u in unknown if u not in args.overrides]
    if unknown:
        parser.error(_unknown(parser, unknown, takes_overrides))
    return command, args, flags


def _is_override(token: str) -> bool:
    key, sep, _ = token.partition("=")
    return bool(sep) and not token.startswith("-") and all(p.isidentifier() for p in key.split("."))


def resolve_config(command: Command, args: argparse.Namespace, flags):
    """The run config: defaults < --config file < flags < KEY=VALUE overrides."""
    overrides = parse_overrides(args.overrides)
    return load_layers(_load(command.config), getattr(args, "config", None), flags.given(args),
                       overrides)  # fmt: skip


def _unknown(parser: argparse.ArgumentParser, unknown: list[str], overrides: bool) -> str:
    bad = next((u for u in unknown if u.startswith("-")), unknown[0])
    if not bad.startswith("-"):
        how = "--flag VALUE or KEY=VALUE" if overrides else "--flag VALUE"
        return f"unexpected argument {bad!r} (settings are given as {how})"
    known = [s for a in parser._actions for s in a.option_strings]
    close = difflib.get_close_matches(bad.split("=")[0], known, n=1)
    return f"unrecognized flag {bad.split('=')[0]}" + (
        f" (did you mean {close[0]}?)" if close else ""
    )


def _top_level(argv: Sequence[str]):
    """`robolearn`, `robolearn --help`, or an unknown command: the command list (exits)."""
    lines = [f"usage: {PROG} <command> [flags]", "", DESCRIPTION, "", "commands:"]
    width = max(len(c.words) for c in COMMANDS)
    lines += [f"  {c.words:<{width}}  {c.help}" for c in COMMANDS]
    lines += ["", f"`{PROG} <command> --help` explains every flag of a command."]
    if not argv or argv[0] in ("-h", "--help"):
        print("\n".join(lines))
        sys.exit(0)
    close = difflib.get_close_matches(" ".join(argv[:2]), [c.words for c in COMMANDS], n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else f"; `{PROG} --help` lists the commands"
    sys.stderr.write(f"usage: {PROG} <command> [flags]\n{PROG}: error: unknown command "
                     f"{' '.join(argv[:2])!r}{hint}\n")  # fmt: skip
    sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `robolearn` console script."""
    argv = sys.argv[1:] if argv is None else argv
    try:  # parsing imports the command's module (its --help text)
        command, args, flags = parse(argv)
    except ImportError as exc:
        return report_missing_extra(exc, PROG)
    try:
        cfg = resolve_config(command, args, flags)
        if getattr(args, "resume", False) and args.out is None:
            raise ConfigError("--resume needs --out DIR, the run to continue")
        if getattr(args, "distributed", False) and args.out is None:
            raise ConfigError("--distributed needs --out DIR, a directory every process sees")
        options = RunOptions(
            out=getattr(args, "out", None),
            resume=getattr(args, "resume", False),
            progress=not getattr(args, "quiet", False),
            distributed=getattr(args, "distributed", False),
            coordinator=getattr(args, "coordinator", None),
            num_processes=getattr(args, "num_processes", None),
            process_id=getattr(args, "process_id", None),
            wandb=getattr(args, "wandb", False),
            wandb_project=getattr(args, "wandb_project", "robolearn"),
        )
        return _load(command.run)(cfg, options) or 0
    except RobolearnError as exc:
        print(f"{PROG} {command.words}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        return report_missing_extra(exc, f"{PROG} {command.words}")
    except KeyboardInterrupt:
        print(f"{PROG} {command.words}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
