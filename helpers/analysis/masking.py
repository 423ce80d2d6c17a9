"""Gradient-masking checks (Carlini et al. 2019; Athalye et al. 2018), per model and run.

A model whose gradients vanish, shatter or are random looks robust to gradient attacks while
staying fragile. Each check compares attacks whose order of strength is known: attack A should
break at least the points attack B breaks. In one run both ran on the same points, so the check
is an exact paired test (McNemar's, one-sided): of the points where the two disagree, B alone
broke ``violating`` and A alone ``agreeing``; if A is at least as strong, a disagreement goes
B's way with probability at most one half, and the p-value is P(Binomial(violating + agreeing,
1/2) ≥ violating). ``large_epsilon`` has no second attack: an exact binomial test that PGD's
accuracy at the largest masking budget exceeds ``LARGE_EPSILON_MAX_ACCURACY``.

Every test of one model is one family: its p-values in a run (checks × budgets × attack pairs)
are Holm-adjusted within the run and multiplied by the number of runs (Bonferroni across
runs), so a model is flagged by chance, over the whole study, with probability at most
``ALPHA``. A run FLAGs a check when one of its tests' adjusted p is at most ``ALPHA``; the row
shows that test: its budget, its counts, the accuracy by which B beat A (``value``) and the
value the test holds it to (``threshold``: 0; ``large_epsilon``: the ceiling). A model FLAGs
when any of its runs does (a mean over runs would hide one masked run of ten). Which attacks
follow gradients, and which are stronger runs of PGD, the attack registry's tags
(``gradient``) and ``refines`` say: a new attack enters the checks by declaring them.
Degenerate runs (``models.csv``) are not checked: they sit at the class prior at every budget,
which would fail or pass a check for the wrong reason; they are counted instead.

A randomised model (finite shots, noise) has noisy gradients by construction, the textbook
false robustness (Athalye et al. 2018): every attack averages its gradients and losses over
``eot_samples`` passes (EOT), and ``eot_convergence`` asks whether four times as many passes
(``pgd_eot``) break more points. Its per-point outcome is correct when at least half its passes
are. The check does not apply to deterministic models (SKIP).

A flag asks whether the attacks underestimate what can be done; escalation answers it by
attacking harder (``attack.escalation``, transfer from every other model), and
``escalation_checks`` re-runs each flagged check with those attacks counted (``recheck``):
a flag is resolved only when the re-run passes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..registry import ATTACKS
from .evaluation import WORST_CASE, decode
from .multiplicity import holm

ALPHA = 0.05                        # per model: the chance of a flag in an honest study, over all its tests
LARGE_EPSILON_MAX_ACCURACY = 0.10   # PGD accuracy significantly above this at the largest masking budget FLAGs

CHECKS = {
    "large_epsilon": "PGD accuracy at the largest masking budget is near zero",
    "pgd_not_weaker_than_fgsm": "PGD is never weaker than FGSM",
    "pgd_converged": "the stronger runs of PGD (restarts, more steps) do not break more points than PGD",
    "more_iterations_do_not_help_the_model": "more PGD steps or restarts never break fewer points than PGD",
    "gradient_free_not_stronger": "the gradient-free attacks never break more points than the gradient attacks",
    "transfer_not_stronger": "transfer from another model never breaks more points than the white-box attack",
    "eot_convergence": "on a randomised model, PGD with 4× the EOT passes (pgd_eot) does not break more points",
}
# The checks of universal perturbations (``universal_checks``), only where a config has them.
UNIVERSAL_CHECKS = {
    "universal_within_worst_case": "a universal perturbation fools no point that survived the per-input worst case "
                                   "(else the per-input attacks are weak)",
    "universal_beats_noise": "where the per-input attacks are strong, a random perturbation of the same norm never "
                             "fools more points than the universal one",
    "universal_transfer_not_stronger": "another model's universal perturbation never fools more of a model's points "
                                       "than its own",
}
DESCRIPTIONS = {**CHECKS, **UNIVERSAL_CHECKS}  # every check's description, by name
# Universal checks about the universal numbers themselves, not the per-input ones: a FLAG makes
# the model's universal fooling rates lower bounds and leaves its robust accuracy alone.
UNIVERSAL_QUALITY = ("universal_beats_noise", "universal_transfer_not_stronger")
STRONG_PER_INPUT = 0.5  # per-input worst-case accuracy at or below this: the gradient attacks find their way
STATUSES = ("PASS", "FLAG", "SKIP", "DEGENERATE")
RUN_COLUMNS = ["model", "run", "check", "status", "value", "threshold", "violating", "agreeing", "p_value",
               "p_adjusted", "description", "detail"]


def mcnemar(violating: int, agreeing: int) -> float:
    """One-sided exact McNemar p-value: P(Binomial(violating + agreeing, 1/2) ≥ violating), 1
    when the two attacks never disagree."""
    return float(stats.binom.sf(violating - 1, violating + agreeing, 0.5)) if violating + agreeing else 1.0


@dataclass
class Test:
    """One paired comparison of a run at one budget: ``a`` (should be the stronger) and ``b``
    per point, True where the point survived; or, with ``p`` given, a test of its own."""
    check: str
    epsilon: float
    label: str
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    p: float | None = None
    value: float = np.nan
    threshold: float = 0.0
    violating: int = 0
    agreeing: int = 0

    def __post_init__(self):
        if self.p is None:
            self.violating, self.agreeing = int((self.a & ~self.b).sum()), int((~self.a & self.b).sum())
            self.value = (self.violating - self.agreeing) / len(self.a)
            self.p = mcnemar(self.violating, self.agreeing)


def outcome_index(outcomes: pd.DataFrame) -> dict[tuple, dict[tuple, np.ndarray]]:
    """The ``outcomes`` table decoded: per (model, run), {(table, attack, ε): (N,) bool}."""
    index: dict[tuple, dict[tuple, np.ndarray]] = {}
    for r in outcomes.itertuples(index=False):
        index.setdefault((r.model, r.run), {})[(r.table, r.attack, float(r.epsilon))] = decode(r.correct, int(r.n))
    return index


class _Run:
    """The per-point outcomes of one model in one run, and the attacks the checks read: the
    configured ones (``methods``), or with ``recheck`` every one that ran, escalation included."""

    def __init__(self, model: str, outcomes: dict[tuple, np.ndarray], methods=None, recheck: bool = False):
        self.model, self.o, self.recheck = model, outcomes, recheck
        ran = dict.fromkeys(a for (t, a, _) in outcomes if t == "robustness" and a != WORST_CASE)
        self.has = [a for a in ran if recheck or methods is None or a in methods]
        self.extra = [a for a in ran if methods is not None and a not in methods]  # escalation's, in a re-check
        self.epsilons = sorted({e for (t, _, e) in outcomes if t == "robustness" and e > 0})

    def survived(self, attacks, epsilon) -> np.ndarray:
        return np.logical_and.reduce([self.o[("robustness", a, epsilon)] for a in attacks])

    def pairs(self, check, a_names, b_names, label="") -> list[Test]:
        """At every budget: A = surviving every attack of ``a_names``, B = every one of ``b_names``."""
        return [Test(check, e, label, self.survived(a_names, e), self.survived(b_names, e)) for e in self.epsilons]


def _refined(has) -> list[str]:
    return [e.name for e in ATTACKS.entries() if e.refines == "pgd" and e.name in has and e.name != "pgd_eot"]


def _pgd_tests(r: _Run) -> dict[str, list[Test] | str]:
    """PGD against FGSM, and PGD against its stronger runs both ways; in the re-check PGD's side
    is PGD with every stronger run of it, and convergence asks whether the escalated runs break
    more than the configured ones."""
    has, refined = r.has, _refined(r.has)
    configured = [a for a in refined if a not in r.extra]
    pgd_side = ["pgd", *refined] if r.recheck else ["pgd"]
    tests: dict[str, list[Test] | str] = {
        "pgd_not_weaker_than_fgsm": r.pairs("pgd_not_weaker_than_fgsm", pgd_side, ["fgsm"])
        if {"pgd", "fgsm"} <= set(has) else "needs fgsm and pgd"}
    converged_b = [a for a in refined if a in r.extra] if r.recheck else configured
    converged_a = ["pgd", *configured] if r.recheck else ["pgd"]
    tests["pgd_converged"] = [t for b in converged_b for t in r.pairs("pgd_converged", converged_a, [b], f", {b}")] \
        if "pgd" in has and converged_b else "needs pgd and a stronger run of it (pgd_restarts, pgd_long)"
    tests["more_iterations_do_not_help_the_model"] = \
        [t for a in refined for t in r.pairs("more_iterations_do_not_help_the_model", [a], ["pgd"], f", {a}")] \
        if "pgd" in has and refined else "needs pgd and a stronger run of it"
    return tests


def _run_tests(r: _Run, stochastic: bool = False, any_stochastic: bool = False) -> dict:
    """Every check's tests for one run (a string: why the check SKIPs)."""
    has = r.has
    tests = {"large_epsilon": _large_epsilon_tests(r)}
    tests.update(_pgd_tests(r))
    gradient = [a for a in ATTACKS.with_tag("gradient") if a in has]
    free = [a for a in ATTACKS.names() if a in has and a not in gradient]
    tests["gradient_free_not_stronger"] = r.pairs("gradient_free_not_stronger", gradient, free) \
        if gradient and free else "needs a gradient-free and a gradient attack"
    tests["transfer_not_stronger"] = _transfer_tests(r, gradient)
    if any_stochastic:  # an experiment without randomised models has no EOT check at all
        tests["eot_convergence"] = ("deterministic model: EOT does not apply" if not stochastic
                                    else r.pairs("eot_convergence", ["pgd"], ["pgd_eot"], ", pgd against pgd_eot")
                                    if {"pgd", "pgd_eot"} <= set(has) else "needs pgd and pgd_eot in attack.methods")
    return tests


