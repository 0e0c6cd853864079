"""Test setup: CPU JAX and headless MuJoCo, set before anything imports jax or mujoco."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MUJOCO_GL", "egl")
# robosuite's numba JIT after a GL context exists is slow and corrupts frames (DEPENDENCIES.md).
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")
# The tests compile far more than they compute (tiny presets, a few steps): XLA's CPU backend
# without LLVM's optimization passes compiles about twice as fast (test_train_world_model.py and
# test_multihost's world-model case, one idle machine: 585 -> 308 s) and runs the drawer
# policy's step in 2 ms instead of 0.9 (the bridge runs it at 5 Hz, 0.4 s deadline; the 100 Hz
# control loop runs no XLA). Subprocesses inherit it; tests that set XLA_FLAGS for one add to
# it. Set XLA_FLAGS yourself (even to "") to test at full optimization.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
