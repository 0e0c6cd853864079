import json
import re
import subprocess
import sys

import imageio.v2 as imageio
import numpy as np
import pytest

from robolearn.cli import main
from robolearn.core.seeds import episode_seed
from robolearn.core.video import SUCCESS, VIDEO_SIZE, caption_frame, strip_height
from robolearn.runs.eval import EvalConfig, run_eval


# imageio's reader spawns ffmpeg (fork + exec) after JAX started threads: harmless here.
@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
def test_eval_of_the_expert_writes_results_config_and_video(tmp_path):
    cfg = EvalConfig(task="drawer", policy="expert", episodes=2, seed=0, video_episodes=1)
    result = run_eval(cfg, tmp_path, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["episodes"] == 2 and saved["successes"] == result["successes"]
    assert result["successes"] >= 1  # the expert succeeds on these seeds (>= 90 % over 50)
    low, high = saved["ci95"]
    assert 0.0 <= low <= saved["success_rate"] <= high <= 1.0
    assert [e["seed"] for e in saved["per_episode"]] == [episode_seed(0, 0), episode_seed(0, 1)]
    assert "task: drawer" in (tmp_path / "config.yaml").read_text()
    frames = imageio.mimread(tmp_path / "video.mp4", memtest=False)
    steps = saved["per_episode"][0]["steps"]
    # a 48-px caption strip above each 256-px frame
    assert len(frames) == steps + 1 and frames[0].shape == (48 + 256, 256, 3)


def test_caption_strip_is_above_the_untouched_frame_and_fits_long_labels():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    label = "drawer, episode 0: /a/very/long/path/to/some/training/run/checkpoint-directory"
    frame = caption_frame(image, [label, "step 3: SUCCESS"], highlight=True)
    top = strip_height(2)
    assert frame.shape == (top + VIDEO_SIZE, VIDEO_SIZE, 3) and top % 16 == 0
    np.testing.assert_array_equal(frame[top:], image.repeat(4, axis=0).repeat(4, axis=1))
    assert tuple(frame[1, 1]) == SUCCESS  # a success step turns the strip green
    # the text stays inside the strip: its last column is background only
    assert (frame[:top, -2] == SUCCESS).all()


def test_cli_eval_prints_the_summary(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "eval",
            "--task",
            "drawer",
            "--episodes",
            "1",
            "--video-episodes",
            "0",
            "--max-steps",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "drawer / expert: success" in text and str(out / "results.json") in text
    assert not (out / "video.mp4").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["eval", "--task", "drawr"], "unknown task 'drawr'; did you mean: drawer"),
        (["eval", "--task", "drawer", "--policy", "nope"], "unknown policy 'nope'"),
        (["eval", "--task", "drawer", "--episodes", "0"], "episodes must be >= 1"),
        (["eval", "--task", "drawer", "--image-size", "1000"], "image_size must be an integer"),
        (["eval", "--task", "metaworld/lever-pull-40hz", "--bridge"], "not a WidowX task"),
        (["eval", "--task", "drawer", "--bridge"], "steers the simulator's own end-effector"),
        (["eval", "--task", "drawer", "--policy", "noisy", "--bridge"], "the scripted 'noisy'"),
    ],
)
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_tasks_command_through_the_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "robolearn.cli", "tasks"], capture_output=True, text=True, check=True
    ).stdout
    assert "drawer" in out and "metaworld/hammer" in out and "robosuite/lift" in out
    assert "open the drawer" in out
    assert re.search(r"^metaworld/lever-pull-40hz +metaworld +40Hz +50 ", out, re.MULTILINE)
    # one action line per distinct meaning: Meta-World's 80 Hz and 40 Hz tasks differ
    assert "(80 Hz, world frame)" in out and "2 cm per step" in out
    labels = [line.split(":")[0] for line in out.splitlines() if line.startswith("  ")]
    assert len(labels) == len(set(labels)), labels  # no two action lines with the same label
    assert "  metaworld at 40 Hz" in labels


def test_eval_through_the_bridge_acts_as_on_the_arm(tmp_path, capsys):
    """--bridge: the policy's actions go through the bridge on the simulated arm; the results say
    how many episodes the bridge held and each episode why (the direct simulator has no bridge
    to hold)."""
    from robolearn.bundles import resolve

    policy = resolve("bundle:drawer/bc-3demos")
    argv = ["eval", "--task", "drawer", "--policy", str(policy), "--episodes", "2"]
    argv += ["--max-steps", "4", "--video-episodes", "0", "--quiet"]
    assert main([*argv, "--bridge", "--out", str(tmp_path / "b")]) == 0
    assert "through the bridge (0 held)" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "d")]) == 0
    bridged = json.loads((tmp_path / "b" / "results.json").read_text())
    direct = json.loads((tmp_path / "d" / "results.json").read_text())
    assert bridged["held"] == 0 and [e["held"] for e in bridged["per_episode"]] == ["", ""]
    assert "held" not in direct and "held" not in direct["per_episode"][0]
    assert [e["steps"] for e in bridged["per_episode"]] == [4, 4]
    # random actions need no simulator state: they go through the bridge too (the shield and the
    # filter see them; an episode may hold)
    argv[argv.index("--policy") + 1] = "random"
    assert main([*argv, "--bridge", "--out", str(tmp_path / "r")]) == 0
    randomly = json.loads((tmp_path / "r" / "results.json").read_text())
    assert len(randomly["per_episode"]) == 2 and "held" in randomly["per_episode"][0]
