"""Data sets that ship with scikit-learn: digits, breast cancer, wine, moons and circles."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_circles, make_moons

from ..params import Integer, Number, Params, param
from ..registry import DATASETS
from .base import DataSource


@DATASETS.register
class Digits(DataSource):
    """scikit-learn's handwritten digits, shipped with the package; pixels 0..16 / 16."""

    name, label, labels = "digits", "digits", tuple(range(10))
    tags = frozenset({"image"})

    @classmethod
    def input_shape(cls, params):
        return (1, 8, 8)

    @classmethod
    def load(cls, params):
        digits = load_digits()
        # Pixel intensities are integers 0..16.
        return (digits.images / 16.0).astype(np.float32)[:, None], digits.target.astype(np.int64)


def _table(bunch) -> tuple[np.ndarray, np.ndarray]:
    """A scikit-learn table as X (N, D) float32, unscaled (see ``split_arrays``), and labels."""
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


@DATASETS.register
class BreastCancer(DataSource):
    """scikit-learn's Wisconsin breast cancer, 569 x 30 features, 0 malignant / 1 benign;
    min-max scaled on each run's training split."""

    name, label, labels, scaling = "breast_cancer", "breast cancer", (0, 1), "minmax"
    tags = frozenset({"tabular"})

    @classmethod
    def input_shape(cls, params):
        return (30,)

    @classmethod
    def load(cls, params):
        return _table(load_breast_cancer())


@DATASETS.register
class Wine(DataSource):
    """scikit-learn's wine, 178 x 13 features, 3 cultivars; min-max scaled on each run's
    training split."""

    name, label, labels, scaling = "wine", "wine", (0, 1, 2), "minmax"
    tags = frozenset({"tabular"})

    @classmethod
    def input_shape(cls, params):
        return (13,)

    @classmethod
    def load(cls, params):
        return _table(load_wine())


def unit_square(X: np.ndarray) -> np.ndarray:
    """X (N, 2) mapped per axis onto [0, 1] by the min-max of the whole generated set.

    For real data this would leak test points into the scaling; a synthetic set instead
    defines its input space, and one fixed map gives every run and every decision-boundary
    plot the same [0, 1]^2.
    """
    low, high = X.min(axis=0), X.max(axis=0)
    return ((X - low) / (high - low)).astype(np.float32)


@DATASETS.register
class Moons(DataSource):
    """scikit-learn's two interleaved half-moons, X (n_samples, 2) mapped onto [0, 1]^2 by one
    fixed min-max map of the generated set, labels 0 and 1."""

    name, label, labels = "moons", "moons", (0, 1)
    tags = frozenset({"plane"})

    @dataclass(frozen=True)
    class Params(Params):
        n_samples: int = param(400, Integer(4), "points generated (half of each class)")
        noise: float = param(0.15, Number(0), "standard deviation of the Gaussian noise")
        seed: int = param(0, Integer(0), "generator seed")

    @classmethod
    def input_shape(cls, params):
        return (2,)

    @classmethod
    def load(cls, params):
        X, y = make_moons(n_samples=params.n_samples, noise=params.noise, random_state=params.seed)
        return unit_square(X), y.astype(np.int64)


@DATASETS.register
class Circles(DataSource):
    """scikit-learn's two concentric circles, the inner (label 1) ``factor`` times the radius
    of the outer (label 0), mapped onto [0, 1]^2 like ``moons``."""

    name, label, labels = "circles", "circles", (0, 1)
    tags = frozenset({"plane"})

    @dataclass(frozen=True)
    class Params(Params):
        n_samples: int = param(400, Integer(4), "points generated (half of each class)")
        noise: float = param(0.08, Number(0), "standard deviation of the Gaussian noise")
        factor: float = param(0.5, Number(0, 1, open="low high"), "inner radius / outer radius")
        seed: int = param(0, Integer(0), "generator seed")

    @classmethod
    def input_shape(cls, params):
        return (2,)

    @classmethod
    def load(cls, params):
        X, y = make_circles(n_samples=params.n_samples, noise=params.noise, factor=params.factor,
                            random_state=params.seed)
        return unit_square(X), y.astype(np.int64)