def _large_epsilon_tests(r: _Run) -> list[Test] | str:
    """PGD's accuracy at the largest masking budget against its ceiling (exact binomial). (Its
    re-check is not here: ``escalation_checks`` asks for evidence at the study's own budgets.)"""
    large = sorted(e for (t, _, e) in r.o if t == "large_epsilon")
    if not large:
        return "no masking_epsilons"
    correct = next(v for (t, _, e), v in r.o.items() if t == "large_epsilon" and e == large[-1])
    k, n = int(correct.sum()), len(correct)
    return [Test("large_epsilon", large[-1], ", PGD", p=float(stats.binom.sf(k - 1, n, LARGE_EPSILON_MAX_ACCURACY)),
                 value=k / n, threshold=LARGE_EPSILON_MAX_ACCURACY, violating=k, agreeing=n - k)]


def _transfer_tests(r: _Run, gradient) -> list[Test] | str:
    """The white-box attack (the transfer source attack on the model itself; in the re-check
    with every gradient attack) against transfer from each other model."""
    own = f"transfer:{r.model}"
    sources = [a for (t, a, e) in r.o if t == "transfer" and a != own and e == r.epsilons[0]] if r.epsilons else []
    if not sources or ("transfer", own, r.epsilons[0]) not in r.o:
        return "needs transfer_from and 2+ models"
    tests = []
    for source in sources:
        for e in r.epsilons:
            a = r.o[("transfer", own, e)] & (r.survived(gradient, e) if r.recheck and gradient else True)
            tests.append(Test("transfer_not_stronger", e, f", from {source.split(':', 1)[1]}", a, r.o[("transfer", source, e)]))
    return tests


