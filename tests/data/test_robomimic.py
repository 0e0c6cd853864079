"""robosuite / robomimic HDF5 import: the action mapping worked by hand, a robomimic-layout file
written here (obs images, no replay), bad files, and the real robosuite 1.4 Lift and Wipe demos
(replayed state by state in robosuite 1.5.2's Lift; the Wipe demo refused)."""

import json

import numpy as np
import pytest
from shared_data import SAMPLES

from robolearn import cli
from robolearn.data.robomimic import RobomimicConfig, inspect_file, osc_to_bridge
from robolearn.data.store import iter_episodes

h5py = pytest.importorskip("h5py")

LIFT = SAMPLES / "robosuite_hdf5" / "lift_panda_demo.hdf5"
WIPE = SAMPLES / "robosuite_hdf5" / "wipe_panda_demo.hdf5"
needs_samples = pytest.mark.skipif(
    not LIFT.is_file(), reason=f"the shared robosuite demos are absent ({LIFT.parent})"
)
OSC = {"type": "OSC_POSE", "output_max": [0.05] * 3 + [0.5] * 3, "control_delta": True}


def test_osc_actions_map_to_the_task_convention_worked_by_hand():
    # A pure yaw step of 0.2 rad is the axis-angle (0, 0, 0.2) = 0.4 units; it is rpy (0, 0, 0.2)
    # = 0.4 units too. The gripper flips sign (+1 closes in robosuite, opens here).
    got, clipped = osc_to_bridge(np.array([[0.5, -0.25, 1.0, 0.0, 0.0, 0.4, 1.0]]))
    np.testing.assert_allclose(got, [[0.5, -0.25, 1.0, 0.0, 0.0, 0.4, -1.0]], atol=1e-6)
    assert clipped == 0 and got.dtype == np.float32
    # Out of range inputs are clipped (robosuite clips them too) and counted.
    got, clipped = osc_to_bridge(np.array([[1.5, 0, 0, 0, 0, 0, -2.0]]))
    assert clipped == 2 and got[0, 0] == 1.0 and got[0, 6] == 1.0


def test_osc_mapping_inverts_the_robosuite_tasks_mapping():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    ours = rng.uniform(-0.6, 0.6, (50, 7))
    # robolearn.envs.robosuite: rotvec = R.from_euler("xyz", a * 0.5), then / 0.5; gripper negated.
    rotvec = Rotation.from_euler("xyz", ours[:, 3:6] * 0.5).as_rotvec() / 0.5
    osc = np.concatenate([ours[:, :3], rotvec, -ours[:, 6:]], axis=1)
    back, clipped = osc_to_bridge(osc)
    np.testing.assert_allclose(back, ours, atol=1e-6)
    assert clipped == 0


