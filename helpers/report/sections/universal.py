"""Universal perturbations (``attack.universal``): one perturbation per model, run and ε for the
whole data set; fooling rates beside a random perturbation, class-targeted success, transfer
between models, the perturbations themselves, paired comparisons and the checks of their quality."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ...analysis.statistics import ACCURACY_BOUNDS
from ...analysis.universal import transfer_grid, universal_checks, universal_stats, universal_tests
from ...store.files import read_arrays
from ...store.layout import delta_name
from ..figures import band, model_colors
from ..section import SECTIONS, Section
from ..tables import difference, interval, markdown_table, p_text


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
            band(ax, curve.assign(ci_low=curve["ci_low"].clip(*ACCURACY_BOUNDS),
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



def universal_section(cfg, stats: pd.DataFrame, tests: pd.DataFrame, models) -> list[str]:
    """Universal perturbations: the untargeted fooling rate per model and ε beside a random δ,
    the targeted success rate per target class, the transfer matrix at the middle ε and the
    paired comparisons of fooling rates (the circuit against its capacity-matched MLP first)."""
    section = cfg.attack.universal
    epsilons = sorted(section.epsilons)
    at = epsilons[(len(epsilons) - 1) // 2]
    own = stats[stats["target_model"].isna()].assign(target=lambda t: t["target"].astype(str))

    def cell(model, epsilon, target, measure):
        row = own[(own["model"] == model) & (own["epsilon"] == epsilon) & (own["target"] == target)
                  & (own["measure"] == measure)]
        return interval(row.iloc[0]) if len(row) else "n/a"

    def mean(model, epsilon, target, measure):
        row = own[(own["model"] == model) & (own["epsilon"] == epsilon) & (own["target"] == target)
                  & (own["measure"] == measure)]
        return f"{row['mean'].iloc[0]:.3f}" if len(row) else "n/a"

    rows = [{"model": m, **{f"ε={e:g}": f"{cell(m, e, 'none', 'fooling_rate')} (random δ "
                                          f"{mean(m, e, 'none', 'baseline_fooling_rate')})" for e in epsilons}}
            for m in models]
    lines = ["", "## Universal perturbations", "",
             f"One L∞ perturbation δ per model, run and ε for the whole data set, crafted on the run's training split "
             f"by stochastic PGD on the mean {section.loss} loss ({section.steps} updates of {section.batch_size} points, "
             f"step {section.step_ratio:g}·ε) and applied to the test points the per-input attacks use (docs/universal.md). "
             "Fooling rate: the share of correctly classified test points whose prediction δ changes, mean over runs "
             "with its 95% interval; in brackets a random δ of the same norm (ε times a random sign per input).", "",
             markdown_table(pd.DataFrame(rows)), ""]
    if section.targeted:
        targets = [t for t in dict.fromkeys(own["target"]) if t not in ("none", "all")]
        names = cfg.dataset.class_names
        rows = [{"model": m, "target": names[int(t)] if int(t) < len(names) else t,
                 **{f"ε={e:g}": cell(m, e, t, "success_rate") for e in epsilons}} for m in models for t in targets]
        lines += ["Class-targeted: the share of test points of the other classes that the target class's δ sends "
                  "to the target, mean over runs with its 95% interval.", "", markdown_table(pd.DataFrame(rows)), ""]
    transfer = stats[stats["measure"] == "transfer_fooling_rate"]
    if not transfer.empty:
        grid = transfer[transfer["epsilon"] == at].pivot_table(index="model", columns="target_model", values="mean",
                                                               sort=False).reindex(index=models, columns=models)
        table = grid.map("{:.3f}".format).reset_index().rename(columns={"model": "δ crafted on ↓, evaluated on →"})
        lines += [f"Transfer at ε={at:g}: the mean fooling rate of each model's untargeted δ (rows) on every model "
                  "(columns); the diagonal is each model's own.", "", markdown_table(table), ""]
    if not tests.empty:
        focus = tests[tests["quantum_vs_matched"].astype(bool)] if tests["quantum_vs_matched"].astype(bool).any() else tests
        rows = [{"a − b": f"`{r['model_a']}` − `{r['model_b']}`", "ε": f"{r['epsilon']:g}", "difference": difference(r),
                 "p (corrected)": p_text(r["p_value"]), "p (Holm, all pairs and ε)": p_text(r["p_holm"])}
                for _, r in focus.iterrows()]
        kind = "the circuit against its capacity-matched MLP" if len(focus) < len(tests) else "every pair of models"
        lines += [f"Paired comparison of the untargeted fooling rates, {kind} (difference across runs with its "
                  "corrected 95% interval, unadjusted: the Holm-adjusted p decides; universal_tests.csv has every "
                  "pair):", "", markdown_table(pd.DataFrame(rows)), ""]
    return lines


@SECTIONS.register
class Universal(Section):
    name = "universal"
    order = 110
    title = "Universal perturbations"
    about = """Only with `attack.universal` in the config ([universal perturbations](../docs/universal.md)):
