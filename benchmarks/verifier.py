"""The complete verifier under two versions of the code, on the same models and points, in the same run.

    python benchmarks/verifier.py [--base REV] [--work REV] [--config configs/default.yaml]
                                  [--runs 0 1 2 3] [--epsilons 0.05 0.1] [--models vqc cnn] [--seconds 1]

Each version's ``helpers/`` is copied into a fresh folder (``benchmarks/stages.py``'s ``checkout``)
and, in a process of its own on one thread, verifies the study's verified points
(``certify.exact``'s ``points`` per run, drawn by the run's seed, as the attack stage draws them)
of its trained models (run ``make all CONFIG=<config>`` first) at each ε with ``seconds`` of a
network's mixed-integer program per point (a circuit's search gets the config's ``boxes``; each
version reads the config as its own revision has it: ``stages.config_text``). Per model and ε:
each version's robust, not-robust and open counts, its seconds per point (median, 90th
percentile, largest, total), the ratio of the totals (work / base) and the points on which the
two versions contradict each other (one proves robust what the other refutes; a sound verifier
has none).

Writes ``verifier_comparison.csv`` and ``verifier_comparison.md`` to ``--out`` (default
``results/bench/``); ``make bench-verifier BASE=<rev>`` runs it.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stages import ROOT, checkout, config_text, versions_parser  # noqa: E402

VERDICTS = ("robust", "not_robust", "unknown")
# One copy's verification, in a process whose ``helpers`` is that copy's (sys.argv[1]).
CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); import helpers; "
         "assert helpers.__file__.startswith(sys.argv[1]), helpers.__file__; "
         "sys.path.insert(1, sys.argv[2]); import verifier; verifier.verify_points(*sys.argv[3:])")


def verify_points(config: str, out: str, runs: str, epsilons: str, models: str, seconds: str) -> None:
    """In a child process: every verdict and its seconds (``out``, JSON rows of model, run,
    epsilon, point, verdict, seconds) for the ``runs``, ``epsilons`` and ``models`` given as
    comma-separated text (models empty: every model the verifier applies to)."""
    import torch

    from helpers.config import load_config
    from helpers.data import run_seeds, stratified_subset, subset_seed
    from helpers.registry import CERTIFICATES
    from helpers.stages.inputs import load_models, load_test_split

    torch.set_num_threads(1)
    cfg = load_config(config, results_root=ROOT / "results")
    wanted = set(filter(None, models.split(",")))
    rows = []
    seeds = run_seeds(cfg.seed, cfg.n_runs)
    for run in map(int, runs.split(",")):
        # the attack stage's points (stages.inputs.load_attacked_split), from names older revisions also have
        x, y = load_test_split(cfg, run, "cpu")
        keep = torch.as_tensor(stratified_subset(y.numpy(), cfg.attack.n_test, subset_seed(cfg.dataset, run, seeds)))
        x, y = x[keep], y[keep]
        for name, loaded in load_models(cfg, run, "cpu").items():
            entry = CERTIFICATES["exact"](cfg.certify.params["exact"], seed=seeds[run], seconds=float(seconds))
            if (wanted and name not in wanted) or not entry.applies(loaded.model)[0]:
                continue
            chosen = entry.chosen(len(x))
            for epsilon in map(float, epsilons.split(",")):
                found = entry.verify(loaded.model, x[chosen], y[chosen], epsilon)
                rows += [{"model": name, "run": run, "epsilon": epsilon, "point": int(point), "verdict": str(verdict),
                          "seconds": float(spent)}
                         for point, verdict, spent in zip(chosen, found["verdict"], found["seconds"])]
    Path(out).write_text(json.dumps(rows))


def compare(base: pd.DataFrame, work: pd.DataFrame) -> pd.DataFrame:
    """Per model and ε (rows of ``verify_points`` from each version, the same points): each
    version's verdict counts, the median, 90th percentile, largest and total seconds per point,
    the ratio of the totals (work / base) and the contradictions (robust in one version, not
    robust in the other)."""
    keys = ["model", "run", "epsilon", "point"]
    merged = base.merge(work, on=keys, suffixes=("_base", "_work"), validate="one_to_one")
    rows = []
    for (model, epsilon), group in merged.groupby(["model", "epsilon"], sort=False):
        row = {"model": model, "epsilon": epsilon, "points": len(group)}
        for side in ("base", "work"):
            counts = group[f"verdict_{side}"].value_counts()
            row |= {f"{side}_{verdict}": int(counts.get(verdict, 0)) for verdict in VERDICTS}
            spent = group[f"seconds_{side}"]
            row |= {f"{side}_median_seconds": spent.median(), f"{side}_p90_seconds": spent.quantile(0.9),
                    f"{side}_max_seconds": spent.max(), f"{side}_seconds": spent.sum()}
        row["ratio_seconds"] = row["work_seconds"] / row["base_seconds"]
        pair = set(VERDICTS[:2])
        row["contradictions"] = int(sum({a, b} == pair for a, b in zip(group["verdict_base"], group["verdict_work"])))
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, base: str, work: str, seconds: float) -> str:
    lines = [f"#### Complete verifier: `{work}` against `{base}` ({seconds:g} s per point, one thread)", "",
             "| model | ε | points | base robust / not / open | work robust / not / open | "
             "base s: median / p90 / max | work s: median / p90 / max | seconds ratio | contradictions |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.model} | {r.epsilon:g} | {r.points} | {r.base_robust} / {r.base_not_robust} / "
                     f"{r.base_unknown} | {r.work_robust} / {r.work_not_robust} / {r.work_unknown} | "
                     f"{r.base_median_seconds:.3f} / {r.base_p90_seconds:.2f} / {r.base_max_seconds:.2f} | "
                     f"{r.work_median_seconds:.3f} / {r.work_p90_seconds:.2f} / {r.work_max_seconds:.2f} | "
                     f"{r.ratio_seconds:.2f} | {r.contradictions} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = versions_parser(__doc__)
    parser.add_argument("--runs", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.05, 0.1])
    parser.add_argument("--models", nargs="*", default=[], help="default: every model the verifier applies to")
    parser.add_argument("--seconds", type=float, default=1.0, help="a network's exact search per point and ε")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    args = parser.parse_args(argv)
    config = args.config if args.config.is_absolute() else ROOT / args.config
    frames = {}
    with tempfile.TemporaryDirectory() as tmp:
        for side, rev in (("base", args.base), ("work", args.work)):
            copy = checkout(rev, Path(tmp) / side)
            out, own = copy / "verdicts.json", copy / config.name  # the name names the experiment
            own.write_text(config_text(rev, config))
            subprocess.run([sys.executable, "-c", CHILD, str(copy), str(Path(__file__).resolve().parent), str(own),
                            str(out), ",".join(map(str, args.runs)), ",".join(map(str, args.epsilons)),
                            ",".join(args.models), str(args.seconds)], cwd=copy, check=True)
            frames[side] = pd.DataFrame(json.loads(out.read_text()))
    table = compare(frames["base"], frames["work"])
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "verifier_comparison.csv", index=False)
    text = markdown(table, args.base, args.work or "working tree", args.seconds)
    (args.out / "verifier_comparison.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
