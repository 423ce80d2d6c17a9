"""Data sets with features in [0, 1], stratified splits and per-run seeds.

Image data sets (digits, plus_minus, mnist, fashion_mnist) load as ``X`` of shape
(N, 1, H, W); tabular (breast_cancer, wine) and synthetic 2-D (moons, circles) data sets as
(N, D). ``X`` is float32 and ``y`` of shape (N,) holds int64 labels relabelled to 0..k-1 in
the order of the requested classes. Features lie in [0, 1] (and every normalisation sits
inside the models) so that an L-infinity epsilon means the same thing for every model.

Tabular features have no natural range: they load unscaled and are min-max scaled per run
on its training split by ``split_arrays`` (``Dataset.scaling == "minmax"``), so the test
split never informs the scaling.
"""
from __future__ import annotations

import functools
import gzip
import inspect
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_circles, make_moons
from sklearn.model_selection import train_test_split

# The repository root, for relative data paths (not helpers.artifacts: it imports torch).
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Dataset:
    """Features ``X`` float32, images (N, 1, H, W) or tables (N, D), labels ``y`` (N,) int64
    in 0..k-1. ``X`` is in [0, 1] unless ``scaling`` is "minmax": then ``split_arrays``
    scales it into [0, 1] per run."""

    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    scaling: str | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
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


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_IMAGES, _IDX_LABELS = 2051, 2049  # IDX magic numbers: unsigned bytes, 3 and 1 dimensions


