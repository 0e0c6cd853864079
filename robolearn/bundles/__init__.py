"""Model bundles shipped inside the package: trained parts per task, with a card.

    robolearn/bundles/<task>/card.md       how every part was made: commands, data, steps,
                                           hardware, measured numbers
    robolearn/bundles/<task>/<part>/       a checkpoint directory (world-model, bc, ...)

Every command that takes a checkpoint also takes `bundle:<task>/<part>`, e.g. `bundle:drawer/bc`.
`listing()` is what `robolearn bundles` prints: one line per part, read from the parts' marker
JSON, config YAML and orbax metadata (no JAX, so it is fast), or a task's card.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import yaml

from robolearn.core.errors import RobolearnError

PREFIX = "bundle:"
ROOT = Path(__file__).parent


class BundleError(RobolearnError, ValueError):
    """A `bundle:` reference to a part that is not shipped."""


@dataclasses.dataclass(frozen=True)
class BundlePart:
    task: str
    part: str
    path: Path

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.task}/{self.part}"

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def is_bundle(spec: str) -> bool:
    return str(spec).startswith(PREFIX)


def list_parts() -> list[BundlePart]:
    """Every shipped part, sorted by task then part. A task's folder is named as the task, so a
    Meta-World task's parts lie two levels down (metaworld/lever-pull-40hz/bc)."""
    parts = []
    for task_dir in _task_dirs(ROOT):
        task = task_dir.relative_to(ROOT).as_posix()
        for part in sorted(_visible_dirs(task_dir)):
            if not _is_task_dir(part):
                parts.append(BundlePart(task, part.name, part))
    return sorted(parts, key=lambda p: (p.task, p.part))


def _visible_dirs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir() and p.name[0] not in "._"]


def _is_checkpoint(folder: Path) -> bool:
    return next(folder.glob("robolearn-*.json"), None) is not None


def _is_task_dir(folder: Path) -> bool:
    """A task's bundle: a folder with a card, or one whose folders are checkpoints; never a
    checkpoint itself (a policy part holds its actor-only export, itself a checkpoint)."""
    if _is_checkpoint(folder):
        return False
    return (folder / "card.md").is_file() or any(map(_is_checkpoint, _visible_dirs(folder)))


def _task_dirs(folder: Path) -> list[Path]:
    found = []
    for child in sorted(_visible_dirs(folder)):
        if _is_checkpoint(child):
            continue
        if _is_task_dir(child):
            found.append(child)
        found += _task_dirs(child)  # a task folder may hold further tasks' (metaworld/...)
    return found


def card(task: str) -> str:
    """The card (markdown) of a task's bundle; '' if it has none."""
    path = ROOT / task / "card.md"
    return path.read_text() if path.is_file() else ""


def resolve(spec: str | Path) -> str:
    """The directory of `bundle:<task>/<part>` (the task's name may hold a slash:
    `bundle:metaworld/lever-pull-40hz/bc`); any other spec is returned unchanged."""
    spec = str(spec)
    if not is_bundle(spec):
        return spec
    name = spec[len(PREFIX) :].strip("/")
    task, _, part = name.rpartition("/")
    parts = list_parts()
    match = next((p for p in parts if (p.task, p.part) == (task, part)), None)
    if match is None:
        shipped = ", ".join(p.name for p in parts) or "none"
        raise BundleError(f"no shipped bundle part {spec!r}; shipped: {shipped}")
    return str(match.path)


def listing(card: str | None = None) -> str:
    """What `robolearn bundles` prints: per task, a line naming its card, a header and one line
    per part (see summary); with `card` = a task, that task's lines and then its card (markdown).
    BundleError for a task without a shipped bundle."""
    parts = list_parts()
    if card is not None:
        if not any(p.task == card for p in parts):
            shipped = ", ".join(sorted({p.task for p in parts})) or "none"
            raise BundleError(f"no bundle for task {card!r}; shipped: {shipped}")
        path = ROOT / card / "card.md"
        text = path.read_text().rstrip() if path.is_file() else ""
        return _task_lines(card, parts) + ("\n\n" + text if text else "")
    if not parts:
        return "no bundles are shipped in this installation"
    return "\n\n".join(_task_lines(task, parts) for task in sorted({p.task for p in parts}))


TASKS_WIDTH = 10  # the task(s) column's least width


def summary_header(tasks_width: int = TASKS_WIDTH) -> str:
    """The column names of summary's lines, the task(s) column `tasks_width` wide."""
    return f"{'size':>8}  {'steps':>9}  {'params':>7}  {'task(s)':<{tasks_width}}  what"


def summary(part: BundlePart) -> str:
    """One line on a part (without its name), in the columns of summary_header(): size on disk,
    training steps (PPO: iterations), parameters, task(s), and what it is (policy kind,
    world-model preset and sampler, reward-classifier kind and threshold). Read from the marker
    JSON, config.yaml and orbax's metadata, never by loading the model."""
    return _summary_line(part, _read_facts(part), TASKS_WIDTH)


def _summary_line(part: BundlePart, facts: _Facts, tasks_width: int) -> str:
    size = f"{part.size_bytes / 1e6:.1f} MB"
    tasks = f"{facts.tasks:<{tasks_width}}"
    return f"{size:>8}  {facts.steps:>9}  {facts.params:>7}  {tasks}  {facts.what}"


