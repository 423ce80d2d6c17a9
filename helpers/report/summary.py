"""The experiment's Markdown summary, written from the result tables (no typed numbers)."""
from __future__ import annotations

import pandas as pd

from ..analysis.evaluation import WORST_CASE
from ..analysis.masking import surviving_models
from .tables import interval, markdown_table, robustness_table, widest_epsilon


def masking_section(checks: pd.DataFrame, models) -> list[str]:
    """Table of check statuses per model and a sentence on whose robustness claim survives."""
    table = checks.assign(cell=checks.apply(
        lambda r: r["status"] if pd.isna(r["value"]) else f"{r['status']} ({r['value']:.3f})", axis=1))
    wide = table.pivot(index="model", columns="check", values="cell").reindex(
        index=models, columns=list(dict.fromkeys(checks["check"]))).reset_index()
    survivors = surviving_models(checks)
    flagged = {m: list(checks[(checks["model"] == m) & (checks["status"] == "FLAG")]["check"]) for m in models
               if m not in survivors}
    verdict = []
    if survivors:
        verdict.append("The robustness numbers of " + ", ".join(f"`{m}`" for m in survivors)
                       + " survive every masking check: their worst-case accuracy is not explained by blinded gradients.")
    for m, names in flagged.items():
        verdict.append(f"`{m}` is flagged by {', '.join(names)}: read its robustness as an upper bound, "
                       "not as evidence that it is robust.")
    return ["Each check compares attacks whose order of strength is known; the value is the measured "
            "violation (accuracy), FLAG when it exceeds the tolerance.", "", markdown_table(wide), "",
            " ".join(verdict), ""]


def _paired_rows(p: pd.DataFrame, runs: bool = True) -> list[dict]:
    """Table rows of ``statistics.paired_tests`` output: difference, interval, d_z, p."""
    return [{"comparison": f"{r.model_a} − {r.model_b}",
             "mean difference [95% CI]": f"{r.mean_difference:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
             "Cohen's d_z": f"{r.cohens_dz:.2f}", "paired t-test p": f"{r.p_value:.2g}",
             **({"runs": r.n_runs} if runs else {})} for r in p.itertuples()]


def paired_section(paired: pd.DataFrame, epsilon: float) -> list[str]:
    """Paired comparisons across runs at one epsilon."""
    p = paired[paired["epsilon"] == epsilon]
    rows = _paired_rows(p)
    return [f"Paired across runs (same seed and split), {p['attack'].iloc[0].replace('_', ' ')} accuracy "
            f"at ε={epsilon:g}:", "", markdown_table(pd.DataFrame(rows)), ""] if rows else []


def _ranking_paragraph(curves: pd.DataFrame, clean: pd.DataFrame, models) -> list[str]:
    """Sentences comparing the models where they differ most, under the strongest attack."""
    attack = curves.groupby("attack")["mean"].mean().idxmin()  # lowest accuracy on average
    c = curves[(curves["attack"] == attack) & (curves["epsilon"] > 0)]
    if c.empty:
        return []
    eps = widest_epsilon(curves, attack)
    at = c[c["epsilon"] == eps].set_index("model").reindex(models).sort_values("mean", ascending=False)
    name = ("the per-sample worst case over all attacks" if attack == WORST_CASE
            else f"{attack.upper()}, the strongest attack on average")
    text = [f"Under {name}, the models differ most at ε={eps:g}: "
            + ", ".join(f"`{m}` {interval(r)}" for m, r in at.iterrows()) + "."]
    for (a, ra), (b, rb) in zip(list(at.iterrows())[:-1], list(at.iterrows())[1:]):
        if ra["ci_low"] > rb["ci_high"]:
            text.append(f"The intervals of `{a}` and `{b}` do not overlap.")
        else:
            text.append(f"The intervals of `{a}` and `{b}` overlap: these runs do not separate them.")
    params = clean.set_index("model")["parameters"]
    text.append("Trainable parameters: " + ", ".join(f"`{m}` {params[m]:,}" for m in models)
                + "; clean accuracies differ as well (table above). A robustness gap between models of such "
                "different capacity and clean accuracy is not by itself evidence about quantum models.")
    return [" ".join(text)]


