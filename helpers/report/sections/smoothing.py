"""Randomized smoothing: certified L2 accuracy of each model's smoothed classifier per radius,
and the random-noise baseline beside the attacks."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ...analysis.evaluation import WORST_CASE
from ...analysis.statistics import ACCURACY_BOUNDS, summarize_runs
from ...registry import CERTIFICATES
from ..figures import band, model_colors
from ..section import SECTIONS, Section
from ..tables import interval, markdown_table


def smoothed(certified: pd.DataFrame) -> pd.Series:
    """Which rows of ``certified`` a smoothed classifier's certificate wrote."""
    return certified["certificate"].isin(CERTIFICATES.with_tag("smoothed"))


def plot_smoothing(smoothing: pd.DataFrame, models) -> plt.Figure:
    """Certified accuracy of each model's smoothed classifier against the L2 radius (randomized
    smoothing), mean over runs with corrected 95% bands: classical and quantum on one axis."""
    colors = model_colors(models)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for model in models:
        curve = smoothing[smoothing["model"] == model].sort_values("epsilon")
        band(ax, curve.assign(ci_low=curve["ci_low"].clip(*ACCURACY_BOUNDS), ci_high=curve["ci_high"].clip(*ACCURACY_BOUNDS)),
              "epsilon", colors[model], model)
    ax.set(xlabel="L2 radius (inputs in [0, 1])", ylabel="certified accuracy of the smoothed classifier",
           ylim=(-0.02, 1.02), title="Randomized smoothing")
    ax.grid(alpha=0.3)
    ax.legend(title="model", fontsize=8)
    fig.tight_layout()
    return fig



def smoothing_section(cfg, smoothing: pd.DataFrame, robustness: pd.DataFrame, models) -> list[str]:
    """The smoothed classifiers' certified L2 accuracy, and the random-noise baseline."""
    lines = []
    if not smoothing.empty:
        radii = sorted(smoothing["epsilon"].unique())
        rows = [{"model": m, **{f"r={r:g}": interval(smoothing[(smoothing["model"] == m) & (smoothing["epsilon"] == r)].iloc[0])
                                for r in radii}} for m in models]
        sigma = cfg.certify.params["smoothing"].sigma
        lines += ["", "## Randomized smoothing (L2)", "",
                  f"Certified accuracy of each model's smoothed classifier (Gaussian noise σ={sigma:g} on the inputs; "
                  "CERTIFY of Cohen et al. 2019) against the L2 radius, mean over runs. It certifies the smoothed "
                  "classifier, not the model: an L2 statement beside, not inside, the L∞ bracket.", "",
                  markdown_table(pd.DataFrame(rows)), ""]
    noise = robustness[robustness["attack"] == "noise"]
    if not noise.empty:
        worst = robustness[robustness["attack"] == WORST_CASE]
        budgets = sorted(e for e in noise["epsilon"].unique() if e > 0)
        at = budgets[len(budgets) // 2]
        rows = []
        for m in models:
            n = noise[(noise["model"] == m) & (noise["epsilon"] == at)]["accuracy"].mean()
            w = worst[(worst["model"] == m) & (worst["epsilon"] == at)]["accuracy"].mean()
            rows.append(f"`{m}` {n:.3f} under noise against {w:.3f} under attack")
        baseline = cfg.attack.params["noise"]
        what = {"any": f"a point fooled if it is misclassified clean or by any of {baseline.draws} draws",
                "mean": f"the mean accuracy over {baseline.draws} draws",
                "min": f"the lowest accuracy of {baseline.draws} draws"}[baseline.statistic]
        lines += [f"Random noise baseline at ε={at:g} (uniform noise in the same L∞ ball, {what}): " + ", ".join(rows)
                  + ". The gap is what the attacks' search adds.", ""]
    return lines


@SECTIONS.register
class Smoothing(Section):
    name = "smoothing"
    order = 60
    title = "Randomized smoothing (L2)"
    about = """Certified accuracy of each model's Gaussian-smoothed version at each L2 radius, with
intervals across runs. This is a different classifier in a different norm from the bracket
above; read it as what smoothing buys, not as the base model's robustness."""
    outputs = ("smoothing",)
    drawn = ("smoothing",)

    @classmethod
    def tables(cls, report):
        certified = report.keep(report.tables["certified"])
        # A smoothed classifier's rows are in the norm of its certificate (Gaussian noise: L2).
        return {"smoothing": summarize_runs(certified[smoothed(certified)],
                                            ["model", "certificate", "epsilon"], "accuracy", ratio=report.ratio,
                                            bounds=ACCURACY_BOUNDS)}

    @classmethod
    def figures(cls, report):
        table = report.tables["smoothing"]
        return {} if table.empty else {"smoothing": plot_smoothing(table, report.models)}

    @classmethod
    def text(cls, report):
        t = report.tables
        return smoothing_section(report.cfg, t["smoothing"], t["robustness"], report.models)

    @classmethod
    def show(cls, report):
        return cls.images(report) or ["smoothing is not in certify.methods"]
