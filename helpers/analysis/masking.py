"""Gradient-masking checks (Carlini et al. 2019; Athalye et al. 2018), per model and run.

A model whose gradients vanish, shatter or are random looks robust to gradient attacks while
staying fragile. Each check compares attacks whose order of strength is known; a run FLAGs
when its evaluation contradicts that order by more than the noise of its own test points, and
a model FLAGs when any of its runs does (a mean over runs would hide one masked run of ten).
Which attacks follow gradients, and which are stronger runs of PGD, the attack registry's
tags (``gradient``) and ``refines`` say: a new attack enters the checks by declaring them.

The tolerance of a comparison between two accuracies p_a and p_b on the same n test points
is two binomial standard errors of their mean, 2·sqrt(p(1 − p)/n), and at least one point
(1/n): a smaller violation is what the attacks' own randomness produces on n points. The
large-budget check has a fixed ceiling instead. Degenerate runs (``models.csv``) are not
checked: they sit at the class prior at every budget, which would fail or pass a check for the
wrong reason; they are counted instead.

A randomised model (finite shots, noise) has noisy gradients by construction, the textbook
false robustness (Athalye et al. 2018): every attack averages its gradients and losses over
``eot_samples`` passes (EOT), and ``eot_convergence`` asks whether four times as many passes
(``pgd_eot``) lower the accuracy further. The other checks read the same EOT attacks, so
"gradient-free beats gradient" on such a model means EOT has not converged, not that its
gradients are noisy. The check does not apply to deterministic models (SKIP).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..registry import ATTACKS

LARGE_EPSILON_MAX_ACCURACY = 0.10   # PGD accuracy above this at the largest masking budget FLAGs

CHECKS = {
    "large_epsilon": "PGD accuracy at the largest masking budget is near zero",
    "pgd_not_weaker_than_fgsm": "PGD is never weaker than FGSM",
    "pgd_converged": "the stronger runs of PGD (restarts, more steps) do not lower the worst case materially",
    "more_iterations_do_not_help_the_model": "more PGD steps or restarts never raise accuracy materially",
    "gradient_free_not_stronger": "the gradient-free attack is never much stronger than the gradient attacks",
    "transfer_not_stronger": "transfer from another model is never stronger than the white-box attack",
    "eot_convergence": "on a randomised model, PGD with 4× the EOT passes (pgd_eot) does not lower accuracy materially",
}
# The checks of universal perturbations (``universal_checks``), only where a config has them.
UNIVERSAL_CHECKS = {
    "universal_within_worst_case": "a universal perturbation fools no more points than the per-input worst case "
                                   "(else the per-input attacks are weak)",
    "universal_beats_noise": "where the per-input attacks are strong, the universal perturbation fools more "
                             "than a random one of the same norm",
    "universal_transfer_not_stronger": "another model's universal perturbation never fools a model much more "
                                       "than its own",
}
DESCRIPTIONS = {**CHECKS, **UNIVERSAL_CHECKS}  # every check's description, by name
# Universal checks about the universal numbers themselves, not the per-input ones: a FLAG makes
# the model's universal fooling rates lower bounds and leaves its robust accuracy alone.
UNIVERSAL_QUALITY = ("universal_beats_noise", "universal_transfer_not_stronger")
STRONG_PER_INPUT = 0.5  # per-input worst-case accuracy at or below this: the gradient attacks find their way
STATUSES = ("PASS", "FLAG", "SKIP", "DEGENERATE")


def tolerance(p_a, p_b, n) -> np.ndarray:
    """Two binomial standard errors of the mean of accuracies ``p_a`` and ``p_b`` on ``n``
    points, at least one point (1/n)."""
    p = (np.asarray(p_a, dtype=float) + np.asarray(p_b, dtype=float)) / 2
    n = np.asarray(n, dtype=float)
    return np.maximum(1 / n, 2 * np.sqrt(p * (1 - p) / n))


def _gap(stronger: pd.Series, weaker: pd.Series, n: pd.Series) -> tuple[float, float, float, bool]:
    """(largest excess of the supposedly stronger attack's accuracy over the weaker's, the ε
    where it is largest relative to its tolerance, that tolerance, whether any ε exceeds it)."""
    excess = stronger - weaker
    allowed = pd.Series(tolerance(stronger, weaker, n), index=excess.index)
    margin = excess - allowed
    eps = margin.idxmax()
    return float(excess.max()), float(eps), float(allowed[eps]), bool((margin > 0).any())


def run_checks(robustness: pd.DataFrame, transfer: pd.DataFrame, large_epsilon: pd.DataFrame,
               convergence: pd.DataFrame | None = None, degenerate=(), stochastic=()) -> pd.DataFrame:
    """One row per model, run and check: status PASS / FLAG / SKIP (attacks not run, or the
    check does not apply to the model) / DEGENERATE (the run is degenerate: not checked), the
    measured violation ``value``, the ``threshold`` it was held to and ``detail`` (where).
    ``degenerate``: (model, run) pairs; ``stochastic``: the names of the randomised models
    (``attacks.is_stochastic``), the only ones ``eot_convergence`` applies to (an experiment
    without any has no ``eot_convergence`` rows)."""
    degenerate, stochastic = set(map(tuple, degenerate)), set(stochastic)
    r = robustness[robustness["epsilon"] > 0]
    acc = r.pivot_table(index=["model", "run", "epsilon"], columns="attack", values="accuracy")
    n = r.groupby(["model", "run", "epsilon"])["n"].first()
    base = (convergence[convergence["epsilon"] > 0].set_index(["model", "run", "epsilon"])["accuracy"].sort_index()
            if convergence is not None and not convergence.empty else None)
    rows = []
    for model, run in dict.fromkeys(zip(robustness["model"], robustness["run"])):
        if (model, run) in degenerate:  # the EOT check exists only with randomised models
            rows += [_row(model, run, check, status="DEGENERATE", detail="degenerate run: not checked")
                     for check in CHECKS if check != "eot_convergence" or stochastic]
            continue
        c, counts = acc.loc[(model, run)], n.loc[(model, run)]
        rows.append(_large_epsilon_row(model, run, large_epsilon))
        rows += _attack_order_rows(model, run, c, counts, base.loc[(model, run)] if base is not None else None)
        rows.append(_transfer_row(model, run, transfer))
        if stochastic:  # an experiment without randomised models has no EOT check at all
            rows.append(_eot_row(model, run, c, counts, model in stochastic))
    return pd.DataFrame(rows)


def _row(model, run, check, value=None, threshold=None, status=None, detail="") -> dict:
    return {"model": model, "run": run, "check": check, "status": status, "value": value, "threshold": threshold,
            "description": DESCRIPTIONS[check], "detail": detail}


def _gap_row(model, run, check, stronger, weaker, counts, label="") -> dict:
    value, eps, allowed, flagged = _gap(stronger, weaker, counts)
    return _row(model, run, check, value, allowed, "FLAG" if flagged else "PASS", f"at ε={eps:g}{label}")


def _large_epsilon_row(model, run, large_epsilon: pd.DataFrame) -> dict:
    """PGD's accuracy at the largest masking budget against its ceiling."""
    large = large_epsilon[(large_epsilon["model"] == model) & (large_epsilon["run"] == run)] \
        if not large_epsilon.empty else large_epsilon
    if large.empty:
        return _row(model, run, "large_epsilon", None, LARGE_EPSILON_MAX_ACCURACY, "SKIP", "no masking_epsilons")
    last = large.sort_values("epsilon").iloc[-1]
    return _row(model, run, "large_epsilon", float(last["accuracy"]), LARGE_EPSILON_MAX_ACCURACY,
                "FLAG" if last["accuracy"] > LARGE_EPSILON_MAX_ACCURACY else "PASS", f"PGD at ε={last['epsilon']:g}")


