"""ROS 2 bag import: bags written here with rosbags (MCAP and sqlite3) from a known WidowX motion.

The motion is the simulator's own control law: a sequence of BridgeData actions is turned into
joint targets by core.widowx_control.step_target, and the joint states ramp to each target over
the first 70 % of the 0.2 s step and hold (as the simulated arm does), so the import must give back
the known proprio, images and actions. No mocks: the Interbotix message types are written from
their definitions, as a bag recorded with interbotix_xs_msgs holds them.
"""

import dataclasses
import functools
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from shared_data import SAMPLES

from robolearn import cli
from robolearn.core import widowx as wx
from robolearn.core.widowx_control import gripper_target_m, start_target, step_target
from robolearn.data.interbotix import ARMS
from robolearn.data.rosbag import RosbagConfig, bag_to_episodes, plan_steps
from robolearn.data.rosbag_msgs import finger_from_gripper_rad
from robolearn.data.store import iter_episodes
from robolearn.runs.import_data import import_rosbag

TS = get_typestore(Stores.ROS2_HUMBLE)
TS.register(
    get_types_from_msg("string name\nfloat32[] cmd\n", "interbotix_xs_msgs/msg/JointGroupCommand")
)
T0 = 1_700_000_000 * 10**9  # a wall-clock start, as a recorder stamps it (ns)
MS = 10**6
STEPS = 10
ARM = list(wx.JOINT_NAMES)
JOINT_TOPIC = "/wx250s/joint_states"
IMAGE_TOPIC = "/wx250s/camera/image_raw"
FLOAT_TOPIC = "/wx250s/arm_controller/commands"
GROUP_TOPIC = "/wx250s/commands/joint_group"
TRAJ_TOPIC = "/wx250s/arm_controller/joint_trajectory"


@dataclasses.dataclass
class Demo:
    """A known motion: STEPS actions, the joint targets they give, and the streams of a bag."""

    actions: np.ndarray  # [K, 7]
    knot_q: np.ndarray  # [K+1, 6] joint targets, reached and held at t = 0.2 k
    knot_f: np.ndarray  # [K+1] finger positions (m) at t = 0.2 k
    joint_t: np.ndarray  # [N] 100 Hz
    q: np.ndarray
    qdot: np.ndarray
    finger: np.ndarray
    image_t: np.ndarray  # [M] 10 Hz
    frames: np.ndarray  # [M, 48, 64, 3] RGB
    cmd_t: np.ndarray  # [K] 5 ms after each observation
    cmd: np.ndarray  # [K, 7] next joint target + finger target


