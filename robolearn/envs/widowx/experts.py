"""Scripted experts for the WidowX tasks: phase machines on privileged simulator state.

An expert picks a desired tip pose each step and returns the normalized action that moves the
commanded end-effector target toward it (clipped to [-1, 1], i.e. at most 5 cm and 0.25 rad per
step). Phase changes look at the measured state, and a lost grasp or contact sends the expert back
to an earlier phase, so it recovers from noise added to its actions.
"""

from __future__ import annotations

import abc
from typing import Protocol

import numpy as np

from robolearn.core import widowx_control as control
from robolearn.envs.widowx import scenes

OPEN, CLOSED = 1.0, -1.0


class ArmView(Protocol):
    """What an expert reads of any WidowX task (base.WidowXTask has it): base frame, m."""

    target: control.EETarget  # the commanded end-effector target

    def tip_pos(self) -> np.ndarray:
        """Measured gripper-tip position (m) [3]."""

    def finger_q(self) -> np.ndarray:
        """Measured finger joint positions (m from the centre) [2]."""


class DrawerView(ArmView, Protocol):
    """What the drawer experts read (drawer.DrawerTask has it)."""

    def handle_pos(self) -> np.ndarray:
        """Centre of the handle bar (m) [3]."""

    def cabinet_yaw(self) -> float:
        """Yaw of the cabinet's inward axis (rad)."""

    def drawer_opening_m(self) -> float:
        """How far the drawer is pulled out (m)."""


class PushView(ArmView, Protocol):
    """What the push expert reads (push.PushTask has it)."""

    def block_pos(self) -> np.ndarray:
        """Block centre (m) [3]."""

    def target_pos(self) -> np.ndarray:
        """Target disc centre on the table (m) [3]."""


def move_action(task: ArmView, pos_m, pitch_rad: float, gripper: float) -> np.ndarray:
    """Normalized action [7] taking the commanded ee target toward `pos_m` at roll 0, `pitch_rad`.

    The yaw follows the arm's vertical plane (yaw = azimuth of the next target position): yawing
    across that plane needs large forearm-roll/wrist motions, and flips near the wrist singularity.
    """
    dpos = np.clip((np.asarray(pos_m) - task.target.pos_m) / control.POS_SCALE_M, -1.0, 1.0)
    nxt = task.target.pos_m + dpos * control.POS_SCALE_M
    rpy = np.array([0.0, pitch_rad, np.arctan2(nxt[1], nxt[0])])
    drpy = (rpy - task.target.rpy_rad) / control.ROT_SCALE_RAD
    return np.clip(np.concatenate([dpos, drpy, [gripper]]), -1.0, 1.0)


class Expert(abc.ABC):
    """A scripted policy with a phase; `reset` at episode start, `act` each step."""

    def reset(self) -> None:
        """Back to the first phase."""
        self.phase = 0
        self.count = 0

    @abc.abstractmethod
    def act(self, task: ArmView) -> np.ndarray:
        """The normalized action [7] for the task's current state."""

    def _goto(self, phase: int) -> None:
        self.phase, self.count = phase, 0


