"""ament_python package robolearn_ros: launch files, parameter files and the two node executables.

The nodes themselves are robolearn's: the executables installed here call
`robolearn.runs.deploy.main` (lib/robolearn_ros/robolearn_bridge: the bridge node of
robolearn.hardware.ros2_node, recording deployment episodes when record_dir is set) and
`robolearn.hardware.ros2_sim_driver.main` (lib/robolearn_ros/sim_driver), so robolearn must be
installed in the Python that runs ROS 2.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robolearn_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="robolearn",
    maintainer_email="robolearn@example.com",
    description="robolearn bridge node, simulated WidowX driver and launch files",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "robolearn_bridge = robolearn_ros.bridge:main",
            "sim_driver = robolearn_ros.sim_driver:main",
        ],
    },
)