def _attack_order_rows(model, run, c: pd.DataFrame, counts, base: pd.Series | None) -> list[dict]:
    """The checks between one run's attacks (``c``: accuracy per ε and attack; ``base``: the
    worst case without the stronger runs of PGD): PGD against FGSM, PGD converged, more
    iterations, gradient-free against gradient attacks."""
    has = set(c.columns)
    gradient = [a for a in ATTACKS.with_tag("gradient") if a in has]
    free = [a for a in ATTACKS.names() if a in has and a not in gradient]
    refined = [e.name for e in ATTACKS.entries() if e.refines == "pgd" and e.name in has]
    return [
        _gap_row(model, run, "pgd_not_weaker_than_fgsm", c["pgd"], c["fgsm"], counts) if {"pgd", "fgsm"} <= has
        else _row(model, run, "pgd_not_weaker_than_fgsm", status="SKIP", detail="needs fgsm and pgd"),
        _gap_row(model, run, "pgd_converged", base.reindex(c.index), c["worst_case"], counts,
                 ", worst case without the stronger runs of PGD against with them")
        if refined and base is not None and "worst_case" in has
        else _row(model, run, "pgd_converged", status="SKIP", detail="needs a stronger run of PGD (pgd_restarts, pgd_long)"),
        _gap_row(model, run, "more_iterations_do_not_help_the_model", c[refined].max(axis=1), c["pgd"], counts)
        if refined and "pgd" in has
        else _row(model, run, "more_iterations_do_not_help_the_model", status="SKIP",
                  detail="needs pgd and a stronger run of it"),
        _gap_row(model, run, "gradient_free_not_stronger", c[gradient].min(axis=1), c[free].min(axis=1), counts)
        if free and gradient
        else _row(model, run, "gradient_free_not_stronger", status="SKIP",
                  detail="needs a gradient-free and a gradient attack")]


