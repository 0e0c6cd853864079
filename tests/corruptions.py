"""Corruptions for the hostile checkpoint tests: each returns `corrupt(root)`, which damages one
file of the checkpoint directory `root` in place. (tests/ is on sys.path through its conftest.)"""

from __future__ import annotations

import json

import yaml


def write(name, content):
    """Replace the file's bytes (or text)."""

    def corrupt(root):
        path = root / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return corrupt


def edit_json(name, **fields):
    """Set top-level fields of a JSON file."""

    def corrupt(root):
        data = json.loads((root / name).read_text())
        (root / name).write_text(json.dumps({**data, **fields}))

    return corrupt


def edit_yaml(section, name="config.yaml", **fields):
    """Set fields of one section of a YAML config."""

    def corrupt(root):
        data = yaml.safe_load((root / name).read_text())
        data[section].update(fields)
        (root / name).write_text(yaml.safe_dump(data))

    return corrupt
