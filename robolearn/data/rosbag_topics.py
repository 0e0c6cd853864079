"""Which topics, arm and joints a ROS bag is read with, and the errors when it has none to read.

Defaults (robolearn.data.rosbag.RosbagConfig): the arm is `--robot`, else the namespace of the
joint topic when it names an arm of robolearn.data.interbotix.ARMS, else DEFAULT_ROBOT; the joint
topic is /<robot>/joint_states, a known arm's JointState topic, or the bag's only JointState topic;
the camera is /<robot>/camera/image_raw, or none when the bag has no image topic at all; commands
the first present of COMMAND_TOPICS under the same namespace.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from robolearn.data.interbotix import ARMS, Arm
from robolearn.data.rosbag_msgs import (
    COMPRESSED_IMAGE,
    FLOAT64_ARRAY,
    IMAGE,
    JOINT_GROUP_COMMANDS,
    JOINT_SINGLE_COMMANDS,
    JOINT_STATE,
    JOINT_TRAJECTORY,
    RosbagError,
    deserialize,
    messages,
)

DEFAULT_ROBOT = "wx250s"
COMMAND_TOPICS = (
    "arm_controller/commands",
    "commands/joint_group",
    "arm_controller/joint_trajectory",
    "commands/joint_single",
)
ACCEPTED = {
    "joint": (JOINT_STATE,),
    "image": (IMAGE, COMPRESSED_IMAGE),
    "command": (FLOAT64_ARRAY, *JOINT_GROUP_COMMANDS, *JOINT_SINGLE_COMMANDS, JOINT_TRAJECTORY),
}


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one bag is read: role -> (topic, connections), the arm (None: joint space), joints."""

    topics: dict[str, tuple[str, list]]
    arm: Arm | None
    joints: tuple[str, ...]

    @property
    def camera(self) -> bool:
        """Whether the bag's episodes get images."""
        return "image" in self.topics

    def connections(self) -> list:
        """Every connection of every role."""
        return [c for _, conns in self.topics.values() for c in conns]


def resolve_layout(reader, path: Path, cfg) -> Layout:
    """Which topics, arm and joints a bag is read with (cfg: a robolearn.data.rosbag.RosbagConfig);
    checks the types."""
    by_topic: dict[str, list] = {}
    for conn in reader.connections:
        by_topic.setdefault(conn.topic, []).append(conn)
    have = ", ".join(f"{t} ({c[0].msgtype})" for t, c in sorted(by_topic.items()))
    joint_topic = cfg.joint_topic or _default_joint_topic(by_topic, path, cfg, have)
    namespace = joint_topic.strip("/").split("/")[0] if joint_topic.count("/") >= 2 else ""
    robot = cfg.robot or (namespace if namespace in ARMS else DEFAULT_ROBOT)
    arm = None if cfg.joints else ARMS[robot]
    prefix = f"/{cfg.robot or namespace or robot}"
    wanted = {"joint": joint_topic}
    image_topic = cfg.image_topic or f"{prefix}/camera/image_raw"
    if cfg.image_topic is None and image_topic not in by_topic:
        cameras = [t for t, c in by_topic.items() if c[0].msgtype in ACCEPTED["image"]]
        if cameras:
            raise RosbagError(
                f"{path}: no topic {image_topic}; pass --image-topic with one of: {have}; or "
                "--image-topic none to import the joint states alone"
            )
    elif image_topic.lower() != "none":
        wanted["image"] = image_topic
    if cfg.command_topic is None:
        present = [f"{prefix}/{s}" for s in COMMAND_TOPICS if f"{prefix}/{s}" in by_topic]
        if present:
            wanted["command"] = present[0]
    elif cfg.command_topic.lower() != "none":
        wanted["command"] = cfg.command_topic
    found = {}
    for role, topic in wanted.items():
        if topic not in by_topic:
            raise RosbagError(
                f"{path}: no topic {topic}; pass --{role}-topic with one of: "
                f"{have or 'none (the bag is empty)'}"
            )
        for conn in by_topic[topic]:
            if conn.msgtype not in ACCEPTED[role]:
                raise RosbagError(
                    f"{path}: {topic} carries {conn.msgtype}; the {role} topic must carry "
                    f"{' or '.join(ACCEPTED[role])}"
                )
        found[role] = (topic, by_topic[topic])
    return Layout(found, arm, cfg.joints or arm.joint_names)


def _default_joint_topic(by_topic: dict, path: Path, cfg, have: str) -> str:
    """/<robot>/joint_states, a known arm's, or the bag's only JointState topic; else an error."""
    if cfg.robot:
        return f"/{cfg.robot}/joint_states"
    states = sorted(t for t, c in by_topic.items() if c[0].msgtype == JOINT_STATE)
    arms = [t for t in states if t.strip("/").split("/")[0] in ARMS and t.endswith("/joint_states")]
    if len(arms) == 1 or (len(states) == 1 and not arms):
        return (arms or states)[0]
    if states:
        raise RosbagError(
            f"{path}: several JointState topics ({', '.join(states)}); pass --robot or "
            "--joint-topic"
        )
    commands = [t for t, c in by_topic.items() if c[0].msgtype in ACCEPTED["command"]]
    if commands:
        raise RosbagError(
            f"{path}: no {JOINT_STATE} topic, only arm commands ({', '.join(sorted(commands))}): "
            "commands are what the arm was told, not what it did, so there is nothing to "
            "observe; record the arm's joint states too"
        )
    raise RosbagError(
        f"{path}: no {JOINT_STATE} topic, so no arm to import (the bag holds: "
        f"{have or 'nothing'}); record the arm's joint states"
    )


def no_joint_states(reader, store, layout: Layout, path: Path):
    """Raise the error for a joint topic none of whose messages names the joints we need."""
    conns = layout.topics["joint"][1]
    names = "it has no messages"
    for conn, _, raw in messages(reader, conns, path):
        first = deserialize(store, raw, conn, path).name
        names = f"its first message names {', '.join(first) or 'no joints'}"
        break
    if layout.arm is None:
        need, what = ", ".join(layout.joints), "joint state with the joints asked for"
    else:
        need = f"{', '.join(layout.joints)} and left_finger/right_finger or gripper, finite"
        what = f"{layout.arm.name} joint state"
    raise RosbagError(
        f"{path}: {conns[0].topic} has no usable {what} (need {need}); {names}; pass --robot "
        f"({', '.join(ARMS)}) or --joints a,b,c"
    )
