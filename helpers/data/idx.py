"""MNIST and Fashion-MNIST from the standard IDX files in a local folder (nothing is downloaded)."""
from __future__ import annotations

import functools
import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..params import ConfigError, Integer, Optional, Params, Text, param
from ..registry import DATASETS
from .base import PROJECT_ROOT, DataSource

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


def idx_files(folder: Path) -> dict[str, Path]:
    """The four IDX files in ``folder`` (each plain or ``.gz``); a ValueError names the missing ones."""
    files = {stem: next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None) for stem in IDX_FILES}
    missing = [stem for stem, p in files.items() if p is None]
    if missing:
        raise ValueError(f"folder {folder} lacks {missing}: it must hold the IDX files {list(IDX_FILES)}, "
                         "each plain or gzipped with a .gz suffix")
    return files


@functools.lru_cache(maxsize=4)  # every worker process reloads its data set
def idx_images(folder: Path, size: int, max_per_class: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Training and t10k images of the IDX files in ``folder``, concatenated (the study makes
    its own stratified splits), scaled from 0..255 to [0, 1] and area-averaged from 28x28 to
    ``size`` x ``size``: X (N, 1, size, size) float32, y (N,) labels 0..9. ``max_per_class``
    keeps the first that many images of each class in file order (all when None). The arrays
    are cached per process and read-only."""
    files = idx_files(folder)
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


@DATASETS.register
class MNIST(DataSource):
    """MNIST from the four IDX files (``IDX_FILES``) in ``path``, 28x28 area-averaged to ``size``."""

    name, label, labels = "mnist", "MNIST", tuple(range(10))
    tags = frozenset({"image"})

    @dataclass(frozen=True)
    class Params(Params):
        path: str | None = param(None, Optional(Text()), "folder holding the IDX files (relative to the repository root unless absolute); required")
        size: int = param(8, Integer(1, 28), "image height and width after area averaging")
        max_per_class: int | None = param(None, Optional(Integer(1), "be null (all) or an integer >= 1"),
                                          "keep the first n images of each class in file order")

        def check(self, where):
            if self.path is None:
                raise ConfigError(f"{where}.path: the option path is needed: the folder holding {list(IDX_FILES)}")
            try:
                idx_files(self.folder)
            except ValueError as error:
                raise ConfigError(f"{where}.path: {error}") from None

        @property
        def folder(self) -> Path:
            return (PROJECT_ROOT / self.path).resolve()

    @classmethod
    def input_shape(cls, params):
        return (1, params.size, params.size)

    @classmethod
    def load(cls, params):
        return idx_images(params.folder, params.size, params.max_per_class)


@DATASETS.register
class FashionMNIST(MNIST):
    """Fashion-MNIST, read like ``mnist``."""

    name, label = "fashion_mnist", "Fashion-MNIST"
