"""The robot install (the base package + the `ros` extra) suffices for the robot's code paths.

Run in the full environment, a subprocess refuses to import every package the robot install
leaves out (computed from uv.lock: whatever the base and `ros` dependencies do not reach), and
must still import the bridge node, the simulated driver and the deployment entry point, load and
run the shipped policies, step and render the simulated drawer, and turn a workstation command
into one line naming the extra. On a real robot install (CI's Python 3.12 lean environment) the
same checks run with nothing to refuse.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROBOT_EXTRAS = ("ros",)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, dict]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {_norm(p["name"]): p for p in lock["package"]}


def robot_distributions(extras: tuple[str, ...] = ROBOT_EXTRAS) -> set[str]:
    """Every distribution uv.lock installs for the base package plus `extras` (markers other than
    the overrides' `sys_platform == 'never'` are ignored, so this over-approximates: a
    platform-specific dependency counts as reachable)."""
    packages = _lock()
    project = packages["robolearn"]
    todo = list(project.get("dependencies", []))
    for extra in extras:
        todo += project["optional-dependencies"][extra]
    seen = {"robolearn"}
    while todo:
        dep = todo.pop()
        name = _norm(dep["name"])
        package = packages.get(name)
        if package is None or "never" in dep.get("marker", ""):
            continue
        for extra in dep.get("extra", []):
            todo += package.get("optional-dependencies", {}).get(extra, [])
        if name not in seen:
            seen.add(name)
            todo += package.get("dependencies", [])
    return seen


def left_out_modules() -> list[str]:
    """Installed top-level modules that only distributions outside the robot install provide."""
    robot = robot_distributions()
    return sorted(
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if module.isidentifier() and not any(_norm(d) in robot for d in dists)
    )


CHECKS = r"""
import contextlib, io, json, sys

blocked = set(json.loads(sys.argv[1]))
refused = []


class Refuse:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in blocked:
            refused.append(top)
            raise ModuleNotFoundError(f"No module named {top!r} (robot install)", name=top)


sys.meta_path.insert(0, Refuse())

import numpy as np

import robolearn.hardware.ros2_node  # the bridge node (rclpy)
import robolearn.hardware.ros2_sim_driver  # the simulated driver
import robolearn.runs.deploy  # the `robolearn_bridge` entry point, with recording
from robolearn.hardware.policy_loader import load_policy
from robolearn.hardware.sim_arm import SimArm

arm = SimArm("drawer", seed=0)
arm.step(0.01)
obs = {"image": arm.render(), "proprio": np.zeros(7, np.float32)}
actions = {}
for spec in ("bundle:drawer/bc", "bundle:drawer/refined"):  # BC and the PPO-refined actor
    action = np.asarray(load_policy(spec)(obs))
    assert action.shape == (7,) and np.all(np.isfinite(action)), (spec, action)
    actions[spec] = action.tolist()
arm.close()

from robolearn.cli import main

stderr = io.StringIO()
with contextlib.redirect_stderr(stderr):
    code = main(["imagine", "--task", "drawer"]) if "imageio" in blocked else None
print(json.dumps({"refused": sorted(set(refused)), "cli": [code, stderr.getvalue()]}))
"""


@pytest.mark.slow
def test_robot_modules_import_and_run_without_the_workstation():
    blocked = left_out_modules()
    installed = {_norm(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    for heavy in ("metaworld", "robosuite", "torch", "matplotlib", "imageio"):
        assert heavy not in robot_distributions()
        if heavy in installed:  # the full environment: these must be refused in the subprocess
            assert heavy in blocked
    result = subprocess.run(
        [sys.executable, "-c", CHECKS, json.dumps(blocked)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    code, stderr = report["cli"]
    if "imageio" in blocked:  # a workstation command on the robot install: one line, the extra
        assert code == 2 and stderr.count("\n") == 1 and "`workstation` extra" in stderr, stderr


def test_the_robot_install_leaves_the_workstation_out():
    robot = robot_distributions()
    for needed in ("jax", "flax", "orbax-checkpoint", "mujoco", "dm-control", "ros-rclpy"):
        assert needed in robot
    for left_out in ("metaworld", "robosuite", "numba", "torch", "matplotlib", "pynput", "evdev"):
        assert left_out not in robot


def test_every_source_distribution_the_lock_installs_is_pure_python():
    """A bare machine has no C compiler: whatever uv.lock can install without a wheel must build
    without one (CI installs with the compilers hidden). empy (the ROS 2 wheels' template engine)
    is a pure-Python setuptools sdist; evdev (robosuite -> pynput) needed a compiler and kernel
    headers, and the `pynput` override keeps it out."""
    packages = _lock()
    everything = robot_distributions(tuple(packages["robolearn"]["optional-dependencies"]))
    sdist_only = {name for name in everything if not packages[name].get("wheels")}
    assert sdist_only == {"robolearn", "empy"}


def test_a_missing_extra_is_one_line_naming_it_and_other_import_errors_stay_errors():
    from robolearn.core.optional import missing_extra

    ros = str(missing_extra(ModuleNotFoundError("No module named 'rclpy'", name="rclpy.node")))
    assert "source ROS 2" in ros and "`ros` extra" in ros and "\n" not in ros
    sim = str(missing_extra(ModuleNotFoundError("No module named 'robosuite'", name="robosuite")))
    assert "`workstation` extra" in sim and "robolearn[workstation]" in sim
    assert missing_extra(ModuleNotFoundError("No module named 'x'", name="robolearn.x")) is None
    assert missing_extra(ValueError("robosuite")) is None
