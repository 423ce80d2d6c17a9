"""Robust accuracy per class: a model that never flips one class scores that class's share of
the test set without being robust."""
from __future__ import annotations

from ...analysis.statistics import ACCURACY_BOUNDS, summarize_runs
from ..section import SECTIONS, Section
from .comparisons import headline_attack
from .robustness import reported_attacks


@SECTIONS.register
class Classes(Section):
    name = "classes"
    order = 25
    title = "Per class"
    about = """Robust accuracy of each class under the per-sample worst case at every budget
(`class_stats.csv` has every attack). A model that never flips one class scores that
class's share of the test set without being robust; a class near zero next to another near
one is that pattern."""
    outputs = ("class_stats",)

    @classmethod
    def tables(cls, report):
        by_class = report.keep(report.tables["by_class"])
        return {"class_stats": summarize_runs(by_class[by_class["attack"].isin(reported_attacks(report.cfg))],
                                              ["model", "attack", "epsilon", "label"], "accuracy", ratio=report.ratio,
                                              bounds=ACCURACY_BOUNDS)}

    @classmethod
    def show(cls, report):
        classes, attack = report.tables["class_stats"], headline_attack(report.tables["stats"])
        return [classes[classes["attack"] == attack].pivot_table(index=["model", "label"], columns="epsilon",
                                                                 values="mean").reindex(report.models, level="model")
                .round(3)]
