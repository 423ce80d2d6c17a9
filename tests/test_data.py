import gzip
import math
import os
from pathlib import Path

import numpy as np
import pytest

from helpers.data import (IDX_FILES, Dataset, area_downsample, load_dataset, run_seeds, split_arrays,
                          split_indices)


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


def _block_mean(images, block):
    n, h, w = images.shape
    return images.reshape(n, h // block, block, w // block, block).mean(axis=(2, 4))


@pytest.mark.parametrize("size", [14, 7, 4, 28])
def test_area_downsample_is_the_block_mean_when_size_divides(size):
    images = np.random.default_rng(0).random((3, 28, 28))
    assert np.allclose(area_downsample(images, size), _block_mean(images, 28 // size))


@pytest.mark.parametrize("size", [8, 16, 5])
def test_area_downsample_weighs_pixels_by_overlap(size):
    images = np.random.default_rng(1).random((3, 28, 28))
    # Repeating pixels onto the common refinement makes the area average a block mean.
    fine = math.lcm(28, size)
    refined = images.repeat(fine // 28, axis=1).repeat(fine // 28, axis=2)
    out = area_downsample(images, size)
    assert out.shape == (3, size, size)
    assert np.allclose(out, _block_mean(refined, fine // size))
    assert np.allclose(out.sum(axis=(1, 2)) * (28 / size) ** 2, images.sum(axis=(1, 2)))
    assert np.allclose(area_downsample(np.full((1, 28, 28), 0.3), size), 0.3)
    with pytest.raises(ValueError, match=r"size must be an integer in 1\.\.28, got 29"):
        area_downsample(images, 29)


def _write_idx(path, array, magic, gzipped=False):
    """``array`` (uint8) as an IDX file: big-endian magic and sizes, then the bytes."""
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    opener = gzip.open if gzipped else open
    with opener(str(path) + (".gz" if gzipped else ""), "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


def _write_mnist(folder, n_train=12, n_test=8):
    """IDX files for images whose pixel in row r is 10 * (label + 1) + r, labels cycling
    0, 1, 2; the training files gzipped, the t10k files plain."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = np.arange(28)[:, None] * np.ones((1, 28))
    for split, n, gzipped in (("train", n_train, True), ("t10k", n_test, False)):
        labels = np.arange(n) % 3
        images = 10 * (labels[:, None, None] + 1) + rows[None]
        _write_idx(folder / f"{split}-images-idx3-ubyte", images, 2051, gzipped)
        _write_idx(folder / f"{split}-labels-idx1-ubyte", labels, 2049, gzipped)
    return folder


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_images_load_downsample_and_relabel(tmp_path, name):
    ds = load_dataset(name, classes=[2, 0], path=str(_write_mnist(tmp_path)), size=7)
    assert ds.X.shape == (13, 1, 7, 7) and ds.X.dtype == np.float32 and ds.is_image
    assert ds.X.min() >= 0.0 and ds.X.max() <= 1.0 and ds.class_names == ("2", "0")
    # Train (12) then t10k (8), labels cycling 0, 1, 2: label 2 is relabelled 0.
    original = np.concatenate([np.arange(12), np.arange(8)]) % 3
    assert np.array_equal(ds.y, np.where(original[original != 1] == 2, 0, 1))
    # A 4x4 block starting at row 4k averages rows 4k..4k+3: 4k + 1.5.
    expected = (10 * np.where(ds.y == 0, 3, 1)[:, None] + 4 * np.arange(7)[None] + 1.5) / 255.0
    assert np.allclose(ds.X[:, 0, :, 0], expected) and np.allclose(ds.X[:, 0], ds.X[:, 0, :, :1])


def test_idx_images_cap_per_class_in_file_order(tmp_path):
    relative = os.path.relpath(_write_mnist(tmp_path), Path(__file__).resolve().parent.parent)
    ds = load_dataset("mnist", path=relative, size=4, max_per_class=2)
    assert ds.X.shape == (6, 1, 4, 4) and np.array_equal(ds.y, [0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=r"dataset.options.max_per_class must be null \(all\) or an integer >= 1"):
        load_dataset("mnist", path=str(tmp_path), max_per_class=0)


def test_idx_images_name_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="the option path is needed"):
        load_dataset("mnist")
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError) as error:
        load_dataset("mnist", path=str(tmp_path))
    message = str(error.value)
    assert str(tmp_path) in message and "lacks ['t10k-labels-idx1-ubyte']" in message and ".gz" in message
    assert all(stem in message for stem in IDX_FILES)


def test_idx_images_refuse_truncated_files_and_wrong_magic(tmp_path):
    bad = _write_mnist(tmp_path / "truncated")
    images = bad / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte is truncated"):
        load_dataset("mnist", path=str(bad))
    bad = _write_mnist(tmp_path / "gzip")
    labels = bad / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-12])
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz is not a readable gzip file"):
        load_dataset("mnist", path=str(bad))
    bad = _write_mnist(tmp_path / "magic")
    _write_idx(bad / "t10k-labels-idx1-ubyte", np.zeros(8), 2051)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte has magic number 2051, expected 2049"):
        load_dataset("mnist", path=str(bad))


@pytest.mark.parametrize("name, n_features, n_classes", [("breast_cancer", 30, 2), ("wine", 13, 3), ("iris", 4, 3)])
def test_tables_load_unscaled_as_rows(name, n_features, n_classes):
    ds = load_dataset(name)
    assert ds.X.ndim == 2 and ds.input_shape == (n_features,) and not ds.is_image
    assert ds.X.dtype == np.float32 and ds.X.max() > 1 and ds.scaling == "minmax"
    assert ds.n_classes == n_classes and set(np.unique(ds.y)) == set(range(n_classes))


def test_digits_at_four_by_four_are_the_two_by_two_block_means():
    full, small = load_dataset("digits", [0, 1]), load_dataset("digits", [0, 1], size=4)
    assert small.input_shape == (1, 4, 4) and np.array_equal(small.y, full.y)
    assert np.allclose(small.X[:, 0, 1, 2], full.X[:, 0, 2:4, 4:6].mean(axis=(1, 2)))
    with pytest.raises(ValueError, match=r"dataset.options.size 5 is unknown; allowed: \[8, 4\]"):
        load_dataset("digits", size=5)


def test_split_arrays_scale_on_the_training_split_only():
    X = np.array([[0, 5, 7], [2, 5, 7], [4, 5, 7], [8, 9, 7], [-4, 1, 7], [1, 5, 8]], dtype=np.float32)
    ds = Dataset("table", X, np.arange(6) % 2, ("0", "1"), scaling="minmax")
    x_tr, y_tr, x_te, y_te = split_arrays(ds, np.array([0, 1, 2]), np.array([3, 4, 5]))
    assert np.array_equal(x_tr[:, 0], [0, 0.5, 1]) and np.array_equal(y_tr, [0, 1, 0])
    # Test points beyond the training range are clipped; constant features map to 0.
    assert np.array_equal(x_te, [[1, 0, 0], [0, 0, 0], [0.25, 0, 0]]) and np.array_equal(y_te, [1, 0, 1])
    assert x_tr.dtype == x_te.dtype == np.float32
    plain = load_dataset("digits", [0, 1])
    x_tr, _, x_te, _ = split_arrays(plain, np.array([0, 2]), np.array([1]))
    assert np.array_equal(x_tr, plain.X[[0, 2]]) and np.array_equal(x_te, plain.X[[1]])


def test_split_arrays_fit_real_tables_into_the_unit_range():
    ds = load_dataset("wine")
    tr, te = split_indices(ds.y, 0.25, seed=0)
    x_tr, _, x_te, _ = split_arrays(ds, tr, te)
    assert np.allclose(x_tr.min(axis=0), 0) and np.allclose(x_tr.max(axis=0), 1)
    assert x_te.min() >= 0 and x_te.max() <= 1 and x_te.shape == (len(te), 13)


@pytest.mark.parametrize("name", ["moons", "circles"])
def test_synthetic_sets_fill_the_unit_square_reproducibly(name):
    ds = load_dataset(name, n_samples=100, seed=3)
    assert ds.X.shape == (100, 2) and ds.X.dtype == np.float32 and not ds.is_image
    assert np.allclose(ds.X.min(axis=0), 0) and np.allclose(ds.X.max(axis=0), 1)
    assert np.array_equal(np.bincount(ds.y), [50, 50]) and ds.scaling is None
    assert np.array_equal(ds.X, load_dataset(name, n_samples=100, seed=3).X)
    assert not np.array_equal(ds.X, load_dataset(name, n_samples=100, seed=4).X)


def test_synthetic_options_are_validated():
    with pytest.raises(ValueError, match="n_samples must be an integer >= 4, got 3"):
        load_dataset("moons", n_samples=3)
    with pytest.raises(ValueError, match="dataset.options.noise must be a number >= 0, got -0.1"):
        load_dataset("circles", noise=-0.1)
    with pytest.raises(ValueError, match=r"dataset.options.factor must lie in \(0, 1\), got 1"):
        load_dataset("circles", factor=1)
    with pytest.raises(ValueError, match=r"dataset.options.factor is unknown for 'moons'; allowed: \['n_samples', 'noise', 'seed'\]"):
        load_dataset("moons", factor=0.5)


def test_kfold_runs_of_one_repetition_test_disjoint_sets_that_cover_every_point():
    from types import SimpleNamespace

    from helpers.data import run_split

    ds = load_dataset("digits", [0, 1, 2, 3])
    section = SimpleNamespace(split="kfold", folds=5, test_fraction=None)
    seeds = run_seeds(3, 10)
    tests = [run_split(ds, section, run, seeds)[1] for run in range(10)]
    for repetition in (tests[:5], tests[5:]):
        covered = np.concatenate(repetition)
        assert len(covered) == len(ds.y) and len(np.unique(covered)) == len(ds.y)  # each point tested once
    assert not np.array_equal(tests[0], tests[5])  # the second repetition is another partition
    train, test = run_split(ds, section, 7, seeds)
    assert len(set(train) & set(test)) == 0 and len(train) + len(test) == len(ds.y)
    assert np.abs(np.bincount(ds.y[test]) / len(test) - np.bincount(ds.y) / len(ds.y)).max() < 0.02  # stratified
    assert np.array_equal(run_split(ds, section, 7, seeds)[1], test)  # reproducible