def write_summary(cfg, tables: dict[str, pd.DataFrame]) -> str:
    """Markdown summary of one experiment, from the report's tables (``store.layout`` names):
    ``models`` (per model and run: parameters, clean_accuracy), ``stats`` (mean/CI of accuracy
    per model, attack and epsilon), ``attribution_summary`` (mean/CI of the per-run Spearman
    correlation per model and method), ``masking_checks``, ``paired_tests`` (every attack),
    ``auc``, ``attribution_metrics`` (infidelity and sensitivity, with their ``metric``),
    ``class_stats`` and ``large_epsilon`` (for ``report.reference``)."""
    models = list(cfg.models)
    curves, checks, auc = tables["stats"], tables["masking_checks"], tables["auc"]
    eps = sorted(curves["epsilon"].unique())
    training = cfg.training
    lines = [f"# Summary: experiment `{cfg.experiment}`", "",
             f"Data set `{cfg.dataset.name}` (classes {list(cfg.dataset.classes)}), {cfg.n_runs} Monte Carlo runs, "
             f"{training.epochs} epochs, batch {training.batch_size}, "
             f"Adam lr {training.learning_rate} for every model. Intervals are 95% t-intervals across runs.",
             "", "## Models", ""]
    clean = tables["models"].groupby("model", sort=False).agg(
        parameters=("parameters", "first"), clean_accuracy=("clean_accuracy", "mean"),
        n_test=("n_test", "first")).reindex(models).reset_index()
    clean["clean_accuracy"] = clean["clean_accuracy"].map("{:.3f}".format)
    lines += [markdown_table(clean), "", "## Robust accuracy", ""]
    lines += [markdown_table(robustness_table(curves, models, eps)), ""]

    lines += _ranking_paragraph(curves, clean, models)
    paired = tables["paired_tests"]
    paired = paired[paired["attack"] == headline_attack(curves)]
    if not paired.empty:
        lines += ["", *paired_section(paired, widest_epsilon(curves, paired["attack"].iloc[0]))]
    if not auc.empty:
        worst = auc.groupby("attack")["mean"].mean().idxmin()
        a = auc[auc["attack"] == worst].set_index("model").reindex(models)
        lines += [f"Area under the {worst.replace('_', ' ')} accuracy-vs-ε curve (normalised by the ε range; "
                  "1 = never fooled): " + ", ".join(f"`{m}` {interval(r)}" for m, r in a.iterrows()) + "."]
    if cfg.report.reference is not None:
        lines += ["", "## Does the published result hold?", "",
                  *reference_section(cfg.report.reference, curves, tables["paired_tests"], tables["class_stats"],
                                     tables["large_epsilon"], checks, models)]
    if not checks.empty:
        lines += ["", "## Gradient-masking checks", "", *masking_section(checks, models)]
    stability = tables["attribution_summary"]
    stability = stability[stability["metric"] == "spearman"]
    lines += ["", f"## Attribution stability under PGD at ε={cfg.interpret.epsilon:g}", "",
              "Spearman rank correlation between clean and adversarial |attribution| maps "
              "(1 = same ranking of pixels), mean over runs:", ""]
    wide = stability.assign(value=stability.apply(lambda r: "n/a" if pd.isna(r["mean"]) else interval(r), axis=1))
    methods = list(dict.fromkeys(stability["method"]))
    wide = wide.pivot(index="model", columns="method", values="value").reindex(index=models, columns=methods).reset_index()
    lines += [markdown_table(wide), ""]
    if not tables["attribution_metrics"].empty:
        lines += faithfulness_section(tables["attribution_metrics"], models)
    return "\n".join(lines)


def headline_attack(curves: pd.DataFrame) -> str:
    """The attack whose numbers the summary quotes: the per-sample worst case when it was computed."""
    return WORST_CASE if WORST_CASE in set(curves["attack"]) else "pgd"


def faithfulness_section(faithfulness: pd.DataFrame, models) -> list[str]:
    """Captum's infidelity and sensitivity_max, clean -> adversarial, mean over runs."""
    f = faithfulness.dropna(subset=["mean"])
    means = f.pivot_table(index=["model", "method"], columns="metric", values="mean", sort=False)
    rows = [{"model": m, "method": method,
             **{f"{name} clean → adv": f"{means.loc[(m, method), f'{name}_clean']:.3g} → "
                                       f"{means.loc[(m, method), f'{name}_adv']:.3g}"
                for name in ("infidelity", "sensitivity")}}
            for m in models for method in dict.fromkeys(f["method"]) if (m, method) in means.index]
    return ["Faithfulness of the explanations (Captum, lower is better), mean over runs: infidelity "
            "(how badly the map predicts the output change under small input noise) and sensitivity_max "
            "(how much the map changes within a small L∞ ball), on clean and on attacked images. Infidelity "
            "is in squared logit units: compare methods, and clean with attacked, within a model, not "
            "across models whose logits differ in scale.", "",
            markdown_table(pd.DataFrame(rows)), ""]


