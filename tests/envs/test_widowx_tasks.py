"""WidowX MuJoCo tasks: registration, observations, control, experts, randomization."""

import numpy as np
import pytest

from robolearn import envs
from robolearn.core import widowx as wx
from robolearn.core import widowx_control as control
from robolearn.core.errors import ConfigError
from robolearn.envs.base import TaskInfo
from robolearn.envs.widowx.tasks import register_all, task_infos

NAMES = [info.name for info in task_infos()]


@pytest.fixture(scope="module", params=NAMES)
def task(request):
    task = envs.make(request.param)
    yield task
    task.close()


def test_register_all_registers_the_widowx_tasks():
    got: dict[str, tuple[TaskInfo, str]] = {}
    register_all(lambda info, factory: got.__setitem__(info.name, (info, factory)))
    assert {"drawer", "drawer-close", "push"} <= set(got)
    for info, factory in got.values():
        assert info.suite == "widowx" and info.control_hz == 5.0 and info.max_steps >= 40
        assert info.instruction and "0.05 m" in info.action_meaning
        assert factory == "robolearn.envs.widowx.tasks:make_task"
    assert got["drawer"][0].instruction == "open the drawer"
    assert got["drawer-close"][0].instruction == "close the drawer"


def test_reset_step_and_render(task):
    obs, info = task.reset(seed=0)
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["image"].std() > 5.0, "image is (nearly) one colour"
    assert obs["proprio"].shape == (7,) and obs["proprio"].dtype == np.float32
    assert obs["state"].shape == (task.model.nq + task.model.nv,)
    assert task.observation_space.contains(obs)
    assert not info["success"]
    obs2, reward, terminated, truncated, info = task.step(np.zeros(7))
    assert reward == 0.0 and not terminated and not truncated and info["step"] == 1
    assert np.array_equal(task.render(), obs2["image"])


def test_proprio_is_tip_pose_and_gripper_opening(task):
    obs, _ = task.reset(seed=1)
    pose = wx.fk(task.arm_q())
    np.testing.assert_allclose(obs["proprio"][:3], pose[:3, 3], atol=1e-6)
    np.testing.assert_allclose(obs["proprio"][3:6], control.START_RPY_RAD, atol=1e-3)
    assert obs["proprio"][6] == pytest.approx(1.0, abs=1e-3)  # starts open
    for _ in range(2):
        obs, *_ = task.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))
    assert obs["proprio"][6] < 0.2
    # The robot bridge computes the same vector from joint states alone.
    expected = wx.proprio(task.arm_q(), task.finger_q())
    np.testing.assert_allclose(obs["proprio"], expected, atol=1e-5)


def test_arm_tracks_the_commanded_ee_target(task):
    task.reset(seed=2)
    action = np.array([0.6, 0.4, 0.5, 0.0, -0.4, 0.0, 1.0])
    for _ in range(3):
        task.step(action)
    np.testing.assert_allclose(
        task.target.pos_m, control.START_POS_M + 3 * 0.05 * action[:3], atol=1e-4
    )
    task.step(np.zeros(7))
    assert np.linalg.norm(task.tip_pos() - task.target.pos_m) < 3e-3
    assert np.allclose(wx.fk(task.target.q_rad)[:3, 3], task.target.pos_m, atol=1e-9)


def test_target_is_clipped_to_the_workspace_box(task):
    task.reset(seed=0)
    for _ in range(8):
        task.step(np.array([0, 0, 1.0, 0, 0, 0, 1.0]))
    assert task.target.pos_m[2] <= control.WORKSPACE_BOX_M[1, 2] + 1e-9
    q = task.target.q_rad
    assert np.all(q >= wx.Q_LOWER_RAD) and np.all(q <= wx.Q_UPPER_RAD)


def test_placement_is_seeded(task):
    def placed(seed):
        obs, _ = task.reset(seed=seed)
        return obs, task.layout()

    (obs_a, lay_a), (obs_b, lay_b), (obs_c, lay_c) = placed(7), placed(7), placed(8)
    np.testing.assert_array_equal(obs_a["state"], obs_b["state"])
    np.testing.assert_array_equal(obs_a["image"], obs_b["image"])
    np.testing.assert_array_equal(lay_a, lay_b)
    assert np.abs(lay_a - lay_c).max() > 1e-3
    assert not np.array_equal(obs_a["image"], obs_c["image"])


