"""The one place that names every file of an experiment folder ``results/<experiment>/``.

Stages, the report and the tests ask this module for paths; no file name is spelled anywhere
else. Standard library only: the stage graph (and through it the Makefile) reads it.
"""
from __future__ import annotations

from pathlib import Path

# Tables (tidy CSV), by the name the stages and the report use for them.
TABLES = {
    "train_history": "train_history.csv",       # train: one row per model, run and epoch
    "models": "models.csv",                     # train: one row per model and run
    # The attack stage's tables and the report's per-threat-model ones have a `norm` column: one
    # row set per threat model of the config (attack: L∞; attack.l2: L2).
    "robustness": "robustness.csv",             # attack: per model, run, attack, norm and ε (+ worst_case)
    "transfer": "transfer.csv",                 # attack: per source, target, run and ε
    "large_epsilon": "large_epsilon.csv",       # attack: PGD at the masking budgets
    "by_class": "by_class.csv",                 # attack: per model, run, attack, ε and label
    "convergence": "convergence.csv",           # attack: the worst case without the stronger runs of PGD
    "certified": "certified.csv",               # attack: per model, run, certificate and ε (+ best)
    "attack_traces": "attack_traces.csv",       # attack: robust accuracy along APGD's iterations, Square's queries
    "escalation": "escalation.csv",             # attack: worst case before and after escalation (flagged runs)
    "outcomes": "outcomes.csv",                 # attack: the per-point outcome behind each robustness/transfer row
    "minimum_norm": "minimum_norm.csv",         # attack: each point's minimal distance under a minimum-norm attack
    "universal": "universal.csv",               # attack: universal perturbations per model, run, ε and target class
    "universal_transfer": "universal_transfer.csv",  # attack: each model's universal perturbation on every model
    "radii": "radii.csv",                       # attack, with certify.exact.radius_points: each point's robust radii
    "attack_costs": "attack_costs.csv",         # attack: the seconds of every unit (model, kind, name, ε, run)
    "interpret_costs": "interpret_costs.csv",   # interpret: the same for its units
    "costs": "costs.csv",                       # report: where the time goes, per stage, kind, name, model and ε
    "escalation_checks": "escalation_checks.csv",  # report: each flagged check after escalation
    "bracket": "bracket.csv",                   # report: certified and attacked accuracy per model and ε (+ the ceiling)
    "ceiling": "ceiling.csv",                   # report: the data's own ceiling per run, norm and ε (analysis.ceiling)
    "separations": "separations.csv",           # report: where a certified accuracy beats an attacked one
    "exact_comparisons": "exact_comparisons.csv",  # report: where complete verification orders two models, per run
    "radius_summary": "radius_summary.csv",     # report: certified and attack radii per model (radii.csv)
    "smoothing": "smoothing.csv",               # report: the smoothed classifiers' certified accuracy per L2 radius
    "hardware": "hardware.csv",                 # report: each circuit's noise and shots beside its bracket
    "defences": "defences.csv",                 # report: each defended model and its baseline, per ε (trade-off)
    "attribution_stability": "attribution_stability.csv",  # interpret: per model, run, method and image
    "stats": "stats.csv",                       # report: mean and interval across runs
    "class_stats": "class_stats.csv",           # report: the same per class
    "masking_checks": "masking_checks.csv",     # report: per model and check
    "masking_runs": "masking_runs.csv",         # report: per model, run and check
    "paired_tests": "paired_tests.csv",         # report: every attack, pair of models and ε (and AUC)
    "power": "power.csv",                       # report: runs needed to detect a given difference
    "universal_stats": "universal_stats.csv",   # report: universal fooling rates across runs
    "universal_tests": "universal_tests.csv",   # report: paired fooling-rate comparisons of the models
    "auc": "auc.csv",                           # report
    "attribution_metrics": "attribution_metrics.csv",  # report: infidelity and sensitivity across runs
    "attribution_summary": "attribution_summary.csv",  # report: Spearman and top-k across runs
}
# Other artifacts.
ARRAYS = {
    "attribution_maps": "attribution_maps.npz",          # interpret: the maps of run 0 (report panels)
    "decision_boundaries": "decision_boundaries.npz",    # attack: 2-D data only (report figure)
    "universal_perturbations": "universal_perturbations.npz",  # attack: run 0's universal perturbations (report)
}
CONFIG = "config.yaml"
PROVENANCE = "provenance.json"
SUMMARY = "summary.md"
REPORT_PAGE = "report.html"        # the report notebook as a page, code cells left out (after the report stage)
SCREENSHOT = "report.png"          # the report page as headless Chromium draws it (the browser test)
INDEX_PAGE = "index.html"          # results/index.html: every experiment under results/ and its key numbers
FIGURES = "figures"
NOTEBOOK = "{notebook}.ipynb"
UNTARGETED = "none"  # the target of an untargeted universal perturbation, in tables and file names


