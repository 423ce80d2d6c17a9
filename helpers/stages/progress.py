"""Progress of a stage as its units of work finish: a text bar (tqdm) with the count, the
rate and the time left, and how many units were computed and how many reused from an
earlier run (a reused unit counts at once, in no time).

The bar writes to the process's stderr. In JupyterLab that is the cell's output, redrawn in
place; under ``make``, ``stages.notebook`` streams the kernel's stderr to the terminal and
the executed notebook keeps only the bar's last state. A unit finished in a Dask worker
reports as an event that the stage's client hears (``execution.map_runs``); ``unit_finished``
works the same in both, and per thread, so stages may run in threads of one process.
"""
from __future__ import annotations

import sys
import threading

from tqdm import tqdm

REFRESH_SECONDS = 2.0  # the elapsed time ticks while a long unit runs: a sign of life (and a line a tick in a log file)
FORMAT = "{desc}: {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} {unit}s [{elapsed}<{remaining}, {rate_fmt}{postfix}]"

_local = threading.local()  # per thread (several stages may run in threads of one process): its sink(reused)


def unit_finished(reused: bool) -> None:
    """Count one finished unit of the stage running in this thread (outside one: nothing)."""
    sink = current_sink()
    if sink is not None:
        sink(reused)


def set_sink(sink) -> None:
    """Send this thread's finished units to ``sink(reused)`` (None: nowhere)."""
    _local.sink = sink


def current_sink():
    """This thread's receiver of finished units (None outside a stage)."""
    return getattr(_local, "sink", None)


class StageBar:
    """The bar of one stage: ``total`` planned units (a plan may change as runs finish:
    ``expect``), ``update(reused)`` per finished unit, ``write`` for a line above the bar."""

    def __init__(self, stage: str, total: int, unit: str = "unit", file=None):
        self.computed = self.reused = 0
        self._planned = max(total, 0)  # the plan; the bar's total is never below the count
        self._lock = threading.Lock()
        self._bar = tqdm(total=max(total, 0), desc=stage, unit=unit, file=file or sys.stderr, bar_format=FORMAT,
                         mininterval=0.5, dynamic_ncols=False, leave=True)
        self._closed = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._closed.wait(REFRESH_SECONDS):
            with self._lock:
                if not self._closed.is_set():
                    self._bar.refresh()

    def update(self, reused: bool = False) -> None:
        """One more unit finished (``reused``: loaded from an earlier run, not computed)."""
        with self._lock:
            if reused:
                self.reused += 1
            else:
                self.computed += 1
            self._bar.total = max(self._planned, self._bar.n + 1)  # more than planned (escalation): shown so
            self._bar.set_postfix_str(f"{self.computed} computed, {self.reused} reused", refresh=False)
            self._bar.update()

    def expect(self, change: int) -> None:
        """Change the planned total by ``change`` units (never below those already counted)."""
        with self._lock:
            self._planned += change
            self._bar.total = max(self._bar.n, self._planned)
            self._bar.refresh()

    def write(self, message: str) -> None:
        """``message`` on a line of its own above the bar, in the bar's stream."""
        with self._lock:
            self._bar.write(message, file=self._bar.fp)

    def close(self, finished: bool = True) -> None:
        """Stop the bar; once the stage ``finished``, at 100%: its total becomes the count."""
        self._closed.set()
        self._ticker.join()
        with self._lock:
            if finished:
                self._bar.total = self._bar.n
            self._bar.close()

    def __enter__(self) -> "StageBar":
        return self

    def __exit__(self, kind, *_) -> None:
        self.close(finished=kind is None)
