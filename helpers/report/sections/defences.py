"""The defences' trade-off: clean against worst-case, certified and exactly verified accuracy per
model family, defence and strength, with what each defence bought over its undefended sibling.

A defended model (``models.<name>.defence``) belongs to the family of the undefended model of
the same config with the same spec otherwise (its ``ModelSpec.model_dict``): that model is its
baseline, trained on the same splits, seeds and batch order, so the comparison is paired across
runs. A defended model with no such sibling has no baseline (its gains are left empty).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...analysis.statistics import ALPHA, compare, corrected_t_interval, holm
from ...registry import DEFENCES
from ..tables import markdown_table
from ..figures import model_colors
from ..section import SECTIONS, Section

NONE = "none"  # the defence column of an undefended model
MEASURES = ("clean", "robust", "certified", "exact")  # the trade-off's accuracies


def families(models: dict) -> dict[str, dict]:
    """Per model of a config's ``models`` (name -> ``ModelSpec``) that is defended or the
    baseline of one: ``family`` (the baseline's name; a defended model without one: its own),
    ``baseline`` (None for the baseline itself or when there is none), ``defence`` (entry name
    or ``NONE``), ``strength`` (the parameter the defence sweeps) and its ``strength_value``.
    Empty when no model is defended."""
    plain = {n: s for n, s in models.items() if s.defence is None}
    out = {}
    for name, spec in models.items():
        if spec.defence is None:
            continue
        base = next((n for n, s in plain.items() if s.model_dict() == spec.model_dict()), None)
        entry = DEFENCES[spec.defence[0]]
        strength = entry.strength
        out[name] = {"family": base or name, "baseline": base, "defence": entry.name, "strength": strength,
                     "strength_value": float(getattr(spec.defence[1], strength)) if strength else np.nan}
        if base is not None:
            out[base] = {"family": base, "baseline": None, "defence": NONE, "strength": "", "strength_value": np.nan}
    order = list(models)
    return dict(sorted(out.items(), key=lambda kv: (order.index(kv[1]["family"]), order.index(kv[0]))))


def per_run(robustness: pd.DataFrame, certified: pd.DataFrame) -> pd.DataFrame:
    """One row per model, run and ε > 0: ``clean`` (accuracy at ε = 0), ``robust`` (the
    per-sample worst case over every attack, escalation included), ``certified`` (the best
    L∞ certificate; NaN where none applies) and ``exact`` (the share of the exactly verified
    points proved robust, the same points for every model, with ``exact_unknown`` the share
    the verifier left open; NaN at budgets it did not verify)."""
    worst = robustness[robustness["attack"] == "worst_case"]
    clean = worst[worst["epsilon"] == 0].set_index(["model", "run"])["accuracy"].rename("clean")
    robust = worst[worst["epsilon"] > 0][["model", "run", "epsilon", "accuracy"]].rename(columns={"accuracy": "robust"})
    best = certified[(certified["certificate"] == "best") & (certified["norm"] == "linf")]
    best = best.assign(certified=best["accuracy"].where(best["applicable"].astype(bool)))
    exact = certified[(certified["certificate"] == "exact") & (certified["norm"] == "linf")
                      & certified["applicable"].astype(bool)]
    exact = exact.assign(exact=exact["accuracy"], exact_unknown=exact.get("undecided", np.nan))
    table = robust.join(clean, on=["model", "run"])
    table = table.merge(best[["model", "run", "epsilon", "certified"]], on=["model", "run", "epsilon"], how="left")
    return table.merge(exact[["model", "run", "epsilon", "exact", "exact_unknown"]], on=["model", "run", "epsilon"],
                       how="left")


def defences_table(models: dict, robustness: pd.DataFrame, certified: pd.DataFrame, trained: pd.DataFrame,
                   ratio: float, primary=None) -> pd.DataFrame:
    """The trade-off table (``defences.csv``): one row per model of ``families`` and ε > 0,
    with its family, defence and strength; clean, worst-case (``robust``), ``certified`` and
    ``exact`` accuracy (``per_run``), each its mean and corrected 95% t-interval across runs
    (``_low``, ``_high``), and the mean share left unknown by the exact verifier;
    the mean training seconds; and, for a defended model, the paired difference to its
    baseline for each measure (``<measure>_gain``, its interval and the corrected resampled
    t-test's p; the interval is unadjusted), p Holm-adjusted over every defended model and ε
    per measure (``<measure>_p_adjusted``). The config's ``primary`` comparison, when it is a
    defended model against its sibling under the worst case at one ε, is that row's robust gain
    (``primary``): it keeps its own p and stays out of the family. Empty when no model is
    defended, or no defended model has a run left to report."""
    fam = families(models)
    if not fam:
        return pd.DataFrame()
    runs = per_run(robustness[robustness["model"].isin(fam)], certified[certified["model"].isin(fam)])
    seconds = trained.groupby("model")["train_seconds"].mean()
    rows = []
    for (model, epsilon), g in runs.groupby(["model", "epsilon"], sort=False):
        info = fam[model]
        row = {"family": info["family"], "model": model, "defence": info["defence"], "strength": info["strength"],
               "strength_value": info["strength_value"], "epsilon": epsilon,
               "train_seconds": float(seconds.get(model, np.nan)), "n_runs": len(g)}
        for measure in MEASURES:
            values = g[measure].dropna()
            mean, _, low, high = corrected_t_interval(values, ratio) if len(values) else (np.nan,) * 4
            row.update({measure: mean, f"{measure}_low": low, f"{measure}_high": high})
        row["exact_unknown"] = float(g["exact_unknown"].mean())
        base = info["baseline"]
        for measure in MEASURES:
            gain = {"mean_difference": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
            if base is not None:
                b = runs[(runs["model"] == base) & (runs["epsilon"] == epsilon)].set_index("run")[measure]
                a = g.set_index("run")[measure]
                differences = (a - b.reindex(a.index)).dropna()
                if len(differences) >= 2:
                    gain = compare(differences, ratio)
            row.update({f"{measure}_gain": gain["mean_difference"], f"{measure}_gain_low": gain["ci_low"],
                        f"{measure}_gain_high": gain["ci_high"], f"{measure}_p": gain["p_value"]})
        rows.append(row)
    if not rows:  # every run of every defended model degenerate, and left out
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    order = list(fam)
    table = table.sort_values(["epsilon"], kind="stable").sort_values(
        "model", key=lambda s: s.map(order.index), kind="stable").reset_index(drop=True)
    table["primary"] = False
    if primary is not None and primary.attack == "worst_case" and primary.epsilon is not None:
        a, b = primary.models
        table["primary"] = ((table["model"] == a) & (table["model"].map(lambda m: fam[m]["baseline"]) == b)
                            & (table["epsilon"] == primary.epsilon))
    for measure in MEASURES:
        p = table[f"{measure}_p"]
        adjusted = pd.Series(np.nan, index=table.index)
        # clean accuracy does not depend on ε: one test per defended model, not one per budget
        tested = p.notna() & ((table["epsilon"] == table["epsilon"].min()) if measure == "clean" else True)
        own = table["primary"] & (measure == "robust")  # the primary: its own p, not one of the family
        if (tested & ~own).any():
            adjusted[tested & ~own] = holm(p[tested & ~own].to_numpy())
        adjusted[tested & own] = p[tested & own]
        table[f"{measure}_p_adjusted"] = adjusted
    return table


def shown_epsilon(table: pd.DataFrame, primary=None) -> float:
    """The budget the figure and the summary show: the primary comparison's, else the middle
    of the attacked budgets."""
    budgets = sorted(table["epsilon"].unique())
    if primary is not None and primary.epsilon in budgets:
        return float(primary.epsilon)
    return float(budgets[(len(budgets) - 1) // 2])


def strength_label(row) -> str:
    """"PGD adversarial training, epsilon 0.1" or "none"."""
    if row["defence"] == NONE:
        return "undefended"
    value = row["strength_value"]
    return f"{row['defence']} {row['strength']}={value:g}" if row["strength"] else row["defence"]


def _cell(row, measure: str, missing: str = "no certificate") -> str:
    if pd.isna(row[measure]):
        return missing
    return f"{row[measure]:.3f} [{row[f'{measure}_low']:.3f}, {row[f'{measure}_high']:.3f}]"


def _gain(row, measure: str) -> str:
    if pd.isna(row[f"{measure}_gain"]):
        return "—"
    p = row[f"{measure}_p_adjusted"]
    star = "*" if pd.notna(p) and p < ALPHA else ""
    return (f"{row[f'{measure}_gain']:+.3f} [{row[f'{measure}_gain_low']:+.3f}, {row[f'{measure}_gain_high']:+.3f}]"
            f"{star}")


def _said(row, measure: str, what: str) -> str:
    gain, p = row[f"{measure}_gain"], row[f"{measure}_p_adjusted"]
    if pd.isna(gain):
        return f"{what}: no comparison"
    if pd.isna(p):
        return f"{what} {gain:+.3f} (untestable: every run gave the same difference)"
    verdict = ("raised" if gain > 0 else "lowered") if p < ALPHA else "did not significantly change"
    which = "the primary comparison, its own p" if measure == "robust" and row.get("primary", False) \
        else "Holm-adjusted p"
    return f"{verdict} {what} ({gain:+.3f}, {which} = {p:.2g})"


def defences_section(table: pd.DataFrame, primary=None) -> list[str]:
    """The summary's "Defences" section: the trade-off at the shown budget and, per defended
    model, what its defence bought over its undefended sibling (empty without defences)."""
    if table.empty:
        return []
    epsilon = shown_epsilon(table, primary)
    t = table[table["epsilon"] == epsilon]
    clean_tests = table[table["epsilon"] == table["epsilon"].min()].set_index("model")
    verified = t["exact"].notna().any()
    rows, sentences = [], []
    for _, r in t.iterrows():
        c = clean_tests.loc[r["model"]]
        row = {"family": r["family"], "model": r["model"], "defence": strength_label(r),
               "clean": _cell(r, "clean"), f"worst case, ε={epsilon:g}": _cell(r, "robust"),
               "certified": _cell(r, "certified")}
        if verified:
            row["exact (unknown)"] = (_cell(r, "exact", "not verified")
                                      + (f" ({r['exact_unknown']:.3f})" if pd.notna(r["exact"]) else ""))
        row.update({"clean cost": _gain(c, "clean"), "worst-case gain": _gain(r, "robust"),
                    "certified gain": _gain(r, "certified"), **({"exact gain": _gain(r, "exact")} if verified else {}),
                    "train s": f"{r['train_seconds']:.1f}"})
        rows.append(row)
        if r["defence"] != NONE:
            exact = f", {_said(r, 'exact', 'exact robust accuracy')}" if verified else ""
            sentences.append(f"- `{r['model']}` ({strength_label(r)}) against `{r['family']}`: "
                             f"{_said(r, 'robust', 'the worst case')}, {_said(r, 'certified', 'certified accuracy')}"
                             f"{exact}, {_said(c, 'clean', 'clean accuracy')}.")
    exact_text = ("; exact: the share of the exactly verified points (the same for every model) proved robust, "
                  "with the share the verifier left unknown" if verified else "")
    return ["", "## Defences", "",
            "Each defended model beside its undefended sibling (the model of the same spec without `defence`: "
            "same splits, seeds and batch order), evaluated like every model: the full attack suite with "
            f"escalation and the certificates. At ε={epsilon:g} (`defences.csv` has every budget): clean "
            "accuracy, the per-sample worst case over every attack, and the best L∞ certificate, mean [95% "
            f"corrected interval] across runs{exact_text}; the gains are paired differences to the sibling with their "
            "unadjusted 95% corrected intervals (an interval that excludes zero is not by itself a finding): the "
            "corrected resampled t-test's p, Holm-adjusted over every defended model and budget per measure, "
            f"decides (* adjusted p < {ALPHA:g}; the declared primary comparison keeps its own p and is not in "
            "the family); training seconds per run.", "",
            markdown_table(pd.DataFrame(rows)), "", *sentences]


DEFENCE_MARKERS = {"none": "o", "pgd": "s", "trades": "D", "lipschitz": "^", "ibp": "v", "crown_ibp": "<"}
PANELS = {"robust": ("worst case over every attack (upper bound)", "worst-case accuracy under attack"),
          "certified": ("certified (lower bound)", "certified accuracy"),
          "exact": ("exactly verified points proved robust", "exact robust accuracy (verified subset)")}


def plot_defences(table: pd.DataFrame, models, epsilon: float) -> plt.Figure:
    """The defences' trade-off at one budget (``defences_table``): clean
    accuracy (x) against the worst case over every attack (left), the certified accuracy and,
    where the budget was exactly verified, the exact robust accuracy (right), one marker per
    model (its colour as in every figure, its shape the defence), means over runs with 95%
    intervals on both axes (the clean axis starts just below the lowest clean accuracy); a model
    no certificate applies to has no mark there."""
    colors = model_colors(models)
    t = table[table["epsilon"] == epsilon]
    measures = [m for m in PANELS if m != "exact" or t["exact"].notna().any()]
    fig, axes = plt.subplots(1, len(measures), figsize=(5.5 * len(measures), 4.8), sharex=True, sharey=True)
    left = max(0.0, float(np.nanmin(t[["clean", "clean_low"]].to_numpy())) - 0.05)  # clean accuracies cluster high
    for ax, measure in zip(axes, measures):
        title, ylabel = PANELS[measure]
        for r in t.itertuples(index=False):
            if pd.isna(getattr(r, measure)):
                continue
            x, y = r.clean, getattr(r, measure)
            # intervals drawn inside [0, 1] (the tables keep them unclipped)
            xerr = [[max(x - max(r.clean_low, 0), 0)], [max(min(r.clean_high, 1) - x, 0)]]
            low, high = max(getattr(r, f"{measure}_low"), 0), min(getattr(r, f"{measure}_high"), 1)
            yerr = [[max(y - low, 0)], [max(high - y, 0)]]
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=DEFENCE_MARKERS.get(r.defence, "P"), color=colors[r.model],
                        ms=7, capsize=2, mec="black" if r.defence == "none" else colors[r.model])
            ax.annotate(r.model, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.plot([0, 1], [0, 1], ":", color="0.6", lw=1)
        ax.set(title=f"{title}, ε = {epsilon:g}", xlabel="clean accuracy (ε = 0)", ylabel=ylabel,
               xlim=(left - 0.02, 1.02), ylim=(-0.02, 1.02))
        ax.yaxis.set_tick_params(labelleft=True)
    handles = [plt.Line2D([], [], marker=m, ls="", color="0.3", label=d) for d, m in DEFENCE_MARKERS.items()
               if d in set(t["defence"])]
    axes[-1].legend(handles=handles, title="defence (colour: model)", fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


@SECTIONS.register
class Defences(Section):
    name = "defences"
    order = 90
    title = "Defences"
    about = """Where the config trains models with a `defence` (docs/defences.md): each defended model beside
its undefended sibling, clean accuracy (x) against the worst case over every attack (left), the
certified accuracy and, where the budget was exactly verified, the exact robust accuracy on the
verified points (right), with 95% intervals across runs on both axes. A defence that
buys robustness moves its marker up from its sibling's circle; one that costs clean accuracy,
to the left. The table has every budget and the paired gains (`defences.csv`); empty when no model
has a defence."""
    outputs = ("defences",)
    drawn = ("defences",)

    @classmethod
    def tables(cls, report):
        t = report.tables
        return {"defences": defences_table(report.cfg.models, report.keep(t["robustness"]), report.keep(t["certified"]),
                                           t["models"], report.ratio, report.cfg.report.primary)}

    @classmethod
    def figures(cls, report):
        table = report.tables["defences"]
        if table.empty:
            return {}
        return {"defences": plot_defences(table, report.models, shown_epsilon(table, report.cfg.report.primary))}

    @classmethod
    def text(cls, report):
        return defences_section(report.tables["defences"], report.cfg.report.primary)

    @classmethod
    def show(cls, report):
        defences = report.tables["defences"]
        if defences.empty:
            return ["no model of this config has a defence"]
        return [*cls.images(report), defences[["family", "model", "defence", "strength_value", "epsilon", "clean",
                                               "robust", "certified", "robust_gain", "robust_p_adjusted",
                                               "certified_gain", "exact", "exact_unknown", "exact_gain", "clean_gain",
                                               "train_seconds"]].round(3)]
