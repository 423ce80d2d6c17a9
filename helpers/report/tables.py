"""Tables for reading: Markdown, "mean [95% CI]" cells and comparison cells."""
from __future__ import annotations

import numpy as np
import pandas as pd


CLIPPED = "†"  # marks an interval that reaches past the range of its quantity


def interval(row) -> str:
    """The cell "mean [low, high]" of a row with mean, ci_low and ci_high (from
    ``summarize_runs``): "(all runs equal)" instead of a zero-width interval, and ``CLIPPED``
    after an interval that reaches past the quantity's range (shown unclipped)."""
    if _flag(row, "all_equal"):
        return f"{row['mean']:.3f} (all runs equal)"
    mark = CLIPPED if _flag(row, "clipped") else ""
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]{mark}"


def _flag(row, key: str) -> bool:
    """A boolean column of a row, False where the table has none (or it is missing)."""
    value = row.get(key, False)
    return isinstance(value, (bool, np.bool_)) and bool(value)


def difference(row) -> str:
    """"+0.056 [+0.001, +0.112]" of a comparison row."""
    return f"{row['mean_difference']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def p_text(value) -> str:
    """A p-value as the summary writes it ("n/a" where untestable)."""
    return "n/a" if pd.isna(value) else f"{value:.2g}"


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
            if c.empty:
                continue
            rows.append({"model": model, "attack": attack,
                         **{f"ε={e:g}": interval(c.loc[e]) for e in epsilons}})
    return pd.DataFrame(rows)

