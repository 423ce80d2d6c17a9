"""Robust accuracy against ε: its statistics per model, attack and budget, the area under each
curve, the curves themselves, every attack per model and the training curves."""
from __future__ import annotations

import pandas as pd

from ...analysis.evaluation import WORST_CASE
from ...analysis.statistics import ACCURACY_BOUNDS, robust_auc, summarize_runs
from .. import figures
from .ceiling import ceiling_curve
from ..section import SECTIONS, Report, Section
from ..tables import markdown_table, robustness_table


def reported_attacks(cfg) -> list[str]:
    """The attacks the statistics report: the configured ones and the worst case over them (the
    escalation attacks ran on flagged runs only: they count in the worst case, but a mean over
    that subset of runs would not compare with the others; escalation.csv has them)."""
    return [*cfg.attack.methods, WORST_CASE]


def attacked(report: Report) -> pd.DataFrame:
    """The per-run robust accuracies of the reported attacks, degenerate runs left out."""
    robustness = report.keep(report.tables["robustness"])
    return robustness[robustness["attack"].isin(reported_attacks(report.cfg))]


@SECTIONS.register
class Robustness(Section):
    name = "robustness"
    order = 10
    title = "Robustness curves"
    about = """Robust accuracy against the attack budget ε: the line is the mean over the Monte Carlo runs
and the band the 95% t-interval across runs. The last panel is the per-sample worst case over
every attack, the number to quote. Look for where each curve drops and whether the bands of
two models separate. Where the config names a published result (`report.reference`), stars mark it.
The second figure has every attack per model: for a model with honest gradients the gradient attacks
(PGD, APGD) sit at or below the gradient-free Square attack; a model whose gradients are blind shows the
opposite. The table is the area under each curve (normalised by the ε range; 1 = never fooled)."""
    outputs = ("stats", "auc")
    per_threat = ("stats", "auc")
    drawn = ("robustness", "attack_comparison", "training_curves")

    @classmethod
    def tables(cls, report):
        robustness, ratio = attacked(report), report.ratio
        return {"stats": summarize_runs(robustness, ["model", "attack", "epsilon"], "accuracy", ratio=ratio,
                                        bounds=ACCURACY_BOUNDS),
                "auc": summarize_runs(robust_auc(robustness), ["model", "attack"], "auc", ratio=ratio,
                                      bounds=ACCURACY_BOUNDS)}

    @classmethod
    def figures(cls, report):
        t, models = report.tables, report.models
        return {"robustness": figures.plot_robustness_curves(t["stats"], models, attacks=["fgsm", "pgd", WORST_CASE],
                                                             reference=report.cfg.report.reference,
                                                             ceiling=ceiling_curve(t["ceiling"], "linf")),
                "attack_comparison": figures.plot_attack_comparison(t["stats"], models),
                "training_curves": figures.plot_training_curves(t["train_history"], models)}

    @classmethod
    def text(cls, report):
        curves = report.tables["stats"]
        return ["## Robust accuracy", "",
                markdown_table(robustness_table(curves, report.models, sorted(curves["epsilon"].unique()))), ""]

    @classmethod
    def show(cls, report):
        auc = report.tables["auc"].pivot(index="model", columns="attack", values="mean").reindex(report.models)
        return [*cls.images(report), auc.round(3)]
