"""The report's section on complete verification (``certify.exact``): which comparisons the
exact verdicts decide, each point's robust radius summarised per model, their figure and the
summary's paragraph.

The verifier decides the same points for every model of a run (drawn by the run's seed), so
two models compare point for point: model a is exactly more robust than model b in a run when
the share of points proved robust for a exceeds the share proved or left open for b.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...analysis.statistics import corrected_t_interval, pair_margins
from ..figures import model_colors
from ..tables import CLIPPED, markdown_table
from ..section import SECTIONS, Section
from .bracket import bound_certified

COMPARISON_COLUMNS = ["model_a", "model_b", "epsilon", "n_runs", "runs_above", "smallest_margin", "mean_margin"]
RADIUS_SUMMARY_COLUMNS = ["model", "points", "certified", "certified_low", "certified_high", "attacked",
                          "attacked_low", "attacked_high", "tightness", "decided", "at_high", "seconds_per_point",
                          "seconds_per_verification"]


def exact_comparisons(certified: pd.DataFrame, models) -> pd.DataFrame:
    """Per ordered pair (a, b) and ε > 0 at which the verifier ran on both: in how many runs
    a's proved share exceeds b's proved-or-open share (``runs_above``: a is then exactly more
    robust than b on that run's verified points) and by how much (a's proved share minus b's
    proved-or-open share: smallest and mean over runs)."""
    if "undecided" not in certified:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    rows = certified[certified["undecided"].notna() & (certified["epsilon"] > 0)]
    lower = rows.pivot_table(index=["epsilon", "run"], columns="model", values="accuracy")
    upper = (rows.assign(upper=rows["accuracy"] + rows["undecided"])
             .pivot_table(index=["epsilon", "run"], columns="model", values="upper"))
    found = [{"model_a": a, "model_b": b, "epsilon": epsilon, "n_runs": len(margin), "runs_above": int((margin > 0).sum()),
              "smallest_margin": float(margin.min()), "mean_margin": float(margin.mean())}
             for a, b, epsilon, margin in pair_margins(lower, upper, models)]
    return pd.DataFrame(found, columns=COMPARISON_COLUMNS)


def radius_summary(radii: pd.DataFrame, high: float, ratio: float = 0.0) -> pd.DataFrame:
    """Per model over runs (each run's mean over its points first): the mean certified radius
    (the largest ε proved, the quantity published verifiers report) and attack radius (the
    smallest ε the verifier's PGD breaks, taken as ``high`` where it breaks nothing up to it),
    with corrected intervals; ``tightness`` certified / attacked (mean over runs of the ratio of
    the run means); ``decided`` the share of points whose certified and refuted radii meet;
    ``at_high`` the share proved robust at ``high``; the median seconds per point and per
    verifier call."""
    found = []
    for model, g in radii.groupby("model", sort=False):
        g = g.assign(attacked=np.minimum(g["attacked"], high))
        runs = g.groupby("run")[["certified", "attacked"]].mean()
        c, a = corrected_t_interval(runs["certified"], ratio), corrected_t_interval(runs["attacked"], ratio)
        tightness = (runs["certified"] / runs["attacked"]).replace([np.inf, -np.inf], np.nan)
        found.append({"model": model, "points": float(g.groupby("run").size().mean()), "certified": c[0],
                      "certified_low": c[2], "certified_high": c[3], "attacked": a[0], "attacked_low": a[2],
                      "attacked_high": a[3], "tightness": float(tightness.mean()),
                      "decided": float(g["decided"].astype(bool).mean()), "at_high": float((g["certified"] >= high).mean()),
                      "seconds_per_point": float(g["seconds"].median()),
                      "seconds_per_verification": float((g["seconds"] / g["verifications"].clip(lower=1)).median())})
    return pd.DataFrame(found, columns=RADIUS_SUMMARY_COLUMNS)


def plot_radii(radii: pd.DataFrame, models, high: float) -> plt.Figure:
    """One panel per model: the share of the verified points (all runs) whose certified radius
    (dashed: proved) and attack radius (solid: PGD breaks it there) exceed ε. The dashed curve is
    the exact robust accuracy on these points from below, the solid one from above."""
    colors = model_colors(models)
    shown = [m for m in models if m in set(radii["model"])]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6), sharey=True, squeeze=False)
    grid = np.linspace(0, high, 121)
    for ax, model in zip(axes[0], shown):
        g = radii[radii["model"] == model]
        for column, style, label in (("attacked", "-", "attack radius > ε"), ("certified", "--", "certified radius > ε")):
            values = g[column].to_numpy(dtype=float)
            ax.plot(grid, [(values > e).mean() for e in grid], style, color=colors[model], label=label)
        ax.set(title=f"{model} ({len(g)} points)", xlabel="ε (L∞ budget)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("share of verified points")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle("Each point's robust radius: proved (dashed) and broken by an attack (solid); the true radius "
                 "lies between", fontsize=9)
    fig.tight_layout()
    return fig


def _exact_cell(row) -> str:
    """"proved [interval]" (``CLIPPED`` where the interval reaches past [0, 1]) and the open share."""
    clipped = CLIPPED if row["exact_low"] < 0 or row["exact_high"] > 1 else ""
    left = f", {row['undecided']:.3f} open" if row["undecided"] > 0 else " (exact)"
    return f"{row['exact']:.3f} [{row['exact_low']:.3f}, {row['exact_high']:.3f}]{clipped}{left}"


def exact_paragraph(bracket: pd.DataFrame, comparisons: pd.DataFrame, radii: pd.DataFrame, models) -> list[str]:
    """The summary's paragraph on complete verification: its robust share per model and ε on
    the verified points (with what it left open), the comparisons it decides, and the radii."""
    if "undecided" not in bracket or bracket["undecided"].isna().all():
        return []
    ran = bracket[(bracket["epsilon"] > 0) & bracket["undecided"].notna()]
    epsilons = sorted(ran["epsilon"].unique())
    table = []
    for m in models:
        b = ran[ran["model"] == m].set_index("epsilon")
        if not b.empty:
            table.append({"model": m, **{f"ε={e:g}": _exact_cell(b.loc[e]) if e in b.index else "—" for e in epsilons}})
    points = int(round(ran["verified"].mean()))
    lines = ["", "### Complete verification", "",
             f"The complete verifier (`exact`) decided each of {points} test points per run (the same points for every "
             "model) as robust, not robust (a re-checked counterexample) or open (its budget ran out). Robust share of "
             f"those points, mean over runs with its corrected interval ({CLIPPED}: it reaches past [0, 1]), and the "
             "share left open (its proofs count "
             "in the certified side of the bracket, its counterexamples in the attacked side):", "",
             markdown_table(pd.DataFrame(table)), ""]
    closed = [m for m in models if m in set(ran["model"]) and (ran.loc[ran["model"] == m, "undecided"] == 0).all()]
    if closed:
        lines.append("Every verified point of " + ", ".join(f"`{m}`" for m in closed) + " was decided at every ε: its "
                     "robust accuracy on these points is known exactly.")
    decided = comparisons[comparisons["runs_above"] == comparisons["n_runs"]]
    for r in decided.itertuples():
        lines.append(f"Exactly, `{r.model_a}` is more robust than `{r.model_b}` at ε={r.epsilon:g} on every run's "
                     f"verified points (its proved share exceeds `{r.model_b}`'s proved-or-open share by "
                     f"{r.smallest_margin:.3f} at least).")
    pairs = {(r.model_a, r.model_b, r.epsilon) for r in decided.itertuples()}
    undecided = [r for r in comparisons.itertuples() if r.model_a < r.model_b and not
                 {(r.model_a, r.model_b, r.epsilon), (r.model_b, r.model_a, r.epsilon)} & pairs]
    if undecided:
        lines.append("Not decided in every run (neither model's proved share exceeds the other's proved-or-open share "
                     "in all runs): " + ", ".join(f"`{r.model_a}` vs `{r.model_b}` at ε={r.epsilon:g}"
                                                  for r in undecided) + ".")
    if not radii.empty:
        lines += ["", "Each point's robust radius (largest ε proved; smallest ε its PGD breaks, capped at the largest "
                  "ε tried), mean over runs; tightness = certified / attack radius; seconds per point (median):", "",
                  markdown_table(radii.assign(**{
                      "certified radius": [f"{r.certified:.4f} [{r.certified_low:.4f}, {r.certified_high:.4f}]"
                                           for r in radii.itertuples()],
                      "attack radius": [f"{r.attacked:.4f}" for r in radii.itertuples()],
                      "tightness": radii["tightness"].map("{:.3f}".format),
                      "decided": radii["decided"].map("{:.3f}".format),
                      "seconds": radii["seconds_per_point"].map("{:.2f}".format)})[
                      ["model", "certified radius", "attack radius", "tightness", "decided", "seconds"]])]
    return lines


def has_radii(cfg) -> bool:
    """Whether the attack stage wrote ``radii.csv`` (``certify.exact.radius_points``)."""
    return "exact" in cfg.certify.methods and bool(cfg.certify.params["exact"].radius_points)


@SECTIONS.register
class Exact(Section):
    name = "exact"
    order = 40
    title = "Complete verification"
    about = """Only with `exact` in `certify.methods` ([verification](../docs/verification.md)): on the points it
verifies (`certify.exact.points` per run, the same for every model) each (point, ε) is proved
robust, broken by a counterexample the float64 model misclassifies, or left open when its budget
ran out. `exact` is the proved share, `undecided` the open one; a model whose open share is zero
has its robust accuracy on these points exactly. The comparisons count the runs in which
one model's proved share exceeds the other's proved-or-open share: in those runs it is exactly
more robust on those points. Then each point's robust radius (`certify.exact.radius_points` per run):
the largest ε proved (dashed) and the smallest ε the verifier's PGD breaks (solid), as the share of
points whose radius exceeds ε; `tightness` is the mean certified radius over the mean attack radius."""
    outputs = ("exact_comparisons", "radius_summary")
    drawn = ("radii",)

    @classmethod
    def tables(cls, report):
        cfg = report.cfg
        radii = (radius_summary(report.keep(report.tables["radii"]), cfg.certify.params["exact"].radius_high,
                                report.ratio)
                 if has_radii(cfg) else pd.DataFrame(columns=RADIUS_SUMMARY_COLUMNS))
        return {"exact_comparisons": exact_comparisons(bound_certified(report), report.models), "radius_summary": radii}

    @classmethod
    def figures(cls, report):
        if not has_radii(report.cfg):
            return {}
        return {"radii": plot_radii(report.tables["radii"], report.models,
                                    report.cfg.certify.params["exact"].radius_high)}

    @classmethod
    def text(cls, report):
        t = report.tables
        return exact_paragraph(t["bracket"], t["exact_comparisons"], t["radius_summary"], report.models)

    @classmethod
    def show(cls, report):
        if "exact" not in report.cfg.certify.methods:
            return ["exact is not in certify.methods"]
        bracket = report.tables["bracket"]
        return [bracket.dropna(subset=["exact"]).pivot(index="model", columns="epsilon", values=["exact", "undecided"])
                .round(3), report.tables["exact_comparisons"].round(3), *cls.images(report),
                report.tables["radius_summary"].round(4)]
