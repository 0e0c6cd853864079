"""`robolearn.bundles.listing` and `summary`: one line per shipped part, read from its files (no
JAX), that agrees with the parts on disk; the card on request."""

import json
import re
import subprocess
import sys

import pytest
import yaml

from robolearn import bundles

LEVER = "metaworld/lever-pull-40hz"
TASKS = ["drawer", "drawer-close", LEVER]


def test_listing_has_one_line_per_part_with_its_real_size_and_steps():
    text = bundles.listing()
    groups = [g.splitlines() for g in text.split("\n\n")]
    parts = bundles.list_parts()
    assert [g[0].split(":")[0] for g in groups] == TASKS  # one group per task
    assert groups[0][0].startswith("drawer: 5 parts") and "card.md" in groups[0][0]
    assert groups[1][0].startswith("drawer-close: 2 parts") and "card.md" in groups[1][0]
    assert groups[2][0].startswith(f"{LEVER}: 4 parts") and "card.md" in groups[2][0]
    assert bundles.summary_header() in groups[0][1]
    lines = [line for g in groups for line in g[2:]]
    assert len(lines) == len(parts)
    for group in groups:  # the columns line up under the header, the long task name included
        what = group[1].index("what")
        assert all(line[what - 2 : what] == "  " and line[what] != " " for line in group[2:])
    for part, line in zip(parts, lines, strict=True):
        assert line.split()[0] == part.name
        assert f"{part.size_bytes / 1e6:.1f} MB" in line
        step = max(int(p.name) for p in (part.path / "checkpoints").iterdir() if p.name.isdigit())
        assert f" {step} " in line and f" {part.task} " in line
    assert "## How it was made" not in text  # the card only on request
    by_name = {line.split()[0]: line for line in lines}
    assert "BC policy, actor only, base preset" in by_name["bundle:drawer/bc"]
    assert "PPO policy, actor only: bundle:drawer/bc-3demos" in by_name["bundle:drawer/refined"]
    assert "cnn reward classifier" in by_name["bundle:drawer/reward"]
    assert "threshold 0.74" in by_name["bundle:drawer/reward"]
    wm = by_name["bundle:drawer/world-model"]
    assert "4.03M" in wm and "small preset" in wm and "3-step euler sampler" in wm
    assert "context (noise-augmented up to 0.5)" in wm
    lever = f"bundle:{LEVER}"
    assert f"PPO policy, actor only: {lever}/bc refined" in by_name[f"{lever}/refined"]
    assert (
        "3.96M" in by_name[f"{lever}/world-model"] and " 3000 " in by_name[f"{lever}/world-model"]
    )
    assert "threshold 0.50" in by_name[f"{lever}/reward"]
    # the backward task's parts reset-free practice defaults to
    assert "BC policy, actor only" in by_name["bundle:drawer-close/bc"]
    assert "cnn reward classifier" in by_name["bundle:drawer-close/reward"]


def test_listing_of_a_task_adds_its_card_and_unknown_tasks_are_one_line():
    for task in TASKS:
        text = bundles.listing(task)
        own = next(g for g in bundles.listing().split("\n\n") if g.startswith(f"{task}:"))
        assert text.startswith(own + "\n\n")
        assert text.endswith(bundles.card(task).rstrip())
    with pytest.raises(
        bundles.BundleError, match=f"no bundle for task 'nowhere'; shipped: {', '.join(TASKS)}$"
    ):
        bundles.listing("nowhere")


def test_every_card_leaves_sizes_to_the_listing():
    tasks = sorted({p.task for p in bundles.list_parts()})
    assert tasks == TASKS
    for task in tasks:
        card = bundles.card(task)
        assert not re.search(r"\d\s*[kKM]B\b", card), f"{task}: sizes belong to `robolearn bundles`"
        assert "robolearn bundles" in card


