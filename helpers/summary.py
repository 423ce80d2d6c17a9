"""The experiment's Markdown summary, written from the result tables (no typed numbers)."""
from __future__ import annotations

import pandas as pd


def _fmt(row) -> str:
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``df`` (no extra dependency on tabulate)."""
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def robustness_table(curves: pd.DataFrame, models, epsilons) -> pd.DataFrame:
    """Wide table for reading: one row per model and attack, 'mean [95% CI]' per epsilon."""
    rows = []
    for model in models:
        for attack in dict.fromkeys(curves["attack"]):
            c = curves[(curves["model"] == model) & (curves["attack"] == attack)].set_index("epsilon")
            rows.append({"model": model, "attack": attack,
                         **{f"ε={e:g}": _fmt(c.loc[e]) for e in epsilons}})
    return pd.DataFrame(rows)


def _ranking_paragraph(curves: pd.DataFrame, clean: pd.DataFrame, models) -> list[str]:
    """Sentences comparing the models where they differ most, under the strongest attack."""
    attack = curves.groupby("attack")["mean"].mean().idxmin()  # lowest accuracy on average
    c = curves[(curves["attack"] == attack) & (curves["epsilon"] > 0)]
    if c.empty:
        return []
    spread = c.groupby("epsilon")["mean"].agg(lambda v: v.max() - v.min())
    eps = spread.idxmax()
    at = c[c["epsilon"] == eps].set_index("model").reindex(models).sort_values("mean", ascending=False)
    text = [f"Under {attack.upper()}, the strongest attack on average, the models differ most at ε={eps:g}: "
            + ", ".join(f"`{m}` {_fmt(r)}" for m, r in at.iterrows()) + "."]
    for (a, ra), (b, rb) in zip(list(at.iterrows())[:-1], list(at.iterrows())[1:]):
        if ra["ci_low"] > rb["ci_high"]:
            text.append(f"The intervals of `{a}` and `{b}` do not overlap.")
        else:
            text.append(f"The intervals of `{a}` and `{b}` overlap: these runs do not separate them.")
    if {"fgsm", "pgd"} <= set(curves["attack"]):
        gap = curves.pivot(index=["model", "epsilon"], columns="attack", values="mean")
        worst = (gap["pgd"] - gap["fgsm"]).max()
        text.append(f"The largest excess of mean PGD accuracy over mean FGSM accuracy is {max(worst, 0):.3f} "
                    "(PGD should never be weaker; a clearly positive value would point to a failed PGD).")
    params = clean.set_index("model")["parameters"]
    text.append("Trainable parameters: " + ", ".join(f"`{m}` {params[m]:,}" for m in models)
                + "; clean accuracies differ as well (table above). A robustness gap between models of such "
                "different capacity and clean accuracy is not by itself evidence about quantum models.")
    return [" ".join(text)]


def write_summary(cfg: dict, models_df: pd.DataFrame, curves: pd.DataFrame, stability: pd.DataFrame) -> str:
    """Markdown summary of one experiment.

    ``models_df``: per model and run (parameters, clean_accuracy); ``curves``: mean/CI of
    accuracy per model, attack and epsilon; ``stability``: mean/CI of the per-run Spearman
    correlation per model and method.
    """
    models = list(cfg["models"])
    eps = sorted(curves["epsilon"].unique())
    n_runs = cfg["n_runs"]
    lines = [f"# Summary: experiment `{cfg['experiment']}`", "",
             f"Data set `{cfg['dataset']['name']}` (classes {cfg['dataset']['classes']}), {n_runs} Monte Carlo runs, "
             f"{cfg['training']['epochs']} epochs, batch {cfg['training']['batch_size']}, "
             f"Adam lr {cfg['training']['learning_rate']} for every model. Intervals are 95% t-intervals across runs.",
             "", "## Models", ""]
    clean = models_df.groupby("model", sort=False).agg(
        parameters=("parameters", "first"), clean_accuracy=("clean_accuracy", "mean"),
        n_test=("n_test", "first")).reindex(models).reset_index()
    clean["clean_accuracy"] = clean["clean_accuracy"].map("{:.3f}".format)
    lines += [markdown_table(clean), "", "## Robust accuracy", ""]
    lines += [markdown_table(robustness_table(curves, models, eps)), ""]

    lines += _ranking_paragraph(curves, clean, models)
    lines += ["", f"## Attribution stability under PGD at ε={cfg['interpret']['epsilon']:g}", "",
              "Spearman rank correlation between clean and adversarial |attribution| maps "
              "(1 = same ranking of pixels), mean over runs:", ""]
    wide = stability.assign(value=stability.apply(lambda r: "n/a" if pd.isna(r["mean"]) else _fmt(r), axis=1))
    methods = list(dict.fromkeys(stability["method"]))
    wide = wide.pivot(index="model", columns="method", values="value").reindex(index=models, columns=methods).reset_index()
    lines += [markdown_table(wide), ""]
    return "\n".join(lines)