def _drawer_frame(task: DrawerView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Handle centre (m), the cabinet's inward axis and its left axis, base frame, [3] each."""
    yaw = task.cabinet_yaw()
    inward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    return task.handle_pos(), inward, np.array([-inward[1], inward[0], 0.0])


class DrawerOpenExpert(Expert):
    """Grasp the vertical handle bar from the front and pull the drawer open.

    Phases: 0 line up 7 cm in front of the handle, 1 slide the open fingers around the bar,
    2 close, 3 pull along the drawer axis, 4 let go and back off (so later noise cannot undo the
    work). Losing the handle, or the drawer sliding back in, restarts at phase 0.
    """

    PITCH_RAD = 0.6  # tip down: reaches the handle close to the base
    GOAL_M = 0.12
    REDO_M = 0.09  # back to work if the drawer slid in below this
    # Fingers closed on the bar stop at ~0.022 m (bar radius + pad inset); below this: empty.
    EMPTY_FINGER_M = 0.018

    def __init__(self):
        self.reset()

    def act(self, task: DrawerView) -> np.ndarray:
        handle, inward, _ = _drawer_frame(task)
        grasp = handle + 0.008 * inward
        tip, opening = task.tip_pos(), task.drawer_opening_m()
        self.count += 1
        if self.phase == 0:
            pre = handle - 0.07 * inward
            if np.linalg.norm(tip - pre) < 0.02 and _pitch_ok(task, self.PITCH_RAD):
                self._goto(1)
            return move_action(task, pre, self.PITCH_RAD, OPEN)
        if self.phase == 1:
            if np.linalg.norm(tip - grasp) < 0.02:
                self._goto(2)
            elif self.count > 8:
                self._goto(0)
            return move_action(task, grasp, self.PITCH_RAD, OPEN)
        if self.phase == 2:
            if self.count >= 2:
                self._goto(3)
            return move_action(task, grasp, self.PITCH_RAD, CLOSED)
        if self.phase == 3:
            # Fingers closed on nothing, or the tip far from the bar: the handle is lost.
            if task.finger_q().mean() < self.EMPTY_FINGER_M or np.linalg.norm(tip - grasp) > 0.03:
                self._goto(0)  # lost the handle
                return move_action(task, tip - 0.03 * inward, self.PITCH_RAD, OPEN)
            if opening >= self.GOAL_M:
                self._goto(4)
                return move_action(task, tip, self.PITCH_RAD, OPEN)
            step = np.clip(self.GOAL_M - opening + 0.01, 0.01, 0.04)
            return move_action(task, grasp - step * inward, self.PITCH_RAD, CLOSED)
        if opening < self.REDO_M:
            self._goto(0)
        # Open in place, then back straight out along the handle's axis (not rubbing the bar).
        back = float((handle - tip) @ inward)
        away = handle - min(back + 0.04, 0.08) * inward
        return move_action(task, tip if self.count <= 1 else away, self.PITCH_RAD, OPEN)


class DrawerCloseExpert(Expert):
    """Push the drawer shut with the closed gripper on its front, beside the handle.

    Phases: 0 line up 6 cm in front of the push point, 1 push along the drawer axis,
    2 back off. Drifting sideways off the push point, or the drawer reopening, -> phase 0.
    """

    PITCH_RAD = 0.6
    DONE_M = 0.003
    REDO_M = 0.008
    SIDE_M = 0.075  # push point beside the handle, so the gripper's palm clears the bar

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Back to the first phase; the push side is chosen again."""
        super().reset()
        self.side = 0.0

    def act(self, task: DrawerView) -> np.ndarray:
        handle, inward, left = _drawer_frame(task)
        if self.side == 0.0:  # push on the side nearer the arm's x axis (easier to reach)
            self.side = -1.0 if float(handle @ left) > 0 else 1.0
        offset = (scenes.HANDLE_OFFSET_M - scenes.WALL_M) * inward + self.side * self.SIDE_M * left
        face = handle + offset
        tip, opening = task.tip_pos(), task.drawer_opening_m()
        pre = face - 0.06 * inward
        self.count += 1
        if self.phase == 0:
            if np.linalg.norm(tip - pre) < 0.02 and _pitch_ok(task, self.PITCH_RAD):
                self._goto(1)
            return move_action(task, pre, self.PITCH_RAD, CLOSED)
        if self.phase == 1:
            if abs(float((tip - face) @ left)) > 0.03 or abs(tip[2] - face[2]) > 0.03:
                self._goto(0)
            elif opening <= self.DONE_M:
                self._goto(2)
            return move_action(task, face + 0.03 * inward, self.PITCH_RAD, CLOSED)
        if opening > self.REDO_M:
            self._goto(0)
        return move_action(task, face - 0.08 * inward, self.PITCH_RAD, CLOSED)


def _pitch_ok(task: ArmView, pitch_rad: float) -> bool:
    """Commanded roll within 0.1 rad of 0 and pitch within 0.1 rad of `pitch_rad`."""
    return bool(np.all(np.abs(task.target.rpy_rad[:2] - [0.0, pitch_rad]) < 0.1))


class PushExpert(Expert):
    """Push the block along the line from it to the target with the closed gripper.

    Phases: 0 above the spot behind the block, 1 descend, 2 push (re-aim every step),
    3 back off and lift once the block is on target. Drifting off the line or in front of the block,
    or the block leaving the target, -> phase 0.
    """

    PITCH_RAD = 1.25
    HOVER_Z_M = 0.09
    PUSH_Z_M = 0.02
    STANDOFF_M = scenes.BLOCK_HALF_M + 0.03

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Back to the first phase."""
        super().reset()
        self.lift_xy = np.zeros(2)

    def act(self, task: PushView) -> np.ndarray:
        block, goal = task.block_pos(), task.target_pos()
        to_goal = goal[:2] - block[:2]
        dist = np.linalg.norm(to_goal)
        d = to_goal / max(dist, 1e-6)
        tip = task.tip_pos()
        behind = block[:2] - self.STANDOFF_M * d
        rel = tip[:2] - block[:2]
        along, across = float(rel @ d), float(rel @ np.array([-d[1], d[0]]))
        self.count += 1
        if dist < 0.012 and self.phase == 2:
            self._goto(3)
            self.lift_xy = tip[:2] - 0.02 * d  # d is ill-defined once on target: keep this one
        if self.phase == 3:  # done: lift and back off, so later noise does not bump the block
            if dist > 0.02:
                self._goto(0)
            return move_action(task, [*self.lift_xy, self.HOVER_Z_M], self.PITCH_RAD, CLOSED)
        if self.phase == 0:
            hover = [*behind, self.HOVER_Z_M]
            if np.linalg.norm(tip - hover) < 0.025:
                self._goto(1)
            return move_action(task, hover, self.PITCH_RAD, CLOSED)
        if self.phase == 1:
            low = [*behind, self.PUSH_Z_M]
            if np.linalg.norm(tip - low) < 0.02:
                self._goto(2)
            elif self.count > 8:
                self._goto(0)
            return move_action(task, low, self.PITCH_RAD, CLOSED)
        if abs(across) > 0.03 or along > -0.01:
            self._goto(0)
            return move_action(task, [*tip[:2], self.HOVER_Z_M], self.PITCH_RAD, CLOSED)
        push_to = block[:2] - (self.STANDOFF_M - 0.01) * d + min(0.03, dist + 0.005) * d
        push_to = push_to - 0.5 * across * np.array([-d[1], d[0]])
        return move_action(task, [*push_to, self.PUSH_Z_M], self.PITCH_RAD, CLOSED)
