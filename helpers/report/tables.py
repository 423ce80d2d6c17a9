"""Tables for reading: Markdown, and "mean [95% CI]" cells."""
from __future__ import annotations

import pandas as pd


def interval(row) -> str:
    """The cell "mean [low, high]" of a row with mean, ci_low and ci_high."""
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
                         **{f"ε={e:g}": interval(c.loc[e]) for e in epsilons}})
    return pd.DataFrame(rows)


def widest_epsilon(curves: pd.DataFrame, attack: str) -> float:
    """The epsilon > 0 at which the models' mean accuracies under ``attack`` are furthest apart."""
    c = curves[(curves["attack"] == attack) & (curves["epsilon"] > 0)]
    return float(c.groupby("epsilon")["mean"].agg(lambda v: v.max() - v.min()).idxmax())
