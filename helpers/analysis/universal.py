"""Universal perturbations across runs: fooling rates with their corrected intervals and the
paired comparisons of the models (the attack stage's ``universal`` and ``universal_transfer``
tables; docs/universal.md)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .masking import RUN_COLUMNS, STRONG_PER_INPUT, UNIVERSAL_CHECKS, Test, check_row, decide, mcnemar
from .statistics import ACCURACY_BOUNDS, holm, paired_tests, summarize_runs

# The measures of the ``universal`` table summarised across runs (per model, ε and target).
MEASURES = ("fooling_rate", "accuracy", "baseline_fooling_rate", "success_rate", "baseline_success_rate")
ALL_TARGETS = "all"  # the target of the per-run mean over every target class


def universal_stats(universal: pd.DataFrame, transfer: pd.DataFrame, ratio: float = 0.0) -> pd.DataFrame:
    """Mean, sd and corrected 95% t-interval across runs (``summarize_runs``) of every measure:
    one row per model, ε, target (``none``, each class, and ``all``: the per-run mean over the
    target classes) and ``measure``; then the transfer matrix's fooling rate and accuracy
    (``measure`` ``transfer_fooling_rate``, ``transfer_accuracy``, with ``target_model``)."""
    table = universal.assign(target=universal["target"].astype(str))
    targeted = table[table["target"] != "none"]
    if not targeted.empty:
        mean = targeted.groupby(["run", "model", "epsilon"], sort=False)[list(MEASURES)].mean().reset_index()
        table = pd.concat([table, mean.assign(target=ALL_TARGETS)], ignore_index=True)
    frames = []
    for measure in MEASURES:
        rows = table.dropna(subset=[measure])
        if not rows.empty:
            frames.append(summarize_runs(rows, ["model", "epsilon", "target"], measure, ratio=ratio,
                                         bounds=ACCURACY_BOUNDS).assign(measure=measure))
    for measure in ("fooling_rate", "accuracy"):
        frames.append(summarize_runs(transfer.rename(columns={"source": "model"}), ["model", "target_model", "epsilon"],
                                     measure, ratio=ratio, bounds=ACCURACY_BOUNDS).assign(measure=f"transfer_{measure}"))
    out = pd.concat(frames, ignore_index=True)
    columns = ["model", "target_model", "epsilon", "target", "measure", "mean", "sd", "ci_low", "ci_high", "n_runs",
               "all_equal", "clipped"]
    return out.reindex(columns=columns)


def universal_tests(universal: pd.DataFrame, models: dict, ratio: float = 0.0) -> pd.DataFrame:
    """Paired comparisons of the untargeted fooling rates, per ε and pair of models (a − b
    across runs, ``statistics.paired_tests``: corrected interval and p), Holm-adjusted over
    every pair and ε (``p_holm``). ``quantum_vs_matched`` marks the pairs of a circuit and a
    capacity-matched MLP (``models``: the config's models as plain data, name -> spec)."""
    untargeted = universal[universal["target"].astype(str) == "none"]
    names = list(models)
    table = untargeted.assign(attack="universal", accuracy=untargeted["fooling_rate"])
    tests = paired_tests(table, "universal", names, ratio)
    if tests.empty:
        return tests.assign(p_holm=[], quantum_vs_matched=[])
    tests = tests.rename(columns={"attack": "measure"}).assign(measure="fooling_rate")
    tests["p_holm"] = holm(tests["p_value"].to_numpy())
    kind = {name: spec.get("type") for name, spec in models.items()}
    quantum = {name for name, t in kind.items() if _is_quantum(t)}
    tests["quantum_vs_matched"] = [
        bool({a, b} & quantum) and bool({kind[a], kind[b]} & {"matched_mlp"})
        for a, b in zip(tests["model_a"], tests["model_b"])]
    return tests


def _is_quantum(model_type) -> bool:
    from ..registry import MODELS

    return model_type in MODELS.names() and "quantum" in MODELS[model_type].tags


def transfer_grid(transfer: pd.DataFrame, models, epsilon: float, measure: str = "fooling_rate") -> np.ndarray:
    """(sources, targets) mean over runs of ``measure`` of each source model's δ on each model at ``epsilon``."""
    means = transfer[transfer["epsilon"] == epsilon].groupby(["source", "target_model"])[measure].mean()
    return means.unstack("target_model").reindex(index=list(models), columns=list(models)).to_numpy()


def universal_checks(universal: pd.DataFrame, degenerate=(), transfer: pd.DataFrame | None = None,
                     runs: int = 1) -> pd.DataFrame:
    """The masking checks of universal perturbations, one row per model, run and check (as
    ``run_checks``), from the attack stage's ``universal`` table (its untargeted rows):

    - ``universal_within_worst_case``: one δ is one candidate per point, so every point it
      fools should be fooled by some per-input attack at the same ε: a containment whose true
      count is zero, so any point fooled by δ that survived the per-input worst case
      (``beyond_worst_case``) FLAGs: the per-input attacks are weak there.
    - ``universal_beats_noise``: at the largest ε where the per-input worst case is at most
      ``STRONG_PER_INPUT`` (the gradients lead somewhere), a paired test on the points the
      universal and the random δ fool (``only_random`` against ``only_universal``): FLAG when the
      random δ fools significantly more: the universal attack itself is blind and its rates say
      nothing. SKIP where the per-input attacks are never strong.
    - ``universal_transfer_not_stronger`` (with ``transfer``, the ``universal_transfer``
      table): at each ε, a paired test of each other model's δ against the model's own
      (``only_source`` against ``only_own``): FLAG when another's fools significantly more
      points: the model's own universal perturbation was not found (its gradients misled the
      crafting), so its universal fooling rate is a lower bound. SKIP with fewer than two models.

    The paired tests of a (model, run) are one family, adjusted as ``run_checks``'s are.
    """
    degenerate = set(map(tuple, degenerate))
    u = universal[universal["target"].astype(str) == "none"] if not universal.empty else universal
    rows = []
    for (model, run), group in u.groupby(["model", "run"], sort=False):
        if (model, run) in degenerate:
            rows += [check_row(model, run, check, status="DEGENERATE", detail="degenerate run: not checked")
                     for check in UNIVERSAL_CHECKS]
            continue
        known = group.sort_values("epsilon").reset_index(drop=True).dropna(subset=["worst_case_accuracy"])
        tests = {"universal_beats_noise": _beats_noise_tests(known)}
        if transfer is not None:
            tests["universal_transfer_not_stronger"] = _universal_transfer_tests(model, run, transfer)
        rows += [_within_worst_case_row(model, run, known), *decide(model, run, tests, runs)]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _within_worst_case_row(model, run, known: pd.DataFrame) -> dict:
    """The points one δ fools that survived every per-input attack (``known``: the budgets with
    a per-input worst case): FLAG at any."""
    if known.empty:
        return check_row(model, run, "universal_within_worst_case", status="SKIP", detail="no per-input worst case at these ε")
    at = known["beyond_worst_case"].idxmax()
    count = int(known.loc[at, "beyond_worst_case"])
    return check_row(model, run, "universal_within_worst_case", count / known.loc[at, "n"], 0.0,
                "FLAG" if count else "PASS",
                f"at ε={known.loc[at, 'epsilon']:g}: {count} points fooled by δ survived every per-input attack",
                violating=count)


def _beats_noise_tests(known: pd.DataFrame) -> list[Test] | str:
    """The universal δ against a random δ at the largest ε where the per-input attacks are strong."""
    strong = known[known["worst_case_accuracy"] <= STRONG_PER_INPUT]
    if strong.empty:
        return f"the per-input worst case stays above {STRONG_PER_INPUT:g} at every universal ε"
    last = strong.iloc[-1]
    v, a = int(last["only_random"]), int(last["only_universal"])
    return [Test("universal_beats_noise", float(last["epsilon"]),
                 f": fooling rate {last['fooling_rate']:.2f}, random δ {last['baseline_fooling_rate']:.2f}",
                 p=mcnemar(v, a), value=(v - a) / max(float(last["n_clean_correct"]), 1.0), violating=v, agreeing=a)]


def _universal_transfer_tests(model, run, transfer: pd.DataFrame) -> list[Test] | str:
    """Each other model's δ on this model against its own δ, at each ε."""
    t = transfer[(transfer["target_model"] == model) & (transfer["run"] == run)] if not transfer.empty else transfer
    if t.empty or t["source"].nunique() < 2:
        return "needs two or more models"
    return [Test("universal_transfer_not_stronger", float(r.epsilon), f", the δ of {r.source} against its own",
                 p=mcnemar(int(r.only_source), int(r.only_own)), value=(r.only_source - r.only_own) / r.n,
                 violating=int(r.only_source), agreeing=int(r.only_own))
            for r in t[t["source"] != model].itertuples()]
