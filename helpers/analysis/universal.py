"""Universal perturbations across runs: fooling rates with their corrected intervals and the
paired comparisons of the models (the attack stage's ``universal`` and ``universal_transfer``
tables; docs/universal.md)."""
from __future__ import annotations

import numpy as np
import pandas as pd

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