def _write(path, env="NutAssemblySquare", demos=(5, 4), images=True, **overrides):
    """A robomimic-layout file: env_args, demos with states, actions, rewards, dones, obs/."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        args = {"env_name": env, "env_kwargs": {"robots": ["Panda"], "control_freq": 10}}
        args["env_kwargs"]["controller_configs"] = overrides.get("controller", OSC)
        data.attrs["env_args"] = json.dumps(args)
        data.attrs["repository_version"] = "1.4.1"
        for i, n in enumerate(demos, 1):
            g = data.create_group(f"demo_{i}")
            g.create_dataset("states", data=rng.normal(size=(n, 9)))
            actions = rng.uniform(-0.5, 0.5, (n, 7))
            g.create_dataset("actions", data=overrides.get("actions", actions))
            g.create_dataset("rewards", data=(np.arange(n) == n - 2).astype(np.float64))
            g.create_dataset("dones", data=(np.arange(n) == n - 1).astype(np.int64))
            obs = g.create_group("obs")
            if images:
                frames = np.tile(
                    np.arange(n, dtype=np.uint8)[:, None, None, None] * 20, (1, 84, 84, 3)
                )
                obs.create_dataset("agentview_image", data=frames)
            obs.create_dataset("robot0_eef_pos", data=rng.normal(size=(n, 3)))
            obs.create_dataset("robot0_eef_quat", data=np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)))
            gripper = np.stack([np.full(n, 0.02), np.full(n, -0.02)], axis=1)
            obs.create_dataset("robot0_gripper_qpos", data=gripper)
    return path


def test_a_robomimic_file_with_images_imports_from_its_obs(tmp_path, capsys):
    src = _write(tmp_path / "square.hdf5")
    out = tmp_path / "store"
    argv = ["data", "import", "robomimic", str(src), "--out", str(out), "--image-size", "32"]
    assert cli.main([*argv, "--quiet"]) == 0
    assert "imported 2 episodes, 7 steps from 1 file(s), 2 successful" in capsys.readouterr().out
    (_, first), (_, second) = list(iter_episodes(out))
    with h5py.File(src) as f:
        demo = f["data/demo_1"]
        states, actions = demo["states"][()], demo["actions"][()]
        pos = demo["obs/robot0_eef_pos"][()]
    assert first.num_steps == 4 and second.num_steps == 3
    assert first.image.shape == (5, 32, 32, 3) and first.image[3].mean() == 60  # frame 3 = 3 * 20
    np.testing.assert_array_equal(first.state, states[:, 1:])
    np.testing.assert_allclose(first.action, osc_to_bridge(actions[:4])[0])
    np.testing.assert_allclose(first.proprio[:, :3], pos, atol=1e-6)
    np.testing.assert_allclose(first.proprio[:, 3:6], 0.0, atol=1e-6)  # identity quaternion
    np.testing.assert_allclose(first.proprio[:, 6], 0.5)  # fingers 0.04 m apart of 0.08
    # rewards[3] = 1 is the outcome of action 3 (success at observation 4); none is dropped here.
    assert first.reward.tolist() == [0, 0, 0, 1] and first.success.tolist() == [0, 0, 0, 0, 1]
    meta = first.meta
    assert meta.task == "robomimic/nutassemblysquare" and meta.fps == 10.0
    assert meta.source == "imported" and meta.policy == "robomimic:square/demo_1"
    assert meta.extra["image_source"] == "obs/agentview_image"
    assert meta.extra["dropped_final_action"] == pytest.approx(actions[4].tolist())
    assert "OSC_POSE" in meta.action_meaning and meta.extra["robosuite_version"] == "1.4.1"


def test_max_steps_and_demo_select_what_is_imported(tmp_path):
    src = _write(tmp_path / "square.hdf5", demos=(6, 5))
    out = tmp_path / "store"
    argv = ["data", "import", "robomimic", str(src), "--out", str(out), "--quiet"]
    assert cli.main([*argv, "--demo", "demo_2", "--max-steps", "2", "--task", "square"]) == 0
    ((_, ep),) = list(iter_episodes(out))
    assert ep.num_steps == 2 and ep.meta.extra["demo"] == "demo_2" and ep.meta.task == "square"
    assert ep.meta.extra["truncated_at"] == 2 and ep.meta.extra["dropped_final_action"] == []


def _error(tmp_path, capsys, *argv) -> str:
    out = tmp_path / "store"
    code = cli.main(["data", "import", "robomimic", *map(str, argv), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("robolearn data import robomimic: error: ")
    assert not out.exists()  # nothing is written before every input is checked
    return err


def test_bad_files_are_one_line_errors_naming_file_and_key(tmp_path, capsys):
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    assert f"{text}: not a readable HDF5 file" in _error(tmp_path, capsys, text)
    assert "no such file" in _error(tmp_path, capsys, tmp_path / "missing.hdf5")
    bad = _write(tmp_path / "nan.hdf5", actions=np.full((5, 7), np.nan))
    assert f"{bad}: data/demo_1/actions: contains NaN or inf" in _error(tmp_path, capsys, bad)
    wide = _write(tmp_path / "wide.hdf5", actions=np.zeros((5, 12)))
    assert "data/demo_1/actions: shape [5, 12], need [N, 7]" in _error(tmp_path, capsys, wide)
    joint = _write(tmp_path / "joint.hdf5", controller={"type": "JOINT_VELOCITY"})
    assert "controller_configs: JOINT_VELOCITY" in _error(tmp_path, capsys, joint)
    good = _write(tmp_path / "good.hdf5")
    assert "no demo 'demo_9'" in _error(tmp_path, capsys, good, "--demo", "demo_9")
    # Without images and without a robolearn task to replay the states in: refused, saying why.
    blind = _write(tmp_path / "blind.hdf5", images=False)
    err = _error(tmp_path, capsys, good, blind)  # the good file is not imported either
    assert f"{blind}: data/demo_1: no image observations" in err
    assert "robosuite env 'NutAssemblySquare' (recorded with robosuite 1.4.1) has no" in err


@needs_samples
def test_the_real_wipe_demo_is_refused_with_the_reason(tmp_path, capsys):
    err = _error(tmp_path, capsys, WIPE)
    assert "robosuite env 'Wipe' (recorded with robosuite 1.0.0)" in err
    assert "no robolearn task to replay its states in (robolearn replays: Door, Lift)" in err


@needs_samples
def test_the_real_lift_demo_is_inspected_without_a_simulator():
    info = inspect_file(LIFT, RobomimicConfig(), {"Lift"})
    assert info.env_name == "Lift" and info.robots == ("Panda",) and info.fps == 20.0
    assert info.version == "1.4.0" and info.state_size == 32 and info.replay
    assert [name for name, _ in info.demos] == ["demo_1", "demo_2", "demo_3"]
    assert dict(info.demos)["demo_1"] == 482 and info.image_key is None


@pytest.fixture(scope="module")
def lift_replay():
    pytest.importorskip("robosuite")
    if not LIFT.is_file():
        pytest.skip(f"the shared robosuite demos are absent ({LIFT.parent})")
    from robolearn.runs.import_robomimic import RobosuiteReplay

    replay = RobosuiteReplay(inspect_file(LIFT, RobomimicConfig(), {"Lift"}), RobomimicConfig())
    yield replay
    replay.close()


@pytest.mark.slow
@pytest.mark.robosuite
def test_every_lift_demo_replays_to_success(lift_replay):
    with h5py.File(LIFT) as f:
        for name in ("demo_1", "demo_2", "demo_3"):
            states = f[f"data/{name}/states"][()]
            first = lift_replay.observe(states[0], render=False)
            last = lift_replay.observe(states[-1], render=False)
            assert not first.success and first.reward == 0.0
            assert last.success and last.reward == 1.0, name


@pytest.mark.slow
@pytest.mark.robosuite
def test_the_real_lift_demo_imports_by_replaying_its_states(tmp_path, capsys, lift_replay):
    out = tmp_path / "store"
    argv = ["data", "import", "robomimic", str(LIFT), "--out", str(out), "--quiet"]
    assert cli.main([*argv, "--demo", "demo_1", "--max-steps", "8"]) == 0
    assert "imported 1 episodes, 8 steps from 1 file(s), 0 successful" in capsys.readouterr().out
    ((_, ep),) = list(iter_episodes(out))
    with h5py.File(LIFT) as f:
        states, actions = f["data/demo_1/states"][:9], f["data/demo_1/actions"][:8]
    assert ep.image.shape == (9, 64, 64, 3) and ep.image.std() > 5.0
    np.testing.assert_array_equal(ep.state, states[:, 1:])
    np.testing.assert_allclose(ep.action, osc_to_bridge(actions)[0])
    # The importer's proprio is the replay's, which is the Lift task's own observation.
    np.testing.assert_allclose(
        ep.proprio[0], lift_replay.observe(states[0], False).proprio, atol=1e-6
    )
    meta = ep.meta
    assert meta.task == "robosuite/lift" and meta.instruction == "pick up the red cube"
    assert meta.fps == 20.0 and meta.extra["image_source"] == "rendered"
    assert "not the recorded model_file" in meta.extra["observations"]
    assert meta.extra["reward_source"] == "env" and not ep.success.any()


@pytest.mark.slow
@pytest.mark.robosuite
def test_a_state_size_of_another_scene_is_refused(tmp_path, capsys):
    pytest.importorskip("robosuite")
    src = _write(tmp_path / "lift.hdf5", env="Lift", images=False)  # 9-value states
    err = _error(tmp_path, capsys, src)
    assert "states hold 9 values a step" in err and "has 32 (time, 16 qpos, 15 qvel)" in err
    assert "cannot replay" in err
