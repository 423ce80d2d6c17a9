"""Explanations under attack: the clean and attacked attribution maps of a few test images, the
stability of each method's maps (Spearman between clean and attacked beside its chance levels)
and Captum's faithfulness metrics."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...analysis.statistics import summarize_attribution_stability
from ...registry import ATTRIBUTIONS
from ...store.files import read_arrays
from ..figures import model_colors
from ..section import SECTIONS, Section
from ..tables import interval, markdown_table

FAITHFULNESS = ("infidelity_clean", "infidelity_adv", "sensitivity_clean", "sensitivity_adv")
STABILITY = ("spearman", "spearman_chance", "spearman_random", "spearman_above_chance", "top_k_overlap", "top_k_chance")


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



def attribution_section(cfg, summary: pd.DataFrame, models) -> list[str]:
    """Spearman between clean and attacked maps beside its chance levels, per model and method."""
    means = summary.pivot_table(index=["model", "method"], columns="metric", values="mean", sort=False, dropna=False)
    stability = summary[summary["metric"] == "spearman"].set_index(["model", "method"])
    above = summary[summary["metric"] == "spearman_above_chance"].set_index(["model", "method"])
    rows = []
    for m in models:
        for method in dict.fromkeys(summary["method"]):
            if (m, method) not in stability.index:
                continue
            s = stability.loc[(m, method)]
            if pd.isna(s["mean"]):
                rows.append({"model": m, "method": method, "clean vs attacked": "n/a", "different images": "n/a",
                             "random inputs": "n/a", "above chance": "n/a", "constant maps": ""})
                continue
            rows.append({"model": m, "method": method, "clean vs attacked": interval(s),
                         "different images": f"{means.loc[(m, method), 'spearman_chance']:.3f}",
                         "random inputs": f"{means.loc[(m, method), 'spearman_random']:.3f}",
                         "above chance": interval(above.loc[(m, method)]),
                         "constant maps": int(s.get("undefined", 0))})
    return ["", f"## Attribution stability under PGD at ε={cfg.interpret.epsilon:g}", "",
            "Spearman rank correlation between clean and adversarial |attribution| maps of the same image (1 = "
            "same ranking of inputs), beside its chance levels: the same correlation between the clean maps of two "
            "different images, and between the maps of two random inputs (a model that sees the input through a "
            "few PCA components has similar maps whatever the image). Stability is the distance above the "
            "different-image level, per run. Constant maps (all zero, say) have no ranking: they are counted and "
            "left out, not scored. Mean over runs:", "", markdown_table(pd.DataFrame(rows)), ""]


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


@SECTIONS.register
class Attribution(Section):
    name = "attribution"
    order = 130
    title = "Explanations under attack"
    about = """One test image per panel from run 0, per model (rows): the clean and the attacked input, each
titled with the model's prediction (the row names the true label, and the attacked input says whether
PGD fooled the model on this image), then the clean and attacked |attribution| map for each method.
A model's clean and attacked map of one method share a colour scale (the bar beside each map),
so brightness compares within a pair, not across models. Maps that keep their bright pixels
after the attack are stable; Grad-CAM is "n/a" for models without a convolutional layer.
The last figure is the stability of each method's explanation, per model: mean Spearman rank correlation
between clean and adversarial maps across runs, with 95% intervals as whiskers, and a dash
at its chance level (the same correlation between maps of different images); then
Captum's faithfulness metrics per model and method (lower is better): **infidelity**
measures how badly the map, dotted with a small Gaussian input perturbation, predicts the
change of the model's output; **sensitivity_max** is the largest relative change of the map
when the input moves within a small L∞ ball. Infidelity is in squared logit units: compare
within a model, not across models."""
    outputs = ("attribution_metrics", "attribution_summary")

    @classmethod
    def tables(cls, report):
        stability = report.keep(report.tables["attribution_stability"])
        return {name: pd.concat([summarize_attribution_stability(stability, m, report.ratio) for m in metrics])
                for name, metrics in (("attribution_metrics", FAITHFULNESS), ("attribution_summary", STABILITY))}

    @classmethod
    def figure_names(cls, report):
        return [*(f"attributions_{image}" for image in range(report.cfg.interpret.panel_images)),
                "attribution_stability"]

    @classmethod
    def figures(cls, report):
        cfg, models, summary = report.cfg, report.models, report.tables["attribution_summary"]
        drawn = {"attribution_stability": plot_attribution_stability(
            summary[summary["metric"] == "spearman"], models, "spearman",
            chance=summary[summary["metric"] == "spearman_chance"])}
        maps = read_arrays(report.layout.arrays("attribution_maps"))
        for image in range(cfg.interpret.panel_images):
            drawn[f"attributions_{image}"] = plot_attribution_panel(
                maps, models, cfg.interpret.methods, image=image, class_names=list(cfg.dataset.class_names),
                epsilon=cfg.interpret.epsilon)
        return drawn

    @classmethod
    def text(cls, report):
        t = report.tables
        lines = attribution_section(report.cfg, t["attribution_summary"], report.models)
        if not t["attribution_metrics"].empty:
            lines += faithfulness_section(t["attribution_metrics"], report.models)
        return lines

    @classmethod
    def show(cls, report):
        faithfulness = report.tables["attribution_metrics"]
        return [*cls.images(report), faithfulness.pivot_table(index=["model", "method"], columns="metric",
                                                              values="mean", sort=False).round(4)]
