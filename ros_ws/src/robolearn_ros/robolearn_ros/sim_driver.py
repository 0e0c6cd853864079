"""Executable `sim_driver`: runs robolearn.hardware.ros2_sim_driver (the simulated WidowX driver
node)."""

import sys


def main() -> int:
    """Run the robolearn_sim_driver node with this process's arguments (--ros-args ...)."""
    from robolearn.hardware.ros2_sim_driver import main as driver_main

    return driver_main()


if __name__ == "__main__":
    sys.exit(main())
