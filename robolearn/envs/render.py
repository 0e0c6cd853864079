"""Headless MuJoCo rendering: one fast camera per task, shadows and reflections off.

Software GL (llvmpipe) spends most of a frame on shadow maps; with shadows off a 64x64 frame costs
about 2 ms instead of 35 ms (shared DEPENDENCIES.md), which is what makes data collection practical.
`MUJOCO_GL` must be chosen before `mujoco` is imported, so `robolearn.envs` sets it on import.
"""

from __future__ import annotations

import atexit
import os
import weakref

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from robolearn.core.errors import ConfigError, RenderBackendError  # noqa: E402

try:
    import mujoco  # noqa: E402
except RuntimeError as exc:  # mujoco rejects an unknown MUJOCO_GL at import time
    raise RenderBackendError(
        f"{exc}; use MUJOCO_GL=egl (the default) or MUJOCO_GL=osmesa for headless rendering"
    ) from exc

MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 256

_GL_PACKAGES = {
    "egl": "libegl1 libopengl0 libgl1-mesa-dri (Debian/Ubuntu)",
    "osmesa": "libosmesa6 (Debian/Ubuntu)",
    "glfw": "libglfw3 and a display",
}


def gl_help() -> str:
    """One line saying which GL backend is in use and which packages it needs."""
    backend = os.environ.get("MUJOCO_GL", "egl").lower()
    need = _GL_PACKAGES.get(backend, "a working OpenGL driver")
    return (
        f"MuJoCo could not open a headless OpenGL context with MUJOCO_GL={backend}: "
        f"install {need}, "
        "or try MUJOCO_GL=osmesa with `apt-get install -y libosmesa6`"
    )


class Camera:
    """Renders square uint8 RGB frames [H, W, 3] of one camera of a MuJoCo model.

    `camera` is a camera name or id in the model, or an `mujoco.MjvCamera` for a free camera.
    """

    def __init__(self, model: mujoco.MjModel, size: int, camera: str | int | mujoco.MjvCamera):
        check_image_size(size)
        # The offscreen buffer must hold the frame; models from other suites default to 640x480.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
        model.vis.global_.offheight = max(model.vis.global_.offheight, size)
        try:
            self._renderer = mujoco.Renderer(model, height=size, width=size)
        except Exception as exc:  # the GL backends raise several unrelated types
            raise RenderBackendError(f"{gl_help()} ({type(exc).__name__}: {exc})") from exc
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._camera = camera
        self.size = size
        _track(self)

    def render(self, data: mujoco.MjData) -> np.ndarray:
        """The current frame of `data` as uint8 [H, W, 3]."""
        self._renderer.update_scene(data, camera=self._camera)
        # update_scene resets no flags, but keep them off in case a caller toggled them.
        return self._renderer.render().copy()

    def close(self) -> None:
        """Release the GL context (EGL complains at interpreter exit otherwise)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


# Cameras still open at exit are closed before MuJoCo terminates its EGL display: a context freed
# after that prints tracebacks, which scripts that forget `task.close()` would show. MuJoCo
# registers its exit hook when the first context is made, so ours is registered after it (exit
# hooks run last-registered first).
_OPEN: weakref.WeakSet[Camera] = weakref.WeakSet()


def _track(camera: Camera) -> None:
    if not _OPEN:
        atexit.unregister(_close_open_cameras)
        atexit.register(_close_open_cameras)
    _OPEN.add(camera)


def _close_open_cameras() -> None:
    for camera in list(_OPEN):
        camera.close()


def check_image_size(size: int) -> None:
    """Image sizes are square, between MIN_IMAGE_SIZE and MAX_IMAGE_SIZE pixels."""
    if not isinstance(size, int) or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise ConfigError(
            f"image_size must be an integer in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], got {size!r}"
        )
