"""Executable `robolearn_bridge`: runs robolearn.runs.deploy, the policy bridge node
(robolearn.hardware.ros2_node) with deployment episodes recorded when record_dir is set."""

import sys


def main() -> int:
    """Run the robolearn_bridge node with this process's arguments (--ros-args ...)."""
    from robolearn.runs.deploy import main as deploy_main

    return deploy_main()


if __name__ == "__main__":
    sys.exit(main())
