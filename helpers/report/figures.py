"""Figures for a reader: labelled axes, legends, error bands that say what they are.

Every model keeps the same colour in every figure (Okabe-Ito, colour-blind safe), assigned
by its position in the config.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..analysis.evaluation import WORST_CASE
from ..analysis.statistics import ACCURACY_BOUNDS, summarize_runs
from ..registry import ATTACKS

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def attack_label(name: str) -> str:
    """How a figure names an attack (its registry label; the per-sample worst case too)."""
    return "Worst case over all attacks" if name == WORST_CASE else ATTACKS.label(name)


def model_colors(models) -> dict[str, str]:
    """A fixed colour per model name, in config order."""
    return {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(models)}


def band(ax, summary: pd.DataFrame, x: str, color: str, label: str) -> None:
    """Mean line with its (already computed) confidence band."""
    ax.plot(summary[x], summary["mean"], "o-", color=color, label=label, ms=3)
    ax.fill_between(summary[x], summary["ci_low"], summary["ci_high"], color=color, alpha=0.2, lw=0)


def plot_training_curves(history: pd.DataFrame, models) -> plt.Figure:
    """Training loss and test accuracy per epoch: mean over runs with a 95% t-interval band."""
    colors = model_colors(models)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for model in models:
        h = history[history["model"] == model]
        for ax, col, bounds in zip(axes, ("train_loss", "test_accuracy"), (None, ACCURACY_BOUNDS)):
            band(ax, summarize_runs(h, ["epoch"], col, bounds=bounds), "epoch", colors[model], model)
    axes[0].set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="Training loss")
    axes[1].set(xlabel="epoch", ylabel="test accuracy", title="Clean test accuracy", ylim=(0, 1.02))
    axes[1].legend(title="model")
    n_runs = history["run"].nunique()
    fig.suptitle(f"Mean over {n_runs} runs; bands: 95% t-interval across runs", fontsize=9)
    fig.tight_layout()
    return fig


def plot_robustness_curves(stats: pd.DataFrame, models, attacks=None, reference=None, norm: str = "L∞",
                           ceiling: pd.DataFrame | None = None) -> plt.Figure:
    """Accuracy vs epsilon, one panel per attack (default: all in the table), from the
    report's ``stats`` (mean and corrected 95% interval across runs per model, attack and ε):
    the mean with its interval as a band (drawn inside [0, 1]). ``reference`` (a config's
    ``report.reference``) marks the published accuracies as stars on its attack's panel.
    ``norm`` names the threat model on the ε axis (``L∞``, ``L2``). ``ceiling`` (epsilon,
    ceiling, true_boundary: means over runs) draws the data's ceiling in every panel, and the
    true boundary's robust accuracy where the data set has one."""
    colors = model_colors(models)
    present = list(dict.fromkeys(stats["attack"]))
    attacks = [a for a in (attacks or present) if a in present]
    fig, axes = plt.subplots(1, len(attacks), figsize=(5 * len(attacks), 3.8), sharey=True, squeeze=False)
    for ax, attack in zip(axes[0], attacks):
        for model in models:
            curve = stats[(stats["attack"] == attack) & (stats["model"] == model)].sort_values("epsilon")
            band(ax, curve.assign(ci_low=curve["ci_low"].clip(*ACCURACY_BOUNDS),
                                   ci_high=curve["ci_high"].clip(*ACCURACY_BOUNDS)), "epsilon", colors[model], model)
        _draw_ceiling(ax, ceiling)
        if reference is not None and reference.attack == attack:
            for model, value in reference.accuracy.items():
                ax.plot(reference.epsilon, value, "*", ms=14, mec="black", color=colors.get(model, "grey"),
                        label=f"{model}, published")
            ax.legend(fontsize=7)
        ax.set(xlabel=f"ε ({norm} budget; inputs in [0, 1])", title=attack_label(attack), ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("robust accuracy on the test split")
    axes[0, -1].legend(title="model")
    fig.suptitle(f"Robust accuracy, mean over {int(stats['n_runs'].max())} runs; bands: 95% t-interval across runs, "
                 "corrected for the data the runs share", fontsize=9)
    fig.tight_layout()
    return fig


def _draw_ceiling(ax, ceiling: pd.DataFrame | None) -> None:
    """The data's ceiling (black, dotted) and the true boundary (grey, dash-dotted) against ε."""
    if ceiling is None or ceiling.empty:
        return
    c = ceiling.sort_values("epsilon")
    ax.plot(c["epsilon"], c["ceiling"], ":", color="black", lw=1.5, label="data's ceiling (any classifier)")
    if c["true_boundary"].notna().any():
        ax.plot(c["epsilon"], c["true_boundary"], "-.", color="0.45", lw=1.2, label="true boundary")


def plot_attack_comparison(stats: pd.DataFrame, models) -> plt.Figure:
    """One panel per model: mean accuracy vs epsilon under each attack (the report's
    ``stats``). A gradient-free or transfer attack far below the gradient attacks is the
    signature of gradient masking."""
    attacks = list(dict.fromkeys(stats["attack"]))
    styles = {a: OKABE_ITO[(i + 3) % len(OKABE_ITO)] for i, a in enumerate(a for a in attacks if a != WORST_CASE)}
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), sharey=True, squeeze=False)
    means = stats.set_index(["model", "attack", "epsilon"])["mean"].sort_index()
    for ax, model in zip(axes[0], models):
        for attack in attacks:
            curve = means.loc[(model, attack)]
            worst = attack == WORST_CASE
            ax.plot(curve.index, curve.values, "-" if worst else "--", lw=2.5 if worst else 1.2,
                    color="black" if worst else styles[attack], label=attack_label(attack))
        ax.set(title=model, xlabel="ε (L∞ budget)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean robust accuracy")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(f"Every attack per model, mean over {int(stats['n_runs'].max())} runs", fontsize=9)
    fig.tight_layout()
    return fig


def plot_bracket(bracket: pd.DataFrame, models, norm: str = "L∞") -> plt.Figure:
    """One panel per model: certified accuracy (the best certificate: a lower bound, dashed)
    and attacked accuracy (the worst case over every attack: an upper bound, solid) against ε,
    means over runs; the shaded band between them is what neither side settles. Where the
    bracket has a ``ceiling`` column, the data's ceiling (dotted) above both."""
    colors = model_colors(models)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        b = bracket[bracket["model"] == model].sort_values("epsilon")
        ax.plot(b["epsilon"], b["attacked"], "o-", color=colors[model], ms=3, label="attacked (upper bound)")
        ax.plot(b["epsilon"], b["certified"], "s--", color=colors[model], ms=3, label="certified (lower bound)")
        ax.fill_between(b["epsilon"], b["certified"], b["attacked"], color=colors[model], alpha=0.2, lw=0)
        if "ceiling" in b:
            ax.plot(b["epsilon"], b["ceiling"], ":", color="black", lw=1.5, label="data's ceiling (any classifier)")
        if b["certified"].isna().all():
            ax.text(0.5, 0.5, "no certificate applies:\nattacked accuracy only", transform=ax.transAxes,
                    ha="center", fontsize=8, color="0.35")
        ax.set(title=model, xlabel=f"ε ({norm} budget)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("robust accuracy, mean over runs")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle("Robust accuracy bracketed: certified from below, attacked from above"
                 + ("" if norm == "L∞" else f" ({norm})")
                 + ("; dotted: the data's ceiling, what any classifier could reach" if "ceiling" in bracket else ""),
                 fontsize=9)
    fig.tight_layout()
    return fig

