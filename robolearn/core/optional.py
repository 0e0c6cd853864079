"""Packages the robot install leaves out, and the one-line error naming the extra that brings one.

The base package is the robot install (the ROS 2 bridge, policy inference, the simulated WidowX);
the workstation (simulators, trainers, data formats, video) is the `workstation` extra, rclpy
from PyPI the `ros` extra, torch and its reference implementations `reference`, Weights & Biases
(`--wandb`) `tracking` (pyproject.toml).
A command that imports a package of an extra that is not installed fails with one line saying
which extra to install instead of a traceback (robolearn.cli, robolearn.envs.make,
robolearn.runs.deploy).
"""

from __future__ import annotations

import sys

from robolearn.core.errors import RobolearnError

# Top-level import name -> the extra of pyproject.toml that installs it.
EXTRA_OF_MODULE = {
    **dict.fromkeys(
        [
            "metaworld",
            "robosuite",
            "imageio",
            "imageio_ffmpeg",
            "h5py",
            "grain",
            "pyarrow",
            "google_crc32c",
            "safetensors",
            "sentencepiece",
            "tokenizers",
            "rosbags",
            "tensorboardX",
            "matplotlib",
        ],
        "workstation",
    ),
    **dict.fromkeys(
        [
            "rclpy",
            "builtin_interfaces",
            "rcl_interfaces",
            "sensor_msgs",
            "std_msgs",
            "std_srvs",
            "trajectory_msgs",
        ],
        "ros",
    ),
    **dict.fromkeys(["torch", "diffusers", "transformers"], "reference"),
    "wandb": "tracking",
}


class MissingExtraError(RobolearnError, ImportError):
    """A package of an optional extra is not installed."""


def missing_extra(exc: BaseException) -> MissingExtraError | None:
    """The one-line error for an ImportError of a package one of our extras brings; None when
    `exc` is anything else (a real bug, or a package that should have been there)."""
    if not isinstance(exc, ImportError):
        return None
    module = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    install = f"`uv sync --extra {extra}` in a checkout, or `pip install 'robolearn[{extra}]'`"
    if extra == "ros":
        return MissingExtraError(
            f"no module named {module!r}: source ROS 2 (`source /opt/ros/$ROS_DISTRO/setup.bash`) "
            f"so that its rclpy is importable, or install the `ros` extra: {install}"
        )
    return MissingExtraError(
        f"no module named {module!r}: it comes with the `{extra}` extra, which this install "
        f"leaves out; install it with {install}"
    )


def report_missing_extra(exc: ImportError, prog: str) -> int:
    """For an entry point: print `prog: error: ...` naming the extra and return exit code 2, or
    re-raise `exc` when no extra of ours brings the missing module (a bug, not an install)."""
    if (error := missing_extra(exc)) is None:
        raise exc
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 2
