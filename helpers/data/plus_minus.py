"""The earlier study's synthetic "plus vs minus" images (``configs/plus_minus_study.yaml``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import Integer, Number, Params, param
from ..registry import DATASETS
from .base import DataSource


def plus_minus(n_per_class: int = 200, size: int = 8, noise: float = 0.08, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """A plus sign (label 0) and a minus sign (label 1) in white on black, centred,
    ``n_per_class`` of each, Gaussian pixel noise of standard deviation ``noise``, clipped to
    [0, 1], from generator ``seed``: X (2 n_per_class, 1, size, size) float32, y int64.

    Both bars are ``size // 4`` pixels thick (at least 1) and leave a ``size // 8`` margin
    (at least 1); the classes differ only in the vertical bar of the plus (outside the
    crossing): an L-infinity budget of 0.5 can make the two classes identical. The options
    are checked by ``PlusMinus.Params`` (size >= 4, noise >= 0).
    """
    thickness, margin = max(1, size // 4), max(1, size // 8)
    start = (size - thickness) // 2
    minus = np.zeros((size, size), dtype=np.float64)
    minus[start:start + thickness, margin:size - margin] = 1.0
    plus = minus.copy()
    plus[margin:size - margin, start:start + thickness] = 1.0
    clean = np.concatenate([np.repeat(plus[None], n_per_class, 0), np.repeat(minus[None], n_per_class, 0)])
    noisy = clean + np.random.default_rng(seed).normal(0.0, noise, clean.shape)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)[:, None], np.repeat(np.arange(2, dtype=np.int64), n_per_class)


@DATASETS.register
class PlusMinus(DataSource):
    """The earlier study's plus (0) and minus (1) signs with Gaussian pixel noise (``plus_minus``)."""

    name, label, labels = "plus_minus", "plus/minus", (0, 1)
    tags = frozenset({"image"})

    @dataclass(frozen=True)
    class Params(Params):
        n_per_class: int = param(200, Integer(1), "images of each class")
        size: int = param(8, Integer(4), "image height and width in pixels")
        noise: float = param(0.08, Number(0), "standard deviation of the Gaussian pixel noise")
        seed: int = param(42, Integer(0), "generator seed")

    @classmethod
    def input_shape(cls, params):
        return (1, params.size, params.size)

    @classmethod
    def load(cls, params):
        return plus_minus(params.n_per_class, params.size, params.noise, params.seed)
