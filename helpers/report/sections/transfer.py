"""Transfer between models: each model's adversarial examples classified by every other
model, at a few budgets."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..section import SECTIONS, Section


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


@SECTIONS.register
class Transfer(Section):
    name = "transfer"
    order = 14
    title = "Transfer between models"
    about = """Each row is the model the examples were crafted on, each column the model that
classifies them, at a few budgets. A column whose off-diagonal entries are far below its diagonal
is a target that white-box gradients fail to attack."""
    drawn = ("transfer",)

    @classmethod
    def figures(cls, report):
        transfer = report.tables["transfer"]
        if transfer.empty:
            return {}
        nonzero = sorted(e for e in transfer["epsilon"].unique() if e > 0)
        shown = [nonzero[i] for i in sorted({round(j * (len(nonzero) - 1) / 3) for j in range(1, 4)})]
        return {"transfer": plot_transfer_matrix(transfer, report.models, shown)}
