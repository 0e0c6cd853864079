"""Run a robolearn policy on a WidowX: the robolearn_bridge node plus the arm's driver.

    ros2 launch robolearn_ros widowx_policy.launch.py                      # simulated arm
    ros2 launch robolearn_ros widowx_policy.launch.py use_sim:=false robot_model:=wx250s \
        checkpoint:=bundle:drawer/bc image_topic:=/camera/camera/color/image_raw

use_sim:=true (the default, so a bare launch never moves a real arm) starts robolearn's simulated
WidowX driver (MuJoCo, same topics); use_sim:=false includes the Interbotix driver
(interbotix_xsarm_control/launch/xsarm_control.launch.py) for `robot_model`. The camera driver of a
real arm is launched separately; point image_topic at it. The bridge holds the arm until its
~/start service is called (or autostart:=true). The bridge executable runs robolearn.runs.deploy,
so record_dir:=DIR records each run's deployment episode into the episode store at DIR. Arguments
left empty keep the value of config/bridge.yaml (or the node's default).
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "robolearn_ros"
# (name, default, description): every argument this file declares.
ARGUMENTS = (
    ("checkpoint", "", "policy: a checkpoint directory or bundle:<task>/<part> (bundle:drawer/bc)"),
    ("instruction", "", "language instruction passed to the policy and recorded"),
    ("task", "", "task name the policy was trained for (drawer); also the simulated scene"),
    ("robot_model", "wx250s", "Interbotix robot model; the topics live under /<robot_model>"),
    ("use_sim", "true", "true: simulated WidowX driver (MuJoCo); false: the Interbotix driver"),
    ("use_rviz", "false", "real arm only: start RViz with the Interbotix driver"),
    ("seed", "0", "simulated arm only: scene placement seed"),
    ("policy_rate", "", "policy steps per second (Hz, default 5)"),
    ("control_rate", "", "command rate to the arm (Hz, default 100)"),
    (
        "output_mode",
        "",
        "forward_position | joint_trajectory | interbotix (default: interbotix on a real arm, "
        "forward_position in simulation)",
    ),
    ("autostart", "", "true: start the policy once observations arrive (default false)"),
    ("image_topic", "", "camera topic (default camera/image_raw under /<robot_model>)"),
    ("filter_enabled", "", "passivity filter on (true) or accounting only (false)"),
    ("energy_init", "", "energy tank start level (J)"),
    ("energy_min", "", "energy tank floor the filter never crosses (J)"),
    ("energy_max", "", "energy tank cap (J)"),
    ("stiffness", "", "port stiffness K per arm joint, 6 numbers (N m/rad), e.g. [200.0, ...]"),
    ("damping", "", "port damping D per arm joint, 6 numbers (N m s/rad)"),
    ("record_dir", "", "episode store directory for deployment episodes (empty: no recording)"),
    ("bridge_params", "", "bridge parameter file (default: this package's config/bridge.yaml)"),
)
# Launch arguments passed on to the bridge node as the parameter of the same name when not empty.
BRIDGE_ARGUMENTS = (
    "checkpoint",
    "instruction",
    "task",
    "policy_rate",
    "control_rate",
    "output_mode",
    "autostart",
    "image_topic",
    "filter_enabled",
    "energy_init",
    "energy_min",
    "energy_max",
    "stiffness",
    "damping",
    "record_dir",
)
TEXT_ARGUMENTS = ("checkpoint", "instruction", "task", "output_mode", "image_topic", "record_dir")


def is_true(text: str) -> bool:
    """A launch boolean ("true"/"false", any case; "1"/"0")."""
    return text.strip().lower() in ("true", "1", "yes", "on")


def bridge_overrides(values: dict) -> dict:
    """The bridge node's parameters set by launch arguments (`values`: argument -> text).

    Empty arguments set nothing (the parameter file or the node default applies); numbers,
    booleans and lists are parsed as YAML, as `ros2 run ... -p` would; text stays text.
    """
    import yaml

    params = {}
    for name in BRIDGE_ARGUMENTS:
        text = values.get(name, "")
        if text != "":
            params[name] = text if name in TEXT_ARGUMENTS else yaml.safe_load(text)
    params["robot_namespace"] = "/" + values["robot_model"]
    if "output_mode" not in params:
        sim = is_true(values["use_sim"])
        params["output_mode"] = "forward_position" if sim else "interbotix"
    return params


def sim_overrides(values: dict) -> dict:
    """The simulated driver's parameters set by launch arguments."""
    params = {"robot_namespace": "/" + values["robot_model"], "seed": int(values["seed"])}
    if values.get("task"):
        params["task"] = values["task"]
    if values.get("image_topic"):
        params["image_topic"] = values["image_topic"]
    return params


def _nodes(context):
    values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config"]).perform(context)
    bridge_file = values["bridge_params"] or f"{config}/bridge.yaml"
    nodes = [
        Node(
            package=PACKAGE,
            executable="robolearn_bridge",
            name="robolearn_bridge",
            parameters=[bridge_file, bridge_overrides(values)],
            output="screen",
            emulate_tty=True,
        )
    ]
    if is_true(values["use_sim"]):
        nodes.append(
            Node(
                package=PACKAGE,
                executable="sim_driver",
                name="robolearn_sim_driver",
                parameters=[f"{config}/sim_driver.yaml", sim_overrides(values)],
                output="screen",
                emulate_tty=True,
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments; the Interbotix driver (real arm) or the simulated one; the bridge."""
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, default, description in ARGUMENTS
    ]
    interbotix = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution(
                [FindPackageShare("interbotix_xsarm_control"), "launch", "xsarm_control.launch.py"]
            )
        ),
        launch_arguments={
            "robot_model": LaunchConfiguration("robot_model"),
            "use_rviz": LaunchConfiguration("use_rviz"),
        }.items(),
        condition=UnlessCondition(LaunchConfiguration("use_sim")),
    )
    return LaunchDescription([*declared, interbotix, OpaqueFunction(function=_nodes)])
