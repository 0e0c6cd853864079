"""Executable `robolearn_bridge`: runs robolearn.hardware.ros2_node (the policy bridge node)."""

import sys


def main() -> int:
    """Run the robolearn_bridge node with this process's arguments (--ros-args ...)."""
    from robolearn.hardware.ros2_node import main as node_main

    return node_main()


if __name__ == "__main__":
    sys.exit(main())
