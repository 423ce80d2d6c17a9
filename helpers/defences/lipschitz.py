"""Lipschitz regularisation: the certificate's Lipschitz bound of the logits added to the loss."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ..certificates.bounds import lipschitz_bound
from ..params import ConfigError, Number, Params, param
from ..registry import DEFENCES
from .base import Defence


@DEFENCES.register
class LipschitzRegularised(Defence):
    """Cross-entropy of the clean batch plus λ times the Lipschitz bound of the logits that the
    ``lipschitz`` certificate uses (``bounds.lipschitz_bound``, differentiated through the
    model's ``bound_ops``). On the circuit with the trainable (affine) encoding it penalises the
    encoding weights and the output scale (Berberich et al. 2024); on a classical network, the
    product of its layers' L∞ operator norms (spectral-norm regularisation in the certificate's
    norm). A circuit on fixed PCA angles can only shrink its output scale: use ``encoding: affine``."""

    name, label = "lipschitz", "Lipschitz regularisation"
    uses = ("helpers.certificates.bounds",)
    strength = "lam"

    @dataclass(frozen=True)
    class Params(Params):
        lam: float = param(0.01, Number(0), "λ: weight of the Lipschitz bound in the loss")

    @classmethod
    def check_model(cls, model_type, model_params, where):
        # The one model family without bound_ops: a circuit on the normalised state.
        if getattr(model_params, "encoding", None) == "amplitude":
            raise ConfigError(f"{where}: lipschitz needs a model with a Lipschitz bound; amplitude encoding has "
                              "none (use encoding: affine, the trainable-encoding circuit)")
        # log-probabilities: the logarithm's slope near zero probability makes the bound useless (~1e11 at start).
        if getattr(model_params, "readout", None) == "probs":
            raise ConfigError(f"{where}: lipschitz cannot regularise readout 'probs': the bound of log-probabilities "
                              "is astronomically large (the logarithm's slope near zero); use readout: expval")

    @staticmethod
    def bound(model, input_shape):
        ops = model.bound_ops()
        if ops is None:
            raise ConfigError(f"defence lipschitz needs a model with a Lipschitz bound (bound_ops); "
                              f"{type(model).__name__} has none (amplitude encoding?)")
        return lipschitz_bound(ops, tuple(input_shape))

    def loss(self, model, x, y, seed):
        logits = model(x)
        penalty = self.bound(model, x.shape[1:]).to(logits.dtype)
        return F.cross_entropy(logits, y) + self.params.lam * penalty, logits
