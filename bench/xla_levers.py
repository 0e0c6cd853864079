"""What each XLA CPU lever does to the `base` world model (DIAMOND's layout) on this CPU: the
train step (batch 16, 1 U-Net pass) and imagination (batch 1 and 32, 3 Euler steps per frame).

Each lever runs in its own process (XLA reads XLA_FLAGS once, when the backend starts), so the
rows are comparable only with the `default` row of the same run; `vs_default` > 1 = faster. The
levers are XLA's own CPU options in this jaxlib (oneDNN and XNNPACK kernels for convolutions and
matrix products, fast math, the vector width) and one of the model's: the computation dtype.

    uv run python -m bench.run xla_levers
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

LEVERS = {
    "default": "",
    "onednn": "--xla_cpu_experimental_onednn_custom_call=true",
    "xnnpack-graph": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "xnnpack-all": "--xla_cpu_experimental_xnn_graph_fusion_mode="
    "XNN_GRAPH_FUSION_MODE_BYPASS_COST_MODEL",
    "fast-math": "--xla_cpu_enable_fast_math=true",
    "vector-512": "--xla_cpu_prefer_vector_width=512",
}
DTYPES = {"bfloat16": "bfloat16"}  # the model lever: compute dtype (weights stay float32)


def _child(preset: str, dtype: str, reps: int) -> dict:
    """In the child process: time the train step and imagination; returns the numbers."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from robolearn.world_models.config import preset as make_preset
    from robolearn.world_models.sampler import open_loop
    from robolearn.world_models.train import init_train_state, make_train_step

    from bench.timing import timed
    from bench.world_model_speed import IMAGE, _random_batch
    from robolearn.core.mesh import data_mesh, replicate, shard_batch
    from robolearn.core.normalize import NormStats
    from robolearn.imagination import start_window

    cfg = make_preset(preset, image_size=IMAGE)
    m = cfg.model
    graphdef, state = init_train_state(cfg, jax.random.key(0), jnp.dtype(dtype))
    stats = NormStats(np.zeros(7, np.float32), np.ones(7, np.float32), np.ones(7, np.float32))
    mesh = data_mesh()
    step = make_train_step(cfg, graphdef, stats, mesh)
    params = jax.tree.map(jnp.copy, state.params)  # the train step donates the state's
    train_state = replicate(state, mesh)
    data = shard_batch(_random_batch(np.random.default_rng(0), 16, m.context), mesh)
    compiled = step.lower(train_state, data).compile()
    box = [train_state]

    def one_step():
        box[0], metrics = compiled(box[0], data)
        return metrics

    out = {"train_s": timed(one_step, reps, warmup=1)[0]}
    rng = np.random.default_rng(0)
    for batch in (1, 32):
        first = rng.integers(0, 256, (batch, IMAGE, IMAGE, 3), dtype=np.uint8)
        frames, actions, proprio = start_window(
            first, rng.normal(size=(batch, m.proprio_dim)), m.context, m.action_dim
        )
        future = rng.uniform(-1, 1, (batch, 4, m.action_dim)).astype(np.float32)

        @jax.jit
        def rollout(params, key, frames, actions, proprio, future):
            return open_loop(
                graphdef, params, key, frames, actions, proprio, future, cfg.sampler, stats
            )

        args = (params, jax.random.key(1), *map(jnp.asarray, (frames, actions, proprio, future)))
        fn = rollout.lower(*args).compile()
        sec = timed(lambda fn=fn, args=args: fn(*args), reps if batch == 1 else 2, warmup=1)[0]
        out[f"imagine_b{batch}_fps"] = batch * 4 / sec
    return out


def _measure(preset: str, flags: str, dtype: str, reps: int) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env["XLA_FLAGS"] = " ".join(filter(None, (env.get("XLA_FLAGS", ""), flags)))
    code = (
        "import json, sys; from bench.xla_levers import _child; "
        f"print('RESULT', json.dumps(_child({preset!r}, {dtype!r}, {reps})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1800
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": tail[:160]}


def run(quick: bool = False) -> list[dict]:
    preset = "tiny" if quick else "base"
    reps = 2 if quick else 5
    levers = {"default": ""} if quick else LEVERS
    cases = [(name, flags, "float32") for name, flags in levers.items()]
    if not quick:
        cases += [(f"dtype-{name}", "", dtype) for name, dtype in DTYPES.items()]
    rows, default = [], None
    for name, flags, dtype in cases:
        result = _measure(preset, flags, dtype, reps)
        row = {"preset": preset, "lever": name, "xla_flags": flags or "-", "dtype": dtype}
        row |= {k: result.get(k, "") for k in ("train_s", "imagine_b1_fps", "imagine_b32_fps")}
        if "error" in result:
            row["note"] = result["error"]
        default = default or (row if name == "default" else None)
        if default and "error" not in result and row is not default:
            row["vs_default"] = (
                f"train {default['train_s'] / row['train_s']:.2f}x, imagine "
                f"{row['imagine_b1_fps'] / default['imagine_b1_fps']:.2f}x / "
                f"{row['imagine_b32_fps'] / default['imagine_b32_fps']:.2f}x"
            )
        rows.append(row)
    keys = ["preset", "lever", "xla_flags", "dtype", "train_s", "imagine_b1_fps"]
    keys += ["imagine_b32_fps", "vs_default", "note"]
    return [{k: row.get(k, "") for k in keys} for row in rows]
