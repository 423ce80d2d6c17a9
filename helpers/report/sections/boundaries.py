"""Decision boundaries of a data set with two features: the region each model assigns to each
class, the clean test points and their PGD examples."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from ...store.files import read_arrays
from ..figures import OKABE_ITO
from ..section import SECTIONS, Section


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


@SECTIONS.register
class Boundaries(Section):
    name = "boundaries"
    order = 16
    title = "Decision boundaries (2-D data sets)"
    about = """For a data set with two features (`moons`, `circles`) every input can be drawn. Each panel
shades the region a model assigns to each class (run 0), marks the clean test points by their
true class, and joins each to its PGD example at the interpret budget ε (crosses): a red cross
is a point the attack pushed across the boundary. The reader sees what the attack does: it moves
points straight towards the nearest boundary, so a model whose boundary runs close to the data
loses them at small ε."""
    drawn = ("decision_boundaries",)

    @classmethod
    def applies(cls, cfg) -> bool:
        return cfg.dataset.input_shape == (2,)

    @classmethod
    def figures(cls, report):
        boundaries = read_arrays(report.layout.arrays("decision_boundaries"))
        if boundaries is None:
            return {}
        return {"decision_boundaries": plot_decision_boundaries(boundaries, report.models, report.cfg.interpret.epsilon,
                                                                list(report.cfg.dataset.class_names))}
