"""Arrays saved with ``numpy.savez``: ``x`` and ``y``, optionally ``x_test`` and ``y_test``.

``x`` holds images (N, C, H, W) or (N, H, W) (one channel is added) or table rows (N, D);
``y`` (N,) integer labels. With ``x_test`` and ``y_test`` the file fixes the split
(``dataset.split: fixed``): ``x``/``y`` train, ``x_test``/``y_test`` test. ``scaling: none``
expects values already in [0, 1]; ``minmax`` maps each feature by its training min and max
(``split_arrays``, like ``breast_cancer``).
"""
from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..params import Choice, ConfigError, Optional, Params, Text, param
from ..registry import DATASETS
from .base import DataSource
from .files import check_splittable, checked, data_path, file_fingerprint, integer_labels, read_only

TRAIN_KEYS, TEST_KEYS = ("x", "y"), ("x_test", "y_test")


def _features(x: np.ndarray, key: str, path: Path) -> np.ndarray:
    """``x`` as float32 (N, C, H, W) or (N, D); a ValueError names a bad shape or value."""
    if x.dtype.kind not in "iuf" or x.ndim not in (2, 3, 4):
        raise ValueError(f"{path}: array {key!r} must be numbers of shape (N, C, H, W), (N, H, W) or (N, D), "
                         f"got dtype {x.dtype} and shape {x.shape}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: array {key!r} holds {int((~np.isfinite(x)).sum())} values that are NaN or infinite")
    return x[:, None] if x.ndim == 3 else x


@functools.lru_cache(maxsize=4)  # every worker process reloads its data set; size and mtime see edits
def read_npz(path: Path, size: int, mtime: int, scaling: str):
    """(X, y) or (X, y, is_test) from the npz file at ``path`` (module docstring); a ValueError
    names the file and what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as file:
            arrays = {key: file[key] for key in file.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{path} is not a readable .npz file of numeric arrays: {error}") from None
    missing = [k for k in TRAIN_KEYS if k not in arrays]
    test = [k for k in TEST_KEYS if k in arrays]
    if missing or len(test) == 1:
        raise ValueError(f"{path} holds arrays {sorted(arrays)}; it needs 'x' and 'y', and for a fixed split both "
                         "'x_test' and 'y_test'" + (f" (missing {missing})" if missing else ""))
    parts = [TRAIN_KEYS, TEST_KEYS] if test else [TRAIN_KEYS]
    xs, ys = [], []
    for kx, ky in parts:
        xs.append(_features(arrays[kx], kx, path))
        if arrays[ky].ndim != 1 or len(arrays[ky]) != len(xs[-1]):
            raise ValueError(f"{path}: {ky!r} must hold one label per row of {kx!r}: shapes {arrays[ky].shape} "
                             f"and {arrays[kx].shape}")
        ys.append(integer_labels(arrays[ky], f"{path}: labels {ky!r}"))
    if len(xs) == 2 and xs[0].shape[1:] != xs[1].shape[1:]:
        raise ValueError(f"{path}: 'x' and 'x_test' must hold inputs of one shape, got {xs[0].shape[1:]} and "
                         f"{xs[1].shape[1:]}")
    X, y = np.concatenate(xs), np.concatenate(ys)
    if scaling == "none" and (X.min() < 0 or X.max() > 1):
        raise ValueError(f"{path}: values lie in [{X.min():g}, {X.max():g}], not in [0, 1]; scale them into "
                         "[0, 1] or set dataset.options.scaling: minmax")
    if not test:
        check_splittable(y, f"{path}: 'y'")
    return read_only((X, y) if not test else (X, y, np.repeat([False, True], [len(xs[0]), len(xs[1])])))


@DATASETS.register
class NPZ(DataSource):
    """Arrays ``x``, ``y`` (optionally ``x_test``, ``y_test``: a fixed split) from a ``.npz``
    file; images or table rows, already in [0, 1] or min-max scaled on the training split."""

    name, label, labels = "npz", "npz arrays", ()
    tags = frozenset({"files"})
    uses = ("helpers.data.files",)

    @dataclass(frozen=True)
    class Params(Params):
        path: str | None = param(None, Optional(Text()), "the .npz file, relative to the data folder; required")
        scaling: str = param("none", Choice(("none", "minmax")), "`none`: values already lie in [0, 1]; `minmax`: "
                             "each feature mapped by its min and max on the training split")

        def check(self, where):
            checked(f"{where}.path", lambda: self.arrays(where))

        def arrays(self, where: str = "dataset.options"):
            """The file's arrays (``read_npz``); a ``ConfigError`` for a path outside the data folder."""
            path = data_path(self.path, f"{where}.path") if self.path else None
            if path is None:
                raise ConfigError(f"{where}.path: the option path is needed: the .npz file, relative to the data folder")
            stat = path.stat()
            return read_npz(path, stat.st_size, stat.st_mtime_ns, self.scaling)

    @classmethod
    def input_shape(cls, params):
        return tuple(params.arrays()[0].shape[1:])

    @classmethod
    def class_names(cls, params):
        return {int(label): str(label) for label in np.unique(params.arrays()[1])}

    @classmethod
    def scaling_of(cls, params):
        return None if params.scaling == "none" else params.scaling

    @classmethod
    def has_fixed_split(cls, params):
        return len(params.arrays()) == 3

    @classmethod
    def fingerprint(cls, params):
        return file_fingerprint(params.path)

    @classmethod
    def load(cls, params):
        return params.arrays()
