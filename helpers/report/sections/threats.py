"""Every threat model beside the primary one (``attack.l2``: L2): its robust accuracy per attack
and budget, the minimal distances of its minimum-norm attacks, its bracket and its masking
checks, one block per threat model. The tables are those of the robustness, comparison,
bracket and masking sections, computed in each threat model (their ``per_threat`` outputs);
what is said about a norm (its distance, what bounds its certificates) is the threat model's
own (``helpers/threats``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...analysis.evaluation import WORST_CASE
from ...analysis.statistics import deciding_p
from ...threats import threat_model
from .. import figures
from ..section import SECTIONS, Report, Section
from ..tables import interval, markdown_table, p_text, robustness_table
from .bracket import bracket_section
from .ceiling import ceiling_curve
from .masking import masking_section


def minimum_norm_summary(minimum: pd.DataFrame) -> pd.DataFrame:
    """Per model and attack, the median and quartiles of each point's minimal distance, over
    points and runs (inf: none found), and how many were not found. Order statistics
    ("lower"): inf is a value here, and interpolating it gives NaN."""
    return pd.DataFrame([{"model": model, "attack": attack,
                          **{name: float(g["distance"].quantile(q, interpolation="lower"))
                             for name, q in (("median", 0.5), ("q25", 0.25), ("q75", 0.75))},
                          "not_found": int(np.isinf(g["distance"]).sum()), "n": len(g)}
                         for (model, attack), g in minimum.groupby(["model", "attack"], sort=False)],
                        columns=["model", "attack", "median", "q25", "q75", "not_found", "n"])


def threat_section(report: Report) -> list[str]:
    """One threat model's block of the summary: robust accuracy per attack and budget, the area
    under the worst-case curve and its comparisons, the minimal distances, the bracket and the
    masking checks."""
    cfg, tables, models = report.cfg, report.tables, report.models
    threat = threat_model(report.norm)
    stats, label = tables["stats"], threat.label
    lines = ["", f"## The {label} threat model", "",
             f"The same test points under perturbations bounded in {label} ({threat.measured}): attacks "
             f"{', '.join(f'`{a}`' for a in cfg.attack.methods)} and the per-sample worst case over them, mean "
             "[95% interval] over runs.", "", markdown_table(robustness_table(stats, models, sorted(stats["epsilon"].unique()))), ""]
    auc = tables["auc"]
    worst = auc[auc["attack"] == WORST_CASE].set_index("model").reindex(models).dropna(how="all")
    if not worst.empty:
        lines += [f"Area under the {label} worst-case accuracy-vs-ε curve (normalised by the ε range; 1 = never fooled): "
                  + ", ".join(f"`{m}` {interval(r)}" for m, r in worst.iterrows()) + ".", ""]
        tests = tables["paired_tests"]
        tests = tests[(tests["attack"] == WORST_CASE) & (tests["measure"] == "auc")]
        if not tests.empty:
            lines += ["Paired comparisons of that area (the paired test on every point, Holm-adjusted over the "
                      f"pairs; no primary comparison is declared for {label}): "
                      + "; ".join(f"`{r['model_a']}` − `{r['model_b']}` {r['mean_difference']:+.3f} "
                                  f"(p_adj = {p_text(deciding_p(r))})" for _, r in tests.iterrows()) + ".", ""]
    minimum = tables["minimum_norm_summary"]
    if not minimum.empty:
        lines += [f"Minimal {label} distance to a misclassified input per test point, found by "
                  f"{', '.join(f'`{a}`' for a in minimum['attack'].unique())} (median [quartiles] over points and "
                  "runs; a point already misclassified counts 0): "
                  + ", ".join(f"`{r.model}` {r.median:.3g} [{r.q25:.3g}, {r.q75:.3g}]"
                              + (f" ({r.not_found} of {r.n} not found)" if r.not_found else "")
                              for r in minimum.itertuples()) + ".", ""]
    bracket = tables["bracket"]
    if not bracket.empty:
        section = bracket_section(bracket, tables["separations"], models)
        lines += [f"### {label} bracket", "",
                  f"Certified in {label} by the bound certificates ({threat.certified_by}), attacked by the worst "
                  f"case over the {label} attacks. Randomized smoothing certifies the smoothed classifier, not the "
                  "model, and stays in its own table.", "", *section[4:]]
    checks = tables["masking_checks"]
    if not checks.empty:
        lines += [f"### Gradient-masking checks ({label})", "", *masking_section(checks, models)]
    return lines


@SECTIONS.register
class Threats(Section):
    name = "threats"
    order = 80
    title = "Other threat models"
    about = """With a threat model beside L∞ (`attack.l2`: L2), one block per threat model: robust accuracy
against its budget (one panel per attack and the per-sample worst case over them), then its
bracket: certified by the bound certificates in that norm against the worst case of its attacks.
A minimum-norm attack (Carlini–Wagner in L2) gives each point's minimal distance to a
misclassified input: its median per model says at what budget half of the points fall. The
masking checks on that threat model's attacks close the block. Its rows sit in the same tables
as L∞'s (`stats.csv`, `bracket.csv`, `masking_checks.csv`, ...), marked by `norm`."""
    outputs = ("minimum_norm_summary",)
    per_threat = ("minimum_norm_summary",)

    @classmethod
    def applies(cls, cfg) -> bool:
        return len(cfg.attack.threat_sections()) > 1

    @classmethod
    def tables(cls, report):
        return {"minimum_norm_summary": minimum_norm_summary(report.keep(report.tables["minimum_norm"]))}

    @classmethod
    def figure_names(cls, report) -> list[str]:
        return [f"{kind}_{other.norm}" for other in report.threats() for kind in ("robustness", "bracket")]

    @classmethod
    def figures(cls, report):
        drawn = {}
        for other in report.threats():
            t, label = other.tables, threat_model(other.norm).label
            drawn[f"robustness_{other.norm}"] = figures.plot_robustness_curves(
                t["stats"], other.models, attacks=[*other.cfg.attack.methods, WORST_CASE], norm=label,
                ceiling=ceiling_curve(t["ceiling"], other.norm))
            if not t["bracket"].empty:
                drawn[f"bracket_{other.norm}"] = figures.plot_bracket(t["bracket"], other.models, norm=label)
        return drawn

    @classmethod
    def text(cls, report):
        return [line for other in report.threats() for line in threat_section(other)]

    @classmethod
    def show(cls, report):
        shown = cls.images(report)
        for other in report.threats():
            checks = other.tables["masking_checks"]
            shown += [other.tables["minimum_norm_summary"].round(3),
                      checks.pivot(index="model", columns="check", values="status").reindex(other.models)]
        return shown