def _transfer_row(model, run, transfer: pd.DataFrame) -> dict:
    """The model's white-box accuracy against the best transfer from another model."""
    t = transfer[(transfer["epsilon"] > 0) & (transfer["target"] == model) & (transfer["run"] == run)] \
        if not transfer.empty else transfer
    if t.empty or t["source"].nunique() < 2:
        return _row(model, run, "transfer_not_stronger", status="SKIP", detail="needs transfer_from and 2+ models")
    wide = t.pivot_table(index="epsilon", columns="source", values="accuracy")
    others = wide.drop(columns=model)
    value, eps, allowed, flagged = _gap(wide[model], others.min(axis=1), t.groupby("epsilon")["n"].first())
    return _row(model, run, "transfer_not_stronger", value, allowed, "FLAG" if flagged else "PASS",
                f"at ε={eps:g}, from {others.loc[eps].idxmin()}")


def _eot_row(model, run, c: pd.DataFrame, counts, stochastic: bool) -> dict:
    """PGD against PGD with expectation over transformation, for a randomised model."""
    if not stochastic:
        return _row(model, run, "eot_convergence", status="SKIP", detail="deterministic model: EOT does not apply")
    if {"pgd", "pgd_eot"} <= set(c.columns):
        return _gap_row(model, run, "eot_convergence", c["pgd"], c["pgd_eot"], counts,
                        ", pgd against pgd_eot (4× the passes per gradient)")
    return _row(model, run, "eot_convergence", status="SKIP", detail="needs pgd and pgd_eot in attack.methods")


def universal_checks(universal: pd.DataFrame, degenerate=(), transfer: pd.DataFrame | None = None) -> pd.DataFrame:
    """The masking checks of universal perturbations, one row per model, run and check (as
    ``run_checks``), from the attack stage's ``universal`` table (its untargeted rows):

    - ``universal_within_worst_case``: one δ is one candidate per point, so every point it
      fools should be fooled by some per-input attack at the same ε. The share of points it
      fools that survived the per-input worst case (``beyond_worst_case`` / n) FLAGs above the
      tolerance of the two accuracies (``tolerance``): the per-input attacks are weak there.
    - ``universal_beats_noise``: at the largest ε where the per-input worst case is at most
      ``STRONG_PER_INPUT`` (the gradients lead somewhere), the universal fooling rate must
      exceed the random δ's by more than the tolerance: otherwise the universal attack itself
      is blind and its rates say nothing. SKIP where the per-input attacks are never strong.
    - ``universal_transfer_not_stronger`` (with ``transfer``, the ``universal_transfer``
      table): the largest excess, over ε, of another model's δ's fooling rate on this model
      over its own δ's FLAGs above the tolerance: the model's own universal perturbation was
      not found (its gradients misled the crafting), so its universal fooling rate is a
      lower bound. SKIP with fewer than two models.
    """
    degenerate = set(map(tuple, degenerate))
    u = universal[universal["target"].astype(str) == "none"] if not universal.empty else universal
    rows = []
    for (model, run), group in u.groupby(["model", "run"], sort=False):
        if (model, run) in degenerate:
            rows += [_row(model, run, check, status="DEGENERATE", detail="degenerate run: not checked")
                     for check in UNIVERSAL_CHECKS]
            continue
        known = group.sort_values("epsilon").reset_index(drop=True).dropna(subset=["worst_case_accuracy"])
        rows += [_within_worst_case_row(model, run, known), _beats_noise_row(model, run, known)]
        if transfer is not None:
            rows.append(_universal_transfer_row(model, run, transfer))
    return pd.DataFrame(rows, columns=["model", "run", "check", "status", "value", "threshold", "description", "detail"])


