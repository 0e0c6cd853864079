"""The ros_ws package robolearn_ros: launch file, package.xml, setup.py and parameter files.

`launch` and `launch_ros` have no wheels (DEPENDENCIES.md), so the launch file is checked on its
source: parsed with ast, and its module-level constants and pure helpers (everything except the
launch imports and generate_launch_description's launch objects) executed for real. The bridge's
parameter file is loaded by the real node (rclpy's --params-file) and read back.
"""

import ast
import random
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from robolearn.hardware import ros2_config, ros2_msgs, ros2_sim_driver

from robolearn.runs import deploy

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "ros_ws" / "src" / "robolearn_ros"
LAUNCH = PKG / "launch" / "widowx_policy.launch.py"
# The launch arguments as the README documents them (keep in sync with its robot PC section).
DOCUMENTED = {
    "checkpoint": "policy: checkpoint directory or bundle:<task>/<part>",
    "instruction": "language instruction",
    "task": "task the policy was trained for; the simulated scene",
    "robot_model": "Interbotix model, default wx250s; topics under /<robot_model>",
    "use_sim": "true (default): simulated driver; false: the Interbotix driver",
    "use_rviz": "real arm: RViz with the Interbotix driver",
    "seed": "simulated scene seed",
    "policy_rate": "policy Hz (5)",
    "control_rate": "command Hz (100)",
    "output_mode": "forward_position | joint_trajectory | interbotix",
    "autostart": "start once observations arrive",
    "image_topic": "camera topic",
    "filter_enabled": "passivity filter gates (true) or only accounts (false)",
    "energy_init": "tank start (J)",
    "energy_min": "tank floor (J)",
    "energy_max": "tank cap (J)",
    "stiffness": "port K per joint",
    "damping": "port D per joint",
    "record_dir": "episode store for deployment episodes",
    "bridge_params": "bridge parameter file",
}


def _launch_module() -> tuple[ast.Module, dict]:
    """The launch file's AST and the namespace of its constants and helper functions."""
    tree = ast.parse(LAUNCH.read_text(), str(LAUNCH))
    keep = [
        node
        for node in tree.body
        if not isinstance(node, ast.Import | ast.ImportFrom)
        or (isinstance(node, ast.ImportFrom) and node.module == "__future__")
    ]
    namespace: dict = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(LAUNCH), "exec"), namespace)
    return tree, namespace


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name
    ]


def test_every_documented_argument_is_declared_with_a_description():
    tree, ns = _launch_module()
    tree = _with_parents(tree)
    declared = {name: (default, text) for name, default, text in ns["ARGUMENTS"]}
    assert set(declared) == set(DOCUMENTED)
    assert all(text for _, text in declared.values())
    assert declared["robot_model"][0] == "wx250s"
    assert declared["use_sim"][0] == "true"  # a bare launch never moves a real arm
    (declare,) = _calls(tree, "DeclareLaunchArgument")
    assert [ast.unparse(a) for a in declare.args] == ["name"]
    generator = next(c for c in ast.walk(declare.parent) if isinstance(c, ast.comprehension))
    assert ast.unparse(generator.iter) == "ARGUMENTS"
    used = {
        c.args[0].value
        for c in _calls(tree, "LaunchConfiguration")
        if isinstance(c.args[0], ast.Constant)
    }
    assert used and used <= set(declared), "LaunchConfiguration of an undeclared argument"


