import numpy as np
import pytest

from helpers.data import load_dataset, run_seeds, split_indices


def test_digits_are_images_in_unit_range_with_relabelled_classes():
    ds = load_dataset("digits", [3, 7])
    assert ds.X.shape[1:] == (1, 8, 8) and ds.X.dtype == np.float32
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    assert set(np.unique(ds.y)) == {0, 1} and ds.class_names == ("3", "7")
    assert ds.n_classes == 2 and len(ds.X) == len(ds.y)


def test_unknown_dataset_and_classes_are_named():
    with pytest.raises(ValueError, match="unknown dataset 'mnist3'"):
        load_dataset("mnist3")
    with pytest.raises(ValueError, match=r"no classes \[11\]"):
        load_dataset("digits", [0, 11])


def test_split_is_stratified_disjoint_and_reproducible():
    ds = load_dataset("digits", [0, 1, 2, 3])
    tr, te = split_indices(ds.y, 0.25, seed=5)
    assert len(set(tr) & set(te)) == 0 and len(tr) + len(te) == len(ds.y)
    full = np.bincount(ds.y) / len(ds.y)
    test = np.bincount(ds.y[te]) / len(te)
    assert np.abs(full - test).max() < 0.01
    tr2, te2 = split_indices(ds.y, 0.25, seed=5)
    assert np.array_equal(te, te2) and np.array_equal(tr, tr2)
    _, te3 = split_indices(ds.y, 0.25, seed=6)
    assert not np.array_equal(te, te3)


def test_run_seeds_are_reproducible_and_distinct():
    seeds = run_seeds(2026, 10)
    assert seeds == run_seeds(2026, 10) and len(set(seeds)) == 10
    assert run_seeds(2026, 3) == seeds[:3]
