"""The one training loop (robolearn.core.loop) and its metrics writer, with a tiny fake trainer."""

import os
import signal

import jax.numpy as jnp
import pytest
from flax import struct

from robolearn.core.loop import Schedule, train
from robolearn.core.metrics import MetricsWriter, read_metrics


class State(struct.PyTreeNode):
    step: jnp.ndarray
    total: jnp.ndarray


def add_step(state, batch):
    """total += batch; metrics: the running total and the batch."""
    total = state.total + batch
    return State(state.step + 1, total), {"total": total, "batch": jnp.asarray(batch, float)}


def counting_batches(start):
    """Batch k is k + 1, so the total after n steps is n (n + 1) / 2 from any start."""
    return iter(range(start + 1, 10_000))


def fresh(step=0, total=0.0):
    return State(jnp.asarray(step), jnp.asarray(total))


def scalars(out):
    """{tag: [(step, value)]} of the run's TensorBoard events, read by TensorBoard itself."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_logs_saves_and_writes_tensorboard_on_schedule(tmp_path):
    saved = []
    result = train(
        fresh(),
        add_step,
        counting_batches,
        Schedule(steps=10, log_every=4, save_every=3),
        out=tmp_path,
        save=lambda s: saved.append(int(s.step)),
        progress=False,
    )
    assert result.step == 10 and result.trained_steps == 10
    assert float(result.state.total) == 55.0
    assert saved == [3, 6, 9, 10]
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [4, 8, 10]
    assert [r["total"] for r in rows] == [10.0, 36.0, 55.0]
    assert result.metrics["total"] == 55.0 and result.first["step"] == 4
    assert all(r["steps_per_second"] > 0 for r in rows)
    tb = scalars(tmp_path)
    assert [step for step, _ in tb["total"]] == [4, 8, 10]
    assert [value for _, value in tb["total"]] == pytest.approx([10.0, 36.0, 55.0])


def test_resume_continues_the_stream_and_drops_metrics_a_killed_run_logged_after_its_checkpoint(
    tmp_path,
):
    train(
        fresh(), add_step, counting_batches, Schedule(6, log_every=2), out=tmp_path, progress=False
    )
    # The run was "killed" after its checkpoint at step 4: its rows at step 6 are stale.
    resumed = train(
        fresh(step=4, total=10.0),
        add_step,
        counting_batches,
        Schedule(8, log_every=2),
        out=tmp_path,
        progress=False,
    )
    assert float(resumed.state.total) == 36.0  # batches 5..8 after 1..4: the stream continued
    assert resumed.trained_steps == 4
    assert [r["step"] for r in read_metrics(tmp_path)] == [2, 4, 6, 8]
    assert [v for _, v in scalars(tmp_path)["total"]] == pytest.approx([3.0, 10.0, 21.0, 36.0])


def test_evaluation_rates_and_no_batches(tmp_path):
    def step_without_batch(state, batch):
        assert batch is None
        return add_step(state, 1.0)

    result = train(
        fresh(),
        step_without_batch,
        None,
        Schedule(steps=4, log_every=2, eval_every=2),
        out=tmp_path,
        evaluate=lambda s: {"score": float(s.total) * 10},
        rates={"imagined_steps_per_second": 32 * 50},
        progress=False,
    )
    assert float(result.state.total) == 4.0
    rows = read_metrics(tmp_path)
    train_rows = [r for r in rows if "total" in r]
    eval_rows = [r for r in rows if "eval/score" in r]
    assert [(r["step"], r["eval/score"]) for r in eval_rows] == [(2, 20.0), (4, 40.0)]
    assert train_rows[-1]["imagined_steps_per_second"] == pytest.approx(
        train_rows[-1]["steps_per_second"] * 1600
    )


def test_sigterm_saves_and_stops_at_the_next_step(tmp_path):
    saved = []

    def preempted_at_3(state, batch):
        if int(state.step) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return add_step(state, batch)

    before = signal.getsignal(signal.SIGTERM)
    result = train(
        fresh(),
        preempted_at_3,
        counting_batches,
        Schedule(steps=100, log_every=50, save_every=50),
        out=tmp_path,
        save=lambda s: saved.append(int(s.step)),
        progress=False,
    )
    assert result.preempted and result.step == 3 and saved == [3]
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_loop_runs_at_most_two_steps_ahead_of_the_device():
    """JAX dispatches a step and returns before it has run: a loop that never waits queues steps
    up to its next log, and a SIGTERM'd job would save only after all of them ran (minutes of
    large steps; schedulers kill after ~30 s). Here each step is ~50 ms of matrix products: when
    the loop asks for a batch, at most two of the steps it dispatched may be unfinished."""
    import jax

    w = jnp.eye(512) * 0.5
    outputs, unfinished = [], []

    @jax.jit
    def slow_step(state, batch):
        x = jax.lax.fori_loop(0, 6, lambda _, x: jnp.tanh(x @ w), jnp.ones((512, 512)))
        state, metrics = add_step(state, batch)
        return state, {**metrics, "x": x.mean()}

    def recorded_step(state, batch):
        state, metrics = slow_step(state, batch)
        outputs.append(metrics["x"])
        return state, metrics

    def batches(start):
        for k in range(start, 10_000):
            unfinished.append(sum(not x.is_ready() for x in outputs))
            yield k + 1

    result = train(
        fresh(), recorded_step, batches, Schedule(steps=20, log_every=20), progress=False
    )
    assert result.step == 20 and float(result.state.total) == 210
    assert max(unfinished) <= 2, unfinished


def test_only_the_chief_writes(tmp_path):
    train(
        fresh(),
        add_step,
        counting_batches,
        Schedule(4, log_every=2),
        out=tmp_path,
        is_chief=False,
        progress=False,
    )
    assert not (tmp_path / "metrics.jsonl").exists()


def test_writer_keeps_nan_visible(tmp_path):
    with MetricsWriter(tmp_path) as writer:
        writer.write(1, {"loss": float("nan")})
    assert read_metrics(tmp_path)[0]["loss"] != read_metrics(tmp_path)[0]["loss"]


def test_schedule_rejects_nonsense():
    with pytest.raises(ValueError, match="log_every"):
        Schedule(steps=10, log_every=0)
