"""Randomized smoothing (Cohen et al. 2019): an L2 certificate for the smoothed classifier."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import beta, norm

from ..attacks.base import generator
from ..params import Integer, Number, Params, param
from ..registry import CERTIFICATES
from .base import Certificate

ABSTAIN = -1


@CERTIFICATES.register
class Smoothing(Certificate):
    """CERTIFY of Cohen et al. (2019) for the smoothed classifier g(x) = the class f predicts
    most often under Gaussian noise N(0, sigma² I) on the input (clipped to [0, 1]): ``n0``
    draws pick the class, ``n`` more give a Clopper–Pearson lower bound p_A at confidence
    1 - ``alpha``, and g is certified at every L2 radius below sigma · Φ⁻¹(p_A) (abstains if
    p_A <= 1/2). A statement about g, not about the model itself: it is reported on its own
    L2 axis, never mixed into the L∞ bracket. For an angle-encoded circuit, Gaussian noise on
    the inputs reaches the qubits as random rotations: a random-rotation channel on the encoding.
    """

    name, label = "smoothing", "randomized smoothing (L2, smoothed classifier)"
    norms = ("l2",)
    tags = frozenset({"smoothed"})

    @dataclass(frozen=True)
    class Params(Params):
        sigma: float = param(0.25, Number(0, open="low"), "noise standard deviation (input units)")
        n0: int = param(100, Integer(1), "draws that select the class")
        n: int = param(1000, Integer(1), "draws that certify it")
        alpha: float = param(0.001, Number(0, 1, open="low high"), "failure probability of the certificate")

    @classmethod
    def applies(cls, model):
        return True, ""

    @torch.no_grad()
    def counts(self, model, x: torch.Tensor, draws: int, gen: torch.Generator, batch: int = 512) -> torch.Tensor:
        """Votes (B, classes): how often f predicts each class under ``draws`` noisy copies."""
        n_classes = int(model(x[:1]).shape[1])
        votes = torch.zeros(len(x), n_classes, dtype=torch.long, device=x.device)
        per = max(1, batch // max(1, len(x)))
        done = 0
        while done < draws:
            k = min(per, draws - done)
            noisy = x.repeat_interleave(k, dim=0)
            noise = torch.randn(noisy.shape, generator=gen, dtype=x.dtype).to(x.device)
            noisy = (noisy + self.params.sigma * noise).clamp(0, 1)
            predicted = model(noisy).argmax(1).reshape(len(x), k)
            votes += torch.nn.functional.one_hot(predicted, n_classes).sum(1)
            done += k
        return votes

    def radii(self, model, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(g's prediction, ABSTAIN where it abstains; its certified L2 radius, 0 there) per sample.

        A stochastic model (``stochastic = True``: finite shots, noise channels sampled at
        every forward) votes with its own randomness too, so g is the smoothed randomised
        classifier (the class most likely under input noise and the model's sampling) and the
        counts are still independent draws of it, which is all CERTIFY needs, provided the model
        draws fresh randomness for every sample of every forward. The model's draws come from
        torch's global generator, seeded here from ``seed`` (and restored after), so the
        certificate is reproducible and leaves the caller's random stream as it was."""
        devices = [x.device.index or 0] if x.device.type == "cuda" else []
        # A stream of its own: the input noise's seed would correlate the two draws.
        model_seed = int(np.random.SeedSequence([self.seed, 2]).generate_state(1)[0])
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(model_seed)
            gen = generator(self.seed)
            guess = self.counts(model, x, self.params.n0, gen).argmax(1)
            votes = self.counts(model, x, self.params.n, gen).gather(1, guess[:, None])[:, 0].cpu().numpy()
        n, alpha = self.params.n, self.params.alpha
        p_lower = np.where(votes > 0, beta.ppf(alpha, np.maximum(votes, 1), n - votes + 1), 0.0)  # one-sided bound
        certified = p_lower > 0.5
        radius = np.where(certified, self.params.sigma * norm.ppf(np.clip(p_lower, 0.5, 1 - 1e-16)), 0.0)
        return np.where(certified, guess.cpu().numpy(), ABSTAIN), radius

    def certify(self, model, x, y, epsilon):
        """Whether g is certified correct at L2 radius ``epsilon`` (smaller than its radius)."""
        prediction, radius = self.radii(model, x, y)
        return (prediction == y.cpu().numpy()) & (radius > epsilon)
