"""Run and watch the bridge over real ROS 2: node subprocesses and a probe node (tests, bench).

A test and benchmark harness, not part of the robolearn package: it lives in bench/ because both
the benchmarks (`python -m bench.ros2_drawer`, bench.deploy_speed) and the tests
(tests/hardware/test_ros2_*.py, test_launch.py, which already import bench modules) import it
from the repository root, while tests/ is not a package a benchmark could import.

    with NodeProcess(DRIVER_MODULE, {"task": "drawer"}, domain_id, log) as driver, \\
         NodeProcess(BRIDGE_MODULE, {"checkpoint": "bundle:drawer/bc"}, domain_id, log2):
        probe = Probe(domain_id)
        probe.wait_for_service("/robolearn_bridge/start", timeout_s=120)
        ok, message = probe.call("/robolearn_bridge/start")
        ...
        probe.close()

NodeProcess starts `python -m MODULE --ros-args -p k:=v ...` with its own ROS_DOMAIN_ID and
discovery limited to this machine, output to a log file; `kill()` (SIGKILL) / `stop()` / `pause()`
(SIGSTOP: a hung driver). Probe is an rclpy node in its own context on the same domain, spun in a
background thread: it records every arm command (forward position), bridge status, joint state
(arm q) and task success it receives, with arrival times (time.monotonic), and calls Trigger
services.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from robolearn.hardware import ros2_msgs as msgs
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger

BRIDGE = "/robolearn_bridge"
DRIVER = "/robolearn_sim_driver"
# The bridge node runs through the deployment entry point, the one that can record (record_dir):
# robolearn.hardware.ros2_node alone cannot build an episode writer (hardware never imports
# robolearn.data). A module name to start, not an import.
BRIDGE_MODULE = "robolearn.runs.deploy"
DRIVER_MODULE = "robolearn.hardware.ros2_sim_driver"


def ros_env(domain_id: int) -> dict[str, str]:
    """The environment for nodes on `domain_id`, discovering peers on this machine only."""
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOCALHOST_ONLY="1",  # the same, for distributions before Iron
        PYTHONUNBUFFERED="1",
        RCUTILS_LOGGING_BUFFERED_STREAM="0",  # log lines reach the log file as they happen
    )
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("MUJOCO_GL", "egl")
    return env


def param_arg(name: str, value) -> str:
    """`name:=value` as `--ros-args -p` parses it (YAML): lists and booleans written as YAML."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(repr(float(v)) for v in value) + "]"
    else:
        text = str(value)
    return f"{name}:={text}"


class NodeProcess:
    """`python -m module --ros-args -p ...` as a subprocess (a context manager that stops it)."""

    def __init__(
        self,
        module: str,
        params: dict,
        domain_id: int,
        log_path: str | Path,
        extra_env: dict[str, str] | None = None,
        ros_args: tuple[str, ...] = (),
    ):
        self.module, self.params, self.domain_id = module, dict(params), domain_id
        self.ros_args = tuple(ros_args)  # e.g. ("--params-file", "bridge.yaml"), before the -p
        self.log_path = Path(log_path)
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        """Start (or restart) the process; output is appended to log_path."""
        args = [a for k, v in self.params.items() for a in ("-p", param_arg(k, v))]
        cmd = [sys.executable, "-m", self.module, "--ros-args", *self.ros_args, *args]
        env = {**ros_env(self.domain_id), **self.extra_env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies without cleaning up (a crashed driver)."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the process freezes (a hung driver); resume() continues it."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGINT, then SIGKILL after timeout_s; the exit code."""
        if not self.alive():
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Probe:
    """A watching node on `domain_id`: commands, status, joint states, success; services."""

    def __init__(
        self,
        domain_id: int,
        namespace: str = msgs.ROBOT_NAMESPACE,
        command_topic: str = msgs.TOPICS["forward_command_topic"],
        depth: int = 1000,
    ):
        # Like the NodeProcesses: discover peers on this machine only (read when rclpy creates
        # the context; an explicit setting in the environment wins).
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("robolearn_probe", context=self.context)
        self.lock = threading.Lock()
        self.commands: list[tuple[float, np.ndarray]] = []  # (arrival s, [6 arm + finger])
        self.statuses: list[tuple[float, dict]] = []
        self.joint_states: list[tuple[float, float, np.ndarray]] = []  # (arrival, stamp s, q)
        self.success: list[tuple[float, bool]] = []
        qos = QoSProfile(depth=depth)
        topic = msgs.resolve_name(namespace, command_topic)
        self.node.create_subscription(Float64MultiArray, topic, self._on_command, qos)
        self.node.create_subscription(String, f"{BRIDGE}/status", self._on_status, qos)
        self.node.create_subscription(
            JointState, msgs.resolve_name(namespace, "joint_states"), self._on_joint_state, qos
        )
        self.node.create_subscription(Bool, f"{DRIVER}/success", self._on_success, qos)
        self._clients: dict[str, object] = {}
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            if self.context.ok():
                raise

    def _on_command(self, msg: Float64MultiArray) -> None:
        with self.lock:
            self.commands.append((time.monotonic(), np.asarray(msg.data, np.float64)))

    def _on_status(self, msg: String) -> None:
        with self.lock:
            self.statuses.append((time.monotonic(), json.loads(msg.data)))

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            q = msgs.joint_state_from_msg(msg).q_rad
        except msgs.MessageError:
            return  # a test's own malformed message
        with self.lock:
            self.joint_states.append((time.monotonic(), msgs.stamp_to_s(msg.header.stamp), q))

    def _on_success(self, msg: Bool) -> None:
        with self.lock:
            self.success.append((time.monotonic(), bool(msg.data)))

    def publisher(self, msg_type, topic: str, depth: int = 10):
        """A publisher on this probe's node (to inject messages)."""
        return self.node.create_publisher(msg_type, topic, depth)

    def _client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.node.create_client(Trigger, service)
        return self._clients[service]

    def wait_for_service(self, service: str, timeout_s: float) -> bool:
        """Whether `service` (std_srvs/Trigger) appeared within timeout_s."""
        return self._client(service).wait_for_service(timeout_sec=timeout_s)

    def wait_for_node(self, service: str, process: NodeProcess, timeout_s: float) -> None:
        """Wait until `process` offers `service`; RuntimeError (with its log's tail) if it exits
        first or the service does not appear within timeout_s."""
        deadline = time.monotonic() + timeout_s
        while not self.wait_for_service(service, timeout_s=0.5):
            if not process.alive() or time.monotonic() > deadline:
                state = "exited" if not process.alive() else f"not up after {timeout_s} s"
                raise RuntimeError(f"{process.module} {state}:\n{process.log()[-3000:]}")

    def call(self, service: str, timeout_s: float = 10.0) -> tuple[bool, str]:
        """Call a Trigger service: (success, message); TimeoutError if no answer."""
        client = self._client(service)
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {service} not available after {timeout_s} s")
        done = threading.Event()
        future = client.call_async(Trigger.Request())
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout_s):
            raise TimeoutError(f"service {service} did not answer within {timeout_s} s")
        result = future.result()
        return result.success, result.message

    def status(self, timeout_s: float = 10.0) -> dict:
        """The bridge's status now, through its ~/status service."""
        ok, message = self.call(f"{BRIDGE}/status", timeout_s)
        return json.loads(message)

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float, poll_s=0.05) -> bool:
        """Poll `predicate` until it holds (True) or timeout_s passes (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(poll_s)
        return bool(predicate())

    def commands_since(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(arrival times [N], commands [N, 7]) of the commands that arrived after time t."""
        with self.lock:
            rows = [(s, c) for s, c in self.commands if s > t]
        if not rows:
            return np.zeros(0), np.zeros((0, 7))
        return np.array([s for s, _ in rows]), np.stack([c for _, c in rows])

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)


