"""The bridge's mode machine and the policy's schedule with its watchdog (no ROS, no locks: the
bridge calls them under its own lock).

    idle --start--> running --stop(reason)--> hold --start--> running --> ...
    any --close--> closed

Outside running the bridge commands the hold position (robolearn.hardware.bridge). A hold is
latched: only `start` resumes, also after a watchdog whose cause went away. `generation` counts the
starts and the stops of a run: a policy result computed in another generation is discarded, so a
result that arrives after a hold or a restart never moves the arm.
"""

from __future__ import annotations

MODES = ("idle", "running", "hold", "closed")


class ModeMachine:
    """idle | running | hold | closed, why the latest hold happened, and the generation."""

    def __init__(self):
        self.mode = "idle"
        self.hold_reason = ""  # why the latest run ended ("" while none has)
        self.generation = 0  # bumped by every start and every stop of a run

    @property
    def running(self) -> bool:
        """Whether the policy drives the arm."""
        return self.mode == "running"

    def start(self) -> None:
        """Run (from idle, hold or running: a restart); RuntimeError once closed."""
        if self.mode == "closed":
            raise RuntimeError("bridge is closed")
        self.mode = "running"
        self.hold_reason = ""
        self.generation += 1

    def stop(self, reason: str) -> bool:
        """Hold, latched; True when this ended a run (its reason is kept), False otherwise (idle
        and closed stay as they are; a hold stays with its first reason)."""
        if self.mode in ("idle", "closed"):
            return False
        ended = self.mode == "running"
        if ended:
            self.hold_reason = reason
            self.generation += 1
        self.mode = "hold"
        return ended

    def close(self) -> None:
        """Closed for good: every later command is the hold position."""
        self.mode = "closed"


class PolicySchedule:
    """When the policy runs (every period_s from the start), whether a call is in flight, and the
    policy watchdog: a step with no result deadline_s after it was due (not started, hung or
    slow) is late. Times in s, on the bridge's clock."""

    def __init__(self, period_s: float, deadline_s: float):
        self.period_s = period_s
        self.deadline_s = deadline_s
        self.next_s = 0.0  # when the next step is due
        self.in_flight = False  # a policy call is running

    def restart(self, now_s: float) -> None:
        """The first step of a run is due now."""
        self.next_s = now_s

    def due(self, now_s: float) -> bool:
        """Whether a step should start now (none in flight)."""
        return not self.in_flight and now_s >= self.next_s - 1e-9

    def done(self, now_s: float) -> None:
        """A step's result was applied at now_s: the next is due one period after this one."""
        self.next_s += self.period_s
        if self.next_s <= now_s:  # fell behind by a whole period: restart the schedule
            self.next_s = now_s + self.period_s

    def late(self, now_s: float) -> str:
        """Why the step due at next_s is late at now_s ("" when it is not)."""
        lateness = now_s - self.next_s
        if not lateness > self.deadline_s:
            return ""
        state = "still computing" if self.in_flight else "not started"
        return (
            f"the policy step due at {self.next_s:.3f} s has no result after {lateness:.3f} s "
            f"({state}; deadline {self.deadline_s:.3f} s)"
        )