def _within_worst_case_row(model, run, known: pd.DataFrame) -> dict:
    """The share of points one δ fools that survived every per-input attack (``known``: the
    budgets with a per-input worst case)."""
    if known.empty:
        return _row(model, run, "universal_within_worst_case", status="SKIP", detail="no per-input worst case at these ε")
    share = known["beyond_worst_case"] / known["n"]
    allowed = pd.Series(tolerance(known["accuracy"], known["worst_case_accuracy"], known["n"]), index=known.index)
    at = (share - allowed).idxmax()
    return _row(model, run, "universal_within_worst_case", float(share[at]), float(allowed[at]),
                "FLAG" if (share > allowed).any() else "PASS",
                f"at ε={known.loc[at, 'epsilon']:g}: {int(known.loc[at, 'beyond_worst_case'])} points fooled by δ "
                "survived every per-input attack")


def _beats_noise_row(model, run, known: pd.DataFrame) -> dict:
    """The universal fooling rate against a random δ's at the largest ε where the per-input
    attacks are strong."""
    strong = known[known["worst_case_accuracy"] <= STRONG_PER_INPUT]
    if strong.empty:
        return _row(model, run, "universal_beats_noise", status="SKIP",
                    detail=f"the per-input worst case stays above {STRONG_PER_INPUT:g} at every universal ε")
    last = strong.iloc[-1]
    counted = last["n_clean_correct"] if "n_clean_correct" in last and pd.notna(last["n_clean_correct"]) else last["n"]
    gain = float(last["fooling_rate"] - last["baseline_fooling_rate"])
    allowed = float(tolerance(last["fooling_rate"], last["baseline_fooling_rate"], max(counted, 1)))
    return _row(model, run, "universal_beats_noise", gain, allowed, "PASS" if gain > allowed else "FLAG",
                f"at ε={last['epsilon']:g}: fooling rate {last['fooling_rate']:.2f}, random δ "
                f"{last['baseline_fooling_rate']:.2f}")


def _universal_transfer_row(model, run, transfer: pd.DataFrame) -> dict:
    """The best other model's δ on this model against its own δ."""
    t = transfer[(transfer["target_model"] == model) & (transfer["run"] == run)] if not transfer.empty else transfer
    if t.empty or t["source"].nunique() < 2:
        return _row(model, run, "universal_transfer_not_stronger", status="SKIP", detail="needs two or more models")
    wide = t.pivot_table(index="epsilon", columns="source", values="fooling_rate")
    others = wide.drop(columns=model)
    value, eps, allowed, flagged = _gap(others.max(axis=1), wide[model], t.groupby("epsilon")["n"].first())
    return _row(model, run, "universal_transfer_not_stronger", value, allowed, "FLAG" if flagged else "PASS",
                f"at ε={eps:g}, the δ of {others.loc[eps].idxmax()} against its own")


