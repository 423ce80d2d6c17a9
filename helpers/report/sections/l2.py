"""The L2 threat model (``attack.l2``): robust accuracy per L2 attack and budget, the minimal
norms of the minimum-norm attack, the L2 bracket and the masking checks on the L2 attacks."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...analysis.ceiling import with_ceiling
from ...analysis.evaluation import WORST_CASE
from ...analysis.masking import masking_checks, run_checks
from ...analysis.statistics import (ACCURACY_BOUNDS, bracket_separations, bracket_table, comparisons, deciding_p,
                                    robust_auc, summarize_runs)
from .. import figures
from ..section import SECTIONS, Section
from ..tables import interval, markdown_table, p_text, robustness_table
from .bracket import bracket_section
from .ceiling import ceiling_curve
from .masking import masking_section
from .smoothing import smoothed


def minimum_norm_summary(minimum: pd.DataFrame) -> pd.DataFrame:
    """Per model and attack, the median and quartiles of each point's minimal L2 distance, over
    points and runs (inf: none found), and how many were not found. Order statistics
    ("lower"): inf is a value here, and interpolating it gives NaN."""
    return pd.DataFrame([{"model": model, "attack": attack,
                          **{name: float(g["distance"].quantile(q, interpolation="lower"))
                             for name, q in (("median", 0.5), ("q25", 0.25), ("q75", 0.75))},
                          "not_found": int(np.isinf(g["distance"]).sum()), "n": len(g)}
                         for (model, attack), g in minimum.groupby(["model", "attack"], sort=False)],
                        columns=["model", "attack", "median", "q25", "q75", "not_found", "n"])


def l2_section(cfg, tables: dict[str, pd.DataFrame], models) -> list[str]:
    """The L2 threat model (``attack.l2``): robust accuracy per L2 attack and budget, the
    Carlini-Wagner minimal norms, the L2 bracket and the masking checks on the L2 attacks."""
    stats = tables["stats_l2"]
    eps = sorted(stats["epsilon"].unique())
    lines = ["", "## The L2 threat model", "",
             "The same test points under perturbations bounded in L2 (the norm over all input features, inputs in "
             f"[0, 1]): attacks {', '.join(f'`{a}`' for a in cfg.attack.l2.methods)} and the per-sample worst case "
             "over them, mean [95% interval] over runs.", "", markdown_table(robustness_table(stats, models, eps)), ""]
    auc = tables["auc_l2"]
    worst = auc[auc["attack"] == WORST_CASE].set_index("model").reindex(models).dropna(how="all")
    if not worst.empty:
        lines += ["Area under the L2 worst-case accuracy-vs-ε curve (normalised by the ε range; 1 = never fooled): "
                  + ", ".join(f"`{m}` {interval(r)}" for m, r in worst.iterrows()) + ".", ""]
        tests = tables["paired_tests_l2"]
        tests = tests[(tests["attack"] == WORST_CASE) & (tests["measure"] == "auc")]
        if not tests.empty:
            lines += ["Paired comparisons of that area (the paired test on every point, Holm-adjusted over the "
                      "pairs; no primary comparison is declared for L2): "
                      + "; ".join(f"`{r['model_a']}` − `{r['model_b']}` {r['mean_difference']:+.3f} "
                                  f"(p_adj = {p_text(deciding_p(r))})" for _, r in tests.iterrows()) + ".", ""]
    minimum = tables["minimum_norm_summary_l2"]
    if not minimum.empty:
        lines += ["Minimal L2 distance to a misclassified input found by Carlini-Wagner per test point (median "
                  "[quartiles] over points and runs; a point already misclassified counts 0): "
                  + ", ".join(f"`{r.model}` {r.median:.3g} [{r.q25:.3g}, {r.q75:.3g}]"
                              + (f" ({r.not_found} of {r.n} not found)" if r.not_found else "")
                              for r in minimum.itertuples()) + ".", ""]
    bracket = tables["bracket_l2"]
    if not bracket.empty:
        section = bracket_section(bracket, tables["separations_l2"], models)
        lines += ["### L2 bracket", "",
                  "Certified in L2 by the bound certificates (interval through the enclosing L∞ box, which "
                  "contains the L2 ball: sound and loose; CROWN with its linear bound minimised over the L2 ball; "
                  "Lipschitz with the L2 → L∞ constant), attacked by "
                  "the worst case over the L2 attacks. Randomized smoothing certifies the smoothed classifier, not "
                  "the model, and stays in its own table.", "", *section[4:]]
    checks = tables["masking_checks_l2"]
    if not checks.empty:
        lines += ["### Gradient-masking checks (L2)", "", *masking_section(checks, models)]
    return lines


@SECTIONS.register
class L2(Section):
    name = "l2"
    order = 80
    title = "The L2 threat model"
    about = """With an `attack.l2` block: robust accuracy against the L2 budget (one panel per L2 attack and
the per-sample worst case over them), then the L2 bracket: certified in L2 by the bound
certificates (interval through the enclosing L∞ box, which is sound and loose; CROWN with
its linear bound minimised over the L2 ball; Lipschitz with its L2 → L∞ constant) against the worst
case of the L2 attacks. Carlini–Wagner gives each point's minimal distance to a misclassified input:
its median per model says at what L2 budget half of the points fall. The masking checks on the L2
attacks close the section."""
    outputs = ("stats_l2", "auc_l2", "paired_tests_l2", "bracket_l2", "separations_l2", "masking_runs_l2",
               "masking_checks_l2", "minimum_norm_summary_l2")
    drawn = ("robustness_l2", "bracket_l2")

    @classmethod
    def applies(cls, cfg) -> bool:
        return cfg.attack.l2 is not None

    @classmethod
    def tables(cls, report):
        """As ``stats``, ``auc`` and ``paired_tests`` (every comparison Holm-adjusted: the primary
        one is L∞), the bracket (certified by the bound certificates in L2, attacked by the worst
        case over the L2 attacks; a ``norm`` column, with the L2 rows of the data's ceiling), the
        masking checks on the L2 attacks (the large-budget check with PGD-L2 at
        ``attack.l2.masking_epsilons``, gradient-free against gradient, transfer against
        white-box; the checks that name L∞ attacks SKIP) and the minimal norms."""
        cfg, t, ratio = report.cfg, report.tables, report.ratio
        robustness = report.keep(t["robustness_l2"])
        robustness = robustness[robustness["attack"].isin([*cfg.attack.l2.methods, WORST_CASE])]
        runs = run_checks(t["outcomes_l2"], cfg.attack.l2.methods, report.degenerate, report.stochastic, cfg.n_runs)
        certified = report.keep(t["certified"])
        l2 = certified[~smoothed(certified) & (certified["norm"] == "l2")]
        bracket = with_ceiling(bracket_table(l2, robustness, ratio), t["ceiling"], "l2", l2, robustness)
        auc_runs = robust_auc(robustness)
        return {"stats_l2": summarize_runs(robustness, ["model", "attack", "epsilon"], "accuracy", ratio=ratio,
                                           bounds=ACCURACY_BOUNDS),
                "auc_l2": summarize_runs(auc_runs, ["model", "attack"], "auc", ratio=ratio, bounds=ACCURACY_BOUNDS),
                # No primary comparison in L2 (report.primary is declared for L∞): every pair Holm-adjusted per attack.
                "paired_tests_l2": comparisons(robustness, auc_runs, list(cfg.models), ratio, None,
                                               report.point_outcomes("outcomes_l2")),
                "bracket_l2": bracket.assign(norm="l2") if not bracket.empty else bracket,
                "separations_l2": bracket_separations(l2, robustness, list(cfg.models)),
                "masking_runs_l2": runs, "masking_checks_l2": masking_checks(runs),
                "minimum_norm_summary_l2": minimum_norm_summary(report.keep(t["minimum_norm_l2"]))}

    @classmethod
    def figures(cls, report):
        t, models = report.tables, report.models
        drawn = {"robustness_l2": figures.plot_robustness_curves(t["stats_l2"], models,
                                                                 attacks=[*report.cfg.attack.l2.methods, WORST_CASE],
                                                                 norm="L2", ceiling=ceiling_curve(t["ceiling"], "l2"))}
        if not t["bracket_l2"].empty:
            drawn["bracket_l2"] = figures.plot_bracket(t["bracket_l2"], models, norm="L2")
        return drawn

    @classmethod
    def text(cls, report):
        return l2_section(report.cfg, report.tables, report.models)

    @classmethod
    def show(cls, report):
        checks = report.tables["masking_checks_l2"]
        return [*cls.images(report), report.tables["minimum_norm_summary_l2"].round(3),
                checks.pivot(index="model", columns="check", values="status").reindex(report.models)]
