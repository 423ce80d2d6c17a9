"""Per-run seeds, stratified train/test splits, scaling on the training split, and subsets."""
from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from .base import Dataset


def run_seeds(base_seed: int, n_runs: int) -> list[int]:
    """Independent seeds for ``n_runs`` Monte Carlo runs, all derived from one base seed
    (a prefix: the first k of n runs have the seeds of k runs)."""
    return [int(s) for s in np.random.SeedSequence(base_seed).generate_state(n_runs)]


def split_indices(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test split of ``range(len(y))``; the same seed gives the same split."""
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_fraction, stratify=y, random_state=seed, shuffle=True
    )
    return np.sort(train_idx), np.sort(test_idx)


def kfold_indices(y: np.ndarray, folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``fold`` of a stratified ``folds``-fold partition of ``range(len(y))`` shuffled by
    ``seed``: the test indices are that fold, the training indices the other folds. The folds
    of one partition (one seed) are disjoint and together cover every point once."""
    partition = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed % 2**32)
    train_idx, test_idx = list(partition.split(np.zeros(len(y)), y))[fold]
    return np.sort(train_idx), np.sort(test_idx)


def run_split(dataset: Dataset, section, run: int, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of Monte Carlo run ``run`` under a config's ``dataset``
    section: ``split: kfold`` gives run r fold r % folds of repetition r // folds, each
    repetition one stratified partition (shuffled by the seed of its first run), so the test
    sets of one repetition are disjoint; ``split: random`` re-draws a stratified split of
    ``test_fraction`` from the run's seed; ``split: fixed`` gives every run the data set's own
    split (``fixed_split``)."""
    if section.split == "fixed":
        return fixed_split(dataset, section.test_subset, seeds[0])
    if section.split == "kfold":
        repetition, fold = divmod(run, section.folds)
        return kfold_indices(dataset.y, section.folds, fold, seeds[repetition * section.folds])
    return split_indices(dataset.y, section.test_fraction, seeds[run])


def subset_seed(section, run: int, seeds: list[int]) -> int:
    """The seed that picks the points run ``run`` attacks or explains out of its test split
    (``attack.n_test``, ``interpret.n_images``): under ``split: fixed`` every run has the same
    test split, so it gets the same subset (the first run's seed); otherwise the run's own."""
    return seeds[0] if section.split == "fixed" else seeds[run]


def fixed_split(dataset: Dataset, test_subset: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of the split ``dataset`` comes with (``is_test``), the
    test indices cut to a stratified subset of ``test_subset`` points drawn with ``seed``
    (all when None). The first run's seed depends on the base seed alone, so every run of an
    experiment, and every stage, sees the same split."""
    if dataset.is_test is None:
        raise ValueError(f"data set {dataset.name!r} comes without its own train/test split: "
                         "dataset.split: fixed does not apply to it")
    train_idx, test_idx = np.flatnonzero(~dataset.is_test), np.flatnonzero(dataset.is_test)
    return train_idx, test_idx[stratified_subset(dataset.y[test_idx], test_subset, seed)]


def split_arrays(dataset: Dataset, train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) of ``dataset`` at the given indices, with features
    in [0, 1]: for ``scaling == "minmax"`` each feature is mapped by the affine map that takes
    its training min and max to 0 and 1 (a feature constant on the training split maps to 0).
    """
    x_train, x_test = dataset.X[train_idx], dataset.X[test_idx]
    if dataset.scaling == "minmax":
        low, span = x_train.min(axis=0), np.ptp(x_train, axis=0)

        def scale(x):
            # Test points beyond the training range are clipped: an L-infinity epsilon stays a
            # fraction of the feature range every model sees, and no input leaves [0, 1].
            scaled = np.divide(x - low, span, out=np.zeros_like(x), where=span > 0)
            return np.clip(scaled, 0.0, 1.0)

        x_train, x_test = scale(x_train), scale(x_test)
    elif dataset.scaling is not None:
        raise ValueError(f"scaling {dataset.scaling!r} is unknown; allowed: None, 'minmax'")
    return x_train, dataset.y[train_idx], x_test, dataset.y[test_idx]


def stratified_subset(y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices of ``n`` points of ``y`` with class proportions kept (all of them if n is None)."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    # Seeded and class-balanced, then back in data order.
    rng = np.random.default_rng(seed)
    picked = []
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts / len(y) * n).astype(int)
    quota[np.argsort(-(counts / len(y) * n - quota))[: n - quota.sum()]] += 1
    for c, q in zip(classes, quota):
        picked.append(rng.permutation(np.flatnonzero(y == c))[:q])
    return np.sort(np.concatenate(picked))