one perturbation δ per model, run and ε for the whole data set, crafted on the training split
and applied to every test point. First the fooling rate against ε (mean over runs, band: 95%
interval; dashed: a random δ of the same norm, so the gap is what a shared direction adds over
noise), and, with targets, the class-targeted success rate. Look for the models whose
universal rate approaches their per-input error: they have one dominant weak direction. Then the
transfer matrix at the middle universal ε (row = the model δ was crafted on, column = the model it is
applied to) and the perturbations themselves (run 0, the same ε, untargeted, from −ε in blue to +ε in
red): a model that reads the image through a few PCA components can only be moved by the part of δ in
their span. The tables are the untargeted fooling rates and the paired comparisons (the circuit
against its capacity-matched MLP marked)."""
    outputs = ("universal_stats", "universal_tests")
    drawn = ("universal_fooling", "universal_transfer", "universal_perturbations")

    @classmethod
    def applies(cls, cfg) -> bool:
        return cfg.attack.universal is not None

    @classmethod
    def tables(cls, report):
        t = report.tables
        universal, transfer = report.keep(t["universal"]), t["universal_transfer"]
        if report.cfg.report.exclude_degenerate and report.degenerate:
            transfer = transfer[[(s, r) not in report.degenerate and (m, r) not in report.degenerate
                                 for s, m, r in zip(transfer["source"], transfer["target_model"], transfer["run"])]]
        return {"universal_stats": universal_stats(universal, transfer, report.ratio),
                "universal_tests": universal_tests(universal, report.cfg.section("models"), report.ratio)}

    @classmethod
    def checks(cls, report):
        return universal_checks(report.tables["universal"], report.degenerate, report.tables["universal_transfer"],
                                report.cfg.n_runs)

    @classmethod
    def figures(cls, report):
        section, models = report.cfg.attack.universal, report.models
        stats = report.tables["universal_stats"]
        at = sorted(section.epsilons)[(len(section.epsilons) - 1) // 2]
        # The transfer matrix from its statistics, so that it leaves out what they leave out (degenerate runs).
        transfer = stats[stats["measure"] == "transfer_fooling_rate"].rename(columns={"model": "source",
                                                                                      "mean": "fooling_rate"})
        drawn = {"universal_fooling": plot_universal_fooling(stats, models),
                 "universal_transfer": plot_universal_transfer(transfer, models, at)}
        arrays = read_arrays(report.layout.arrays("universal_perturbations"))
        if arrays is not None:
            drawn["universal_perturbations"] = plot_universal_perturbations(arrays, models, at,
                                                                            report.cfg.dataset.input_shape)
        return drawn

    @classmethod
    def text(cls, report):
        t = report.tables
        return universal_section(report.cfg, t["universal_stats"], t["universal_tests"], report.models)

    @classmethod
    def show(cls, report):
        u = report.tables["universal_stats"]
        return [*cls.images(report),
                u[(u["measure"] == "fooling_rate") & (u["target"] == "none")]
                .pivot(index="model", columns="epsilon", values="mean").reindex(report.models).round(3),
                report.tables["universal_tests"].sort_values(["quantum_vs_matched", "p_holm"], ascending=[False, True])
                .round(4)]
