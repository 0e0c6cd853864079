"""The import arrows of docs/architecture.md, checked on the source: the test reads the table
"Who may import whom" from the document, so the rule the code follows is the one it states."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
# Folder -> import name: world_models/, reward_models/ and hardware/ are robolearn.<folder>.
FOLDERS = {
    "robolearn": "robolearn",
    "world_models": "robolearn.world_models",
    "reward_models": "robolearn.reward_models",
    "hardware": "robolearn.hardware",
}
ROS_PACKAGES = (
    "rclpy",
    "std_msgs",
    "sensor_msgs",
    "trajectory_msgs",
    "std_srvs",
    "builtin_interfaces",
)


def allowed_table() -> dict[str, set[str]]:
    """{module prefix: the robolearn prefixes it may import}, from the document's table."""
    section = DOC.read_text().split("## Who may import whom", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            names = re.findall(r"`([\w.]+)`", cells[1])
            table[cells[0].strip("`")] = set(names)
    assert "robolearn.core" in table and "robolearn.cli" in table, "table not found in the doc"
    return table


def modules():
    for folder, name in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = rel[:-1] if rel[-1] == "__init__" else rel
            yield ".".join((name, *parts)), path


def imports(path: Path, module: str):
    """Every absolute module an import statement names, at any depth; `from a import b` yields
    a.b as well (b may be a module: `from robolearn import envs`)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rule_for(module: str, table: dict[str, set[str]]) -> tuple[str, set[str]]:
    if module == "robolearn":  # the package's __init__: imports nothing of ours
        return module, set()
    owner = max((p for p in table if under(module, p)), key=len, default=None)
    assert owner is not None, f"{module} has no row in {DOC.name}'s import table"
    return owner, table[owner]


def layer_of(name: str, table: dict[str, set[str]]) -> str | None:
    """The table row an imported robolearn name belongs to (None: not ours, or a plain name
    like `robolearn.__version__`)."""
    if not under(name, "robolearn"):
        return None
    return max((p for p in table if under(name, p)), key=len, default=None)


def test_every_import_follows_the_documented_table():
    table = allowed_table()
    broken = []
    for module, path in modules():
        owner, allowed = rule_for(module, table)
        for name in imports(path, module):
            if name.split(".")[0] in ROS_PACKAGES and not module.startswith(
                "robolearn.hardware.ros2"
            ):
                broken.append(f"{module} imports {name} (only robolearn.hardware.ros2* may)")
            if name.split(".")[0] in FOLDERS and name.split(".")[0] != "robolearn":
                broken.append(f"{module} imports {name}: import it as robolearn.{name}")
            target = layer_of(name, table)
            own_package = ".".join(module.split(".")[:2])
            if target is None or under(name, own_package) or target == "robolearn.core":
                continue
            if not any(under(target, a) or under(a, target) for a in allowed):
                broken.append(f"{module} imports {name} ({owner} may not import {target})")
    assert not broken, "\n".join(sorted(set(broken)))


def test_the_table_covers_every_package():
    table = allowed_table()
    for module, _ in modules():
        rule_for(module, table)


def test_the_check_sees_lazy_and_from_imports(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from robolearn import envs\n    from . import sibling\n")
    names = set(imports(path, "robolearn.world_models.m"))
    assert {"robolearn.envs", "robolearn.world_models.sibling"} <= names


def test_importing_robolearn_needs_no_simulator_suite():
    code = (
        "import sys, robolearn, robolearn.envs, robolearn.cli; robolearn.envs.task_names(); "
        "bad = [m for m in ('metaworld', 'robosuite', 'rclpy', 'jax') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_no_import_cycle_anywhere():
    """Module-level and lazy imports alike: the project's module graph has no cycle (a lazy
    import must not hide one)."""
    paths = dict(modules())
    graph = {
        m: {n for n in imports(p, m) if n in paths and n != m and not under(m, n)}
        for m, p in paths.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str]:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt] if nxt in stack else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*stack, nxt])):
                return cycle
        state[node] = 2
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            raise AssertionError(" -> ".join(cycle))
