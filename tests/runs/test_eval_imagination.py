"""`robolearn eval imagination` end to end: a tiny world model trained for two steps, the shipped
drawer BC policy and reward classifier (the real part checked against `robolearn eval`; the
imagined success against the classifier's own probabilities)."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest
import yaml

from robolearn.cli import main
from robolearn.core.video import VIDEO_SIZE
from robolearn.data.synthetic import write_random_store

POLICY = "bundle:drawer/bc"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-imagination")
    data = write_random_store(root / "data", 3, 6, seed=1)
    argv = ["train", "world-model", "--data", str(data), "--preset", "tiny", "--steps", "2"]
    assert main(argv + ["--batch-size", "4", "--out", str(root / "wm"), "--quiet"]) == 0
    small = write_random_store(root / "data32", 1, 3, image_size=32)
    return {"root": root, "data": data, "data32": small, "wm": root / "wm"}


def _eval(parts, out, *extra):
    argv = ["eval", "imagination", "--task", "drawer", "--world-model", str(parts["wm"])]
    return main(argv + ["--policy", POLICY, "--out", str(out), "--quiet", *extra])


def _results(out):
    return json.loads((out / "results.json").read_text())


# imageio's reader spawns ffmpeg (fork + exec) after JAX started threads: harmless here.
@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")
def test_imagined_success_beside_the_real_eval_of_the_same_scenes(parts, capsys):
    out = parts["root"] / "ev"
    extra = ["--episodes", "3", "--horizon", "15", "--batch-size", "2", "--video-episodes", "2"]
    assert _eval(parts, out, *extra) == 0
    printed = capsys.readouterr().out
    assert f"drawer / {POLICY} in imagination" in printed
    assert "real simulator, same 3 scenes" in printed
    r = _results(out)
    assert (r["episodes"], r["horizon"], r["starts"]) == (3, 15, "simulator resets")
    assert r["reward"] == "bundle:drawer/reward" and 0 < r["threshold"] < 1
    # the real part is `robolearn eval` on the same scenes (seed 0, 15 steps): the shipped BC
    # opens the drawer by step ~12 in two of these three
    real = parts["root"] / "real"
    argv = ["eval", "--task", "drawer", "--policy", POLICY, "--episodes", "3", "--max-steps"]
    assert main(argv + ["15", "--video-episodes", "0", "--out", str(real), "--quiet"]) == 0
    truth = _results(real)["per_episode"]
    assert [e["start"] for e in r["per_episode"]] == [e["seed"] for e in truth]
    assert [e["real_success"] for e in r["per_episode"]] == [e["success"] for e in truth]
    assert r["real"]["successes"] == sum(e["success"] for e in truth) == 2
    # imagined success: the classifier's P(success) of some imagined frame at its threshold
    for e in r["per_episode"]:
        prob = np.array(e["imagined_prob"])
        assert prob.shape == (15,) and ((prob >= 0) & (prob <= 1)).all()
        assert e["imagined_success"] == bool((prob >= r["threshold"]).any())
        assert e["imagined_success_at_end"] == bool(prob[-1] >= r["threshold"])
    wins = sum(e["imagined_success"] for e in r["per_episode"])
    assert r["imagined"]["successes"] == wins
    low, high = r["imagined"]["ci95"]
    assert 0 <= low <= wins / 3 <= high <= 1
    c = r["agreement"]
    assert c["same"] + c["imagined_only"] + c["real_only"] == 3
    # two episodes filmed side by side, each imagined | real, for the first frame and 15 steps
    frames = imageio.mimread(out / "video.mp4", memtest=False)
    assert len(frames) == 16 and frames[0].shape[1] == 4 * VIDEO_SIZE
    assert frames[-1].std() > 10
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["policy"], config["horizon"], config["real"]) == (POLICY, 15, True)
    assert config["sampler_steps"] == 3


def test_action_noise_acts_in_both_worlds_and_is_seeded(parts):
    runs = {}
    for name, noise in (("clean", "0"), ("noisy-a", "1.5"), ("noisy-b", "1.5")):
        out = parts["root"] / name
        extra = ["--episodes", "2", "--horizon", "15", "--action-noise", noise]
        assert _eval(parts, out, *extra, "--video-episodes", "0") == 0
        runs[name] = _results(out)["per_episode"]
    assert runs["noisy-a"] == runs["noisy-b"]  # same seed, same noise: the same episodes
    # the noise reaches the simulator (the clean policy opens the second drawer at step ~11) and
    # the imagination (the classifier sees other frames)
    clean, noisy = runs["clean"], runs["noisy-a"]
    assert [e["real_first_success_step"] for e in clean] != [
        e["real_first_success_step"] for e in noisy
    ]
    assert [e["imagined_prob"] for e in clean] != [e["imagined_prob"] for e in noisy]


def test_recorded_first_frames_start_imagination_without_a_simulator(parts, capsys):
    out = parts["root"] / "data-starts"
    extra = ["--data", str(parts["data"]), "--episodes", "5", "--horizon", "3"]
    assert _eval(parts, out, *extra, "--video-episodes", "1") == 0
    printed = capsys.readouterr().out
    assert "real simulator" not in printed
    r = _results(out)
    assert r["episodes"] == 3 and r["starts"] == "recorded first frames (--data)"
    assert "real" not in r and [e["start"] for e in r["per_episode"]] == [0, 1, 2]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", "DATA", "--real"], "--real runs the policy from simulator resets"),
        (["--action-noise", "nan"], "action_noise must be in [0, 10]"),
        (["--horizon", "0"], "horizon must be >= 1"),
        (["--task", "push"], "no reward classifier is shipped for 'push'"),
        (["--data", "DATA32"], "images are 32x32, the world model imagines 64x64"),
        (["--reward", "bundle:drawer/bc"], "not a reward checkpoint"),
    ],
)
def test_bad_input_is_one_line(parts, capsys, extra, message):
    names = {"DATA": str(parts["data"]), "DATA32": str(parts["data32"])}
    extra = [names.get(x, x) for x in extra]
    assert _eval(parts, parts["root"] / "bad", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (parts["root"] / "bad").exists()
