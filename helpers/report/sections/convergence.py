"""Did the attacks converge? Robust accuracy along each iterative attack's budget (APGD's
iterations, Square's queries) at one budget."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..figures import OKABE_ITO, attack_label
from ..section import SECTIONS, Section


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


@SECTIONS.register
class Convergence(Section):
    name = "convergence"
    order = 12
    title = "Did the attacks converge?"
    about = """The accuracy along APGD's iterations (best iterate so far, mean over runs, at one
budget): a curve still falling at the last step says the budget is too small and the attacked
accuracy too high."""
    drawn = ("attack_convergence",)

    @classmethod
    def figures(cls, report):
        traces = report.tables["attack_traces"]
        if traces.empty:
            return {}
        budgets = sorted(e for e in traces["epsilon"].unique() if e > 0)
        primary = report.cfg.report.primary
        at = primary.epsilon if primary is not None and primary.epsilon in budgets else budgets[len(budgets) // 2]
        return {"attack_convergence": plot_attack_convergence(traces, report.models, at)}