@pytest.mark.parametrize("name", NAMES)
def test_expert_succeeds_on_a_fixed_seed(name):
    task = envs.make(name, image_size=16)
    try:
        task.reset(seed=4)
        for _ in range(task.max_steps):
            *_, info = task.step(task.expert_action())
        assert info["success"]
    finally:
        task.close()


def test_visual_randomization_changes_the_image():
    plain, varied = envs.make("push"), envs.make("push", visual_randomization=True)
    try:
        img = plain.reset(seed=3)[0]["image"]
        img_a = varied.reset(seed=3)[0]["image"]
        img_b = varied.reset(seed=4)[0]["image"]
        assert np.abs(img.astype(int) - img_a).mean() > 2.0
        assert np.abs(img_a.astype(int) - img_b).mean() > 2.0
        # physics and placement are the same as without randomization
        np.testing.assert_array_equal(
            plain.reset(seed=3)[0]["state"], varied.reset(seed=3)[0]["state"]
        )
    finally:
        plain.close()
        varied.close()


def test_control_keeps_targets_in_box_and_limits_under_random_actions():
    rng = np.random.default_rng(0)
    lo, hi = control.WORKSPACE_BOX_M
    target, skipped = control.start_target(), 0
    for _ in range(300):
        prev = target
        target, ok = control.step_target(target, rng.uniform(-1, 1, 7))
        skipped += not ok
        if not ok:
            assert target is prev  # a skipped step keeps the previous targets
        assert np.all(target.pos_m >= lo - 1e-3) and np.all(target.pos_m <= hi + 1e-3)
        assert np.all(target.q_rad >= wx.Q_LOWER_RAD) and np.all(target.q_rad <= wx.Q_UPPER_RAD)
        assert np.all(np.abs(target.q_rad - prev.q_rad) <= control.MAX_JOINT_STEP_RAD + 1e-12)
        np.testing.assert_allclose(wx.fk(target.q_rad)[:3, 3], target.pos_m, atol=1e-12)
    assert skipped < 60


def test_gripper_command_is_absolute():
    assert control.gripper_target_m(1.0) == pytest.approx(wx.FINGER_UPPER_M)
    assert control.gripper_target_m(-1.0) == pytest.approx(wx.FINGER_LOWER_M)
    assert control.gripper_target_m(0.0) == pytest.approx(0.026)


@pytest.mark.parametrize("name", NAMES)
def test_noisy_expert_still_succeeds_sometimes(name):
    task, rng, wins = envs.make(name, image_size=16), np.random.default_rng(0), 0
    try:
        for seed in range(3):
            task.reset(seed=seed)
            for _ in range(task.max_steps):
                noisy = task.expert_action() + rng.normal(0.0, 0.3, 7)
                *_, info = task.step(np.clip(noisy, -1.0, 1.0))
            wins += info["success"]
    finally:
        task.close()
    assert wins >= 1


def test_camera_lag_takes_the_image_before_the_step_ends():
    """camera_lag_max_s: the image of a step is a frame from up to that long before its end (as a
    free-running robot camera gives), the physics and proprio are untouched, seeded per episode."""
    plain, lagged = envs.make("drawer"), envs.make("drawer", camera_lag_max_s=0.04)
    try:
        for task in (plain, lagged):
            task.reset(seed=3)
        differs = 0
        for _ in range(4):  # the expert moves the arm fast over the first steps
            action = plain.expert_action()
            a, b = plain.step(action)[0], lagged.step(action)[0]
            np.testing.assert_array_equal(a["proprio"], b["proprio"])
            np.testing.assert_array_equal(a["state"], b["state"])
            np.testing.assert_array_equal(lagged.camera_image(), a["image"])  # now: the end
            differs += np.abs(a["image"].astype(int) - b["image"]).mean() > 0.01
        assert differs >= 3
        # the lag is drawn from the reset's rng: the same seed, the same frames
        first = [lagged.reset(seed=5)[0]["image"]] + [lagged.step(np.zeros(7))[0]["image"]]
        again = [lagged.reset(seed=5)[0]["image"]] + [lagged.step(np.zeros(7))[0]["image"]]
        for x, y in zip(first, again, strict=True):
            np.testing.assert_array_equal(x, y)
    finally:
        plain.close()
        lagged.close()


def test_camera_lag_is_refused_where_it_is_not_simulated():
    from robolearn.core.errors import ConfigError

    with pytest.raises(ConfigError, match="camera_lag_max_s must be in"):
        envs.make("drawer", camera_lag_max_s=0.5)
    pytest.importorskip("metaworld")
    with pytest.raises(ConfigError, match="WidowX tasks only"):
        envs.make("metaworld/lever-pull", image_size=16, camera_lag_max_s=0.01)


