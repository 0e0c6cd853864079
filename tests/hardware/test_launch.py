"""The ros_ws package robolearn_ros, run by the real ROS 2 launch system.

`launch` and `launch_ros` have no wheels: a session fixture installs them from the shared
reference folder (`uv pip install --no-deps --target`, with a stand-in for composition_interfaces,
whose generated messages only composable nodes use) into a temporary folder. The package is built
into an install space the way ROS finds it (AMENT_PREFIX_PATH, lib/<package>/<executable>,
share/<package>/launch): with Debian's colcon and the install space's setup.sh when colcon is
installed (CI), and always by running its setup.py install with this Python (the same layout,
without the colcon hooks). `widowx_policy.launch.py` then runs through a real LaunchService in a
subprocess with use_sim:=true: the simulated driver and the bridge start from their installed
executables with the parameter files of the install space, launch arguments override them (read
back from the running nodes), and the drawer opens.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from robolearn.hardware import ros2_config, ros2_msgs, ros2_sim_driver

from bench.ros2_probe import BRIDGE, DRIVER, Probe, ros_env

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "ros_ws" / "src" / "robolearn_ros"
LAUNCH = PKG / "launch" / "widowx_policy.launch.py"
LAUNCH_SOURCES = ROOT.parent / "shared" / "reference" / "ros2_launch"
# The launch arguments as the docs document them (docs/robot-pc.md, Launch arguments).
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
# Runs a launch file the way `ros2 launch PACKAGE FILE ARG:=VALUE ...` does (ros2launch is part of
# ros2cli, not installed here): the file found in the package's share folder through the ament
# index (AMENT_PREFIX_PATH), included with the arguments, run by a LaunchService until SIGINT.
RUNNER = """
import sys
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource

package, name, *args = sys.argv[1:]
path = f"{get_package_share_directory(package)}/launch/{name}"
arguments = [tuple(a.split(":=", 1)) for a in args]
service = LaunchService(argv=args)
service.include_launch_description(
    LaunchDescription([IncludeLaunchDescription(AnyLaunchDescriptionSource(path),
                                                launch_arguments=arguments)])
)
sys.exit(service.run())
"""
# launch_ros.actions imports composition_interfaces.srv (generated messages, no wheel); only
# composable node containers call it.
COMPOSITION_STAND_IN = '''"""Stand-in for composition_interfaces.srv (no composable nodes here)."""


class LoadNode:
    class Request:
        pass


class UnloadNode:
    class Request:
        pass


class ListNodes:
    class Request:
        pass
'''


# -- what needs no launch system -------------------------------------------------------------------


def test_package_xml_is_format_3_ament_python_with_its_dependencies():
    root = ET.parse(PKG / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "robolearn_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    expected = {"rclpy", "std_msgs", "std_srvs", "sensor_msgs", "trajectory_msgs", "launch"}
    assert expected | {"launch_ros", "interbotix_xsarm_control"} <= deps


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


def test_the_documented_arguments_table_lists_every_argument():
    """docs/robot-pc.md's table of launch arguments: the same names as DOCUMENTED."""
    text = (ROOT / "docs" / "robot-pc.md").read_text()
    table = text.split("## Launch arguments", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip().strip("`") for line in table.splitlines() if "| `" in line]
    assert rows == list(DOCUMENTED)


# -- the real launch system ------------------------------------------------------------------------