def _with_parents(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child.parent = node
    return tree


def test_the_real_arm_includes_the_interbotix_driver_unless_use_sim():
    tree = _with_parents(ast.parse(LAUNCH.read_text()))
    (include,) = _calls(tree, "IncludeLaunchDescription")
    text = ast.unparse(include)
    assert "PythonLaunchDescriptionSource" in text
    assert "FindPackageShare('interbotix_xsarm_control')" in text
    assert "'launch', 'xsarm_control.launch.py'" in text
    assert "'robot_model': LaunchConfiguration('robot_model')" in text
    condition = next(k.value for k in include.keywords if k.arg == "condition")
    assert ast.unparse(condition) == "UnlessCondition(LaunchConfiguration('use_sim'))"
    executables = {
        ast.literal_eval(k.value)
        for c in _calls(tree, "Node")
        for k in c.keywords
        if k.arg == "executable"
    }
    assert executables == {"robolearn_bridge", "sim_driver"}


def test_launch_arguments_become_bridge_parameters():
    _, ns = _launch_module()
    node_params = {p.name for p in ros2_config.PARAMS}
    assert set(ns["BRIDGE_ARGUMENTS"]) <= node_params
    values = {name: default for name, default, _ in ns["ARGUMENTS"]}
    assert ns["bridge_overrides"](values) == {
        "robot_namespace": "/wx250s",
        "output_mode": "forward_position",
    }
    real = {
        **values,
        "use_sim": "false",
        "robot_model": "wx200",
        "checkpoint": "bundle:drawer/bc",
        "instruction": "yes",
        "stiffness": "[100, 100, 100, 20, 20, 10]",
        "energy_min": "0.5",
        "filter_enabled": "false",
        "policy_rate": "10",
    }
    params = ns["bridge_overrides"](real)
    assert params == {
        "checkpoint": "bundle:drawer/bc",
        "instruction": "yes",  # text stays text, not YAML's True
        "stiffness": [100, 100, 100, 20, 20, 10],
        "energy_min": 0.5,
        "filter_enabled": False,
        "policy_rate": 10,
        "robot_namespace": "/wx200",
        "output_mode": "interbotix",
    }
    table = {p.name: p for p in ros2_config.PARAMS}
    for name, value in params.items():  # every value has the node parameter's type
        ros2_msgs.coerce_param(table[name], value)
    sim = ns["sim_overrides"]({**values, "task": "push", "seed": "3"})
    assert sim == {"robot_namespace": "/wx250s", "seed": 3, "task": "push"}
    sim_params = {p.name for p in ros2_sim_driver.PARAMS}
    assert set(sim) <= sim_params


def test_package_xml_is_format_3_ament_python_with_its_dependencies():
    root = ET.parse(PKG / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "robolearn_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    expected = {"rclpy", "std_msgs", "std_srvs", "sensor_msgs", "trajectory_msgs", "launch"}
    assert expected | {"launch_ros", "interbotix_xsarm_control"} <= deps
    assert (PKG / "resource" / "robolearn_ros").is_file()
    assert "script_dir=$base/lib/robolearn_ros" in (PKG / "setup.cfg").read_text()


def _setup_call() -> ast.Call:
    (call,) = _calls(ast.parse((PKG / "setup.py").read_text()), "setup")
    return call


def test_setup_py_installs_launch_and_config_and_entry_points_import(monkeypatch):
    keywords = {k.arg: k.value for k in _setup_call().keywords}
    data_files = ast.unparse(keywords["data_files"])
    for pattern in ("launch/*.launch.py", "config/*.yaml", "package.xml", "resource/{PACKAGE}"):
        assert pattern in data_files
    assert sorted(p.name for p in (PKG / "config").glob("*.yaml")) == [
        "bridge.yaml",
        "sim_driver.yaml",
    ]
    scripts = ast.literal_eval(keywords["entry_points"])["console_scripts"]
    targets = dict(s.replace(" ", "").split("=") for s in scripts)
    assert set(targets) == {"robolearn_bridge", "sim_driver"}
    monkeypatch.syspath_prepend(str(PKG))
    # The bridge executable runs the deployment entry point, the one that can record (record_dir).
    expected = {"robolearn_bridge": deploy.main, "sim_driver": ros2_sim_driver.main}
    for name, target in targets.items():
        module_name, func = target.split(":")
        module = __import__(module_name, fromlist=[func])
        assert callable(getattr(module, func))
        source = ast.parse(Path(module.__file__).read_text())
        imported = {
            (n.module, a.name)
            for n in ast.walk(source)
            if isinstance(n, ast.ImportFrom)
            for a in n.names
        }
        target_main = expected[name]
        assert (target_main.__module__, "main") in imported
    sys.modules.pop("robolearn_ros", None)


@pytest.mark.parametrize(
    "file, node_name, table",
    [
        ("bridge.yaml", "robolearn_bridge", ros2_config.PARAMS),
        ("sim_driver.yaml", "robolearn_sim_driver", ros2_sim_driver.PARAMS),
    ],
)
def test_config_keys_are_node_parameters_of_the_right_type(file, node_name, table):
    data = yaml.safe_load((PKG / "config" / file).read_text())
    assert list(data) == [node_name]
    params = data[node_name]["ros__parameters"]
    by_name = {p.name: p for p in table}
    unknown = set(params) - set(by_name)
    assert not unknown, f"{file}: not parameters of {node_name}: {unknown}"
    for name, value in params.items():
        ros2_msgs.coerce_param(by_name[name], value)


def test_every_node_parameter_has_a_description():
    for table in (ros2_config.PARAMS, ros2_sim_driver.PARAMS):
        names = [p.name for p in table]
        assert len(names) == len(set(names))
        assert all(p.description.strip() for p in table)


def test_bridge_yaml_loads_into_the_running_node(tmp_path):
    """config/bridge.yaml through rcl's own parser (--params-file), read back from the node."""
    from rcl_interfaces.srv import GetParameters

    from bench.ros2_probe import BRIDGE, BRIDGE_MODULE, NodeProcess, Probe

    (tmp_path / "launch_policies.py").write_text(
        "import numpy as np\n\ndef still():\n    return lambda obs: np.zeros(7, np.float32)\n"
    )
    domain = random.SystemRandom().randint(1, 200)
    env = {"ROS_LOG_DIR": str(tmp_path / "ros_log"), "PYTHONPATH": str(tmp_path)}
    node = NodeProcess(
        BRIDGE_MODULE,
        {"checkpoint": "python:launch_policies:still"},  # after the file: overrides it
        domain,
        tmp_path / "bridge.log",
        env,
        ros_args=("--params-file", str(PKG / "config" / "bridge.yaml")),
    )
    probe = Probe(domain)
    try:
        probe.wait_for_node(f"{BRIDGE}/status", node, timeout_s=60)
        client = probe.node.create_client(GetParameters, f"{BRIDGE}/get_parameters")
        assert client.wait_for_service(timeout_sec=10)
        file = yaml.safe_load((PKG / "config" / "bridge.yaml").read_text())
        expected = file["robolearn_bridge"]["ros__parameters"]
        names = sorted(expected)
        done = threading.Event()
        future = client.call_async(GetParameters.Request(names=names))
        future.add_done_callback(lambda _: done.set())
        assert done.wait(10)
        values = dict(zip(names, (_value(v) for v in future.result().values), strict=True))
        assert values == {**expected, "checkpoint": "python:launch_policies:still"}
        assert probe.status()["checkpoint"] == "python:launch_policies:still"
    except BaseException:
        print(node.log())
        raise
    finally:
        probe.close()
        node.stop()


def _value(v):
    """An rcl_interfaces/ParameterValue as Python."""
    from rcl_interfaces.msg import ParameterType

    field = {
        ParameterType.PARAMETER_BOOL: "bool_value",
        ParameterType.PARAMETER_INTEGER: "integer_value",
        ParameterType.PARAMETER_DOUBLE: "double_value",
        ParameterType.PARAMETER_STRING: "string_value",
    }[v.type]
    return getattr(v, field)
