"""The Dask executor against the earlier process pool on the default study's train and attack
stages: the same config, the same number of local worker processes, a fresh results folder
each, every executor in a fresh Python process (so starting the pool or the cluster, and the
workers' imports, are in the time).

    python benchmarks/executor.py [--runs 4] [--workers 2] [--epochs 30] [--methods fgsm pgd apgd_ce] [--repeats 2]

``--repeats 2`` runs them in the order pool, Dask, Dask, pool, so that a load that drifts
over the benchmark weighs on both alike. Writes ``results/bench/executor.csv``: one row per
executor, repeat and stage: wall seconds, the machine's load average when the stage started,
and for the whole process the CPU seconds of it and its workers (user + system: less
sensitive than wall time to other jobs on a shared machine); and the Dask/pool ratio of the
median of each (< 1: Dask faster). The numbers do not depend on the executor: the script
checks that the two runs wrote identical tables (wall times aside).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGE_SCRIPT = """
import sys, time, json
from helpers.config import load_config
from helpers.stages import train, attack
def main():
    cfg = load_config(sys.argv[1], results_root=sys.argv[2])
    times = {}
    for stage in (train, attack):
        load = __import__("os").getloadavg()[0]
        start = time.perf_counter()
        stage.run(cfg, log=lambda m: None)
        times[stage.__name__.rsplit(".", 1)[1]] = (time.perf_counter() - start, load)
    print(json.dumps(times))
if __name__ == "__main__":
    main()
"""


def config(args, kind: str) -> dict:
    base = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    base.update(n_runs=args.runs, workers=args.workers, device="cpu", executor={"kind": kind})
    if args.runs % base["dataset"]["folds"]:  # k-fold: the runs must be whole repetitions
        base["dataset"]["folds"] = 2 if args.runs % 2 == 0 else args.runs
    base["training"]["epochs"] = args.epochs
    base["attack"]["methods"] = list(args.methods)
    base["attack"]["n_test"] = args.n_test
    base.pop("interpret", None)
    return base


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--methods", nargs="+", default=["fgsm", "pgd", "apgd_ce"])
    parser.add_argument("--executors", nargs="+", default=["processes", "dask"])
    parser.add_argument("--repeats", type=int, default=1, help="ABBA... order over the executors")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    args = parser.parse_args(argv)
    rows, folders = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        script = tmp / "stages.py"
        script.write_text(STAGE_SCRIPT)
        order = [(r, kind) for r in range(args.repeats)
                 for kind in (args.executors if r % 2 == 0 else args.executors[::-1])]
        for repeat, kind in order:
            path = tmp / f"bench_{kind}.yaml"
            path.write_text(yaml.safe_dump(config(args, kind)))
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, str(script), str(path), str(tmp / f"{kind}{repeat}")], cwd=ROOT,
                                  env=env, capture_output=True, text=True)
            total = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            times = yaml.safe_load(done.stdout.strip().splitlines()[-1])
            for stage, (seconds, load) in times.items():
                rows.append({"executor": kind, "repeat": repeat, "stage": stage, "seconds": round(seconds, 2),
                             "cpu_seconds": None, "load_1min": load,
                             "runs": args.runs, "workers": args.workers, "epochs": args.epochs,
                             "methods": " ".join(args.methods), "cpus": os.cpu_count()})
            rows.append({"executor": kind, "repeat": repeat, "stage": "process (imports, both stages)",
                         "seconds": round(total, 2), "cpu_seconds": round(cpu, 2), "load_1min": os.getloadavg()[0], "runs": args.runs, "workers": args.workers,
                         "epochs": args.epochs, "methods": " ".join(args.methods), "cpus": os.cpu_count()})
            folders[kind] = tmp / f"{kind}{repeat}" / f"bench_{kind}"
        frame = pd.DataFrame(rows)
        if {"processes", "dask"} <= set(args.executors):
            median = frame.groupby(["executor", "stage"])[["seconds", "cpu_seconds"]].median()
            frame["dask_over_pool"] = frame["stage"].map((median.loc["dask", "seconds"]
                                                          / median.loc["processes", "seconds"]).round(3))
            frame["cpu_dask_over_pool"] = frame["stage"].map((median.loc["dask", "cpu_seconds"]
                                                              / median.loc["processes", "cpu_seconds"]).round(3))
            from helpers.store.layout import TABLES

            for name in ("models", "robustness", "transfer"):
                a, b = (pd.read_csv(folders[k] / TABLES[name]) for k in ("processes", "dask"))
                drop = [c for c in a if c.endswith("seconds")]
                pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop))
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "executor.csv", index=False)
    print(frame.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
