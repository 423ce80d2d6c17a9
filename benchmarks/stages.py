"""A reduced default study, stage by stage, under two versions of the code in the same run.

    python benchmarks/stages.py [--base REV] [--work REV] [--config configs/default.yaml]
                                [--runs 2] [--n-test 32] [--stages train attack interpret report]

``--base`` (default ``HEAD``) and ``--work`` (default: the working tree) are two versions of
``helpers/``, each copied into a fresh folder (``git archive`` for a revision), so a change is
timed against the algorithm it replaces on the same machine, in the same load, in the same run:
its ratio, not an absolute time, is what the docs quote. The study is ``--config`` with fewer
runs (whole repetitions of a k-fold split) and test points (and, if it verifies exactly, 4 points per run and 1
radius), one worker, each version with the config as its own revision has it (``config_text``).
Each stage runs in a fresh process for the base copy, then for the work copy; its wall time and
its CPU time (user + system of that process) are measured. Then every table both copies wrote
is compared: identical (every column but timings), or which columns differ: a change that
should not move a number is held to that here.

Writes to ``--out`` (default ``results/bench/``): ``stage_comparison.csv`` (stage, seconds of
each, ratios work / base), ``stage_tables.csv`` (table, identical, differing columns) and
``stage_comparison.md``. ``make bench-stages BASE=<rev>`` runs it.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("train", "attack", "interpret", "report")
# One stage of the copy in ``sys.argv[3]``, on the config ``sys.argv[1]``, results under ``sys.argv[2]``.
SCRIPT = ("import sys, importlib, helpers; from helpers.config import load_config; "
          "assert helpers.__file__.startswith(sys.argv[3]), helpers.__file__; "
          "cfg = load_config(sys.argv[1], results_root=sys.argv[2]); "
          "importlib.import_module(f'helpers.stages.{sys.argv[4]}').run(cfg)")


def checkout(rev: str | None, dest: Path) -> Path:
    """``helpers/`` of revision ``rev`` (None: the working tree) in ``dest``."""
    dest.mkdir(parents=True)
    if rev is None:
        shutil.copytree(ROOT / "helpers", dest / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        archive = subprocess.run(["git", "archive", rev, "helpers"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def config_text(rev: str | None, path: Path) -> str:
    """The study config ``path`` as revision ``rev`` has it, so that each version runs the
    config its own code reads (a key a change adds is unknown to the code before it); as it is
    on disk for the working tree, or a file outside the repository or not in ``rev``."""
    path = path.resolve()
    if rev is not None and path.is_relative_to(ROOT):
        shown = subprocess.run(["git", "show", f"{rev}:{path.relative_to(ROOT)}"], cwd=ROOT, capture_output=True,
                               text=True)
        if shown.returncode == 0:
            return shown.stdout
    return path.read_text()


def reduced(config: str, runs: int, n_test: int) -> dict:
    """The config (its text) with ``runs`` runs (rounded up to whole repetitions of a k-fold
    split), ``n_test`` test points, one worker and, if it verifies exactly, at most 4 points
    per run and 1 bisected radius."""
    body = yaml.safe_load(config)
    dataset = body.get("dataset", {})
    if dataset.get("split") == "kfold":
        folds = dataset.get("folds", 5)
        runs = -(-runs // folds) * folds
    body.update({"n_runs": runs, "workers": 1})
    body.setdefault("attack", {})["n_test"] = n_test
    exact = body.get("certify", {}).get("exact")
    if exact is not None:
        exact["points"] = min(exact.get("points") or 4, 4)
        exact["radius_points"] = min(exact.get("radius_points", 0), 1)
    return body


def run_stage(copy: Path, config: Path, stage: str) -> tuple[float, float]:
    """Wall and CPU seconds of ``stage`` run by ``copy``'s code in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(config), str(copy / "results"), str(copy), stage],
                            cwd=copy, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{stage} failed in {copy}:\n{result.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def read(path: Path) -> pd.DataFrame:
    """A table without its timing columns (they differ between any two runs)."""
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a table with no rows and no columns (a feature the study does not use)
        return pd.DataFrame()
    return table.drop(columns=[c for c in table.columns if "seconds" in c or c in ("started", "finished")])


def compare_tables(base: Path, work: Path) -> pd.DataFrame:
    """Every table both result folders hold: identical in every column but timings, or the
    columns that differ (and the tables only one of them wrote)."""
    rows = []
    names = sorted({p.name for p in base.glob("*.csv")} | {p.name for p in work.glob("*.csv")})
    for name in names:
        if not (base / name).is_file() or not (work / name).is_file():
            only = "base" if (base / name).is_file() else "work"
            rows.append({"table": name, "identical": False, "differs": f"only in {only}"})
            continue
        a, b = read(base / name), read(work / name)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            rows.append({"table": name, "identical": False, "differs": "shape"})
            continue
        differs = [c for c in a.columns if not a[c].equals(b[c])]
        rows.append({"table": name, "identical": not differs, "differs": " ".join(differs)})
    return pd.DataFrame(rows, columns=["table", "identical", "differs"])


def markdown(stages: pd.DataFrame, tables: pd.DataFrame, base: str, work: str) -> str:
    shown = stages.assign(**{c: stages[c].map("{:.1f}".format) for c in stages.columns if "seconds" in c},
                          **{c: stages[c].map("{:.2f}".format) for c in stages.columns if c.startswith("ratio")})
    lines = [f"#### Stage by stage: `{work}` against `{base}` (reduced study, one worker)", "",
             "| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    differing = tables[~tables["identical"]]
    lines += ["", f"{int(tables['identical'].sum())} of {len(tables)} tables identical"
              + ("." if differing.empty else "; differing: "
                 + ", ".join(f"`{r.table}` ({r.differs})" for r in differing.itertuples()) + ".")]
    return "\n".join(lines) + "\n"


def versions_parser(doc: str) -> argparse.ArgumentParser:
    """The options every two-version benchmark takes: ``--base``, ``--work`` and the study's ``--config``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="the revision timed against (default HEAD)")
    parser.add_argument("--work", default=None, help="the revision timed (default: the working tree)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    return parser


def main(argv=None) -> None:
    parser = versions_parser(__doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--n-test", type=int, default=32)
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    args = parser.parse_args(argv)
    work_name = args.work or "working tree"
    config = args.config if args.config.is_absolute() else ROOT / args.config
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        revisions = {"base": args.base, "work": args.work}
        copies = {side: checkout(rev, Path(tmp) / side) for side, rev in revisions.items()}
        configs = {}
        for side, copy in copies.items():
            body = reduced(config_text(revisions[side], config), args.runs, args.n_test)
            configs[side] = copy / "bench_study.yaml"
            configs[side].write_text(yaml.safe_dump(body, sort_keys=False))
        for stage in args.stages:
            measured = {side: run_stage(copy, configs[side], stage) for side, copy in copies.items()}
            row = {"stage": stage, "base_wall_seconds": measured["base"][0], "work_wall_seconds": measured["work"][0],
                   "base_cpu_seconds": measured["base"][1], "work_cpu_seconds": measured["work"][1]}
            row["ratio_wall"] = row["work_wall_seconds"] / row["base_wall_seconds"]
            row["ratio_cpu"] = row["work_cpu_seconds"] / row["base_cpu_seconds"]
            rows.append(row)
            print(f"{stage}: base {row['base_wall_seconds']:.1f} s, work {row['work_wall_seconds']:.1f} s "
                  f"(cpu ratio {row['ratio_cpu']:.2f})", flush=True)
        tables = compare_tables(*(copy / "results" / "bench_study" for copy in copies.values()))
    stages = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    stages.to_csv(args.out / "stage_comparison.csv", index=False)
    tables.to_csv(args.out / "stage_tables.csv", index=False)
    (args.out / "stage_comparison.md").write_text(markdown(stages, tables, args.base, work_name))
    print(markdown(stages, tables, args.base, work_name))


if __name__ == "__main__":
    main()