@functools.cache
def _demo() -> Demo:
    k = np.arange(STEPS)
    actions = np.stack(
        [
            0.5 * np.sin(k),
            0.4 * np.cos(k),
            np.linspace(-0.4, 0.4, STEPS),
            0.2 * np.sin(2 * k),
            np.linspace(0.3, -0.3, STEPS),
            0.25 * np.cos(k),
            np.where(k < STEPS // 2, 1.0, np.where(k < STEPS - 2, -1.0, 0.5)),
        ],
        axis=1,
    )
    target, knot_q, knot_f = start_target(), [], [wx.FINGER_UPPER_M]
    knot_q.append(target.q_rad)
    for a in actions:
        target, ok = step_target(target, a)
        assert ok
        knot_q.append(target.q_rad)
        knot_f.append(gripper_target_m(a[6]))
    knot_q, knot_f = np.array(knot_q), np.array(knot_f)
    n = np.arange(20 * STEPS + 1)
    step, s_ms = np.minimum(n // 20, STEPS - 1), np.where(n == 20 * STEPS, 200, (n % 20) * 10)
    frac = np.minimum(s_ms / 140, 1.0)[:, None]
    dq = knot_q[step + 1] - knot_q[step]
    rng = np.random.default_rng(0)
    return Demo(
        actions=actions,
        knot_q=knot_q,
        knot_f=knot_f,
        joint_t=T0 + n * 10 * MS,
        q=knot_q[step] + frac * dq,
        qdot=np.where(s_ms[:, None] < 140, dq / 0.14, 0.0),
        finger=knot_f[step] + frac[:, 0] * (knot_f[step + 1] - knot_f[step]),
        image_t=T0 + np.arange(2 * STEPS + 1) * 100 * MS,
        frames=rng.integers(0, 256, (2 * STEPS + 1, 48, 64, 3), dtype=np.uint8),
        cmd_t=T0 + k * 200 * MS + 5 * MS,
        cmd=np.concatenate([knot_q[1:], knot_f[1:, None]], axis=1),
    )


def _msg(msgtype: str, **fields):
    return TS.types[msgtype](**fields)


def _header(t_ns: int):
    stamp = _msg("builtin_interfaces/msg/Time", sec=int(t_ns // 10**9), nanosec=int(t_ns % 10**9))
    return _msg("std_msgs/msg/Header", stamp=stamp, frame_id="")


def _joint_state(t, q, qdot, finger, names="fingers"):
    if names == "fingers":  # Interbotix: left_finger positive, right_finger negative
        name, pos, vel = [*ARM, "left_finger", "right_finger"], [*q, finger, -finger], [*qdot, 0, 0]
    elif names == "gripper":  # only the motor angle (rad) whose linkage gives this finger travel
        angle = _gripper_angle(finger)
        name, pos, vel = [*ARM, "gripper"], [*q, angle], [*qdot, 0.0]
    else:
        name, pos, vel = names, [*q, finger, -finger][: len(names)], []
    return _msg(
        "sensor_msgs/msg/JointState",
        header=_header(t),
        name=list(name),
        position=np.asarray(pos, np.float64),
        velocity=np.asarray(vel, np.float64),
        effort=np.zeros(0),
    )


def _gripper_angle(finger_m: float) -> float:
    """The motor angle for a finger travel: (L - h sin a)^2 = l^2 - (h cos a)^2 solved for a."""
    h, arm = 0.014, 0.024
    return float(np.arcsin((finger_m**2 + h**2 - arm**2) / (2 * finger_m * h)))


def _image(t, frame, encoding):
    if encoding == "png":
        data = cv2.imencode(".png", np.ascontiguousarray(frame[..., ::-1]))[1]
        return _msg(
            "sensor_msgs/msg/CompressedImage", header=_header(t), format="png", data=data.ravel()
        )
    pixels = frame[..., ::-1] if encoding == "bgr8" else frame
    return _msg(
        "sensor_msgs/msg/Image",
        header=_header(t),
        height=frame.shape[0],
        width=frame.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=frame.shape[1] * 3,
        data=np.ascontiguousarray(pixels).ravel(),
    )


def _command(kind: str, cmd: np.ndarray):
    if kind == "float64":
        layout = _msg("std_msgs/msg/MultiArrayLayout", dim=[], data_offset=0)
        return _msg("std_msgs/msg/Float64MultiArray", layout=layout, data=cmd.astype(np.float64))
    if kind == "group":
        return _msg(
            "interbotix_xs_msgs/msg/JointGroupCommand", name="arm", cmd=cmd[:6].astype(np.float32)
        )
    point = _msg(
        "trajectory_msgs/msg/JointTrajectoryPoint",
        positions=cmd.astype(np.float64),
        velocities=np.zeros(0),
        accelerations=np.zeros(0),
        effort=np.zeros(0),
        time_from_start=_msg("builtin_interfaces/msg/Duration", sec=0, nanosec=200 * MS),
    )
    return _msg(
        "trajectory_msgs/msg/JointTrajectory",
        header=_header(0),
        joint_names=[*ARM, "left_finger"],
        points=[point],
    )


COMMAND = {
    "float64": (FLOAT_TOPIC, "std_msgs/msg/Float64MultiArray"),
    "group": (GROUP_TOPIC, "interbotix_xs_msgs/msg/JointGroupCommand"),
    "trajectory": (TRAJ_TOPIC, "trajectory_msgs/msg/JointTrajectory"),
}


def _write_bag(
    path: Path,
    storage: str = "mcap",
    *,
    encoding: str = "rgb8",
    command: str | None = "float64",
    names="fingers",
    keep_joint=None,
    keep_image=None,
    embed_definitions: bool = True,
    image_topic: str | None = IMAGE_TOPIC,
) -> Path:
    """A bag of the demo; keep_* masks drop messages, to make gaps and stale frames."""
    d = _demo()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    image_type = "sensor_msgs/msg/CompressedImage" if encoding == "png" else "sensor_msgs/msg/Image"
    with Writer(path, version=9, storage_plugin=plugin) as writer:

        def connect(topic, msgtype):
            if embed_definitions:
                return writer.add_connection(topic, msgtype, typestore=TS)
            return writer.add_connection(topic, msgtype, msgdef="", rihs01="RIHS01_" + "0" * 64)

        joints = connect(JOINT_TOPIC, "sensor_msgs/msg/JointState")
        images = connect(image_topic, image_type) if image_topic else None
        cmds = connect(*COMMAND[command]) if command else None
        out = []
        for n, t in enumerate(d.joint_t):
            if keep_joint is None or keep_joint[n]:
                msg = _joint_state(t, d.q[n], d.qdot[n], d.finger[n], names)
                out.append((int(t), joints, msg))
        for n, t in enumerate(d.image_t if images else ()):
            if keep_image is None or keep_image[n]:
                out.append((int(t), images, _image(t, d.frames[n], encoding)))
        if cmds is not None:
            out += [
                (int(t), cmds, _command(command, c)) for t, c in zip(d.cmd_t, d.cmd, strict=True)
            ]
        for t, conn, msg in sorted(out, key=lambda x: x[0]):
            writer.write(conn, t, TS.serialize_cdr(msg, msg.__msgtype__))
    return path


def _expected_frames(step: int = 2) -> np.ndarray:
    frames = _demo().frames[::step]
    return np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames])


def _cfg(**kw) -> RosbagConfig:
    return RosbagConfig(task="drawer", instruction="open the drawer", **kw)


def test_plan_steps_worked_by_hand():
    cfg = RosbagConfig(rate_hz=5.0, max_age_s=0.2, episode_gap_s=1.0)
    joint_t = np.arange(0, 101) * 10 * MS  # 0 .. 1.0 s at 100 Hz
    image_t = np.arange(0, 11) * 100 * MS + 30 * MS  # 0.03 .. 1.03 s at 10 Hz
    (plan,), dropped = plan_steps(joint_t, image_t, cfg)
    # The grid starts at the first frame (0.03 s); 1.03 s is past the last joint state.
    assert plan[0].tolist() == [30 * MS, 230 * MS, 430 * MS, 630 * MS, 830 * MS]
    assert plan[1].tolist() == [3, 23, 43, 63, 83] and plan[2].tolist() == [0, 2, 4, 6, 8]
    assert dropped == 0
    # No frames from 0.35 to 0.75 s: at 0.63 s the latest is 0.3 s old, so that step is dropped,
    # and the lone good step at 0.83 s (it has no next observation) goes too.
    keep = (image_t < 350 * MS) | (image_t > 750 * MS)
    plans, dropped = plan_steps(joint_t, image_t[keep], cfg)
    assert [p[0].tolist() for p in plans] == [[30 * MS, 230 * MS, 430 * MS]] and dropped == 2
    # A joint-state pause of 1.5 s splits the bag; each part is gridded from its own start.
    joint_t2 = np.concatenate([joint_t, joint_t + 2500 * MS])
    image_t2 = np.concatenate([image_t, image_t + 2500 * MS])
    plans, dropped = plan_steps(joint_t2, image_t2, cfg)
    assert [len(p[0]) for p in plans] == [5, 5] and plans[1][0][0] == 2530 * MS


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_imports_known_proprio_state_images_and_actions(tmp_path, storage):
    d = _demo()
    bag = _write_bag(tmp_path / f"demo_{storage}", storage)
    summary = import_rosbag([bag], tmp_path / "store", _cfg(), progress=False)
    assert (summary["bags"], summary["episodes"], summary["steps"]) == (1, 1, STEPS)
    assert summary["dropped_steps"] == 0 and summary["skipped_joint_messages"] == 0
    ((_, ep),) = list(iter_episodes(tmp_path / "store"))
    # Observations at 5 Hz land on the held joint targets, every other 10 Hz frame.
    want = np.stack([wx.proprio(q, [f, f]) for q, f in zip(d.knot_q, d.knot_f, strict=True)])
    np.testing.assert_allclose(ep.proprio, want, atol=1e-6)
    np.testing.assert_array_equal(ep.image, _expected_frames())
    np.testing.assert_allclose(ep.state[:, :6], d.knot_q, atol=1e-12)
    np.testing.assert_allclose(ep.state[:, 6:8], np.stack([d.knot_f, d.knot_f], 1), atol=1e-12)
    np.testing.assert_allclose(ep.state[:, 8:14], d.qdot[::20], atol=1e-12)  # measured
    # Actions: exactly the motion between observations in BridgeData units ...
    delta = np.diff(want[:, :6], axis=0) / np.array([0.05] * 3 + [0.25] * 3)
    np.testing.assert_allclose(ep.action[:, :6], np.clip(delta, -1, 1), atol=1e-5)
    # ... which recovers the actions that produced it (IK converges to well under 0.1 mm / 1 mrad),
    # and the gripper is the commanded absolute target.
    np.testing.assert_allclose(ep.action[:, :6], d.actions[:, :6], atol=1e-3)
    np.testing.assert_allclose(ep.action[:, 6], d.actions[:, 6], atol=1e-6)
    assert ep.reward.tolist() == [0.0] * STEPS and not ep.success.any()
    meta = ep.meta
    assert (meta.task, meta.instruction, meta.source, meta.fps) == (
        "drawer",
        "open the drawer",
        "imported",
        5.0,
    )
    assert "reconstructed from the measured motion" in meta.action_meaning
    extra = meta.extra
    assert extra["storage"] == storage and extra["velocity"] == "measured"
    assert extra["topics"] == {"joint": JOINT_TOPIC, "image": IMAGE_TOPIC, "command": FLOAT_TOPIC}
    assert extra["gripper_from_command"] == STEPS and extra["clipped_action_values"] == 0
    np.testing.assert_allclose(extra["commanded_q_rad"], d.knot_q[1:], atol=1e-6)
    np.testing.assert_allclose(extra["commanded_finger_m"], d.knot_f[1:], atol=1e-6)


@pytest.mark.parametrize("encoding", ["bgr8", "png"])
def test_bgr_and_compressed_frames_come_out_rgb(tmp_path, encoding):
    bag = _write_bag(tmp_path / "bag", encoding=encoding)
    (ep,), _ = bag_to_episodes(bag, _cfg(image_size=None))
    np.testing.assert_array_equal(ep.image, _demo().frames[::2])  # png is lossless


def test_episode_gap_splits_a_bag(tmp_path):
    d = _demo()
    # Joint states pause for 1.2 s (0.6 .. 1.8 s): two episodes, each at 5 Hz from its first frame.
    keep = (d.joint_t - T0 < 600 * MS) | (d.joint_t - T0 >= 1800 * MS)
    bag = _write_bag(tmp_path / "bag", "sqlite3", keep_joint=keep)
    episodes, stats = bag_to_episodes(bag, _cfg())
    assert [ep.num_steps for ep in episodes] == [2, 1]
    assert [ep.meta.extra["start_time_ns"] - T0 for ep in episodes] == [0, 1800 * MS]
    assert stats["dropped_steps"] == 0


def test_stale_frames_drop_steps_and_end_the_episode(tmp_path):
    d = _demo()
    # No frames from 0.9 to 1.3 s: the steps at 1.0 and 1.2 s would see the 0.8 s frame.
    keep = (d.image_t - T0 < 900 * MS) | (d.image_t - T0 > 1300 * MS)
    bag = _write_bag(tmp_path / "bag", keep_image=keep)
    summary = import_rosbag([bag], tmp_path / "store", _cfg(max_age_s=0.15), progress=False)
    assert (summary["episodes"], summary["steps"], summary["dropped_steps"]) == (2, 4 + 3, 2)
    first, second = (ep for _, ep in iter_episodes(tmp_path / "store"))
    np.testing.assert_array_equal(second.image, _expected_frames()[7:])
    np.testing.assert_allclose(second.action[:, :6], d.actions[7:, :6], atol=1e-3)


def test_interbotix_joint_group_commands_read_without_their_package(tmp_path):
    d = _demo()
    bag = _write_bag(tmp_path / "bag", command="group", embed_definitions=False)
    (ep,), stats = bag_to_episodes(bag, _cfg())
    assert stats["commands"] == STEPS
    assert ep.meta.extra["topics"]["command"] == GROUP_TOPIC
    np.testing.assert_allclose(ep.meta.extra["commanded_q_rad"], d.knot_q[1:], atol=1e-6)
    assert ep.meta.extra["commanded_finger_m"] == [None] * STEPS
    # No finger target in the command: the gripper action is the measured opening that followed.
    opening = (d.knot_f[1:] - wx.FINGER_LOWER_M) / (wx.FINGER_UPPER_M - wx.FINGER_LOWER_M)
    np.testing.assert_allclose(ep.action[:, 6], 2 * opening - 1, atol=1e-6)


def test_trajectory_commands_and_gripper_motor_angle(tmp_path):
    d = _demo()
    bag = _write_bag(tmp_path / "bag", command="trajectory", names="gripper")
    (ep,), _ = bag_to_episodes(bag, _cfg(command_topic=TRAJ_TOPIC))
    np.testing.assert_allclose(ep.state[:, 6], d.knot_f, atol=1e-9)
    np.testing.assert_allclose(ep.action[:, 6], d.actions[:, 6], atol=1e-6)
    assert ep.meta.extra["velocity"] == "measured"


def test_gripper_linkage_worked_by_hand():
    # interbotix_xs_sdk: h sin(a) + sqrt(L^2 - (h cos a)^2), h = 14 mm, L = 24 mm.
    np.testing.assert_allclose(finger_from_gripper_rad(0.0), np.sqrt(0.024**2 - 0.014**2))
    np.testing.assert_allclose(finger_from_gripper_rad(np.pi / 2), 0.038)


def test_bag_without_commands_uses_the_measured_gripper(tmp_path):
    bag = _write_bag(tmp_path / "bag", command=None)
    (ep,), stats = bag_to_episodes(bag, _cfg())
    assert stats["commands"] == 0 and "command" not in ep.meta.extra["topics"]
    np.testing.assert_allclose(ep.action[:, 6], 2 * ep.proprio[1:, 6] - 1, atol=1e-6)


def test_cli_imports_bags_and_the_store_validates(tmp_path, capsys):
    bags = [_write_bag(tmp_path / "a"), _write_bag(tmp_path / "b.d", "sqlite3")]
    mcap_file = next((tmp_path / "a").glob("*.mcap"))  # a bare .mcap file reads too
    out = tmp_path / "store"
    argv = ["data", "import", "rosbag", *map(str, bags), str(mcap_file), "--out", str(out)]
    argv += ["--task", "drawer", "--instruction", "open the drawer", "--quiet"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(
        f"imported 3 episodes, {3 * STEPS} steps at 5 Hz from 3 bag(s) (0 steps dropped"
    )
    assert f"store: {out}" in printed
    assert cli.main(["data", "validate", str(out)]) == 0
    assert f"ok: 3 readable episodes ({3 * STEPS} steps)" in capsys.readouterr().out
    argv = ["data", "import", "rosbag", str(bags[0]), "--out", str(out), "--quiet", "--rate", "10"]
    assert cli.main([*argv, "--image-size", "32"]) == 0  # appends
    assert "imported 1 episodes, 20 steps at 10 Hz" in capsys.readouterr().out
    shapes = [ep.image.shape[1:] for _, ep in iter_episodes(out)]
    assert shapes == [(64, 64, 3)] * 3 + [(32, 32, 3)]


def _error(tmp_path, capsys, *args) -> str:
    out = tmp_path / "store"
    argv = ["data", "import", "rosbag", *map(str, args), "--out", str(out), "--quiet"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robolearn data import rosbag: error: ") and "\n" not in err
    assert not out.exists()  # checked before anything is written
    return err


def test_missing_and_unreadable_bags_are_one_line_errors(tmp_path, capsys):
    assert "no such file or directory" in _error(tmp_path, capsys, tmp_path / "nope")
    (tmp_path / "junk.mcap").write_bytes(b"not a bag" * 10)
    assert "not a readable ROS 2 bag (File magic is invalid" in _error(
        tmp_path, capsys, tmp_path / "junk.mcap"
    )
    (tmp_path / "dir").mkdir()
    assert "not a readable ROS 2 bag" in _error(tmp_path, capsys, tmp_path / "dir")
    good = _write_bag(tmp_path / "good")
    db = _write_bag(tmp_path / "db", "sqlite3")
    (next(db.glob("*.db3"))).write_bytes(b"\0" * 100)
    err = _error(tmp_path, capsys, good, db)  # the good bag is not imported either
    assert "db: not a readable ROS 2 bag" in err


def test_missing_topic_lists_the_topics_the_bag_has(tmp_path, capsys):
    bag = _write_bag(tmp_path / "bag", image_topic="/cam/color")
    err = _error(tmp_path, capsys, bag)
    assert f"no topic {IMAGE_TOPIC}; pass --image-topic with one of: /cam/color " in err
    assert f"{JOINT_TOPIC} (sensor_msgs/msg/JointState)" in err
    err = _error(tmp_path, capsys, bag, "--image-topic", "/cam/color", "--command-topic", "/x")
    assert "no topic /x; pass --command-topic" in err


def test_wrong_message_type_and_joint_names_are_errors(tmp_path, capsys):
    bag = _write_bag(tmp_path / "bag")
    err = _error(tmp_path, capsys, bag, "--image-topic", JOINT_TOPIC)
    assert f"{JOINT_TOPIC} carries sensor_msgs/msg/JointState; the image topic must carry" in err
    names = ["joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "finger"]
    bag = _write_bag(tmp_path / "other_arm", names=names)
    err = _error(tmp_path, capsys, bag)
    assert "has no usable wx250s joint state (need waist, shoulder" in err
    assert "its first message names joint1, joint2" in err


def test_unsupported_image_encoding_is_an_error(tmp_path, capsys):
    bag = _write_bag(tmp_path / "bag", encoding="yuv422")
    assert "image encoding 'yuv422' is not supported" in _error(tmp_path, capsys, bag)


def test_importing_the_cli_does_not_import_rosbags():
    code = "import sys, robolearn.cli; print('rosbags' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _chain_fk(origins, axes, tip, q) -> np.ndarray:
    """Tip position from URDF joint origins and axes (all rpy = 0), built link by link."""
    t = np.eye(4)
    for origin, axis, angle in zip(origins, axes, q, strict=True):
        step = np.eye(4)
        step[:3, 3] = origin
        k = wx.skew(np.asarray(axis, float))
        rot = np.eye(4)
        rot[:3, :3] = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
        t = t @ step @ rot
    return (t @ np.append(tip, 1.0))[:3]


def test_arm_kinematics_match_the_urdf_chains():
    rng = np.random.default_rng(0)
    for q in rng.uniform(-1.5, 1.5, (20, 6)):  # wx250s: the table is core.widowx's own
        np.testing.assert_allclose(ARMS["wx250s"].fk(q), wx.fk(q), atol=1e-12)
    # wx200 (interbotix_xsarm_descriptions/urdf/wx200.urdf.xacro): waist z 0.072, shoulder z
    # 0.03865, elbow (0.05, 0, 0.2), wrist_angle x 0.2, wrist_rotate x 0.065, tip x 0.093575.
    origins = [[0, 0, 0.072], [0, 0, 0.03865], [0.05, 0, 0.2], [0.2, 0, 0], [0.065, 0, 0]]
    axes = [[0, 0, 1], [0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0]]
    for q in rng.uniform(-1.5, 1.5, (20, 5)):
        want = _chain_fk(origins, axes, [0.093575, 0, 0], q)
        np.testing.assert_allclose(ARMS["wx200"].fk(q)[:3, 3], want, atol=1e-12)
    np.testing.assert_allclose(ARMS["wx200"].fk(np.zeros(5))[:3, 3], [0.408575, 0, 0.31065])
    turned = ARMS["wx200"].proprio([np.pi / 2, 0, 0, 0, 0], [0.037, 0.037])
    np.testing.assert_allclose(turned, [0, 0.408575, 0.31065, 0, 0, np.pi / 2, 1.0], atol=1e-12)


def test_a_bag_without_a_camera_imports_joint_states_alone(tmp_path):
    d = _demo()
    bag = _write_bag(tmp_path / "bag", image_topic=None)
    (ep,), stats = bag_to_episodes(bag, _cfg())
    # Gridded from the first joint state (t = 0): the same 5 Hz observations as with the camera.
    assert ep.image.shape == (STEPS + 1, 0, 0, 3) and ep.image.dtype == np.uint8
    assert ep.meta.extra["camera"] is False and "image" not in ep.meta.extra["topics"]
    want = np.stack([wx.proprio(q, [f, f]) for q, f in zip(d.knot_q, d.knot_f, strict=True)])
    np.testing.assert_allclose(ep.proprio, want, atol=1e-6)
    np.testing.assert_allclose(ep.action[:, :6], d.actions[:, :6], atol=1e-3)
    assert stats["dropped_steps"] == 0
    # A bag with a camera imports the same way with --image-topic none.
    bag = _write_bag(tmp_path / "cam")
    (ep2,), _ = bag_to_episodes(bag, _cfg(image_topic="none"))
    np.testing.assert_array_equal(ep2.proprio, ep.proprio)


def test_explicit_joints_import_in_joint_space(tmp_path):
    d = _demo()
    bag = _write_bag(tmp_path / "bag")
    (ep,), _ = bag_to_episodes(bag, _cfg(joints=("waist", "elbow")))
    np.testing.assert_allclose(ep.proprio, d.knot_q[:, [0, 2]], atol=1e-6)
    np.testing.assert_allclose(ep.state[:, :2], d.knot_q[:, [0, 2]], atol=1e-12)
    expect = np.clip(np.diff(d.knot_q[:, [0, 2]], axis=0) / (np.pi / 5.0), -1, 1)
    np.testing.assert_allclose(ep.action, expect, atol=1e-6)
    meta = ep.meta
    assert meta.action_names == ("d_waist", "d_elbow") and "joint space" in meta.action_meaning
    assert meta.extra["space"] == "joint" and meta.extra["joints"] == ["waist", "elbow"]
    assert meta.extra["robot"] is None


def test_cli_joint_list_and_robot_flags(tmp_path, capsys):
    bag = _write_bag(tmp_path / "bag", image_topic=None)
    out = tmp_path / "joints"
    argv = ["data", "import", "rosbag", str(bag), "--out", str(out), "--quiet"]
    assert cli.main([*argv, "--joints", "waist,shoulder,elbow"]) == 0
    assert "1 bag(s) have no camera" in capsys.readouterr().out
    ((_, ep),) = list(iter_episodes(out))
    assert ep.proprio.shape == (STEPS + 1, 3)
    err = _error(tmp_path, capsys, bag, "--robot", "ur5")
    assert "unknown robot 'ur5'; known arms: wx250s, wx250, wx200" in err


INTERBOTIX = SAMPLES / "rosbag_interbotix"
WAIST_ROS1 = INTERBOTIX / "ros1" / "waist_diagnostics.bag"
needs_interbotix = pytest.mark.skipif(
    not WAIST_ROS1.is_file(), reason=f"the shared Interbotix bags are absent ({INTERBOTIX})"
)


@pytest.fixture(scope="module")
def waist_ros1():
    if not WAIST_ROS1.is_file():
        pytest.skip(f"the shared Interbotix bags are absent ({INTERBOTIX})")
    return bag_to_episodes(WAIST_ROS1, RosbagConfig())


@needs_interbotix
def test_the_real_wx200_ros1_bag_imports_joint_states_alone(waist_ros1):
    episodes, stats = waist_ros1
    steps = sum(ep.num_steps for ep in episodes)
    assert 500 <= steps <= 531  # 106 s at 5 Hz, less pauses over 1 s
    assert stats["commands"] == 1002 and stats["skipped_joint_messages"] == 0
    ep = episodes[0]
    assert ep.image.shape[1:] == (0, 0, 3) and ep.meta.fps == 5.0
    extra = ep.meta.extra
    assert extra["robot"] == "wx200" and extra["storage"] == "rosbag1"
    assert extra["topics"] == {
        "joint": "/wx200/joint_states",
        "command": "/wx200/commands/joint_single",
    }
    assert extra["state_names"][:5] == list(ARMS["wx200"].joint_names)
    assert ep.state.shape[1] == 14 and np.all(np.abs(ep.action) <= 1.0)
    # proprio is the wx200's forward kinematics of the recorded joints.
    want = ARMS["wx200"].proprio(ep.state[3, :5], ep.state[3, 5:7])
    np.testing.assert_allclose(ep.proprio[3], want, atol=1e-6)
    # The diagnostic moves the waist alone; single-joint commands stay in force per joint.
    commanded = [c for e in episodes for c in e.meta.extra["commanded_q_rad"] if c]
    assert commanded and all(c[1:] == [None] * 4 for c in commanded)
    assert np.ptp(np.concatenate([e.state[:, 0] for e in episodes])) > 1.0  # rad of waist travel


@needs_interbotix
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_the_ros2_conversions_of_the_wx200_bag_import_the_same(waist_ros1, storage):
    bag = INTERBOTIX / "ros2_converted" / f"wx200_waist_{storage}"
    episodes, _ = bag_to_episodes(bag, RosbagConfig())
    assert len(episodes) == len(waist_ros1[0])
    for ours, ros1 in zip(episodes, waist_ros1[0], strict=True):
        np.testing.assert_array_equal(ours.proprio, ros1.proprio)
        np.testing.assert_array_equal(ours.action, ros1.action)
        assert ours.meta.extra["storage"] == storage


@needs_interbotix
def test_bags_without_joint_states_are_refused_in_one_line(tmp_path, capsys):
    for bag in (
        INTERBOTIX / "ros1" / "duck_dunk.bag",
        INTERBOTIX / "ros2_converted" / "wx250_duck_dunk_mcap",
    ):
        err = _error(tmp_path, capsys, bag)
        assert "no sensor_msgs/msg/JointState topic, only arm commands" in err
        assert "/wx250/commands/joint_group" in err and "nothing to observe" in err
    for name in ("mcap_talker", "sqlite3_talker", "mcap_cdr_test"):
        err = _error(tmp_path, capsys, SAMPLES / "rosbag2_testbags" / name)
        assert "no sensor_msgs/msg/JointState topic, so no arm to import" in err