def test_listing_needs_no_jax():
    code = (
        "import sys; from robolearn import bundles; bundles.listing(); print('jax' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _fake_part(root, marker, fields, config, step=7, arrays=None):
    """A checkpoint directory: marker JSON, config.yaml and orbax-like metadata of `arrays`
    ({(key, ...): shape})."""
    root.mkdir(parents=True)
    (root / marker).write_text(json.dumps({"version": 1, **fields}))
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    meta = root / "checkpoints" / str(step) / "default"
    meta.mkdir(parents=True)
    (root / "checkpoints" / f"{step + 5}.orbax-checkpoint-tmp-1").mkdir()  # incomplete: ignored
    tree = {
        str(keys): {
            "key_metadata": [{"key": k, "key_type": 2} for k in keys],
            "value_metadata": {"value_type": "jax.Array", "write_shape": list(shape)},
        }
        for keys, shape in (arrays or {}).items()
    }
    (meta / "_METADATA").write_text(json.dumps({"tree_metadata": tree}))
    return bundles.BundlePart("t", root.name, root)


def test_summary_reads_kind_preset_steps_and_parameters(tmp_path):
    arrays = {("params", "a", "kernel"): (10, 100), ("params", "b"): (500,), ("opt", "x"): (9,)}
    bc = _fake_part(
        tmp_path / "bc",
        "robolearn-policy.json",
        {"format": "robolearn-policy", "task": "push", "kind": "bc"},
        {"preset": "tiny"},
        arrays=arrays,
    )
    line = bundles.summary(bc)
    assert re.search(r"\s7\s+1\.5k\s+push\s+BC policy, tiny preset$", line)
    wm = _fake_part(
        tmp_path / "wm",
        "robolearn-world-model.json",
        {"format": "robolearn-world-model", "tasks": ["a", "b"], "context": 2, "weights": "ema"},
        {"preset": "base", "sampler": {"steps": 5, "method": "heun"}},
        step=300,
        arrays={("ema", "w"): (1000, 2000), ("step",): ()},
    )
    line = bundles.summary(wm)
    assert "300" in line and "2.00M" in line and "a,b" in line
    assert "base preset, 2-frame context, 5-step heun sampler, EMA weights" in line
    odd = tmp_path / "odd"
    odd.mkdir()
    assert "not a robolearn checkpoint" in bundles.summary(bundles.BundlePart("t", "odd", odd))
    (bc.path / "robolearn-policy.json").write_text("{not json")
    assert "unreadable (JSONDecodeError" in bundles.summary(bc)


def test_summary_counts_siglip_towers_kept_beside_the_orbax_head(tmp_path):
    part = _fake_part(
        tmp_path / "reward",
        "robolearn-reward.json",
        {"format": "robolearn-reward", "kind": "siglip", "tasks": ["drawer"], "threshold": 0.7},
        {"preset": "siglip"},
        arrays={("params", "head", "w"): (10_000,)},
    )
    header = json.dumps({"a": {"dtype": "F32", "shape": [1000, 990], "data_offsets": [0, 0]}})
    (part.path / "siglip").mkdir()
    raw = len(header).to_bytes(8, "little") + header.encode()
    (part.path / "siglip" / "model.safetensors").write_bytes(raw)
    line = bundles.summary(part)
    assert "1.00M" in line and "siglip reward classifier, siglip preset, threshold 0.70" in line


def test_a_task_named_with_a_slash_is_a_folder_two_levels_down(tmp_path, monkeypatch):
    """metaworld/lever-pull-40hz's parts lie in metaworld/lever-pull-40hz/<part>; they resolve and
    list under the full task name, beside a one-level task, and nothing but a part resolves."""
    policy = ("robolearn-policy.json", {"format": "robolearn-policy", "kind": "bc"}, {})
    _fake_part(tmp_path / "drawer" / "bc", policy[0], {**policy[1], "task": "drawer"}, {})
    (tmp_path / "drawer" / "card.md").write_text("# drawer\n")
    lever = tmp_path / "metaworld" / "lever-pull-40hz"
    task = "metaworld/lever-pull-40hz"
    _fake_part(lever / "bc", policy[0], {**policy[1], "task": task}, {})
    _fake_part(lever / "refined", policy[0], {**policy[1], "task": task}, {})
    (lever / "card.md").write_text("# lever\n")
    (tmp_path / "metaworld" / "_cache").mkdir()  # hidden folders are nobody's
    export = lever / "bc" / "policy"  # a policy's actor-only export: a checkpoint in a part
    export.mkdir()
    (export / policy[0]).write_text("{}")
    monkeypatch.setattr(bundles, "ROOT", tmp_path)
    names = [p.name for p in bundles.list_parts()]
    assert names == [
        "bundle:drawer/bc",
        "bundle:metaworld/lever-pull-40hz/bc",
        "bundle:metaworld/lever-pull-40hz/refined",
    ]
    assert bundles.resolve("bundle:metaworld/lever-pull-40hz/bc") == str(lever / "bc")
    assert bundles.resolve("bundle:drawer/bc") == str(tmp_path / "drawer" / "bc")
    for wrong in (
        "bundle:metaworld/lever-pull-40hz",  # a task, not a part
        "bundle:metaworld/bc",
        "bundle:drawer/bc/checkpoints",  # inside a part
        "bundle:metaworld/lever-pull-40hz/../lever-pull-40hz/bc",
        "bundle:drawer/",
    ):
        with pytest.raises(bundles.BundleError, match="no shipped bundle part"):
            bundles.resolve(wrong)
    text = bundles.listing(task)
    assert text.startswith(f"{task}: 2 parts") and text.endswith("# lever")
    assert bundles.card(task) == "# lever\n"
    assert "metaworld/lever-pull-40hz: 2 parts" in bundles.listing()
