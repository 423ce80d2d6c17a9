"""Gradient-masking checks (Carlini et al. 2019; Athalye et al. 2018), per model.

A model whose gradients vanish, shatter or are random looks robust to gradient attacks while
staying fragile. Each check compares attacks whose order of strength is known; a model FLAGs
when the evaluation contradicts that order by more than the tolerance, and its robustness
numbers should then not be read as robustness. Means are taken across Monte Carlo runs.
Which attacks follow gradients, and which are stronger runs of PGD, the attack registry's
tags (``gradient``) and ``refines`` say: a new attack enters the checks by declaring them.
"""
from __future__ import annotations

import pandas as pd

from ..registry import ATTACKS

# Tolerances in accuracy (fraction of test points).
LARGE_EPSILON_MAX_ACCURACY = 0.10   # at eps >= 0.5 any image can be moved to mid-grey
SLACK = 0.05                        # allowed disorder between attacks of known order

CHECKS = {
    "large_epsilon": "PGD accuracy at the largest masking budget is near zero",
    "pgd_not_weaker_than_fgsm": "PGD is never weaker than FGSM",
    "pgd_converged": "more PGD steps or restarts do not lower accuracy materially",
    "more_iterations_do_not_help_the_model": "more PGD steps or restarts never raise accuracy materially",
    "gradient_free_not_stronger": "the gradient-free attack is never much stronger than the gradient attacks",
    "transfer_not_stronger": "transfer from another model is never stronger than the white-box attack",
}


def _mean_curves(robustness: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy across runs: index (model, epsilon), one column per attack."""
    return robustness.groupby(["model", "epsilon", "attack"])["accuracy"].mean().unstack("attack")


def _row(model, check, value, threshold, passed, detail) -> dict:
    status = "SKIP" if passed is None else ("PASS" if passed else "FLAG")
    return {"model": model, "check": check, "status": status, "value": value, "threshold": threshold,
            "description": CHECKS[check], "detail": detail}


def masking_checks(robustness: pd.DataFrame, transfer: pd.DataFrame, large_epsilon: pd.DataFrame) -> pd.DataFrame:
    """One row per model and check: status PASS / FLAG / SKIP (attack not run), the measured
    value, the threshold it was held to and the epsilon (or source) behind it."""
    curves = _mean_curves(robustness[robustness["epsilon"] > 0])
    rows = []
    for model in dict.fromkeys(robustness["model"]):
        c = curves.loc[model]
        has = set(c.columns)

        large = (large_epsilon[large_epsilon["model"] == model].groupby("epsilon")["accuracy"].mean()
                 if not large_epsilon.empty else pd.Series(dtype=float))
        if large.empty:
            rows.append(_row(model, "large_epsilon", None, LARGE_EPSILON_MAX_ACCURACY, None, "no masking_epsilons"))
        else:
            rows.append(_row(model, "large_epsilon", large.iloc[-1], LARGE_EPSILON_MAX_ACCURACY,
                             large.iloc[-1] <= LARGE_EPSILON_MAX_ACCURACY, f"PGD at ε={large.index[-1]:g}"))

        def gap(stronger_than: pd.Series, weaker: pd.Series, check: str):
            """Largest excess of the (supposedly) stronger attack's accuracy over the weaker's."""
            excess = stronger_than - weaker
            eps = excess.idxmax()
            return _row(model, check, float(excess.max()), SLACK, excess.max() <= SLACK, f"at ε={eps:g}")

        rows.append(gap(c["pgd"], c["fgsm"], "pgd_not_weaker_than_fgsm") if {"pgd", "fgsm"} <= has
                    else _row(model, "pgd_not_weaker_than_fgsm", None, SLACK, None, "needs fgsm and pgd"))
        more = [e.name for e in ATTACKS.entries() if e.refines == "pgd" and e.name in has]
        if "pgd" in has and more:
            rows.append(gap(c["pgd"], c[more].min(axis=1), "pgd_converged"))
            rows.append(gap(c[more].max(axis=1), c["pgd"], "more_iterations_do_not_help_the_model"))
        else:
            for check in ("pgd_converged", "more_iterations_do_not_help_the_model"):
                rows.append(_row(model, check, None, SLACK, None, "needs pgd and a stronger run of it (pgd_restarts, pgd_long)"))
        gradient = [a for a in ATTACKS.with_tag("gradient") if a in has]
        free = [a for a in ATTACKS.names() if a in has and a not in gradient]
        rows.append(gap(c[gradient].min(axis=1), c[free].min(axis=1), "gradient_free_not_stronger")
                    if free and gradient
                    else _row(model, "gradient_free_not_stronger", None, SLACK, None,
                              "needs a gradient-free and a gradient attack"))

        t = transfer[(transfer["epsilon"] > 0) & (transfer["target"] == model)] if not transfer.empty else transfer
        if t.empty or t["source"].nunique() < 2:
            rows.append(_row(model, "transfer_not_stronger", None, SLACK, None, "needs transfer_from and 2+ models"))
        else:
            means = t.groupby(["source", "epsilon"])["accuracy"].mean().unstack("source")
            white_box = means[model]
            others = means.drop(columns=model)
            excess = white_box - others.min(axis=1)
            eps = excess.idxmax()
            rows.append(_row(model, "transfer_not_stronger", float(excess.max()), SLACK, excess.max() <= SLACK,
                             f"at ε={eps:g}, from {others.loc[eps].idxmin()}"))
    return pd.DataFrame(rows)


def surviving_models(checks: pd.DataFrame) -> list[str]:
    """Models with no FLAG: their robustness numbers are not explained by masking."""
    flagged = set(checks.loc[checks["status"] == "FLAG", "model"])
    return [m for m in dict.fromkeys(checks["model"]) if m not in flagged]
