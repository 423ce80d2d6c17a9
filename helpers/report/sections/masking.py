"""Gradient-masking checks: every check per model and run, the model's verdict, and what
escalation did with each flag. Sections that add checks of their own (``Section.checks``: the
universal perturbations') join every run's."""
from __future__ import annotations

import pandas as pd

from ...analysis.masking import (ALPHA, LARGE_EPSILON_MAX_ACCURACY, UNIVERSAL_QUALITY, escalation_checks, masking_checks,
                                 run_checks, surviving_models)
from ..section import SECTIONS, Section, applicable
from ..tables import markdown_table


def escalation_sentences(escalated: pd.DataFrame, models) -> list[str]:
    """Per model with flagged runs: how many flags escalation resolved, how far it lowered the
    worst case, and the attack that fooled the most points alone."""
    text = []
    for m in models:
        e = escalated[(escalated["model"] == m) & escalated["escalated"]]
        if e.empty:
            continue
        worst = e.sort_values("worst_case_drop", ascending=False).iloc[0]
        lowered = (f"lowered the worst case by up to {worst['worst_case_drop']:.3f}" if worst["worst_case_drop"] > 0
                   else "did not lower the worst case at any budget")
        text.append(f"`{m}`: escalation resolved {int(e['resolved'].sum())} of {len(e)} flags in "
                    f"{e['run'].nunique()} runs and {lowered} (the attack that fooled the most points alone: "
                    f"{worst['deciding_attack']}).")
    return text


def masking_section(checks: pd.DataFrame, models, escalated: pd.DataFrame | None = None) -> list[str]:
    """Table of per-run check results per model and a sentence on whose robustness claim survives."""
    def cell(r):
        if r["status"] in ("SKIP", "DEGENERATE"):
            return r["status"]
        runs = f"{int(r['runs_flagged'])}/{int(r['runs_checked'])} runs"
        return f"FLAG {runs} (p_adj {r['p_adjusted']:.2g})" if r["status"] == "FLAG" else "PASS"

    table = checks.assign(cell=checks.apply(cell, axis=1))
    wide = table.pivot(index="model", columns="check", values="cell").reindex(
        index=models, columns=list(dict.fromkeys(checks["check"]))).reset_index()
    survivors = surviving_models(checks)
    verdict = []
    if survivors:
        verdict.append("The robustness numbers of " + ", ".join(f"`{m}`" for m in survivors)
                       + " survive every masking check in every run: their worst-case accuracy is not explained by "
                       "blinded gradients.")
    for m in models:
        if m in survivors:
            continue
        flagged = checks[(checks["model"] == m) & (checks["status"] == "FLAG") & ~checks["check"].isin(UNIVERSAL_QUALITY)]
        verdict.append(f"`{m}` is flagged by " + ", ".join(f"{r.check} ({r.runs_flagged} of {r.runs_checked} runs)"
                                                            for r in flagged.itertuples())
                       + ": read its robustness as an upper bound, not as evidence that it is robust.")
    quality = checks[(checks["status"] == "FLAG") & checks["check"].isin(UNIVERSAL_QUALITY)]
    for m in models:
        flagged = quality[quality["model"] == m]
        if len(flagged):
            verdict.append(f"`{m}`: its universal perturbation is flagged by "
                           + ", ".join(f"{r.check} ({r.runs_flagged} of {r.runs_checked} runs)" for r in flagged.itertuples())
                           + ": its universal fooling rates are lower bounds (this says nothing about its robust accuracy).")
    degenerate = checks.groupby("model")["runs_degenerate"].max()
    for m in models:
        if degenerate.get(m, 0):
            verdict.append(f"`{m}`: {int(degenerate[m])} degenerate runs were not checked.")
    if escalated is not None and not escalated.empty:
        if escalated["escalated"].all():
            verdict.append("Every flagged run was escalated: the escalation attacks and transfer from every other "
                           "model joined its worst case (the numbers above include them); a flag is resolved only "
                           "when its check, re-run with them counted, passes (a large-budget flag: when escalation "
                           "broke no further point at the study's own budgets).")
        else:
            verdict.append(f"{int((~escalated['escalated'].astype(bool)).sum())} flags were not escalated "
                           "(`attack.escalation` is empty): their robustness stays an upper bound.")
        verdict += escalation_sentences(escalated, models)
    return ["Each check compares attacks whose order of strength is known, in every run on its own test points, by "
            "an exact paired (McNemar) test on the points where the two disagree (the large-budget check: an exact "
            f"binomial test of PGD's accuracy against its ceiling of {LARGE_EPSILON_MAX_ACCURACY:g}). A model's tests "
            "are one family, Holm-adjusted within a run and Bonferroni over runs, so an honest model is flagged with "
            f"probability at most {ALPHA:g} over the whole study; a cell shows the runs flagged and the smallest "
            "adjusted p.", "", markdown_table(wide), "", " ".join(verdict), ""]


@SECTIONS.register
class Masking(Section):
    name = "masking"
    order = 120
    title = "Gradient-masking checks"
    about = """Each check compares attacks whose order of strength is known in advance, in every run on
its own test points (`masking_runs.csv`), by an exact paired test on the points where they
disagree: `violating` the points the supposedly weaker attack alone broke, `agreeing` the
reverse, `value` the accuracy by which the weaker beat the stronger, `p_adjusted` the p-value
adjusted over all of the model's tests (Holm within a run, Bonferroni over runs). A model is
flagged when any run is, and the table says how many. A FLAG means the model's robust accuracy
may come from gradients that mislead the attacker rather than from robustness. Degenerate runs
are not checked. The last table says what escalation did with each flag: the stronger attacks of
`attack.escalation` and transfer from every other model ran on the flagged run, and the check was
re-run with them counted; `status_after` is what it says (`resolved` only when it passes; a
large-budget flag only when escalation broke no further point at the study's own budgets),
`worst_case_drop` how far they lowered the worst case, `deciding_attack` which one fooled the
most points. Empty when nothing was flagged."""
    outputs = ("masking_runs", "masking_checks", "escalation_checks")
    per_threat = ("masking_runs", "masking_checks")  # escalation: the primary threat model's

    @classmethod
    def tables(cls, report):
        t, cfg = report.tables, report.cfg
        judged = (cfg.attack.methods, report.degenerate, report.stochastic, cfg.n_runs)  # the configured suite
        runs = run_checks(t["outcomes"], *judged)
        escalated = escalation_checks(runs, t["escalation"], t["outcomes"], *judged)  # answers the per-input flags
        more = [rows for section in applicable(report.cfg) if (rows := section.checks(report)) is not None] \
            if report.primary else []
        if more:
            runs = pd.concat([runs, *more], ignore_index=True)
        return {"masking_runs": runs, "masking_checks": masking_checks(runs), "escalation_checks": escalated}

    @classmethod
    def text(cls, report):
        checks = report.tables["masking_checks"]
        if checks.empty:
            return []
        return ["", "## Gradient-masking checks", "",
                *masking_section(checks, report.models, report.tables["escalation_checks"])]

    @classmethod
    def show(cls, report):
        checks = report.tables["masking_checks"]
        return [checks.pivot(index="model", columns="check", values="status").reindex(report.models),
                checks[["model", "check", "status", "runs_flagged", "runs_checked", "runs_degenerate", "value",
                        "threshold", "p_adjusted", "detail"]].round(4), report.tables["escalation_checks"].round(3)]
