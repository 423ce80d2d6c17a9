"""What a data set is: the ``Dataset`` arrays, and ``DataSource``, the registry entry that loads one."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..registry import Component

# The repository root, for relative data paths.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Dataset:
    """Features ``X`` float32, images (N, C, H, W) or tables (N, D), labels ``y`` (N,) int64
    in 0..k-1. ``X`` is in [0, 1] unless ``scaling`` is "minmax": then ``split_arrays``
    scales it into [0, 1] per run. ``is_test`` (N,) bool marks the test points of a split
    the data set fixes itself (``dataset.split: fixed``); None when runs draw their splits."""

    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    scaling: str | None = None
    is_test: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


class DataSource(Component):
    """A data set in the ``DATASETS`` registry (``dataset.name`` in a config).

    ``labels``: the original labels it offers; ``scaling``: None when ``load`` returns
    features in [0, 1], "minmax" when ``split_arrays`` must scale them per run on the
    training split. ``Params`` are its ``dataset.options``. The verb: ``load(params) -> (X, y)``
    with raw labels, or ``(X, y, is_test)`` for a data set that fixes its own train/test split
    (``has_fixed_split``); ``input_shape(params)`` says the shape of one input without loading.

    A data set read from files knows its labels, scaling and split only from its options:
    it overrides ``class_names``, ``scaling_of`` and ``has_fixed_split``, and ``fingerprint``
    (a hash of the files' content, which enters the keys of the models trained on them).
    """

    labels: ClassVar[tuple[int, ...]]
    scaling: ClassVar[str | None] = None

    @classmethod
    def input_shape(cls, params) -> tuple[int, ...]:
        raise NotImplementedError(f"{cls.__name__} must say its input shape")

    @classmethod
    def class_names(cls, params) -> dict[int, str]:
        """The labels it offers under ``params``, each with its class name (default: ``labels``,
        named by their number)."""
        return {label: str(label) for label in cls.labels}

    @classmethod
    def scaling_of(cls, params) -> str | None:
        """``scaling`` under ``params`` (default: the class's ``scaling``)."""
        return cls.scaling

    @classmethod
    def has_fixed_split(cls, params) -> bool:
        """Whether ``load`` returns the data set's own train/test split (``is_test``)."""
        return False

    @classmethod
    def fingerprint(cls, params) -> str | None:
        """A hash of the data files ``load`` reads (None: the data is defined by code and options)."""
        return None

    @classmethod
    def load(cls, params) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError(f"{cls.__name__} must load its arrays")
