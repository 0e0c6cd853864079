"""The import arrows of ARCHITECTURE.md, checked on the source (module-level and lazy imports)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("robolearn", "world_models", "reward_models", "hardware")

# module prefix -> prefixes it must never import
FORBIDDEN = {
    "robolearn.core": ("robolearn.", "world_models", "reward_models", "hardware"),
    "world_models": ("reward_models", "robolearn.policies", "hardware", "robolearn.envs"),
    "reward_models": ("world_models", "robolearn.policies", "hardware", "robolearn.envs"),
    "robolearn.policies": ("world_models", "reward_models", "hardware", "robolearn.envs"),
    "robolearn.envs": (
        "world_models",
        "reward_models",
        "robolearn.policies",
        "hardware",
        "robolearn.runs",
        "robolearn.imagination",
    ),
    "robolearn.data": ("world_models", "reward_models", "hardware", "robolearn.runs"),
    "hardware": ("world_models", "reward_models", "robolearn.runs", "robolearn.envs"),
}
# The simulated arm (MuJoCo behind the driver's interface) is the one part of hardware/ that is a
# simulator: it may use the WidowX scenes of robolearn.envs.
ALLOWED = {
    "robolearn.hardware.sim_arm": ("robolearn.envs",),
    "robolearn.hardware.ros2_sim_driver": ("robolearn.envs",),
}


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            yield ".".join(parts), path


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _under(name: str, prefix: str) -> bool:
    return name == prefix.rstrip(".") or name.startswith(
        prefix if prefix.endswith(".") else prefix + "."
    )


def test_import_arrows_hold():
    broken = []
    for module, path in _modules():
        for imported in _imports(path):
            if imported == "robolearn.cli" or imported.startswith("robolearn.cli."):
                broken.append(f"{module} imports robolearn.cli")
            if imported.split(".")[0] == "rclpy" and not (
                module.startswith("robolearn.hardware.ros2") or module.startswith("ros_ws")
            ):
                broken.append(f"{module} imports rclpy (only hardware/ros2* may)")
            for owner, banned in FORBIDDEN.items():
                if (
                    _under(module, owner)
                    and not _under(imported, owner)
                    and any(_under(imported, b) for b in banned)
                    and not any(_under(imported, a) for a in ALLOWED.get(module, ()))
                ):
                    broken.append(f"{module} imports {imported}")
    assert not broken, "\n".join(broken)


def test_importing_robolearn_needs_no_simulator_suite():
    import subprocess
    import sys

    code = (
        "import sys, robolearn, robolearn.envs, robolearn.cli; robolearn.envs.task_names(); "
        "bad = [m for m in ('metaworld', 'robosuite', 'rclpy', 'jax') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
