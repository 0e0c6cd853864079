"""robolearn.envs imports in one direction: its module graph, read from the source, has no cycle.

Every import counts, wherever it stands (module level, inside a function, under TYPE_CHECKING), and
so does `importlib.import_module("literal")`: a lazy import must not hide a cycle. `from X import Y`
is an edge to X.Y where X.Y is a module, else to X. Parent packages are not edges (every module
would otherwise import robolearn.envs, whose __init__ imports the registry).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "robolearn.envs"


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of `package` under `root`."""
    base = root.joinpath(*package.split("."))
    modules = {}
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(module: str, path: Path, known: set[str]):
    """Names of the modules that `module` (at `path`) imports, as written in its source."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{anchor}.{source}" if source else anchor
            for alias in node.names:
                yield f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports (self-imports dropped)."""
    modules = _modules(root, package)
    known = set(modules)
    return {
        module: {name for name in _imported(module, path, known) if name in known} - {module}
        for module, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] if the graph is acyclic (depth-first search)."""
    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        if node in stack:
            return stack[stack.index(node) :] + [node]
        if node in done:
            return []
        stack.append(node)
        for nxt in sorted(graph[node]):
            if cycle := visit(nxt):
                return cycle
        stack.pop()
        done.add(node)
        return []

    for node in sorted(graph):
        if cycle := visit(node):
            return cycle
    return []


def test_envs_imports_have_no_cycle():
    graph = import_graph(ROOT, PACKAGE)
    assert "robolearn.envs.widowx.experts" in graph["robolearn.envs.widowx.base"]  # sees edges
    cycle = find_cycle(graph)
    assert not cycle, "import cycle in robolearn.envs: " + " -> ".join(cycle)


def test_a_lazy_or_type_checking_import_still_closes_a_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import C\n"
    )
    (pkg / "c.py").write_text("def f():\n    from . import a\n")
    (pkg / "d.py").write_text("import importlib\nimportlib.import_module('pkg.d')\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.d"] == set() and graph["pkg"] == set()
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