@contextlib.contextmanager
def nodes_and_probe(domain_id: int, *nodes: NodeProcess):
    """A Probe on `domain_id` for the duration; on any failure the nodes' logs are printed, and
    at the end the probe is closed and the nodes stopped (last started, first stopped)."""
    probe = Probe(domain_id)
    try:
        yield probe
    except BaseException:
        for node in nodes:
            print(f"--- {node.module} log ---\n{node.log()}")
        raise
    finally:
        probe.close()
        for node in reversed(nodes):
            node.stop()


def real_time_fractions(
    probe: Probe,
    status: dict,
    t0: float,
    seconds: float,
    control_hz: float = 100.0,
    joint_state_hz: float = 100.0,
    policy_hz: float = 5.0,
) -> dict[str, float]:
    """How much of real time the bridge's commands, the driver's joint states and the policy
    steps (from the bridge `status`) kept over the `seconds` after `t0` (1.0: all of it)."""
    with probe.lock:
        joint_states = sum(t > t0 for t, *_ in probe.joint_states)
    return {
        "commands": len(probe.commands_since(t0)[0]) / (seconds * control_hz),
        "joint states": joint_states / (seconds * joint_state_hz),
        "policy steps": status["policy_steps"] / (seconds * policy_hz),
    }


@contextlib.contextmanager
def driver_and_bridge(
    directory: str | Path,
    seed: int = 0,
    checkpoint: str = "bundle:drawer/bc",
    task="drawer",
    record_dir: str | Path | None = None,
):
    """The simulated driver (scene `task`, `seed`) and the bridge node (`checkpoint`) as fresh
    subprocesses on a new DDS domain, logs and ROS logs under `directory`, with a Probe: yields
    (probe, driver, bridge). The bridge's watchdog timeouts are wider than the defaults (0.5 s for
    joint states, 1 s for images): on a shared machine a scheduling stall is not a dead driver.
    Used by the end-to-end test (tests/hardware/test_ros2_e2e.py) and bench.ros2_drawer, so both
    run the same thing. record_dir: the bridge records its episodes into this store."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    domain = random.SystemRandom().randint(1, 200)
    env = {"ROS_LOG_DIR": str(directory / "ros_log")}
    driver = NodeProcess(
        DRIVER_MODULE,
        {"task": task, "seed": seed},
        domain,
        directory / "driver.log",
        env,
    )
    bridge = NodeProcess(
        BRIDGE_MODULE,
        {
            "checkpoint": checkpoint,
            "task": task,
            "joint_state_timeout_s": 0.5,
            "image_timeout_s": 1.0,
            **({"record_dir": str(record_dir)} if record_dir is not None else {}),
        },
        domain,
        directory / "bridge.log",
        env,
    )
    with nodes_and_probe(domain, driver, bridge) as probe:
        yield probe, driver, bridge
