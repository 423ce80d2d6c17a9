"""Running a sweep: every point's stages (``helpers.stages.<stage>.run``), points concurrently
on threads, all inside one ``execution.cluster`` so that the points' units fill one cluster.

A point whose stages all finished with its current config and code (its provenance) is not
run again; inside a point that runs, the stages reuse their finished units (keyed files), so
a restarted sweep continues where it stopped. A point that raises is reported with its name
and the rest finish; ``run_sweep`` returns what failed.
"""
from __future__ import annotations

import threading
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import pandas as pd

from ..stages import execution
from ..store.files import write_csv, write_text
from ..store.provenance import StaleResultsError, require_current
from .expansion import Point, Sweep, get_key

POINTS_TABLE = "sweep_points.csv"
FAILURES = "sweep_failures.txt"


def stage_modules() -> dict:
    from ..stages import attack, interpret, report, train

    return {"train": train, "attack": attack, "interpret": interpret, "report": report}


def finished(point: Point, stages) -> bool:
    """Whether every stage of ``point`` finished with its current config and code."""
    try:
        for stage in stages:
            require_current(point.config, stage)
    except StaleResultsError:
        return False
    return True


@dataclass
class Outcome:
    """What a sweep's run did, per results folder: ``ran``, ``reused`` (finished earlier) and
    ``failed`` (folder -> the error, one line)."""

    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def run_point(point: Point, stages, log) -> bool:
    """Run ``stages`` of one point (in order); False when it had finished already."""
    if finished(point, stages):
        log(f"[{point.folder}] finished earlier: reused")
        return False
    modules = stage_modules()
    for stage in stages:
        modules[stage].run(point.config, log=lambda message: log(f"[{point.folder}] {message}"))
    log(f"[{point.folder}] done")
    return True


def run_sweep(sweep: Sweep, scheduler: str | None = None, workers: int | None = None, parallel: int | None = None,
              log=print) -> Outcome:
    """Run every point of ``sweep`` (one per results folder), ``parallel`` at once (default: 2),
    inside one ``execution.cluster(scheduler, workers)``; write ``sweep_points.csv`` (every point,
    its folder, its swept values, its status) and ``sweep_failures.txt``. Returns the outcome."""
    parallel = parallel or 2
    lock = threading.Lock()

    def say(message: str) -> None:
        with lock:
            log(message)

    sweep.results_dir.mkdir(parents=True, exist_ok=True)
    outcome = Outcome()
    with execution.cluster(scheduler=scheduler, workers=workers):
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="sweep-point") as pool:
            futures = {pool.submit(run_point, point, sweep.stages, say): point for point in sweep.folders}
            for future in as_completed(futures):
                point = futures[future]
                try:
                    (outcome.ran if future.result() else outcome.reused).append(point.folder)
                except Exception as error:  # a failed point is reported; the others finish
                    outcome.failed[point.folder] = f"{type(error).__name__}: {error}"
                    say(f"[{point.folder}] FAILED: {type(error).__name__}: {error}\n"
                        + "".join(traceback.format_exception(error)[-3:]))
    write_points(sweep, outcome)
    text = "".join(f"{folder}: {error}\n" for folder, error in outcome.failed.items())
    write_text(text, sweep.results_dir / FAILURES)
    return outcome


def point_values(sweep: Sweep, point: Point) -> dict:
    """The point's value of every swept key, read from its complete config (so a point that
    leaves a key at the base's value still has it), lists and mappings as text."""
    config = point.config.to_dict()
    values = {}
    for key in sweep.keys:
        value = get_key(config, key)
        values[key] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
    return values


def write_points(sweep: Sweep, outcome: Outcome | None = None) -> pd.DataFrame:
    """``sweep_points.csv``: one row per point (the excluded ones too) with its folder, block,
    status and swept values."""
    rows = []
    for point in sweep.points:
        status = "not run"
        if outcome is not None:
            status = ("failed" if point.folder in outcome.failed else "ran" if point.folder in outcome.ran
                      else "reused" if point.folder in outcome.reused else "not run")
        rows.append({"point": point.name, "folder": point.folder, "block": point.block, "status": status,
                     **point_values(sweep, point)})
    rows += [{"point": name, "folder": "", "block": None, "status": "excluded: " + ", ".join(f"{k}={v}" for k, v in rule.items())}
             for name, rule in sweep.excluded.items()]
    table = pd.DataFrame(rows)
    write_csv(table, sweep.results_dir / POINTS_TABLE)
    return table
