"""What the data sets read from files share: the data folder, paths that stay inside it,
a hash of the files' content, and the checks on labels.

Data files live under one data folder: ``data/`` in the repository (git ignores it) unless
the environment variable ``QML_ROBUSTNESS_DATA`` names another folder. A data set's ``path``
option is relative to that folder; a path that resolves outside it (``../x``, an absolute
path elsewhere, a symbolic link that leads out) is refused, so a config names data, never
arbitrary files.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from ..params import ConfigError
from .base import PROJECT_ROOT

DATA_ENV = "QML_ROBUSTNESS_DATA"


def data_folder() -> Path:
    """The data folder: ``$QML_ROBUSTNESS_DATA`` when set (relative to the repository root
    unless absolute), else the repository's ``data/``; resolved (links followed)."""
    given = os.environ.get(DATA_ENV)
    return (PROJECT_ROOT / given if given else PROJECT_ROOT / "data").resolve()


def data_path(path: str, where: str, kind: str = "file") -> Path:
    """``path`` (relative to the data folder) resolved, after checking that it stays inside
    the data folder and exists as a ``kind`` ("file" or "folder"); a ``ConfigError`` names
    ``where`` (the config key), the path and the folder otherwise."""
    folder = data_folder()
    resolved = (folder / path).resolve()  # an absolute ``path`` replaces the folder; links are followed
    if not resolved.is_relative_to(folder):
        raise ConfigError(f"{where}: {path!r} resolves to {resolved}, outside the data folder {folder} "
                          f"(paths are relative to it; ${DATA_ENV} moves it)")
    exists = resolved.is_dir() if kind == "folder" else resolved.is_file()
    if not exists:
        raise ConfigError(f"{where}: {kind} {path!r} does not exist in the data folder {folder} "
                          f"(looked for {resolved}; ${DATA_ENV} moves the folder)")
    return resolved


def inside_data_folder(path: Path) -> Path:
    """``path`` (an entry found under the data folder) if it resolves inside it; a ValueError
    names a symbolic link that leads out."""
    folder, resolved = data_folder(), path.resolve()
    if not resolved.is_relative_to(folder):
        raise ValueError(f"{path} is a link to {resolved}, outside the data folder {folder}")
    return path


def checked(where: str, read):
    """``read()``, with a ValueError about the file's content raised as a ``ConfigError``
    naming ``where`` (so the config check reports it before any work)."""
    try:
        return read()
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def read_only(arrays: tuple) -> tuple:
    """``arrays`` made read-only: a cached read is shared by every caller."""
    for array in arrays:
        array.flags.writeable = False
    return arrays


def file_fingerprint(path_option: str) -> str:
    """``content_hash`` of the one file a data set's ``path`` option names."""
    path = data_path(path_option, "dataset.options.path")
    stat = path.stat()
    return file_hash(path, stat.st_size, stat.st_mtime_ns)


def content_hash(files, root: Path | None = None) -> str:
    """SHA-256 (16 hex digits) of the files' paths (relative to ``root``; without it, their
    names) and bytes, in the order given: what the data set read, for the keys of the units
    trained on it. An image moved to another class folder changes it."""
    digest = hashlib.sha256()
    for path in map(Path, files):
        name = path.relative_to(root) if root is not None else path.name
        digest.update(str(name).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=16)  # the train stage asks once per model and run
def file_hash(path: Path, size: int, mtime: int) -> str:
    """``content_hash`` of one file, cached while its size and modification time stay."""
    return content_hash([path])


def integer_labels(values, what: str) -> np.ndarray:
    """``values`` as int64 labels; a ``ValueError`` names ``what`` and shows examples of the
    values that are not integers (strings, booleans, fractions, NaN)."""
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    bad = np.ones(len(values), dtype=bool)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values) | (values != np.round(values))
    elif values.dtype.kind == "O":  # e.g. a CSV column mixing numbers and text
        bad = np.array([isinstance(v, bool) or not (isinstance(v, (int, np.integer)) or
                                                    (isinstance(v, float) and v.is_integer())) for v in values])
    if bad.any():
        examples = sorted({repr(v.item() if hasattr(v, "item") else v) for v in values[bad][:50]})[:5]
        raise ValueError(f"{what} must be integers; found {int(bad.sum())} that are not, e.g. {', '.join(examples)}")
    return values.astype(np.int64)


def check_splittable(y: np.ndarray, what: str) -> None:
    """A data set whose runs draw stratified splits needs at least two examples of every
    label; a ``ValueError`` names the labels with only one (``what``: where they came from)."""
    labels, counts = np.unique(y, return_counts=True)
    single = labels[counts < 2].tolist()
    if single:
        raise ValueError(f"{what}: label{'s' * (len(single) > 1)} {single} ha{'ve' if len(single) > 1 else 's'} "
                         "one example only; a stratified train/test split needs at least 2 of every class")