def _launch_module(site: Path, monkeypatch):
    """The launch file imported with the real launch/launch_ros."""
    import importlib.util

    monkeypatch.syspath_prepend(str(site))
    spec = importlib.util.spec_from_file_location("widowx_policy_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_documented_argument_is_declared_with_a_description(launch_site, monkeypatch):
    module = _launch_module(launch_site, monkeypatch)
    from launch import LaunchContext
    from launch.utilities import perform_substitutions

    declared = module.generate_launch_description().get_launch_arguments()
    assert [a.name for a in declared] == list(DOCUMENTED)
    assert all(a.description.strip() for a in declared)
    defaults = {a.name: perform_substitutions(LaunchContext(), a.default_value) for a in declared}
    assert defaults["robot_model"] == "wx250s"
    assert defaults["use_sim"] == "true"  # a bare launch never moves a real arm


def test_launch_arguments_become_bridge_parameters(launch_site, monkeypatch):
    """Text stays text, numbers, booleans and lists are YAML, as `ros2 run ... -p` reads them;
    each has the node parameter's type."""
    module = _launch_module(launch_site, monkeypatch)
    assert set(module.BRIDGE_ARGUMENTS) <= {p.name for p in ros2_config.PARAMS}
    values = {name: default for name, default, _ in module.ARGUMENTS}
    real = {
        **values,
        "use_sim": "false",
        "robot_model": "wx200",
        "instruction": "yes",
        "stiffness": "[100, 100, 100, 20, 20, 10]",
        "filter_enabled": "false",
        "policy_rate": "10",
    }
    params = module.bridge_overrides(real)
    assert params == {
        "instruction": "yes",  # not YAML's True
        "stiffness": [100, 100, 100, 20, 20, 10],
        "filter_enabled": False,
        "policy_rate": 10,
        "robot_namespace": "/wx200",
        "output_mode": "interbotix",
    }
    table = {p.name: p for p in ros2_config.PARAMS}
    for name, value in params.items():
        ros2_msgs.coerce_param(table[name], value)
    assert module.bridge_overrides(values)["output_mode"] == "forward_position"


@pytest.fixture(scope="session")
def launch_site(tmp_path_factory) -> Path:
    """A folder holding the real launch and launch_ros (and the composition_interfaces
    stand-in), to put on PYTHONPATH."""
    if not (LAUNCH_SOURCES / "launch").is_dir():
        pytest.skip(f"the ROS 2 launch sources are not at {LAUNCH_SOURCES} (shared folder)")
    for module in ("osrf_pycommon", "lark"):  # launch's own dependencies (the dev extra)
        pytest.importorskip(module, reason=f"the ROS 2 launch system needs {module}")
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is needed to install launch/launch_ros (no wheels) into a temp folder")
    site = tmp_path_factory.mktemp("ros2_launch")
    sources = [str(LAUNCH_SOURCES / name) for name in ("launch", "launch_ros")]
    cmd = [uv, "pip", "install", "--no-deps", "--python", sys.executable, "--target", str(site)]
    subprocess.run([*cmd, *sources], check=True, capture_output=True, timeout=300)
    stand_in = site / "composition_interfaces"
    stand_in.mkdir()
    (stand_in / "__init__.py").write_text("")
    (stand_in / "srv.py").write_text(COMPOSITION_STAND_IN)
    return site


def _setup_py_prefix(directory: Path) -> dict[str, str]:
    """Install robolearn_ros with this Python's setuptools into directory/install (what colcon's
    ament_python build does), and the environment colcon's setup.sh would give."""
    pytest.importorskip("setuptools", reason="the setup.py build needs setuptools")
    src, build, prefix = directory / "src", directory / "build", directory / "install"
    shutil.copytree(PKG, src)  # setup.py writes next to itself; keep the checkout clean
    build.mkdir()
    subprocess.run(
        [
            sys.executable,
            "setup.py",
            "egg_info",
            "--egg-base",
            str(build),
            "build",
            "--build-base",
            str(build),
            "install",
            "--prefix",
            str(prefix),
            "--single-version-externally-managed",
            "--record",
            str(build / "installed.txt"),
        ],
        cwd=src,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (site,) = prefix.glob("lib/python3*/site-packages")
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {"AMENT_PREFIX_PATH": str(prefix), "PYTHONPATH": path}


def _colcon_prefix(directory: Path) -> dict[str, str]:
    """colcon build of ros_ws into directory, and the environment of its install/setup.sh."""
    colcon = shutil.which("colcon")
    if colcon is None:
        pytest.skip(
            "colcon is not installed (CI installs it: apt-get install colcon python3-colcon-ros)"
        )
    base = ROOT / "ros_ws" / "src"
    dirs = {name: directory / name for name in ("build", "install", "log")}
    subprocess.run(
        [
            colcon,
            "--log-base",
            str(dirs["log"]),
            "build",
            "--base-paths",
            str(base),
            "--build-base",
            str(dirs["build"]),
            "--install-base",
            str(dirs["install"]),
        ],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=300,
    )
    setup = dirs["install"] / "setup.sh"
    out = subprocess.run(
        ["sh", "-c", f'. "{setup}" && env -0'], check=True, capture_output=True, timeout=60
    ).stdout.decode()
    env = dict(line.split("=", 1) for line in out.split("\0") if "=" in line)
    return {name: env[name] for name in ("AMENT_PREFIX_PATH", "PYTHONPATH")}


BUILDS = {"colcon": _colcon_prefix, "setup.py": _setup_py_prefix}


class Launch:
    """`ros2 launch robolearn_ros widowx_policy.launch.py ARGS` (RUNNER) in a subprocess on its
    own DDS domain and process group, output to a log file; stop() is Ctrl-C in its terminal."""

    def __init__(self, directory: Path, site: Path, prefix_env: dict, args: list[str]):
        self.domain = random.SystemRandom().randint(1, 200)
        self.log_path = directory / "launch.log"
        env = ros_env(self.domain)
        env.update(prefix_env)
        env["PYTHONPATH"] = os.pathsep.join([str(site), prefix_env["PYTHONPATH"]])
        # The executables start `python3` from the PATH (setup.cfg): this environment's.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["ROS_LOG_DIR"] = str(directory / "ros_log")
        cmd = [sys.executable, "-c", RUNNER, "robolearn_ros", LAUNCH.name, *args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_line(self, text: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                return text in self.log()
            time.sleep(0.2)
        return False

    def stop(self, timeout_s: float = 30.0) -> int:
        """Ctrl-C: SIGINT to the launch and every node (launch then sends none of its own)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the launch and every node it started
                self.proc.wait()
        return self.proc.returncode


def _parameters(probe: Probe, node: str, names: list[str]) -> dict:
    """Parameter values read back from a running node (rcl_interfaces GetParameters)."""
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import GetParameters

    client = probe.node.create_client(GetParameters, f"{node}/get_parameters")
    assert client.wait_for_service(timeout_sec=30), f"{node}/get_parameters"
    done = threading.Event()
    future = client.call_async(GetParameters.Request(names=names))
    future.add_done_callback(lambda _: done.set())
    assert done.wait(10)
    field = {
        ParameterType.PARAMETER_BOOL: "bool_value",
        ParameterType.PARAMETER_INTEGER: "integer_value",
        ParameterType.PARAMETER_DOUBLE: "double_value",
        ParameterType.PARAMETER_STRING: "string_value",
    }
    values = future.result().values
    return {name: getattr(v, field[v.type]) for name, v in zip(names, values, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize("build", list(BUILDS))
def test_the_launch_file_opens_the_drawer_with_its_parameters(build, launch_site, tmp_path):
    """use_sim:=true from the install space: both nodes from their executables, the YAML files
    and the arguments over them (read back), autostart, and the drawer opens."""
    prefix_env = BUILDS[build](tmp_path)
    # autostart, instruction and seed override the parameter files (bridge.yaml: autostart
    # false, instruction ""; sim_driver.yaml: seed 0); energy_max is not in them (node default).
    args = ["use_sim:=true", "autostart:=true", "seed:=3", "energy_max:=9.5"]
    args.append("instruction:=open the drawer")
    launch = Launch(tmp_path, launch_site, prefix_env, args)
    probe = Probe(launch.domain)
    try:
        assert launch.wait_for_line("task success: the drawer is open (seed 3)", 240), "no success"
        assert probe.wait_until(lambda: any(ok for _, ok in probe.success), timeout_s=10)
        bridge = _parameters(
            probe, BRIDGE, ["checkpoint", "autostart", "energy_max", "instruction", "task"]
        )
        assert bridge == {
            "checkpoint": "bundle:drawer/bc",  # bridge.yaml (the node's default is empty)
            "autostart": True,  # the argument over bridge.yaml's false
            "energy_max": 9.5,
            "instruction": "open the drawer",
            "task": "drawer",
        }
        driver = _parameters(probe, DRIVER, ["seed", "task", "image_rate"])
        assert driver == {"seed": 3, "task": "drawer", "image_rate": 30.0}
        status = probe.status()
        assert status["mode"] == "running" and status["episodes"] == 1, status
        assert status["tank"]["energy_j"] <= 9.5 + 1e-9
    except BaseException:
        print(launch.log())
        raise
    finally:
        probe.close()
        code = launch.stop()
    log = launch.log()
    assert "episode 1 started (autostart): bundle:drawer/bc" in log, log
    assert "episode 1 ended after" in log and "closed (node shutdown)" in log, log
    assert code == 0, log
    assert "escalating to 'SIGTERM'" not in log, log  # both nodes end on Ctrl-C


@pytest.mark.parametrize("build", ["setup.py"])
def test_the_real_arm_includes_the_interbotix_driver(build, launch_site, tmp_path):
    """use_sim:=false includes interbotix_xsarm_control's launch file: without that package
    installed, the launch stops there, naming it, before any node starts."""
    prefix_env = BUILDS[build](tmp_path)
    launch = Launch(tmp_path, launch_site, prefix_env, ["use_sim:=false"])
    try:
        launch.proc.wait(120)
    finally:
        launch.stop()
    log = launch.log()
    assert launch.proc.returncode != 0, log
    assert "interbotix_xsarm_control" in log, log
    assert "robolearn_bridge" not in log and "simulating" not in log, log


@pytest.mark.parametrize("build", list(BUILDS))
def test_the_install_space_has_the_ament_layout(build, tmp_path):
    """What `ros2 run` / `ros2 launch` look up: the package in the ament index, the launch and
    parameter files in its share folder, the executables in lib/robolearn_ros, started by the
    PATH's python3 (not the Python that built them)."""
    prefix = Path(BUILDS[build](tmp_path)["AMENT_PREFIX_PATH"].split(os.pathsep)[0])
    assert (prefix / "share/ament_index/resource_index/packages/robolearn_ros").is_file()
    share = prefix / "share/robolearn_ros"
    assert (share / "launch" / LAUNCH.name).read_text() == LAUNCH.read_text()
    assert sorted(p.name for p in (share / "config").iterdir()) == [
        "bridge.yaml",
        "sim_driver.yaml",
    ]
    for name in ("robolearn_bridge", "sim_driver"):
        script = prefix / "lib/robolearn_ros" / name
        assert os.access(script, os.X_OK), script
        assert script.read_text().splitlines()[0] == "#!/usr/bin/env python3"
