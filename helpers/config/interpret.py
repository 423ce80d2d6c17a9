"""The ``interpret`` section: attribution methods, the budget their maps are attacked at."""
from __future__ import annotations

import dataclasses

from ..params import Choice, Integer, ListOf, Number, Params, check, param
from ..registry import ATTRIBUTIONS
from .attack import BUDGET


@dataclasses.dataclass(frozen=True)
class InterpretSection(Params):
    """``interpret``: which images are explained after which attack, with which methods
    (``interpret.<name>``: a method's parameters, see the attribution methods table)."""

    components = ATTRIBUTIONS

    epsilon: float = param(0.1, BUDGET, "PGD budget of the attacked images (and of the decision-boundary figure)")
    n_images: int = param(16, Integer(1), "held-out images explained per run (stratified)")
    methods: tuple[str, ...] = param(["saliency", "integrated_gradients", "smoothgrad", "gradcam"],
                                     ListOf(Choice(ATTRIBUTIONS.names), unique=True), "attribution methods")
    top_k_fraction: float = param(0.1, Number(0, 1, open="low"), "share of inputs in the top-k overlap")
    panel_images: int = param(3, Integer(1), "images in the report's attribution panels")
    metric_samples: int = param(8, Integer(1), "perturbations per image for infidelity and sensitivity_max")
    infidelity_stdev: float = param(0.05, Number(0, open="low"), "noise standard deviation of infidelity")
    sensitivity_radius: float = param(0.02, Number(0, open="low"), "L∞ radius of sensitivity_max")
    params: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def used_components(cls, values):
        return set(values["methods"])

    def check(self, where):
        check(self.panel_images <= self.n_images, f"{where}.panel_images must not exceed {where}.n_images")
