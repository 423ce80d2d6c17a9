"""Tables for reading: Markdown, "mean [95% CI]" cells and comparison cells."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..models.noise import Noise

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


# The settings of a circuit as it runs on hardware (``vqc``'s ``noise`` and ``shots``), in the
# order they are named in a label.
CHANNELS = tuple(f.name for f in Noise.fields())
CHANNEL_LABELS = {"depolarizing": "depolarising", "amplitude_damping": "amplitude damping",
                  "phase_damping": "phase damping", "global_depolarizing": "global depolarising",
                  "readout_flip": "read-out flip"}


def hardware_settings(spec: dict) -> dict:
    """A model's config entry (plain data) as its hardware settings: ``shots`` (None: exact)
    and the strength of every channel (0 for a classical model or a noise-free circuit)."""
    noise = spec.get("noise") or {}
    return {"shots": spec.get("shots"), **{c: float(noise.get(c, 0.0)) for c in CHANNELS}}


def hardware_label(settings: dict) -> str:
    """"exact", or what makes a circuit noisy: "depolarising 0.01, 1000 shots"."""
    parts = [f"{CHANNEL_LABELS[c]} {settings[c]:g}" for c in CHANNELS if settings[c] > 0]
    if settings["shots"] is not None:
        parts.append(f"{settings['shots']} shots")
    return ", ".join(parts) or "exact"


def hardware_table(bracket: pd.DataFrame, models: dict) -> pd.DataFrame:
    """The bracket of every circuit beside its noise and shots: per model and ε its settings,
    a label, clean accuracy (ε = 0) and the certified and attacked accuracy with intervals.
    Empty when no model of the experiment has noise or shots (nothing to compare)."""
    settings = {name: hardware_settings(spec) for name, spec in models.items() if spec.get("type") == "vqc"}
    if not any(s["shots"] is not None or any(s[c] > 0 for c in CHANNELS) for s in settings.values()):
        return pd.DataFrame()
    rows = []
    for name, s in settings.items():
        b = bracket[bracket["model"] == name]
        clean = b.loc[b["epsilon"] == 0.0, "attacked"]
        for r in b.itertuples(index=False):
            rows.append({"model": name, "setting": hardware_label(s), **s, "epsilon": r.epsilon,
                         "clean": float(clean.iloc[0]) if len(clean) else np.nan,
                         "certified": r.certified, "certified_low": r.certified_low, "certified_high": r.certified_high,
                         "attacked": r.attacked, "attacked_low": r.attacked_low, "attacked_high": r.attacked_high})
    return pd.DataFrame(rows)
