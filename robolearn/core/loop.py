"""The one training loop: every trainer (BC, world model, reward classifier, refinement) runs it.

    result = train(state, train_step, batches, Schedule(steps=5000, log_every=50, save_every=1000),
                   out=run_dir, save=checkpoints.save, show=("loss",))

After danijar/dreamerv3's `embodied.run.train`: the loop is given the pieces (a pure step
`train_step(state, batch) -> (state, metrics)`, a factory of batches, a save function, an
optional evaluation) and the schedules, and owns what every trainer used to repeat: the progress
line, the metrics writer (metrics.jsonl and TensorBoard, robolearn.core.metrics), when to log,
evaluate and save, resuming (it starts from `state.step` and asks the batch factory for the
stream from there), the first step's compile time, and SIGTERM (what SLURM and cloud schedulers
send before they preempt a job): the job saves its state at the next step boundary (in a
multi-host job the same step on every process, whichever got the signal) and stops
(`LoopResult.preempted`), so `--resume` continues from there. It never runs more than two steps
ahead of the device, so that the save comes within a step or two of the signal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from robolearn.core.errors import ConfigError
from robolearn.core.metrics import MetricsWriter
from robolearn.core.progress import Progress

TrainStep = Callable[[Any, Any], tuple[Any, dict]]
Batches = Callable[[int], Iterable] | Iterable | None


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When the loop logs, evaluates and saves (every N steps; 0 = never, except that the last
    step is always logged and saved, and evaluated when eval_every > 0).

    steps: train until the state's step reaches this (a resumed run continues up to it).
    """

    steps: int
    log_every: int = 50
    save_every: int = 0
    eval_every: int = 0

    def __post_init__(self):
        if self.steps < 0 or self.log_every < 1 or self.save_every < 0 or self.eval_every < 0:
            raise ConfigError(
                f"need steps >= 0, log_every >= 1, save_every >= 0 and eval_every >= 0, got "
                f"{self.steps}, {self.log_every}, {self.save_every}, {self.eval_every}"
            )

    def due(self, every: int, step: int) -> bool:
        """Whether an every-N event falls on `step` (the last step always counts)."""
        return step == self.steps or (every > 0 and step % every == 0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopSettings:
    """The settings of a resumable training command that only the loop and its checkpoints read;
    a run config inherits them (each is a flag of its command) and declares its own `steps`."""

    seed: int = 0
    """init and data-order seed"""
    save_every: int = 1000
    """checkpoint interval in steps (the last step is always saved)"""
    log_every: int = 50
    """metrics interval in steps"""
    max_to_keep: int = 2
    """training checkpoints kept (the newest)"""

    def schedule(self, steps: int) -> Schedule:
        """The loop's schedule for a run of `steps` steps."""
        return Schedule(steps, self.log_every, self.save_every)


@dataclasses.dataclass
class LoopResult:
    """What the loop did. metrics: the last logged metrics; first: the first row logged in this
    run (None if nothing was); preempted: stopped early by SIGTERM after saving."""

    state: Any
    step: int
    trained_steps: int
    seconds: float
    compile_seconds: float | None
    steps_per_second: float
    metrics: dict[str, float]
    first: dict | None
    preempted: bool = False


def train(
    state: Any,
    train_step: TrainStep,
    batches: Batches,
    schedule: Schedule,
    *,
    out: str | Path | None = None,
    save: Callable[[Any], None] | None = None,
    evaluate: Callable[[Any], dict] | None = None,
    show: Sequence[str] = (),
    unit: str = "step",
    progress: bool = True,
    rates: dict[str, float] | None = None,
    writer: MetricsWriter | None = None,
    is_chief: bool | None = None,
) -> LoopResult:
    """Run `train_step` from `state.step` up to `schedule.steps`; see the module doc.

    batches: a factory `batches(start_step) -> iterable` (resumes the data stream where the state
        stopped), an iterable, or None (the step takes no batch, e.g. refinement imagines its own).
    out: the run directory the metrics go to (a writer is made unless `writer` is given; None with
        no writer: nothing is written).
    save(state): write a checkpoint; called on the save schedule, after the last step and on
        SIGTERM. evaluate(state) -> metrics, logged under "eval/" on the eval schedule.
    show: metric names printed on the progress line beside the rate.
    rates: {name: units per step}: logged as name = steps_per_second x units (e.g. imagined steps
        per second of a refinement iteration).
    is_chief: whether this process writes metrics and shows progress (default: JAX process 0).
    """
    import jax

    chief = jax.process_index() == 0 if is_chief is None else is_chief
    start_step = step = int(jax.device_get(state.step))
    own_writer = writer is None and out is not None
    if own_writer:
        writer = MetricsWriter(out, resume_step=start_step or None, enabled=chief)
    iterator = _iterate(batches, start_step)
    bar = Progress(schedule.steps, unit, enabled=progress and chief, start_at=step)
    metrics: dict[str, float] = {}
    first = None
    compile_seconds = None
    preempted = False
    previous_metrics = None
    start = time.perf_counter()
    last_time, last_step = start, step
    try:
        with _preemption() as stop:
            while step < schedule.steps:
                state, out_metrics = train_step(state, next(iterator))
                step += 1
                # JAX returns before a step has run: without a wait here the loop would queue
                # steps up to the next log, and a SIGTERM'd job could save only once they all
                # ran (minutes of large steps, where schedulers allow ~30 s). Waiting for the
                # step before this one keeps two in flight (the next batch is still prepared
                # while one runs).
                jax.block_until_ready(previous_metrics)
                previous_metrics = out_metrics
                if compile_seconds is None:  # the first step compiles: time the rest apart
                    jax.block_until_ready(out_metrics)
                    last_time, last_step = time.perf_counter(), step
                    compile_seconds = last_time - start
                if schedule.due(schedule.log_every, step):
                    now = time.perf_counter()
                    metrics = {k: float(v) for k, v in jax.device_get(out_metrics).items()}
                    rate = (step - last_step) / (now - last_time) if step > last_step else None
                    row = _row(metrics, rate, rates, now - start)
                    if writer is not None:
                        row = writer.write(step, row)
                    first = first or {"step": step, **row}
                    bar.update(step, _progress_text(metrics, show, rate))
                    last_time, last_step = now, step
                if (
                    evaluate is not None
                    and schedule.eval_every
                    and schedule.due(schedule.eval_every, step)
                ):
                    result = evaluate(state)
                    if writer is not None:
                        writer.write(step, result, prefix="eval/")
                preempted = stop(step)
                if save is not None and (schedule.due(schedule.save_every, step) or preempted):
                    save(state)
                if preempted:
                    break
    finally:
        bar.close()
        if own_writer:
            writer.close()
    seconds = time.perf_counter() - start
    timed = seconds - (compile_seconds or 0.0)
    trained = step - start_step
    return LoopResult(
        state=state,
        step=step,
        trained_steps=trained,
        seconds=seconds,
        compile_seconds=compile_seconds,
        # Without the first step's compilation; a one-step run has only that step to time.
        steps_per_second=(trained - 1) / timed if trained > 1 and timed > 0 else trained / seconds,
        metrics=metrics,
        first=first,
        preempted=preempted,
    )


def preempted_line(result: dict) -> str:
    """What a trainer prints first when SIGTERM stopped it ("" when it ran to the end); result:
    its returned dict, with "preempted" and "step" (or "iterations")."""
    if not result.get("preempted"):
        return ""
    step = result.get("step", result.get("iterations"))
    return f"stopped by SIGTERM at step {step}, saved: continue with --resume\n"


def _iterate(batches: Batches, start_step: int) -> Iterator:
    if batches is None:
        return iter(lambda: None, object())  # None forever
    if callable(batches):
        batches = batches(start_step)
    return iter(batches)


def _row(metrics: dict, rate: float | None, rates: dict | None, elapsed: float) -> dict:
    row = dict(metrics)
    if rate is not None:
        row["steps_per_second"] = rate
        for name, units in (rates or {}).items():
            row[name] = rate * units
    row["time"] = elapsed
    return row


def _progress_text(metrics: dict, show: Sequence[str], rate: float | None) -> str:
    parts = [f"{name} {metrics[name]:.4g}" for name in show if name in metrics]
    if rate is not None:
        parts.append(f"{rate:.2f} steps/s")
    return "  ".join(parts)


@contextlib.contextmanager
def _preemption():
    """A function `stop(step) -> bool`, true at the step boundary where a SIGTERM'd run saves
    and stops.

    One process: a Python SIGTERM handler sets a flag (only in the main thread, where Python
    lets a handler be installed; the previous handler is restored afterwards), and the next
    boundary stops. Several processes (jax.distributed): every process must save the same step,
    whichever of them got the signal and whenever: JAX's preemption service (its own SIGTERM
    handler, installed by jax.distributed.initialize, which a Python handler would replace)
    tells every process of a notice and agrees on the step after the furthest one
    (`multihost_utils.reached_preemption_sync_point`, asked at every step)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        yield multihost_utils.reached_preemption_sync_point
        return
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield lambda step: flag.is_set()
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: flag.set())
    try:
        yield lambda step: flag.is_set()
    finally:
        signal.signal(signal.SIGTERM, previous)
