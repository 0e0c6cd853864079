import os
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from robolearn.core.errors import RenderBackendError
from robolearn.envs import render

SCENE = """<mujoco><visual><global offwidth="32" offheight="32"/></visual>
<worldbody><light pos="0 0 2"/>
<camera name="cam" pos="0 -1 0.3" xyaxes="1 0 0 0 0.3 1"/>
<geom type="plane" size="1 1 .1" rgba=".2 .3 .4 1"/><geom type="box" size=".1 .1 .1" pos="0 0 .1"/>
</worldbody></mujoco>"""


def test_camera_renders_square_uint8_frames_of_any_size():
    model = mujoco.MjModel.from_xml_string(SCENE)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    for size in (16, 64, 256):  # larger than the model's offscreen buffer: Camera enlarges it
        cam = render.Camera(model, size, "cam")
        frame = cam.render(data)
        cam.close()
        assert frame.shape == (size, size, 3) and frame.dtype == np.uint8 and frame.std() > 1


def test_a_failing_gl_backend_names_the_packages(monkeypatch):
    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'glGetError'")

    monkeypatch.setattr(mujoco, "Renderer", broken)
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    model = mujoco.MjModel.from_xml_string(SCENE)
    with pytest.raises(RenderBackendError, match=r"MUJOCO_GL=osmesa: install libosmesa6"):
        render.Camera(model, 32, "cam")


def test_an_invalid_backend_is_a_one_line_cli_error():
    env = {**os.environ, "MUJOCO_GL": "bogus"}
    proc = subprocess.run(
        [sys.executable, "-m", "robolearn.cli", "eval", "--task", "drawer"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2
    assert "MUJOCO_GL=egl (the default) or MUJOCO_GL=osmesa" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_task_left_open_exits_without_gl_errors():
    code = "import robolearn.envs as e; t = e.make('drawer'); t.reset(seed=0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "EGLError" not in proc.stderr, proc.stderr