def run_checks(outcomes: pd.DataFrame, methods=None, degenerate=(), stochastic=(), runs: int = 1,
               recheck: bool = False) -> pd.DataFrame:
    """One row per model, run and check (``RUN_COLUMNS``): status PASS / FLAG / SKIP (attacks
    not run, or the check does not apply to the model) / DEGENERATE (the run is degenerate: not
    checked), and the test that decided it (see the module's docstring).

    ``outcomes``: the attack stage's ``outcomes`` table; ``methods``: the configured attacks
    (None: every attack in it), the suite the checks diagnose (escalation attacks left out);
    ``recheck``: count the escalation attacks too (``escalation_checks``); ``degenerate``:
    (model, run) pairs; ``stochastic``: the names of the randomised models, the only ones
    ``eot_convergence`` applies to (an experiment without any has no ``eot_convergence`` rows);
    ``runs``: the study's number of runs, over which the family's error is split."""
    degenerate, stochastic = set(map(tuple, degenerate)), set(stochastic)
    rows = []
    for (model, run), o in outcome_index(outcomes).items():
        if (model, run) in degenerate:  # the EOT check exists only with randomised models
            rows += [check_row(model, run, check, status="DEGENERATE", detail="degenerate run: not checked")
                     for check in CHECKS if check != "eot_convergence" or stochastic]
            continue
        tests = _run_tests(_Run(model, o, methods, recheck), model in stochastic, bool(stochastic))
        rows += decide(model, run, tests, runs)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def decide(model, run, tests: dict[str, list[Test] | str], runs: int) -> list[dict]:
    """The rows of one run's checks: its tests' p-values Holm-adjusted as one family and
    multiplied by ``runs``; each check shown by its most significant test."""
    family = [t for found in tests.values() if not isinstance(found, str) for t in found]
    adjusted = dict(zip(map(id, family), np.minimum(1.0, holm([t.p for t in family]) * runs))) if family else {}
    rows = []
    for check, found in tests.items():
        if isinstance(found, str) or not found:
            rows.append(check_row(model, run, check, status="SKIP", detail=found or "no budget above 0"))
            continue
        t = min(found, key=lambda t: (adjusted[id(t)], -t.value))
        p_adj = float(adjusted[id(t)])
        rows.append(check_row(model, run, check, t.value, t.threshold, "FLAG" if p_adj <= ALPHA else "PASS",
                              f"at ε={t.epsilon:g}{t.label}", t.violating, t.agreeing, t.p, p_adj))
    return rows


