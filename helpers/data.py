"""Data sets as image batches in [0, 1], stratified splits and per-run seeds.

Every data set loads as ``X`` of shape (N, 1, H, W), float32 in [0, 1], and ``y`` of shape
(N,), int64 labels relabelled to 0..k-1 in the order of the requested classes. Keeping
pixels in [0, 1] here (and every normalisation inside the models) means an L-infinity
epsilon means the same thing for every model.
"""
from __future__ import annotations

import inspect
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


def plus_minus(n_per_class: int = 200, size: int = 8, noise: float = 0.08, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The earlier study's synthetic "plus vs minus" images: a plus sign (label 0) and a minus
    sign (label 1) in white on black, centred, ``n_per_class`` of each, Gaussian pixel noise
    of standard deviation ``noise``, clipped to [0, 1], from generator ``seed``.

    Both bars are ``size // 4`` pixels thick (at least 1) and leave a ``size // 8`` margin
    (at least 1); the classes differ only in the vertical bar of the plus (outside the
    crossing): an L-infinity budget of 0.5 can make the two classes identical.
    """
    if not (isinstance(n_per_class, int) and n_per_class >= 1):
        raise ValueError(f"n_per_class must be an integer >= 1, got {n_per_class!r}")
    if not (isinstance(size, int) and size >= 4):
        raise ValueError(f"size must be an integer >= 4, got {size!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    thickness, margin = max(1, size // 4), max(1, size // 8)
    start = (size - thickness) // 2
    minus = np.zeros((size, size), dtype=np.float64)
    minus[start:start + thickness, margin:size - margin] = 1.0
    plus = minus.copy()
    plus[margin:size - margin, start:start + thickness] = 1.0
    clean = np.concatenate([np.repeat(plus[None], n_per_class, 0), np.repeat(minus[None], n_per_class, 0)])
    noisy = clean + np.random.default_rng(seed).normal(0.0, noise, clean.shape)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)[:, None], np.repeat(np.arange(2, dtype=np.int64), n_per_class)


# name -> (loader returning raw images in [0, 1] and original labels, available labels).
# A loader's keyword arguments are the data set's ``dataset.options`` in a config.
DATASETS = {
    "digits": (_digits_raw, tuple(range(10))),
    "plus_minus": (plus_minus, (0, 1)),
}


def available_classes(name: str) -> tuple[int, ...]:
    """The original labels a data set offers (for validating ``classes`` in a config)."""
    return DATASETS[name][1]


def dataset_options(name: str) -> list[str]:
    """The options (loader keyword arguments) data set ``name`` accepts."""
    return list(inspect.signature(DATASETS[name][0]).parameters)


def load_dataset(name: str, classes: list[int] | None = None, **options) -> Dataset:
    """Load data set ``name`` restricted to ``classes`` (all when None), labels relabelled;
    ``options`` go to its loader (see ``dataset_options``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}")
    loader, labels = DATASETS[name]
    unknown_options = sorted(set(options) - set(dataset_options(name)))
    if unknown_options:
        raise ValueError(f"dataset {name!r} has no options {unknown_options}; allowed: {dataset_options(name)}")
    classes = list(labels) if classes is None else list(classes)
    unknown = sorted(set(classes) - set(labels))
    if unknown:
        raise ValueError(f"dataset {name!r} has no classes {unknown}; available: {list(labels)}")
    X, y = loader(**options)
    keep = np.isin(y, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    y_new = np.array([relabel[c] for c in y[keep]], dtype=np.int64)
    return Dataset(name, np.ascontiguousarray(X[keep]), y_new, tuple(str(c) for c in classes))


def configured_dataset(dataset_cfg: dict) -> Dataset:
    """The data set a config's ``dataset`` section names, with its classes and options."""
    return load_dataset(dataset_cfg["name"], dataset_cfg["classes"], **dataset_cfg["options"])


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
