"""Deploy a policy with its episodes recorded: the bridge node, or the bridge on the simulated arm.

    python -m robolearn.runs.deploy --ros-args -p checkpoint:=bundle:drawer/bc -p record_dir:=DIR
    ros2 run robolearn_ros robolearn_bridge --ros-args ...      # the same entry point
    python -m robolearn.runs.deploy sim --policy bundle:drawer/bc --episodes 10 --record DIR

The first form is the rclpy bridge node (robolearn.hardware.ros2_node: its parameters, topics and
services); `sim ARGS` is the simulated closed loop (robolearn.hardware.sim_arm: its flags). Both
live in robolearn.hardware, which never imports robolearn.data; this entry point hands them
robolearn.data.deployment.store_writer, so `record_dir` / `--record DIR` record the deployment
episodes into the episode store at DIR (written on the bridge's recording thread, never in the
control loop). Without a record directory it runs exactly what `python -m
robolearn.hardware.ros2_node` / `python -m robolearn.hardware.sim_arm` run.
"""

from __future__ import annotations

import sys

from robolearn.core.optional import report_missing_extra
from robolearn.data.deployment import store_writer

SIM = "sim"


def main(args: list[str] | None = None) -> int:
    """Run the bridge node (args: the whole command line, sys.argv by default, as rclpy takes it)
    or, when the first argument is `sim`, the simulated closed loop on the rest. Exit code."""
    args = sys.argv if args is None else args
    if args[1:2] == [SIM]:
        from robolearn.hardware import sim_arm

        sim_arm.main(args[2:], make_writer=store_writer, prog="python -m robolearn.runs.deploy sim")
        return 0
    try:
        from robolearn.hardware import ros2_node
    except ImportError as exc:  # no rclpy: say to source ROS 2 or install the `ros` extra
        return report_missing_extra(exc, "python -m robolearn.runs.deploy")
    return ros2_node.main(args, make_writer=store_writer)


if __name__ == "__main__":
    sys.exit(main())