def test_step_dwell_holds_each_step_a_random_while_longer():
    """step_dwell_max_s: each step lasts 0.2 s plus a seeded random 0..max of holding its final
    target (a robot bridge's uneven step timing); the image and proprio are those of its end."""
    task = envs.make("drawer", step_dwell_max_s=0.04)
    try:
        task.reset(seed=2)
        durations = []
        for _ in range(6):
            before = task.data.time
            obs = task.step(task.expert_action())[0]
            durations.append(task.data.time - before)
            np.testing.assert_array_equal(task.camera_image(), obs["image"])
        assert all(0.2 - 1e-9 <= d <= 0.24 + 1e-9 for d in durations)
        assert len({round(d, 4) for d in durations}) >= 3  # drawn per step
        task.reset(seed=2)
        again = []
        for _ in range(6):
            before = task.data.time
            task.step(task.expert_action())
            again.append(task.data.time - before)
        assert again == durations
    finally:
        task.close()


def test_drawer_and_drawer_close_continue_as_each_other_without_a_reset():
    task = envs.make("drawer", image_size=32, max_steps=40)
    try:
        obs, info = task.reset(seed=3)
        assert task.reset_free_partners() == ("drawer-close",)
        for _ in range(40):  # the expert opens it
            obs, _, _, truncated, info = task.step(task.expert_action())
        assert info["success"] and task.drawer_opening_m() > 0.08
        layout, opening = task.layout(), task.drawer_opening_m()
        obs, info = task.continue_as("drawer-close")
        # the same scene, as it was: only the goal changed (an open drawer is not closed)
        assert task.drawer_opening_m() == opening and np.array_equal(task.layout(), layout)
        assert info["task"] == "drawer-close" and info["step"] == 0 and not info["success"]
        assert task.task_info.instruction == "close the drawer"
        for _ in range(40):
            obs, _, _, truncated, info = task.step(task.expert_action())  # the closing expert
        assert info["success"] and task.drawer_opening_m() < 0.015 and truncated
        obs, info = task.continue_as("drawer")
        assert info["task"] == "drawer" and not info["success"]
        with pytest.raises(ConfigError, match="cannot continue as 'push' without a reset"):
            task.continue_as("push")
    finally:
        task.close()
    push = envs.make("push", image_size=32)
    try:
        push.reset(seed=0)
        with pytest.raises(ConfigError, match="tasks that share its scene: none"):
            push.continue_as("drawer")
        assert push.continue_as("push")[1]["step"] == 0  # its own task: a new episode in place
    finally:
        push.close()


@pytest.mark.parametrize("seed", [3, 5])
def test_continue_as_returning_to_start_leaves_the_opened_drawer_as_it_was(seed):
    """From where the opening expert's arm holds the handle of the drawer it opened (gripper
    closed), the return gets the arm back to the start pose with its gripper open, in real
    physics, without dragging the drawer along; its steps are not the new episode's."""
    task = envs.make("drawer", image_size=32, max_steps=40)
    try:
        task.reset(seed=seed)
        for _ in range(40):  # until the drawer opens: the gripper still holds the handle
            obs, *_, info = task.step(task.expert_action())
            if info["success"]:
                break
        assert info["success"] and obs["proprio"][6] < 0.9
        assert np.linalg.norm(obs["proprio"][:3] - control.START_POS_M) > 0.1
        opening = task.drawer_opening_m()
        obs, info = task.continue_as("drawer-close", return_to_start=True)
        assert info["at_start"] and 3 <= info["return_steps"] <= control.RETURN_MAX_STEPS
        assert info["task"] == "drawer-close" and info["step"] == 0 and not info["success"]
        q = task.data.qpos[task._arm_qadr]
        assert np.abs(q - control.start_target().q_rad).max() < control.RETURN_TOLERANCE_RAD
        assert np.linalg.norm(obs["proprio"][:3] - control.START_POS_M) < 0.015
        assert obs["proprio"][6] > 0.9
        assert abs(task.drawer_opening_m() - opening) < 0.01
        # already there with the gripper open: nothing to do
        assert task.continue_as("drawer", return_to_start=True)[1]["return_steps"] == 0
        assert "return_steps" not in task.continue_as("drawer-close")[1]  # without it
    finally:
        task.close()


