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

    top_eps = max(eps)
    final = curves[(curves["epsilon"] == top_eps)]
    strongest = final.loc[final.groupby("model", sort=False)["mean"].idxmin()].set_index("model").reindex(models)
    best = strongest["mean"].idxmax()
    lines += [f"At the largest budget ε={top_eps:g}, the strongest attack leaves "
              + ", ".join(f"`{m}` at {strongest.loc[m, 'mean']:.3f} ({strongest.loc[m, 'attack']})" for m in models)
              + f"; `{best}` keeps the most accuracy."]
    overlapping = [m for m in models if m != best and strongest.loc[m, "ci_high"] >= strongest.loc[best, "ci_low"]]
    if overlapping:
        lines += [f"Its interval overlaps that of {', '.join(f'`{m}`' for m in overlapping)}, so that part of the "
                  "ranking is not settled by these runs."]
    lines += ["", f"## Attribution stability under PGD at ε={cfg['interpret']['epsilon']:g}", "",
              "Spearman rank correlation between clean and adversarial |attribution| maps "
              "(1 = same ranking of pixels), mean over runs:", ""]
    wide = stability.assign(value=stability.apply(lambda r: "n/a" if pd.isna(r["mean"]) else _fmt(r), axis=1))
    wide = wide.pivot(index="model", columns="method", values="value").reindex(models).reset_index()
    lines += [markdown_table(wide), ""]
    return "\n".join(lines)
