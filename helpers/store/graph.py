"""The stage graph, declared once: for each stage its notebook, the stages before it, the
config sections its results depend on, the code it runs and the files it writes.

Read by the Makefile (``python3 -m helpers.store.graph make`` writes its rules), by the
provenance record (a stage's config and code hashes) and by the units of work (a unit's key
holds the hash of its stage's shared code). Standard library only.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .layout import ARRAYS, REPORT_PAGE, TABLES

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str                 # notebooks/<notebook>.ipynb, executed to results/<experiment>/<notebook>.ipynb
    after: tuple[str, ...]        # stages whose outputs it reads
    sections: tuple[str, ...]     # config sections its own work reads (with the stages before it: all it depends on)
    code: tuple[str, ...]         # files and packages (relative to the repository) its own work runs
    writes: tuple[str, ...]       # tables and arrays (``store.layout`` names) it writes


# Code every stage runs (config, registries, the store): a change reruns every notebook,
# though units whose own code is unchanged are reused.
SHARED = ("helpers/__init__.py", "helpers/params.py", "helpers/registry.py", "helpers/config", "helpers/device.py",
          "helpers/store", "helpers/stages/__init__.py", "helpers/stages/execution.py", "helpers/stages/progress.py")

STAGES = {
    "train": Stage("train", "01_train", (), ("dataset", "n_runs", "seed", "device", "training", "models"),
                   ("helpers/data", "helpers/models", "helpers/defences", "helpers/attacks/pgd.py", "helpers/attacks/base.py",
                    "helpers/training.py", "helpers/stages/train.py"),
                   ("train_history", "models")),
    "attack": Stage("attack", "02_attack", ("train",), ("attack", "certify", "interpret"),
                    ("helpers/attacks", "helpers/threats", "helpers/certificates", "helpers/analysis/evaluation.py",
                     "helpers/analysis/certification.py", "helpers/analysis/radii.py", "helpers/stages/inputs.py",
                     "helpers/stages/attack.py", "helpers/stages/universal.py", "helpers/analysis/masking.py",
                     "helpers/analysis/multiplicity.py"),
                    ("robustness", "transfer", "large_epsilon", "by_class", "convergence", "certified", "outcomes",
                     "attack_traces", "escalation", "decision_boundaries", "universal", "universal_transfer",
                     "universal_perturbations", "radii", "attack_costs", "minimum_norm")),
    "interpret": Stage("interpret", "03_interpret", ("train",), ("attack", "interpret"),
                       ("helpers/explain", "helpers/attacks", "helpers/stages/inputs.py", "helpers/stages/interpret.py"),
                       ("attribution_stability", "attribution_maps", "interpret_costs")),
    "report": Stage("report", "04_report", ("attack", "interpret"), ("report",),
                    ("helpers/analysis", "helpers/report", "helpers/stages/inputs.py", "helpers/stages/report.py"),
                    ("stats", "class_stats", "masking_checks", "masking_runs", "escalation_checks", "paired_tests", "power",
                     "auc", "bracket", "ceiling", "separations", "smoothing", "attribution_metrics", "attribution_summary",
                     "universal_stats", "universal_tests", "exact_comparisons", "radius_summary", "costs")),
}
# Code of a stage left out of the hash its units share: code whose units put its hash into their
# own keys (universal perturbations: editing it recomputes those units only), and code that only
# chooses which units run, computing none (the masking checks that decide escalation: editing it
# reruns the stage, which computes only the units its new choice adds).
KEYED_APART = {"attack": ("helpers/attacks/universal.py", "helpers/stages/universal.py")}
CHOOSES = {"attack": ("helpers/analysis/masking.py", "helpers/analysis/multiplicity.py")}
for _stage in STAGES.values():  # every output has a name in the layout
    assert all(name in TABLES or name in ARRAYS for name in _stage.writes), _stage


def upstream(name: str) -> list[str]:
    """The stages ``name`` depends on, directly or not, in execution order (itself excluded)."""
    seen: list[str] = []
    for before in STAGES[name].after:
        for stage in [*upstream(before), before]:
            if stage not in seen:
                seen.append(stage)
    return seen


def sections(name: str) -> tuple[str, ...]:
    """Every config section the results of stage ``name`` depend on (its own and upstream)."""
    return tuple(dict.fromkeys(s for stage in [*upstream(name), name] for s in STAGES[stage].sections))


def files(paths) -> list[Path]:
    """The Python files of ``paths`` (files, or packages: every ``.py`` below them), sorted."""
    found = set()
    for path in paths:
        full = ROOT / path
        found.update(full.rglob("*.py") if full.is_dir() else [full])
    return sorted(p for p in found if "__pycache__" not in p.parts)


def code_files(name: str, with_upstream: bool = True) -> list[Path]:
    """The code stage ``name`` runs: its own and, by default, that of the stages before it
    and the shared code."""
    stages = [*upstream(name), name] if with_upstream else [name]
    return files([*SHARED, *(p for stage in stages for p in STAGES[stage].code)])


def make_rules() -> str:
    """Makefile rules: each stage's executed notebook from its source notebook, the config,
    its own code and the notebooks of the stages before it (the train stage also lists the
    shared code and the environment)."""
    lines = ["# Generated by `python3 -m helpers.store.graph make` from helpers/store/graph.py: do not edit.", ""]

    def prerequisites(paths) -> list[str]:  # a package's modules as a wildcard: new modules count too
        return [f"$(wildcard {p}/*.py {p}/*/*.py)" if (ROOT / p).is_dir() else p for p in paths]

    for stage in STAGES.values():
        own = prerequisites(([*SHARED] if not stage.after else []) + list(stage.code))
        inputs = [f"notebooks/{stage.notebook}.ipynb", *(f"$(OUT)/{STAGES[s].notebook}.ipynb" for s in stage.after)]
        if not stage.after:
            inputs += ["$(CONFIG)", "$(INSTALLED)"]
        target = f"$(OUT)/{stage.notebook}.ipynb"
        lines += [f"{stage.name}: {target}", f"{target}: " + " ".join(inputs + own)]
        if not stage.after:  # the config is checked before anything is written
            lines += ["\t@$(PYTHON) -m helpers.config $(CONFIG)", "\t@mkdir -p $(OUT)"]
        lines += ["\t$(papermill)", ""]
    last = list(STAGES)[-1]  # `make all` runs it
    # The report page is the last stage's notebook without code; writing it rewrites results/index.html.
    page = f"$(OUT)/{REPORT_PAGE}"
    lines += [f"{page}: $(OUT)/{STAGES[last].notebook}.ipynb helpers/report/pages.py",
              "\t$(PYTHON) -m helpers.report.pages $(OUT)", ""]
    lines += [f".PHONY: {' '.join(STAGES)}", f"STAGE_NOTEBOOKS := {' '.join(s.notebook for s in STAGES.values())}",
              f"LAST_STAGE := {last}", f"REPORT_PAGE := {page}", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv == ["make"]:
        print(make_rules())
        return 0
    if len(argv) == 2 and argv[0] == "files" and argv[1] in STAGES:
        print(" ".join(str(p.relative_to(ROOT)) for p in code_files(argv[1])))
        return 0
    print(f"usage: python3 -m helpers.store.graph make | files {{{','.join(STAGES)}}}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