def delta_name(model: str, epsilon: float, target) -> str:
    """The array name of a universal perturbation in ``universal_perturbations.npz``."""
    return f"{model}__eps{epsilon:g}__{UNTARGETED if target is None else int(target)}"


def declare_tables(names, by: str) -> None:
    """Add tables a component names for itself (a report section's ``outputs``): each is
    ``<name>.csv``; a name already taken by another file is refused."""
    for name in names:
        if TABLES.setdefault(name, f"{name}.csv") != f"{name}.csv":
            raise ValueError(f"{by} declares table {name!r}, which is {TABLES[name]} already")


class Layout:
    """Paths inside one experiment folder."""

    def __init__(self, results_dir: str | Path):
        self.root = Path(results_dir)

    def table(self, name: str) -> Path:
        return self.root / TABLES[name]

    def arrays(self, name: str) -> Path:
        return self.root / ARRAYS[name]

    def figure(self, name: str) -> Path:
        return self.root / FIGURES / f"{name}.png"

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def provenance(self) -> Path:
        return self.root / PROVENANCE

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY

    @property
    def report_page(self) -> Path:
        return self.root / REPORT_PAGE

    @property
    def screenshot(self) -> Path:
        return self.root / SCREENSHOT

    def notebook(self, notebook: str) -> Path:
        """An executed stage notebook (``notebook`` without its suffix, as in the stage graph)."""
        return self.root / NOTEBOOK.format(notebook=notebook)

    def checkpoint(self, model: str, run: int) -> Path:
        """The train stage's unit: one model trained in one run."""
        return self.root / "models" / f"run{run:02d}" / f"{model}.pt"

    def split(self, run: int) -> Path:
        return self.root / "splits" / f"run{run:02d}.npz"

    def units(self, stage: str, run: int) -> Path:
        """The folder of a stage's finished units in one run."""
        return self.root / "units" / stage / f"run{run:02d}"

    def attack_unit(self, run: int, model: str, attack: str, epsilon: float) -> Path:
        """The attack stage's unit: one attack on one model of one run at one ε."""
        return self.units("attack", run) / model / attack / f"eps{epsilon:g}.npz"

    def certify_unit(self, run: int, model: str, certificate: str, epsilon: float | None) -> Path:
        """The attack stage's certificate unit: one certificate on one model of one run at one ε
        (None: at every radius at once, as randomized smoothing)."""
        name = "all" if epsilon is None else f"eps{epsilon:g}"
        return self.units("attack", run) / model / f"certificate-{certificate}" / f"{name}.npz"

    def universal_unit(self, run: int, model: str, epsilon: float, target: str | int) -> Path:
        """The attack stage's universal unit: one universal perturbation of one model of one run
        at one ε, untargeted (``target`` "none") or towards one class."""
        return self.units("attack", run) / model / "universal" / f"eps{epsilon:g}-target{target}.npz"

    def interpret_unit(self, run: int, model: str, method: str) -> Path:
        """The interpret stage's unit: one attribution method on one model of one run."""
        return self.units("interpret", run) / model / f"{method}.npz"

    def describe_unit(self, path: str | Path) -> dict:
        """What a unit path above names: ``model``, ``kind`` (attack, certificate, universal,
        attribution), ``name`` (the attack, certificate or method; a certificate's extra threat
        model or radius table after a dash) and ``epsilon`` (NaN for a unit of every budget)."""
        parts = Path(path).relative_to(self.root / "units").parts  # stage, run, model, ...
        model, rest = parts[2], parts[3:]
        if len(rest) == 1:
            return {"model": model, "kind": "attribution", "name": Path(rest[0]).stem, "epsilon": float("nan")}
        folder, stem = rest[0], Path(rest[1]).stem
        kind = "certificate" if folder.startswith("certificate-") else "universal" if folder == "universal" else "attack"
        epsilon = float(stem[3:].split("-target")[0]) if stem.startswith("eps") else float("nan")
        return {"model": model, "kind": kind, "name": folder.removeprefix("certificate-"), "epsilon": epsilon}


def index_page(results_root: str | Path) -> Path:
    """The page that lists every experiment folder under ``results_root``."""
    return Path(results_root) / INDEX_PAGE