def _read_facts(part: BundlePart) -> _Facts:
    try:
        return _facts(part.path)
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        return _Facts(f"unreadable ({type(exc).__name__}: {exc})", "?")


@dataclasses.dataclass(frozen=True)
class _Facts:
    what: str
    tasks: str
    steps: str = "?"
    params: str = "?"


def _task_lines(task: str, parts: list[BundlePart]) -> str:
    mine = [p for p in parts if p.task == task]
    width = max(len(p.name) for p in mine)
    path = ROOT / task / "card.md"
    head = f"{task}: {len(mine)} parts" + (
        f"; how they were made: {path}" if path.is_file() else ""
    )
    facts = [_read_facts(p) for p in mine]
    # the task(s) column as wide as its longest entry (metaworld/lever-pull-40hz)
    tasks = max([TASKS_WIDTH, *(len(f.tasks) for f in facts)])
    rows = [f"  {'part':<{width}}  {summary_header(tasks)}"]
    rows += [
        f"  {p.name:<{width}}  {_summary_line(p, f, tasks)}"
        for p, f in zip(mine, facts, strict=True)
    ]
    return "\n".join([head, *rows])


def _facts(root: Path) -> _Facts:
    for marker, read in _READERS.items():
        if (root / marker).is_file():
            return read(root, _json(root / marker), _yaml(root / "config.yaml"))
    return _Facts("not a robolearn checkpoint (no robolearn-*.json marker)", "?")


def _world_model_facts(root: Path, marker: dict, cfg: dict) -> _Facts:
    sampler, steps = cfg.get("sampler", {}), _latest_step(root)
    noise = (cfg.get("model") or {}).get("context_noise", 0)
    what = (
        f"diffusion world model, {cfg.get('preset', '?')} preset, "
        f"{marker['context']}-frame context"
        + (f" (noise-augmented up to {noise:g})" if noise else "")
        + f", {sampler.get('steps', '?')}-step {sampler.get('method', '?')} sampler"
        + (" (distilled)" if sampler.get("distilled") else "")
        + (", EMA weights" if marker.get("weights") == "ema" else ", training state")
    )
    return _Facts(what, ",".join(marker["tasks"]), steps, _params(root, steps, "ema"))


def _policy_facts(root: Path, marker: dict, cfg: dict) -> _Facts:
    kind, steps = marker.get("kind", "bc"), _latest_step(root)
    params = _params(root, steps, "params")
    weights = ", actor only" if marker.get("weights") == "actor" else ""
    if kind != "ppo":
        what = f"{kind.upper()} policy{weights}, {cfg.get('preset', '?')} preset"
        return _Facts(what, marker["task"], steps, params)
    what = f"PPO policy{weights}: {marker.get('parent') or '?'} refined in imagination"
    ppo = _yaml(root / "refine.yaml").get("ppo", {})
    if ppo:
        what += f", {ppo['rollouts']} imagined {ppo['horizon']}-step episodes per iteration"
    return _Facts(what, marker["task"], f"{steps} it", params)


def _reward_facts(root: Path, marker: dict, cfg: dict) -> _Facts:
    steps = _latest_step(root)
    what = (
        f"{marker['kind']} reward classifier, {cfg.get('preset', '?')} preset, "
        f"threshold {marker['threshold']:.2f}"
    )
    return _Facts(what, ",".join(marker["tasks"]), steps, _params(root, steps, "params"))


# marker file -> what reads the part (robolearn.policies.bc.checkpoint, world_models.checkpoint,
# reward_models.checkpoint write them; read here as plain JSON/YAML to stay fast)
_READERS = {
    "robolearn-world-model.json": _world_model_facts,
    "robolearn-policy.json": _policy_facts,
    "robolearn-reward.json": _reward_facts,
}


def _latest_step(root: Path) -> str:
    """The latest complete checkpoint step (orbax names complete steps by their number)."""
    steps = [int(p.name) for p in (root / "checkpoints").glob("*") if p.name.isdigit()]
    return str(max(steps)) if steps else "?"


def _params(root: Path, step: str, top: str) -> str:
    """'3.96M' or '1.5k': how many values the checkpoint of `step` holds under its state's `top`
    key, from orbax's array metadata (plus the SigLIP towers a reward checkpoint keeps beside it
    in siglip/ when they are not in the orbax state)."""
    found = sorted((root / "checkpoints" / step).glob("*/_METADATA"))
    if not found:
        return "?"
    count, towers = 0, False
    for entry in _json(found[0])["tree_metadata"].values():
        keys = [k["key"] for k in entry["key_metadata"]]
        if keys[0] == top:
            count += math.prod(entry["value_metadata"].get("write_shape") or [0])
            towers = towers or (len(keys) > 1 and keys[1] == "towers")
    siglip = root / "siglip" / "model.safetensors"
    if siglip.is_file() and not towers:
        count += _safetensors_params(siglip)
    return f"{count / 1e6:.2f}M" if count >= 100_000 else f"{count / 1e3:.1f}k"


def _safetensors_params(path: Path) -> int:
    """Values in a .safetensors file, read from its JSON header (8-byte little-endian length)."""
    with path.open("rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _yaml(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