def area_downsample(images: np.ndarray, size: int) -> np.ndarray:
    """Images (N, H, W) float shrunk to (N, size, size) by area averaging: each output pixel
    is the mean of the input pixels it covers, weighted by their overlap (an exact block mean
    when ``size`` divides H and W). The sum of an image scales by (size / H) * (size / W)."""
    height, width = images.shape[1:]
    if not (isinstance(size, int) and 1 <= size <= min(height, width)):
        raise ValueError(f"size must be an integer in 1..{min(height, width)}, got {size!r}")
    dtype = np.result_type(images.dtype, np.float32)
    rows, cols = _area_weights(height, size).astype(dtype), _area_weights(width, size).astype(dtype)
    return rows @ images @ cols.T


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights, rows summing to 1: output pixel i covers the input interval
    [i, i + 1) * n_in / n_out and weighs each input pixel by its overlap with it."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    pixels = np.arange(n_in + 1)
    overlap = np.minimum(edges[1:, None], pixels[None, 1:]) - np.maximum(edges[:-1, None], pixels[None, :-1])
    overlap = np.clip(overlap, 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def idx_images(path: str | None = None, size: int = 8, max_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST or Fashion-MNIST from the four IDX files (``IDX_FILES``, each plain or gzipped
    with a ``.gz`` suffix) in folder ``path`` (relative to the repository root unless absolute).

    Training and t10k images are concatenated (the study makes its own stratified splits),
    scaled from 0..255 to [0, 1] and area-averaged from 28x28 to ``size`` x ``size``:
    X (N, 1, size, size) float32, y (N,) labels 0..9. ``max_per_class`` keeps the first that
    many images of each class in file order (all when None): 70,000 images are far more than
    a simulated quantum model can train on a CPU. Arrays are cached per process and read-only.
    """
    if path is None:
        raise ValueError(f"the option path is needed: the folder holding {list(IDX_FILES)}")
    if not (isinstance(size, int) and 1 <= size <= 28):
        raise ValueError(f"size must be an integer in 1..28, got {size!r}")
    if not (max_per_class is None or (isinstance(max_per_class, int) and max_per_class >= 1)):
        raise ValueError(f"max_per_class must be None (all) or an integer >= 1, got {max_per_class!r}")
    return _cached_idx_images((_PROJECT_ROOT / path).resolve(), size, max_per_class)


@functools.lru_cache(maxsize=4)  # every worker process reloads its data set
def _cached_idx_images(folder: Path, size: int, max_per_class: int | None) -> tuple[np.ndarray, np.ndarray]:
    files = {stem: next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None) for stem in IDX_FILES}
    missing = [stem for stem, p in files.items() if p is None]
    if missing:
        raise ValueError(f"folder {folder} lacks {missing}: it must hold the IDX files {list(IDX_FILES)}, "
                         "each plain or gzipped with a .gz suffix")
    splits = ("train", "t10k")
    images = np.concatenate([_read_idx(files[f"{split}-images-idx3-ubyte"], _IDX_IMAGES) for split in splits])
    labels = np.concatenate([_read_idx(files[f"{split}-labels-idx1-ubyte"], _IDX_LABELS) for split in splits])
    if images.shape[1:] != (28, 28) or len(images) != len(labels) or labels.max(initial=0) > 9:
        raise ValueError(f"IDX files in {folder} hold {images.shape} images and {labels.shape} labels "
                         f"up to {labels.max(initial=0)}; expected (N, 28, 28) images and N labels in 0..9")
    if max_per_class is not None:
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:max_per_class] for c in range(10)]))
        images, labels = images[keep], labels[keep]
    X = area_downsample(images.astype(np.float32) / 255.0, size)[:, None]
    y = labels.astype(np.int64)
    X.flags.writeable = y.flags.writeable = False  # shared by every caller of the cache
    return X, y


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array in IDX file ``path``: a big-endian int32 magic number, one int32 size
    per dimension, then the bytes. A ValueError names the file if it is not that."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            raw = file.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path} is not a readable gzip file: {error}") from None
    n_dims = magic & 0xFF  # the magic number's last byte
    header = 4 * (1 + n_dims)
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: {len(raw)} bytes, shorter than its IDX header")
    found, *shape = np.frombuffer(raw, ">u4", count=1 + n_dims).tolist()
    if found != magic:
        raise ValueError(f"{path} has magic number {found}, expected {magic}")
    if len(raw) != header + int(np.prod(shape)):
        raise ValueError(f"{path} is truncated or corrupt: {len(raw)} bytes, expected "
                         f"{header + int(np.prod(shape))} for shape {tuple(shape)}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _breast_cancer_raw() -> tuple[np.ndarray, np.ndarray]:
    return _table(load_breast_cancer())


def _wine_raw() -> tuple[np.ndarray, np.ndarray]:
    return _table(load_wine())


def _table(bunch) -> tuple[np.ndarray, np.ndarray]:
    """A scikit-learn table as X (N, D) float32, unscaled (see ``split_arrays``), and labels."""
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def moons(n_samples: int = 400, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's two interleaved half-moons, X (n_samples, 2) in [0, 1] (see
    ``_unit_square``), labels 0 and 1 (n_samples // 2 of label 0), from generator ``seed``."""
    _check_synthetic(n_samples, noise)
    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _unit_square(X), y.astype(np.int64)


def circles(n_samples: int = 400, noise: float = 0.08, factor: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's two concentric circles, the inner (label 1) ``factor`` times the radius
    of the outer (label 0), X (n_samples, 2) in [0, 1] (see ``_unit_square``), from ``seed``."""
    _check_synthetic(n_samples, noise)
    if not 0 < factor < 1:
        raise ValueError(f"factor must be in (0, 1), got {factor!r}")
    X, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    return _unit_square(X), y.astype(np.int64)


def _check_synthetic(n_samples: int, noise: float) -> None:
    if not (isinstance(n_samples, int) and n_samples >= 4):
        raise ValueError(f"n_samples must be an integer >= 4, got {n_samples!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")


def _unit_square(X: np.ndarray) -> np.ndarray:
    """X (N, 2) mapped per axis onto [0, 1] by the min-max of the whole generated set.

    For real data this would leak test points into the scaling; a synthetic set instead
    defines its input space, and one fixed map gives every run and every decision-boundary
    plot the same [0, 1]^2.
    """
    low, high = X.min(axis=0), X.max(axis=0)
    return ((X - low) / (high - low)).astype(np.float32)


# name -> (loader returning raw features and original labels, available labels, scaling):
# scaling None means the loader's X is already in [0, 1]; "minmax" that ``split_arrays``
# scales it per run. A loader's keyword arguments are the data set's ``dataset.options``.
DATASETS = {
    "digits": (_digits_raw, tuple(range(10)), None),
    "plus_minus": (plus_minus, (0, 1), None),
    "mnist": (idx_images, tuple(range(10)), None),
    "fashion_mnist": (idx_images, tuple(range(10)), None),
    "breast_cancer": (_breast_cancer_raw, (0, 1), "minmax"),
    "wine": (_wine_raw, (0, 1, 2), "minmax"),
    "moons": (moons, (0, 1), None),
    "circles": (circles, (0, 1), None),
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
    loader, labels, scaling = DATASETS[name]
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
    return Dataset(name, np.ascontiguousarray(X[keep]), y_new, tuple(str(c) for c in classes), scaling)


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


def run_seeds(base_seed: int, n_runs: int) -> list[int]:
    """Independent seeds for ``n_runs`` Monte Carlo runs, all derived from one base seed."""
    return [int(s) for s in np.random.SeedSequence(base_seed).generate_state(n_runs)]
