"""Test setup: CPU JAX and headless MuJoCo, set before anything imports jax or mujoco."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")
# robosuite's numba JIT after a GL context exists is slow and corrupts frames (DEPENDENCIES.md).
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")
