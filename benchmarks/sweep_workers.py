"""A six-point sweep on a local Dask cluster of one worker against one of two: the same sweep
file, a fresh results folder each, each in a fresh Python process (starting the cluster and
the workers' imports are in the time).

    python benchmarks/sweep_workers.py [--repeats 1]

The sweep is ``sweeps/smoke_sweep.yaml``'s points made six and heavier (circuits of 4 to 9
qubits, 4 runs of 30 epochs, 3 attacks on 100 points): enough work per run that the cluster's
fixed costs do not dominate. Both clusters run the same tasks (two points at a time, each
point's runs as tasks), so the ratio is what the second worker buys. Writes
``results/bench/sweep_workers.csv`` (wall seconds per worker count and repeat, the load average
at the start, the 1-worker / 2-worker speed-up) and checks that both wrote identical tables.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]

SWEEP = {
    "base": "configs/smoke.yaml",
    "set": {
        "dataset": {"name": "digits", "classes": [0, 1], "folds": 2},  # 4 runs: two repetitions of 2 folds
        "n_runs": 4,
        "training": {"epochs": 30, "batch_size": 32, "learning_rate": 0.05},
        "models": {"vqc": {"type": "vqc", "n_qubits": 2, "n_layers": 2, "readout": "probs"},
                   "mlp_matched": {"type": "matched_mlp", "match": "vqc"}},
        "attack": {"epsilons": [0.0, 0.1, 0.2], "methods": ["pgd", "apgd_ce", "square"], "pgd": {"steps": 10},
                   "apgd_ce": {"steps": 10}, "square": {"queries": 50}, "escalation": [], "masking_epsilons": [0.5],
                   "n_test": 100},
        "certify": {"methods": ["interval", "lipschitz"], "interval": {"splits": 1}},
        "report": {"primary": None},
    },
    "blocks": [{"grid": {"models.vqc.n_qubits": [4, 5, 6, 7, 8, 9]}}],
    "report": {"quantum": "vqc", "baseline": "mlp_matched", "attack": "worst_case", "epsilon": 0.1,
               "trends": ["models.vqc.n_qubits"]},
}


def run(workers: int, folder: Path) -> tuple[float, float]:
    """Wall seconds of ``helpers.sweeps run`` with ``workers`` local workers, and the load at its start."""
    sweep = folder / "bench_sweep.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "helpers.sweeps", "run", str(sweep), "--workers", str(workers),
                    "--parallel", "2", "--results", str(folder / "results")],
                   cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, load


def tables(folder: Path) -> dict[str, pd.DataFrame]:
    root = folder / "results" / "bench_sweep"
    frames = {p.name: pd.read_csv(p) for p in sorted(root.glob("sweep_*.csv")) if p.name != "sweep_cost.csv"}
    # wall and training seconds differ between runs; every number they produce must not
    return {name: f[[c for c in f.columns if "seconds" not in c]] for name, f in frames.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "results" / "bench"))
    args = parser.parse_args()
    rows, seen = [], {}
    for repeat in range(args.repeats):
        for workers in ((1, 2) if repeat % 2 == 0 else (2, 1)):
            with tempfile.TemporaryDirectory() as tmp:
                seconds, load = run(workers, Path(tmp))
                result = tables(Path(tmp))
            for name, frame in result.items():
                if name in seen:
                    pd.testing.assert_frame_equal(frame, seen[name], check_exact=False, rtol=1e-9)
                seen.setdefault(name, frame)
            rows.append({"workers": workers, "repeat": repeat, "wall_seconds": round(seconds, 1),
                         "load_at_start": round(load, 2)})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    medians = frame.groupby("workers")["wall_seconds"].median()
    frame["speedup_2_over_1"] = round(medians[1] / medians[2], 3)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    frame.to_csv(Path(args.out) / "sweep_workers.csv", index=False)
    print(f"1 worker {medians[1]:.1f} s, 2 workers {medians[2]:.1f} s: speed-up {medians[1] / medians[2]:.2f}x")


if __name__ == "__main__":
    main()
