"""Data sets that ship with scikit-learn: digits, breast cancer, wine, iris, moons and circles."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_circles, make_moons

from ..params import Choice, Integer, Number, Params, param
from ..registry import DATASETS
from .base import DataSource


@DATASETS.register
class Digits(DataSource):
    """scikit-learn's handwritten digits, shipped with the package; pixels 0..16 / 16. With
    ``size: 4`` each image is averaged over 2 x 2 blocks to 4 x 4 (the small images published
    verifiers of quantum classifiers use)."""

    name, label, labels = "digits", "digits", tuple(range(10))
    tags = frozenset({"image"})

    @dataclass(frozen=True)
    class Params(Params):
        size: int = param(8, Choice((8, 4)), "image side: 8 (as shipped) or 4 (2 x 2 blocks averaged)", quiet=True)

    @classmethod
    def input_shape(cls, params):
        return (1, params.size, params.size)

    @classmethod
    def load(cls, params):
        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float32)  # pixel intensities are integers 0..16
        if params.size == 4:
            images = images.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4))
        return images[:, None], digits.target.astype(np.int64)


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


@DATASETS.register
class Iris(DataSource):
    """scikit-learn's iris, 150 x 4 features, 3 species; min-max scaled on each run's training
    split. Its first two classes are the small task published verifiers of quantum classifiers use."""

    name, label, labels, scaling = "iris", "iris", (0, 1, 2), "minmax"
    tags = frozenset({"tabular"})

    @classmethod
    def input_shape(cls, params):
        return (4,)

    @classmethod
    def load(cls, params):
        return _table(load_iris())


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
