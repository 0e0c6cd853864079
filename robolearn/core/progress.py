"""Progress of long work on one stderr line: count, rate-derived ETA, and what the caller adds."""

from __future__ import annotations

import sys
import time


class Progress:
    """`Progress(total, "step")`, then `update(done, "loss 0.12")` as work advances, `close()`.

    On a terminal the line is rewritten in place; when stderr is a file or pipe (CI logs) a line
    is printed only every ~10 % of the work, so logs stay readable.
    """

    def __init__(self, total: int, unit: str, enabled: bool = True, start_at: int = 0):
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self._tty = sys.stderr.isatty()
        self._start = time.perf_counter()
        self._first = start_at
        self._next_log = start_at
        self._open = False

    def update(self, done: int, text: str = "") -> None:
        """Report `done` of `total` units finished; `text` follows the count."""
        if not self.enabled:
            return
        if not self._tty and done < self._next_log and done < self.total:
            return
        self._next_log = done + max(1, self.total // 10)
        elapsed = time.perf_counter() - self._start
        rate = (done - self._first) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        line = f"  {self.unit} {done}/{self.total}  {text}  {elapsed:.0f}s elapsed, ETA {eta:.0f}s"
        sys.stderr.write(f"\r{line} " if self._tty else f"{line}\n")
        sys.stderr.flush()
        self._open = self._tty

    def close(self) -> None:
        """End the progress line."""
        if self._open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._open = False