@pytest.mark.parametrize(
    "q",
    [
        [-3.09, 0.08, 1.56, -2.89, -1.31, -0.07],  # the waist turned back, over the base
        [0.27, -0.76, 0.8, -2.51, -0.13, 2.51],  # the wrist flipped (forearm roll, rotate)
    ],
)
def test_the_return_gets_out_of_ik_branches_end_effector_steps_cannot_leave(q, monkeypatch):
    """Poses fine-tuning runs left the arm in (runs/ft-sac-rfh-*, 2026-12-06): from there
    end-effector steps straight toward the start pose are all skipped (the IK, seeded where the
    arm is, finds no nearby solution), so a return made of actions never arrives; the joint
    steps of the return do, each joint at most RETURN_JOINT_STEP_RAD a step."""
    import mujoco

    task = envs.make("drawer", image_size=32)
    try:
        task.reset(seed=0)
        q = np.array(q)
        task.data.qpos[task._arm_qadr] = task.data.ctrl[task._arm_act] = q
        pose = wx.fk(q)
        task.target = control.EETarget(pose[:3, 3], wx.mat_to_rpy(pose[:3, :3]), q.copy())
        mujoco.mj_forward(task.model, task.data)
        before = task.tip_pos().copy()
        for _ in range(5):  # straight toward the start pose: nothing moves
            p = task._proprio()
            action = np.zeros(7)
            action[:3] = np.clip((control.START_POS_M - p[:3]) / control.POS_SCALE_M, -1, 1)
            action[3:6] = np.clip((control.START_RPY_RAD - p[3:6]) / control.ROT_SCALE_RAD, -1, 1)
            task.step(action)
        assert np.linalg.norm(task.tip_pos() - before) < 0.005
        path, plain = [], control.joint_step_target

        def recorded(target, goal):
            path.append(target.q_rad.copy())
            return plain(target, goal)

        monkeypatch.setattr(control, "joint_step_target", recorded)
        obs, info = task.continue_as("drawer-close", return_to_start=True)
        assert info["at_start"] and info["return_steps"] <= control.RETURN_MAX_STEPS
        assert np.linalg.norm(obs["proprio"][:3] - control.START_POS_M) < 0.015
        assert len(path) >= 5
        assert np.abs(np.diff(path, axis=0)).max() <= control.RETURN_JOINT_STEP_RAD + 1e-9
    finally:
        task.close()


def test_return_to_start_opens_rises_while_it_can_then_steps_the_joints():
    """The scripted order, on a stand-in arm that reports what each command did: open in place,
    rise while rising works, then joint goals until every joint is there; a stop (a bridge that
    held) ends it."""
    start_q = control.start_target().q_rad
    low = np.concatenate([[0.3, 0.0, 0.07], control.START_RPY_RAD, [0.2]])
    commands = []

    def arm(rises: int, stop_at: int | None = None):
        """step(command) of an arm that rises 5 cm for its first `rises` lift commands."""
        p, q, lifts = low.copy(), start_q + 0.4, []

        def step(command):
            commands.append(command)
            if isinstance(command, control.JointGoal):
                q[:] = q + np.clip(command.q_rad - q, -0.2, 0.2)
            else:
                if command[2] > 0:
                    lifts.append(command)
                    p[2] += 0.05 if len(lifts) <= rises else 0.0
                p[6] = 1.0 if command[6] > 0 else p[6]
            return p.copy(), q.copy(), stop_at is not None and len(commands) == stop_at

        return step

    step = arm(rises=10)
    taken, there = control.return_to_start(step, low, start_q + 0.4)
    kinds = [
        "J" if isinstance(c, control.JointGoal) else ("L" if c[2] > 0 else "O") for c in commands
    ]
    # 7 cm -> 12 -> 17 cm: within RETURN_LIFT_M of the start height, so on to the joints
    assert kinds == ["O", "L", "L", "J", "J"] and there and taken == 5
    assert commands[0][6] == 1.0 and not commands[0][:6].any()
    assert all(np.array_equal(c.q_rad, start_q) and c.gripper == 1.0 for c in commands[3:])

    commands.clear()  # rising stops working after one step: on to the joints
    step = arm(rises=1)
    taken, there = control.return_to_start(step, low, start_q + 0.4)
    kinds = [
        "J" if isinstance(c, control.JointGoal) else ("L" if c[2] > 0 else "O") for c in commands
    ]
    assert kinds == ["O", "L", "L", "J", "J"] and there

    commands.clear()
    step = arm(rises=10, stop_at=2)
    assert control.return_to_start(step, low, start_q + 0.4) == (2, False)
    at_start = np.concatenate([control.START_POS_M, control.START_RPY_RAD, [1.0]])
    assert control.return_to_start(step, at_start, start_q) == (0, True)