def masking_checks(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model and check from the per-run checks (``run_checks``): FLAG when any
    checked run FLAGs, PASS when every checked run passes, SKIP when the check could not run,
    DEGENERATE when no run was checked; ``runs_flagged`` of ``runs_checked`` (and
    ``runs_degenerate``), the largest violation and the detail of the run where it occurred."""
    rows = []
    for (model, check), group in runs.groupby(["model", "check"], sort=False):
        checked = group[group["status"].isin(["PASS", "FLAG"])]
        flagged = checked[checked["status"] == "FLAG"]
        if checked.empty:
            status = "DEGENERATE" if (group["status"] == "DEGENERATE").all() else "SKIP"
            worst = group.iloc[0]
        else:
            status = "FLAG" if len(flagged) else "PASS"
            worst = (flagged if len(flagged) else checked).sort_values("value", ascending=False).iloc[0]
        rows.append({"model": model, "check": check, "status": status,
                     "value": worst["value"] if not checked.empty else np.nan,
                     "threshold": worst["threshold"], "runs_flagged": len(flagged), "runs_checked": len(checked),
                     "runs_degenerate": int((group["status"] == "DEGENERATE").sum()),
                     "description": group["description"].iloc[0],
                     "detail": f"run {worst['run']}: {worst['detail']}" if not checked.empty else worst["detail"]})
    return pd.DataFrame(rows)


def surviving_models(checks: pd.DataFrame) -> list[str]:
    """Models with no FLAG (of the universal checks, only ``universal_within_worst_case``
    counts: the others judge the universal numbers): their robustness numbers are not
    explained by masking."""
    flagged = set(checks.loc[(checks["status"] == "FLAG") & ~checks["check"].isin(UNIVERSAL_QUALITY), "model"])
    return [m for m in dict.fromkeys(checks["model"]) if m not in flagged]


def base_suite(robustness: pd.DataFrame, escalation: pd.DataFrame, methods) -> pd.DataFrame:
    """The robustness table as the configured attacks left it: without the escalation attacks,
    and with the worst case before escalation (what the masking checks diagnose)."""
    base = robustness[robustness["attack"].isin([*methods, "worst_case"])].copy()
    before = escalation[escalation["kind"] == "budget"].set_index(["model", "run", "epsilon"])["before"]
    if before.empty:
        return base
    rows = base["attack"] == "worst_case"
    keys = list(zip(base.loc[rows, "model"], base.loc[rows, "run"], base.loc[rows, "epsilon"]))
    base.loc[rows, "accuracy"] = [before.get(key, value) for key, value in zip(keys, base.loc[rows, "accuracy"])]
    return base


def escalation_checks(runs: pd.DataFrame, escalation: pd.DataFrame) -> pd.DataFrame:
    """For every check that flagged a run: whether escalation resolved it. Escalation answers
    the question every flag asks (do the attacks underestimate what can be done?) by attacking
    harder; a flag is resolved when that converged: for ``large_epsilon``, the escalation
    attacks drive accuracy at the largest masking budget to the ceiling; for the other checks,
    the escalation attacks and transfer from every other model lower the worst case at no
    budget by more than two binomial standard errors (the configured suite had found what they
    find). Also: how far escalation lowered the worst case, and the attack that fooled the
    most points alone."""
    rows = []
    for r in runs[runs["status"] == "FLAG"].itertuples():
        e = escalation[(escalation["model"] == r.model) & (escalation["run"] == r.run)]
        budget, masking = e[e["kind"] == "budget"], e[e["kind"] == "masking"]
        drop = float((budget["before"] - budget["after"]).max()) if not budget.empty else np.nan
        deciding = budget.sort_values("after").iloc[0]["deciding"] if not budget.empty else ""
        if e.empty or (r.check != "large_epsilon" and budget.empty):
            resolved = False  # not escalated (at the budgets): no evidence either way
        elif r.check == "large_epsilon":
            last = masking.sort_values("epsilon").iloc[-1] if not masking.empty else None
            resolved = last is not None and last["after"] <= LARGE_EPSILON_MAX_ACCURACY
        else:
            allowed = tolerance(budget["before"], budget["after"], budget["n"])
            resolved = not ((budget["before"] - budget["after"]) > allowed).any()
        rows.append({"model": r.model, "run": r.run, "check": r.check, "escalated": not e.empty,
                     "status_after": "PASS" if resolved else "FLAG", "resolved": resolved,
                     "worst_case_drop": drop, "deciding_attack": deciding})
    return pd.DataFrame(rows, columns=["model", "run", "check", "escalated", "status_after", "resolved",
                                       "worst_case_drop", "deciding_attack"])
