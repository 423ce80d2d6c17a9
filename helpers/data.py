"""Data sets as image batches in [0, 1], stratified splits and per-run seeds.

Every data set loads as ``X`` of shape (N, 1, H, W), float32 in [0, 1], and ``y`` of shape
(N,), int64 labels relabelled to 0..k-1 in the order of the requested classes. Keeping
pixels in [0, 1] here (and every normalisation inside the models) means an L-infinity
epsilon means the same thing for every model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Dataset:
    """Images ``X`` (N, 1, H, W) float32 in [0, 1], labels ``y`` (N,) int64 in 0..k-1."""

    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.X.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel intensities are integers 0..16.
    return (digits.images / 16.0).astype(np.float32)[:, None], digits.target.astype(np.int64)


# name -> (loader returning raw images in [0, 1] and original labels, available labels)
DATASETS = {
    "digits": (_digits_raw, tuple(range(10))),
}


def available_classes(name: str) -> tuple[int, ...]:
    """The original labels a data set offers (for validating ``classes`` in a config)."""
    return DATASETS[name][1]


def load_dataset(name: str, classes: list[int] | None = None) -> Dataset:
    """Load data set ``name`` restricted to ``classes`` (all when None), labels relabelled."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}")
    loader, labels = DATASETS[name]
    classes = list(labels) if classes is None else list(classes)
    unknown = sorted(set(classes) - set(labels))
    if unknown:
        raise ValueError(f"dataset {name!r} has no classes {unknown}; available: {list(labels)}")
    X, y = loader()
    keep = np.isin(y, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    y_new = np.array([relabel[c] for c in y[keep]], dtype=np.int64)
    return Dataset(name, np.ascontiguousarray(X[keep]), y_new, tuple(str(c) for c in classes))


def split_indices(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test split of ``range(len(y))``; the same seed gives the same split."""
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_fraction, stratify=y, random_state=seed, shuffle=True
    )
    return np.sort(train_idx), np.sort(test_idx)


def run_seeds(base_seed: int, n_runs: int) -> list[int]:
    """Independent seeds for ``n_runs`` Monte Carlo runs, all derived from one base seed."""
    return [int(s) for s in np.random.SeedSequence(base_seed).generate_state(n_runs)]
