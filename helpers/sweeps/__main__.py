"""``python -m helpers.sweeps COMMAND SWEEP [options]`` (the Makefile's ``sweep`` target):

- ``check SWEEP``: expand and validate every point, list them (exit 2 on an invalid point);
- ``run SWEEP [--scheduler ADDRESS] [--workers N] [--parallel N]``: run every point, then
  aggregate the finished ones into the sweep's tables; exit 1 if a point failed (named);
- ``aggregate SWEEP``: the tables again from the points' results;
- ``report SWEEP``: the sweep's notebook (``notebooks/sweep_report.ipynb``) executed with papermill
  into ``results/<sweep>/sweep_report.ipynb`` (figure and ``summary.md``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from .expansion import SweepError, expand

NOTEBOOK = "sweep_report"


def execute_report(sweep) -> int:
    """Run the sweep's notebook with papermill; a failure keeps ``sweep_report.failed.ipynb``."""
    from papermill.exceptions import PapermillExecutionError

    from ..store.graph import ROOT
    from ..stages.notebook import execute

    target = sweep.results_dir / f"{NOTEBOOK}.ipynb"
    running, failed = target.with_suffix(".running.ipynb"), target.with_suffix(".failed.ipynb")
    try:
        execute(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb", running, str(sweep.path), parameter="sweep_path")
    except PapermillExecutionError as error:
        os.replace(running, failed)
        print(f"{NOTEBOOK} failed (the executed notebook is {failed}):\n{error}", file=sys.stderr)
        return 1
    os.replace(running, target)
    failed.unlink(missing_ok=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.sweeps")
    parser.add_argument("command", choices=("check", "run", "aggregate", "report"))
    parser.add_argument("sweep", help="sweeps/<name>.yaml")
    parser.add_argument("--scheduler", default=None, help="a running Dask scheduler (tcp://host:8786)")
    parser.add_argument("--workers", type=int, default=None, help="workers of the local cluster")
    parser.add_argument("--parallel", type=int, default=None, help="points run at once (default 2)")
    parser.add_argument("--results", default=None, help="results root (default: results/; the sweep's folder goes under it)")
    args = parser.parse_args(argv)
    try:
        sweep = expand(args.sweep, args.results)
    except SweepError as error:
        print(f"sweep error: {error}", file=sys.stderr)
        return 2
    if args.command == "check":
        from .expansion import main as listing

        return listing([args.sweep])
    if args.command == "report":
        return execute_report(sweep)
    from .running import run_sweep
    from .tables import aggregate

    failed = {}
    if args.command == "run":
        start = time.perf_counter()
        outcome = run_sweep(sweep, args.scheduler, args.workers, args.parallel, log=lambda m: print(m, flush=True))
        failed = outcome.failed
        print(f"sweep {sweep.name}: {len(outcome.ran)} points ran, {len(outcome.reused)} reused, {len(failed)} failed "
              f"in {time.perf_counter() - start:.0f} s", flush=True)
    aggregate(sweep, skip=failed)
    print(f"sweep {sweep.name}: tables in {sweep.results_dir}")
    if failed:
        print("failed points (their error; the tables leave them out):\n" + "\n".join(f"  {k}: {v}" for k, v in failed.items()),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