def reference_section(reference, curves: pd.DataFrame, paired_tests: pd.DataFrame, by_class: pd.DataFrame,
                      large_epsilon: pd.DataFrame, checks: pd.DataFrame | None, models) -> list[str]:
    """A published result beside ours (``report.reference`` of the config, a
    ``config.Reference``), then the same comparison under every attack, per class, at the
    budget where the classes become indistinguishable, and with the masking checks, so that
    the reader sees whether it holds.

    ``curves``: mean/CI of accuracy per model, attack and epsilon; ``paired_tests``: the
    report's paired comparisons (every attack); ``by_class``: mean/CI per model, attack,
    epsilon and label; ``large_epsilon``: the per-run table.
    """
    attack, eps, published = reference.attack, float(reference.epsilon), dict(reference.accuracy)
    at = curves[curves["epsilon"] == eps]
    attacks = [a for a in dict.fromkeys(at["attack"]) if a != attack]
    table = []
    for m in models:
        row = {"model": m, f"published ({attack.upper()})": f"{published[m]:.3f}" if m in published else "—"}
        for a in [attack, *attacks]:
            row["ours: " + a.replace("_", " ")] = interval(at[(at["model"] == m) & (at["attack"] == a)].iloc[0])
        table.append(row)
    lines = [f"The published result ({reference.source}): "
             + ", ".join(f"`{m}` {v:.3f}" for m, v in published.items())
             + f" mean accuracy under {attack.upper()} at ε={eps:g}. Ours, same setting, then every other attack "
             "at the same ε (mean [95% CI] over runs):", "", markdown_table(pd.DataFrame(table)), ""]

    paired = {}
    for a in dict.fromkeys([attack, WORST_CASE]):
        paired[a] = paired_tests[(paired_tests["attack"] == a) & (paired_tests["epsilon"] == eps)]
        lines += [f"Paired across runs, {a.replace('_', ' ')} at ε={eps:g}:", "",
                  markdown_table(pd.DataFrame(_paired_rows(paired[a], runs=False))), ""]

    c = by_class[(by_class["epsilon"] == eps) & by_class["attack"].isin([attack, WORST_CASE])]
    rows = [{"model": m, "attack": a.replace("_", " "),
             **{f"class {int(r['label'])}": interval(r) for _, r in g.sort_values("label").iterrows()}}
            for m in models for a in dict.fromkeys([attack, WORST_CASE])
            for g in [c[(c["model"] == m) & (c["attack"] == a)]]]
    lines += [f"Robust accuracy per class at ε={eps:g} (a model that never flips one class scores that class's "
              "share of the test set without being robust):", "", markdown_table(pd.DataFrame(rows)), ""]
    if not large_epsilon.empty:
        smallest = large_epsilon["epsilon"].min()
        means = large_epsilon[large_epsilon["epsilon"] == smallest].groupby("model")["accuracy"].mean().reindex(models)
        lines += [f"PGD accuracy at ε={smallest:g}, where an honest attack can make any input look like the other "
                  "class (well above 0 means the attack failed, not that the model is robust): "
                  + ", ".join(f"`{m}` {v:.3f}" for m, v in means.items()) + "."]

    # The verdict, computed: does the published ordering hold under the original attack, and under the worst case?
    ranked = sorted(published, key=published.get, reverse=True)
    verdict = []
    for a, p in paired.items():
        p = p.set_index(["model_a", "model_b"])
        for hi, lo in zip(ranked[:-1], ranked[1:]):
            r, sign = (p.loc[(hi, lo)], 1) if (hi, lo) in p.index else (p.loc[(lo, hi)], -1)
            low, high = sorted((sign * r["ci_low"], sign * r["ci_high"]))
            name = a.replace("_", " ")
            if low > 0:
                verdict.append(f"Under {name}, `{hi}` is more robust than `{lo}` at ε={eps:g} "
                               f"(difference {sign * r['mean_difference']:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}]).")
            elif high < 0:
                verdict.append(f"Under {name}, `{hi}` is *less* robust than `{lo}` at ε={eps:g}, the published order "
                               f"reversed (difference {sign * r['mean_difference']:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}]).")
            else:
                verdict.append(f"Under {name}, the runs do not separate `{hi}` from `{lo}` at ε={eps:g} "
                               f"(difference {sign * r['mean_difference']:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}]).")
    if checks is not None and not checks.empty:
        flagged = sorted(m for m in models if m not in surviving_models(checks))
        verdict.append("Masking checks flag " + ", ".join(f"`{m}`" for m in flagged) + "." if flagged
                       else "No model is flagged by the masking checks.")
    return lines + ["", " ".join(verdict), ""]