def check_row(model, run, check, value=None, threshold=None, status=None, detail="", violating=None, agreeing=None,
         p_value=None, p_adjusted=None) -> dict:
    return {"model": model, "run": run, "check": check, "status": status, "value": value, "threshold": threshold,
            "violating": violating, "agreeing": agreeing, "p_value": p_value, "p_adjusted": p_adjusted,
            "description": DESCRIPTIONS[check], "detail": detail}


def masking_checks(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model and check from the per-run checks (``run_checks``): FLAG when any
    checked run FLAGs, PASS when every checked run passes, SKIP when the check could not run,
    DEGENERATE when no run was checked; ``runs_flagged`` of ``runs_checked`` (and
    ``runs_degenerate``), and the run whose test was the most significant: its value,
    threshold, adjusted p and detail."""
    rows = []
    for (model, check), group in runs.groupby(["model", "check"], sort=False):
        checked = group[group["status"].isin(["PASS", "FLAG"])]
        flagged = checked[checked["status"] == "FLAG"]
        if checked.empty:
            status = "DEGENERATE" if (group["status"] == "DEGENERATE").all() else "SKIP"
            worst = group.iloc[0]
        else:
            status = "FLAG" if len(flagged) else "PASS"
            worst = checked.assign(order=checked["p_adjusted"].fillna(1.0 - (checked["status"] == "FLAG"))) \
                .sort_values(["order", "value"], ascending=[True, False]).iloc[0]
        rows.append({"model": model, "check": check, "status": status,
                     "value": worst["value"] if not checked.empty else np.nan, "threshold": worst["threshold"],
                     "p_adjusted": worst["p_adjusted"] if not checked.empty else np.nan,
                     "runs_flagged": len(flagged), "runs_checked": len(checked),
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


ESCALATION_COLUMNS = ["model", "run", "check", "escalated", "status_after", "resolved", "points_escalation_broke",
                      "worst_case_drop", "deciding_attack", "detail_after"]


def escalation_checks(runs: pd.DataFrame, escalation: pd.DataFrame, outcomes: pd.DataFrame, methods=None,
                      degenerate=(), stochastic=(), n_runs: int = 1) -> pd.DataFrame:
    """For every check that flagged a run (``runs``: ``run_checks`` of the configured suite):
    the check re-run with the escalation attacks and transfer from every other model counted
    (``run_checks(..., recheck=True)`` on ``outcomes``), and what it says (``status_after``;
    ``resolved`` only when it passes). ``large_epsilon`` is resolved only by evidence at the
    study's own budgets: escalation broke no point there that the configured attacks left
    standing (``points_escalation_broke``, the largest count over the budgets, exact: the
    worst case before escalation less after, from ``escalation``); reaching the ceiling at the
    whole box would prove nothing. A run not escalated at its budgets stays flagged. Also: how
    far escalation lowered the worst case, and the attack that fooled the most points alone."""
    flagged = runs[runs["status"] == "FLAG"]
    if flagged.empty:
        return pd.DataFrame(columns=ESCALATION_COLUMNS)
    rechecked = run_checks(outcomes, methods, degenerate, stochastic, n_runs, recheck=True) \
        .set_index(["model", "run", "check"])
    rows = []
    for r in flagged.itertuples():
        e = escalation[(escalation["model"] == r.model) & (escalation["run"] == r.run)]
        budget = e[e["kind"] == "budget"]
        drop = float((budget["before"] - budget["after"]).max()) if not budget.empty else np.nan
        broke = int(round(((budget["before"] - budget["after"]) * budget["n"]).max())) if not budget.empty else None
        deciding = budget.sort_values("after").iloc[0]["deciding"] if not budget.empty else ""
        if budget.empty:  # not escalated at the budgets: no evidence either way
            status, detail = "FLAG", "not escalated at the study's budgets"
        elif r.check == "large_epsilon":
            status = "PASS" if broke == 0 else "FLAG"
            detail = f"escalation broke {broke} more points at the study's budgets"
        else:
            after = rechecked.loc[(r.model, r.run, r.check)]
            status, detail = after["status"], after["detail"]
        rows.append({"model": r.model, "run": r.run, "check": r.check, "escalated": not e.empty,
                     "status_after": status, "resolved": status == "PASS", "points_escalation_broke": broke,
                     "worst_case_drop": drop, "deciding_attack": deciding, "detail_after": detail})
    return pd.DataFrame(rows, columns=ESCALATION_COLUMNS)
