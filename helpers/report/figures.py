"""Figures for a reader: labelled axes, legends, error bands that say what they are.

Every model keeps the same colour in every figure (Okabe-Ito, colour-blind safe), assigned
by its position in the config.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap
import numpy as np
import pandas as pd

from ..analysis.evaluation import WORST_CASE
from ..analysis.statistics import ACCURACY_BOUNDS, summarize_runs
from ..registry import ATTACKS, ATTRIBUTIONS

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def attack_label(name: str) -> str:
    """How a figure names an attack (its registry label; the per-sample worst case too)."""
    return "Worst case over all attacks" if name == WORST_CASE else ATTACKS.label(name)


def model_colors(models) -> dict[str, str]:
    """A fixed colour per model name, in config order."""
    return {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(models)}


def _band(ax, summary: pd.DataFrame, x: str, color: str, label: str) -> None:
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
            _band(ax, summarize_runs(h, ["epoch"], col, bounds=bounds), "epoch", colors[model], model)
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
            _band(ax, curve.assign(ci_low=curve["ci_low"].clip(*ACCURACY_BOUNDS),
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


def plot_transfer_matrix(transfer: pd.DataFrame, models, epsilons) -> plt.Figure:
    """Mean accuracy of each target model (columns) on examples crafted on each source model
    (rows), one heatmap per epsilon; the diagonal is the white-box attack."""
    fig, axes = plt.subplots(1, len(epsilons), figsize=(3.2 * len(epsilons), 3.2), squeeze=False)
    means = transfer.groupby(["epsilon", "source", "target"])["accuracy"].mean()
    for ax, epsilon in zip(axes[0], epsilons):
        grid = means.loc[epsilon].unstack("target").reindex(index=models, columns=models)
        ax.imshow(grid.values, vmin=0, vmax=1, cmap="viridis")
        for i in range(len(models)):
            for j in range(len(models)):
                v = grid.values[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < 0.6 else "black")
        ax.set_xticks(range(len(models)), models, fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.set(title=f"ε={epsilon:g}", xlabel="target (evaluated)")
    axes[0, 0].set_ylabel("source (crafted on)")
    fig.suptitle("Transfer: accuracy of the target on the source's adversarial examples", fontsize=9)
    fig.tight_layout()
    return fig


def plot_attribution_stability(table: pd.DataFrame, models, metric: str = "spearman",
                               chance: pd.DataFrame | None = None) -> plt.Figure:
    """Per-run mean of ``metric`` by method and model; bars: mean over runs, whiskers: 95% CI;
    with ``chance`` (the same summary of the metric's chance level) a black dash on each bar
    marks where unrelated maps already get."""
    colors = model_colors(models)
    methods = list(dict.fromkeys(table["method"]))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(2.2 * len(methods) + 1, 3.6))
    for j, model in enumerate(models):
        for i, method in enumerate(methods):
            row = table[(table["model"] == model) & (table["method"] == method)]
            if row.empty or row["mean"].isna().all():
                ax.text(i + (j - (len(models) - 1) / 2) * width, 0.02, "n/a", ha="center", fontsize=7, rotation=90)
                continue
            row = row.iloc[0]
            x = i + (j - (len(models) - 1) / 2) * width
            low, high = max(row["ci_low"], -1.0), min(row["ci_high"], 1.0)  # drawn inside the metric's range
            ax.bar(x, row["mean"], width, color=colors[model],
                   yerr=[[row["mean"] - low], [high - row["mean"]]], capsize=3,
                   label=model if i == 0 else None)
            floor = None if chance is None else chance[(chance["model"] == model) & (chance["method"] == method)]
            if floor is not None and not floor.empty:
                ax.hlines(floor["mean"].iloc[0], x - width / 2, x + width / 2, color="black", lw=2,
                          label="chance (different images)" if (i, j) == (0, 0) else None)
    ax.set_xticks(range(len(methods)), [ATTRIBUTIONS.label(m) for m in methods])
    ax.set_ylabel({"spearman": "Spearman ρ, clean vs adversarial map",
                   "top_k_overlap": "top-k overlap, clean vs adversarial"}.get(metric, metric))
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(title="model", fontsize=8)
    fig.tight_layout()
    return fig


def plot_attribution_panel(maps: dict, models, methods, image: int = 0, class_names=None,
                           epsilon: float | None = None) -> plt.Figure:
    """One test image: per model (rows) the clean and attacked input, then clean and
    adversarial |map| per method. Methods that do not apply to a model are marked n/a.

    ``maps`` is the interpret stage's ``attribution_maps``: ``x`` and ``y`` (the images and
    their true labels), per model ``<model>__x_adv``, ``<model>__clean_pred`` and
    ``<model>__adv_pred``, and per model and method ``<model>__<method>__clean``/``__adv``.
    Every row says the true label and the model's clean and adversarial predictions (so the
    reader sees whether the attack succeeded on this image); every map has a colour bar, on a
    scale shared by the clean and attacked map of one model and method (the comparison the
    panel is for; models differ in gradient size by orders of magnitude). ``class_names``
    names the labels 0..k-1 (default: the labels themselves).
    """
    n_cols = 2 + 2 * len(methods)
    fig, axes = plt.subplots(len(models), n_cols, figsize=(1.9 * n_cols, 2.0 * len(models)), squeeze=False)

    def picture(array):  # an image (C, H, W) as (H, W) or (H, W, 3); a feature vector (D,) as a 1 x D strip
        if array.ndim == 1:
            return array[None, :]
        return array.transpose(1, 2, 0) if array.shape[0] == 3 else array[0]

    def magnitude(array):  # |map| per pixel: summed over the channels of an RGB image
        return np.abs(array).sum(axis=0) if array.ndim == 3 else np.abs(picture(array))

    def name(label) -> str:
        return str(class_names[int(label)]) if class_names is not None else str(int(label))

    true = int(maps["y"][image])
    attack = "PGD" if epsilon is None else f"PGD ε={epsilon:g}"
    for r, model in enumerate(models):
        clean, adv = int(maps[f"{model}__clean_pred"][image]), int(maps[f"{model}__adv_pred"][image])
        outcome = "fooled" if clean == true != adv else ("wrong already" if clean != true else "held")
        panels = [(f"clean input\npredicted {name(clean)}", picture(maps["x"][image]), "gray", None),
                  (f"{attack} input\npredicted {name(adv)} ({outcome})", picture(maps[f"{model}__x_adv"][image]), "gray",
                   None)]
        for method in methods:
            keys = [f"{model}__{method}__{kind}" for kind in ("clean", "adv")]
            pair = [magnitude(maps[key][image]) if key in maps else None for key in keys]
            top = max(float(p.max()) for p in pair) if pair[0] is not None else None
            for kind, img in zip(("clean", "attacked"), pair):
                panels.append((f"{ATTRIBUTIONS.label(method)}\n|map|, {kind}", img, "viridis", top))
        for ax, (title, img, cmap, top) in zip(axes[r], panels):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=7)
            if img is None:
                ax.text(0.5, 0.5, "n/a:\nno conv\nlayer", ha="center", va="center", fontsize=7, transform=ax.transAxes)
                continue
            gray = cmap == "gray"
            shown = ax.imshow(img, cmap=cmap, vmin=0, vmax=1 if gray else (top if top > 0 else 1),
                              aspect="auto" if img.shape[0] == 1 else "equal")
            if not gray:
                bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
                bar.ax.tick_params(labelsize=6)
        axes[r, 0].set_ylabel(f"{model}\ntrue: {name(true)}", fontsize=9)
    fig.suptitle("|attribution| colour scale shared by the clean and attacked map of each model and method", fontsize=8)
    fig.tight_layout()
    return fig


def plot_decision_boundaries(arrays: dict, models, epsilon: float, class_names) -> plt.Figure:
    """2-D data: each model's predicted class over the input square [0, 1]^2 (shaded), the
    clean test points (circles, coloured by true label) and each one's adversarial example
    against that model (crosses, joined to the clean point; red where the attack flips it).

    ``arrays``: what the attack stage wrote (``stages.attack.decision_boundaries``): ``grid``
    (R,), ``x`` (N, 2), ``y`` (N,) and per model ``<name>__region`` (R, R), ``<name>__x_adv``
    (N, 2) and ``<name>__flipped`` (N,).
    """
    gx, gy = np.meshgrid(arrays["grid"], arrays["grid"])
    x, y = arrays["x"], arrays["y"]
    labels = np.unique(y)
    colors = ListedColormap(OKABE_ITO[: max(2, len(labels))])
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.6), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], models):
        x_adv, flipped = arrays[f"{name}__x_adv"], arrays[f"{name}__flipped"]
        ax.contourf(gx, gy, arrays[f"{name}__region"], levels=np.arange(len(labels) + 1) - 0.5, cmap=colors, alpha=0.25)
        for (x0, y0), (x1, y1), bad in zip(x, x_adv, flipped):
            ax.plot([x0, x1], [y0, y1], color="#D55E00" if bad else "0.6", lw=0.6)
        ax.scatter(x[:, 0], x[:, 1], c=y, cmap=colors, vmin=-0.5, vmax=len(labels) - 0.5, s=14, edgecolors="k", lw=0.4)
        ax.scatter(x_adv[:, 0], x_adv[:, 1], c=np.where(flipped, "#D55E00", "0.3"), marker="x", s=12, lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="feature 1", aspect="equal",
               title=f"{name}: {flipped.mean():.0%} flipped at ε={epsilon:g}")
    axes[0, 0].set_ylabel("feature 2")
    handles = [plt.Line2D([], [], marker="o", ls="", color=OKABE_ITO[i], mec="k", label=f"class {class_names[i]}")
               for i in range(len(labels))]
    handles += [plt.Line2D([], [], marker="x", ls="", color="0.3", label="PGD example, still correct"),
                plt.Line2D([], [], marker="x", ls="", color="#D55E00", label="PGD example, flipped")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.06))
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


def plot_attack_convergence(traces: pd.DataFrame, models, epsilon: float) -> plt.Figure:
    """One panel per model: robust accuracy along each iterative attack's budget (APGD's
    iterations, Square's queries; as a share of the budget), mean over runs, at ``epsilon``.
    A curve still falling at the end of its budget had not converged."""
    t = traces[traces["epsilon"] == epsilon]
    attacks = list(dict.fromkeys(t["attack"]))
    colors = {a: OKABE_ITO[(i + 3) % len(OKABE_ITO)] for i, a in enumerate(attacks)}
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        for attack in attacks:
            curve = t[(t["model"] == model) & (t["attack"] == attack)].groupby("iteration")["accuracy"].mean()
            if curve.empty:
                continue
            ax.plot(curve.index / max(curve.index.max(), 1), curve.values, color=colors[attack], label=attack_label(attack))
        ax.set(title=model, xlabel="share of the attack's budget", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"robust accuracy at ε={epsilon:g}")
    axes[0, -1].legend(fontsize=7)
    fig.suptitle("Convergence of the iterative attacks (mean over runs)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_smoothing(smoothing: pd.DataFrame, models) -> plt.Figure:
    """Certified accuracy of each model's smoothed classifier against the L2 radius (randomized
    smoothing), mean over runs with corrected 95% bands: classical and quantum on one axis."""
    colors = model_colors(models)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for model in models:
        curve = smoothing[smoothing["model"] == model].sort_values("epsilon")
        _band(ax, curve.assign(ci_low=curve["ci_low"].clip(*ACCURACY_BOUNDS), ci_high=curve["ci_high"].clip(*ACCURACY_BOUNDS)),
              "epsilon", colors[model], model)
    ax.set(xlabel="L2 radius (inputs in [0, 1])", ylabel="certified accuracy of the smoothed classifier",
           ylim=(-0.02, 1.02), title="Randomized smoothing")
    ax.grid(alpha=0.3)
    ax.legend(title="model", fontsize=8)
    fig.tight_layout()
    return fig


def plot_hardware(hardware: pd.DataFrame, epsilons) -> plt.Figure:
    """One panel per budget: every circuit (its noise and shots on the x axis, in config
    order) with its clean accuracy, its attacked accuracy (the worst case over every attack,
    an upper bound) and its certified accuracy (a lower bound), means over runs with 95%
    intervals; a missing certified mark means no certificate applies."""
    order = list(dict.fromkeys(hardware["model"]))
    fig, axes = plt.subplots(1, len(epsilons), figsize=(1.2 + 0.9 * len(order) * len(epsilons), 4.2), sharey=True,
                             squeeze=False)
    for ax, epsilon in zip(axes[0], epsilons):
        h = hardware[hardware["epsilon"] == epsilon].set_index("model").loc[order]
        x = np.arange(len(order))
        ax.plot(x - 0.15, h["clean"], "o", color="0.4", label="clean")
        for column, shift, color, marker, label in (("attacked", 0.0, OKABE_ITO[5], "v", "attacked (upper bound)"),
                                                     ("certified", 0.15, OKABE_ITO[2], "^", "certified (lower bound)")):
            low, high = h[f"{column}_low"].clip(0, 1), h[f"{column}_high"].clip(0, 1)
            ax.errorbar(x + shift, h[column], yerr=[h[column] - low, high - h[column]], fmt=marker, color=color,
                        ms=5, capsize=2, label=label)
        ax.set_xticks(x, [f"{m}\n{s}" for m, s in zip(order, h["setting"])], rotation=60, ha="right", fontsize=7)
        ax.set(title=f"ε = {epsilon:g}", ylim=(-0.02, 1.02))
    axes[0, 0].set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def plot_universal_fooling(universal_stats: pd.DataFrame, models) -> plt.Figure:
    """Universal perturbations against ε (the report's ``universal_stats``): per model the
    untargeted fooling rate (mean and corrected 95% interval across runs, a band) beside the
    random perturbation of the same norm (dashed); with targeted ones, a second panel of the
    targeted success rate averaged over the target classes (dashed: the random δ's)."""
    colors = model_colors(models)
    s = universal_stats[universal_stats["target_model"].isna()] if "target_model" in universal_stats else universal_stats
    panels = [("none", "fooling_rate", "baseline_fooling_rate", "untargeted: fooling rate",
               "share of correct test points δ fools")]
    if (s["target"].astype(str) == "all").any():
        panels.append(("all", "success_rate", "baseline_success_rate", "class-targeted: success rate (mean over targets)",
                       "share of other-class points sent to the target"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (target, measure, baseline, title, ylabel) in zip(axes[0], panels):
        for model in models:
            rows = s[(s["model"] == model) & (s["target"].astype(str) == target)]
            curve = rows[rows["measure"] == measure].sort_values("epsilon")
            _band(ax, curve.assign(ci_low=curve["ci_low"].clip(*ACCURACY_BOUNDS),
                                   ci_high=curve["ci_high"].clip(*ACCURACY_BOUNDS)), "epsilon", colors[model], model)
            noise = rows[rows["measure"] == baseline].sort_values("epsilon")
            ax.plot(noise["epsilon"], noise["mean"], "--", color=colors[model], lw=1, alpha=0.8)
        ax.plot([], [], "--", color="grey", lw=1, label="random δ, same norm")
        ax.set(xlabel="ε (L∞ budget; inputs in [0, 1])", ylabel=ylabel, title=title, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(title="model", fontsize=8, loc="upper left")
    fig.suptitle(f"Universal perturbations (one δ per model and run, crafted on the training split), mean over "
                 f"{int(s['n_runs'].max())} runs; bands: 95% t-interval across runs, corrected for shared data",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_universal_transfer(transfer: pd.DataFrame, models, epsilon: float) -> plt.Figure:
    """Mean fooling rate, at ``epsilon``, of each source model's universal perturbation (rows)
    on each model (columns): the diagonal is the white-box universal perturbation. ``transfer``:
    rows with source, target_model, epsilon and fooling_rate (per run, or already their means)."""
    from ..analysis.universal import transfer_grid

    grid = transfer_grid(transfer, models, epsilon)
    fig, ax = plt.subplots(figsize=(1.1 * len(models) + 2.2, 1.0 * len(models) + 1.6))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
    for i in range(len(models)):
        for j in range(len(models)):
            v = grid[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(models)), models, fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    ax.set(xlabel="model evaluated", ylabel="δ crafted on", title=f"Universal δ across models, ε={epsilon:g}")
    fig.colorbar(image, ax=ax, label="fooling rate (mean over runs)")
    fig.tight_layout()
    return fig


def plot_universal_perturbations(arrays: dict, models, epsilon: float, input_shape) -> plt.Figure:
    """Run 0's untargeted universal perturbation of each model at ``epsilon`` (``arrays``: the
    attack stage's ``universal_perturbations``), side by side: images as images on one
    diverging scale from −ε (blue) to +ε (red); feature vectors as one bar per feature."""
    from ..stages.universal import delta_name

    deltas = {m: arrays[delta_name(m, epsilon, None)] for m in models if delta_name(m, epsilon, None) in arrays}
    image = len(input_shape) == 3
    fig, axes = plt.subplots(1, len(deltas), figsize=(2.6 * len(deltas) + (0.8 if image else 1.5), 2.9 if image else 3),
                             squeeze=False, sharey=not image)
    shown = None
    for ax, (model, delta) in zip(axes[0], deltas.items()):
        if image:
            shown = ax.imshow(delta.reshape(input_shape[1:]) if input_shape[0] == 1 else delta.mean(0),
                              cmap="RdBu_r", vmin=-epsilon, vmax=epsilon)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.bar(range(delta.size), delta.ravel(), color=["#D55E00" if v > 0 else "#0072B2" for v in delta.ravel()])
            ax.axhline(0, color="black", lw=0.6)
            ax.set(ylim=(-1.05 * epsilon, 1.05 * epsilon), xlabel="feature")
        ax.set_title(model, fontsize=9)
    if image and shown is not None:
        fig.colorbar(shown, ax=axes[0].tolist(), label="δ (pixel change)", shrink=0.85)
    elif not image:
        axes[0, 0].set_ylabel("δ (feature change)")
    fig.suptitle(f"Untargeted universal perturbations of run 0 at ε={epsilon:g}", fontsize=9)
    return fig
DEFENCE_MARKERS = {"none": "o", "pgd": "s", "trades": "D", "lipschitz": "^"}


def plot_defences(table: pd.DataFrame, models, epsilon: float) -> plt.Figure:
    """The defences' trade-off at one budget (``report.defences.defences_table``): clean
    accuracy (x) against the worst case over every attack (left) and the certified accuracy
    (right), one marker per model (its colour as in every figure, its shape the defence),
    means over runs with 95% intervals on both axes; a model no certificate applies to has no
    mark on the right."""
    colors = model_colors(models)
    t = table[table["epsilon"] == epsilon]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharex=True, sharey=True)
    for ax, measure, title, ylabel in ((axes[0], "robust", "worst case over every attack (upper bound)",
                                        "worst-case accuracy under attack"),
                                       (axes[1], "certified", "certified (lower bound)", "certified accuracy")):
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
               xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.yaxis.set_tick_params(labelleft=True)
    handles = [plt.Line2D([], [], marker=m, ls="", color="0.3", label=d) for d, m in DEFENCE_MARKERS.items()
               if d in set(t["defence"])]
    axes[1].legend(handles=handles, title="defence (colour: model)", fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
