"""`press`: a contact-rich WidowX task -- push a spring-loaded button down with the closed gripper.

A button housing (body `button_base`) sits on the table at a random place in front of the arm; its
cap (body `button`) rides on a vertical slide joint `button` with a preloaded spring and a hard stop
after BUTTON_TRAVEL_M. Success: the cap is held down at least PRESS_SUCCESS_M. Pushing past the stop
meets the housing's full stiffness, which is what makes the task a test of energy-aware control: a
policy that keeps driving its target into the button builds up contact force with every step.

Besides the usual task interface the task measures contact: `contact_force_n()` is the total normal
force between the arm and the scene right now (MuJoCo `mj_contactForce`), `peak_force_n` the largest
value seen at any 2 ms physics substep of the episode (`advance` updates it; env steps use it).
"""

from __future__ import annotations

import mujoco
import numpy as np

from robolearn.envs.widowx import experts, scenes
from robolearn.envs.widowx.base import WidowXTask

HOUSING_HALF_M = (0.045, 0.045, 0.015)  # x, y, z half sizes; the top face is at 2 * z
CAP_RADIUS_M = 0.028
CAP_HALF_HEIGHT_M = 0.008
CAP_RISE_M = 0.012  # cap top above the housing top when released
BUTTON_TRAVEL_M = 0.012  # slide range; at the stop the cap top is level with the housing top
SPRING_N_M = 400.0
PRELOAD_M = 0.01  # spring reference beyond the released position: 4 N preload
PRESS_SUCCESS_M = 0.008
# Height of the tip site above the lowest point of the closed finger pads at the expert's pitch
# (1.4 rad, measured in this scene): the tip comes down to (cap top + this) to touch the cap.
TIP_ABOVE_PADS_M = 0.012
HOUSING_RGBA = (0.30, 0.30, 0.34, 1.0)
CAP_RGBA = (0.85, 0.12, 0.10, 1.0)


def build_press_scene():
    """Table, arm and a button: housing `button_base`, cap `button` on slide joint `button`."""
    root = scenes._base_scene("widowx_press")
    hx, hy, hz = HOUSING_HALF_M
    base = root.worldbody.add("body", name="button_base", pos=[0.3, 0.0, 0.0])
    base.add(
        "geom", name="housing", type="box", size=[hx, hy, hz], pos=[0, 0, hz], rgba=HOUSING_RGBA
    )
    cap = base.add("body", name="button", pos=[0, 0, 2 * hz + CAP_RISE_M - CAP_HALF_HEIGHT_M])
    cap.add(
        "joint", name="button", type="slide", axis=[0, 0, 1], range=[-BUTTON_TRAVEL_M, 0.0],
        stiffness=SPRING_N_M, springref=PRELOAD_M, damping=3.0, armature=0.05,
        solreflimit=[0.004, 1.0],  # a hard stop: it gives ~0.15 mm under 40 N
    )  # fmt: skip
    cap.add(
        "geom", name="cap", type="cylinder", size=[CAP_RADIUS_M, CAP_HALF_HEIGHT_M], mass=0.05,
        rgba=CAP_RGBA, friction=[0.8, 0.005, 0.0001],
    )  # fmt: skip
    root.contact.add("exclude", body1="button_base", body2="button")
    return root


class PressExpert(experts.Expert):
    """Hover over the cap, come down on it with the closed gripper, hold it pressed; moving slowly.

    Phases: 0 hover 3 cm above the cap, 1 (tip within ON_M of the cap's axis) press and hold:
    command the tip PRESS_BELOW_M below where the pads first touch the cap (a bounded push,
    ~10-18 N). Drifting more than OFF_M off the cap's axis -> phase 0.
    """

    PITCH_RAD = 1.4
    HOVER_M = 0.03
    PRESS_BELOW_M = 0.019
    MAX_ACTION = 0.3  # 1.5 cm / 0.075 rad per step while far: slow enough for the servos ...
    NEAR_M = 0.02  # ... and full corrections near the goal (holds the press against noise)
    ON_M = 0.015  # tip within this of the cap's axis (xy): start pressing
    OFF_M = 0.035  # pressing and drifted this far off the axis: realign

    def __init__(self):
        self.reset()

    def act(self, task: PressTask) -> np.ndarray:
        top = task.cap_top_rest()
        tip = task.tip_pos()
        off_m = float(np.linalg.norm(tip[:2] - top[:2]))
        self.count += 1
        if self.phase == 0 and off_m < self.ON_M and tip[2] < top[2] + self.HOVER_M + 0.03:
            self._goto(1)
        elif self.phase == 1 and off_m > self.OFF_M:
            self._goto(0)
        if self.phase == 0:
            goal = top + [0.0, 0.0, self.HOVER_M]
        else:
            goal = top + [0.0, 0.0, TIP_ABOVE_PADS_M - self.PRESS_BELOW_M]
        action = experts.move_action(task, goal, self.PITCH_RAD, experts.CLOSED)
        if np.linalg.norm(goal - task.target.pos_m) > self.NEAR_M:
            action[:6] = slow(action[:6], self.MAX_ACTION)
        return action


def slow(action: np.ndarray, max_abs: float) -> np.ndarray:
    """`action` scaled down (direction kept) so that no entry exceeds `max_abs` in magnitude."""
    peak = float(np.abs(action).max())
    return action * (max_abs / peak) if peak > max_abs else action


class PressTask(WidowXTask):
    """Press the button on the table (task `press`)."""

    def _build(self):
        return build_press_scene()

    def __init__(self, info, config):
        super().__init__(info, config)
        self._base = self.model.body("button_base").id
        self._button_qadr = self.model.joint("button").qposadr[0]
        self.peak_force_n = 0.0

    def _reset(self, rng: np.random.Generator) -> None:
        super()._reset(rng)
        self.peak_force_n = 0.0

    def _place(self, rng: np.random.Generator) -> None:
        self.model.body_pos[self._base] = [rng.uniform(0.26, 0.36), rng.uniform(-0.12, 0.12), 0.0]

    def _success(self) -> bool:
        return self.button_depth_m() >= PRESS_SUCCESS_M

    def _make_expert(self) -> experts.Expert:
        return PressExpert()

    def layout(self) -> np.ndarray:
        """Button housing centre x, y (m) in the base frame, [2]; the cap's travel is in qpos."""
        return self.model.body_pos[self._base, :2].copy()

    def advance(self, nstep: int) -> None:
        """Run `nstep` physics substeps (2 ms each) one at a time, keeping `peak_force_n` up to
        date (WidowXTask's control ramp steps through here)."""
        for _ in range(nstep):
            mujoco.mj_step(self.model, self.data)
            self.peak_force_n = max(self.peak_force_n, self.contact_force_n())

    # -- privileged state ---------------------------------------------------------------------

    def contact_force_n(self) -> float:
        """Total normal force (N) of the contacts between the arm (gripper included) and the
        scene, now: the force the arm pushes the button (or table) with."""
        return self.arm_contact_force_n()[0]

    def button_depth_m(self) -> float:
        """How far the cap is pushed down (m), 0 released .. BUTTON_TRAVEL_M at the stop."""
        return float(-self.data.qpos[self._button_qadr])

    def cap_top_rest(self) -> np.ndarray:
        """Centre of the released cap's top face, base frame (m) [3]."""
        x, y = self.layout()
        return np.array([x, y, 2 * HOUSING_HALF_M[2] + CAP_RISE_M])
