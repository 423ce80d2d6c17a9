"""A feature table in a CSV file: one row per example, a label column named in the config.

Every other column is a feature (or those listed in ``features``) and must hold numbers;
features are min-max scaled on each run's training split (``split_arrays``, like
``breast_cancer``). An optional ``split_column`` holding ``train`` or ``test`` in every row
fixes the split (``dataset.split: fixed``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..params import ConfigError, ListOf, Optional, Params, Text, param
from ..registry import DATASETS
from .base import DataSource
from .files import check_splittable, checked, data_path, file_fingerprint, integer_labels, read_only

SPLIT_VALUES = ("train", "test")


def _read_table(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable CSV table: {error}") from None


def _feature_matrix(table, columns: list[str], path: Path) -> np.ndarray:
    """The ``columns`` of ``table`` as X (N, D) float32; a ValueError names columns that
    hold text or missing values."""
    import pandas as pd

    text = [c for c in columns if not (pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c]))]
    if text:
        example = table[text[0]][pd.to_numeric(table[text[0]], errors="coerce").isna()].iloc[0]
        raise ValueError(f"{path}: feature columns {text} hold values that are not numbers (e.g. {example!r} in "
                         f"{text[0]!r}); list the numeric columns with dataset.options.features")
    missing = {c: int(n) for c, n in table[columns].isna().sum().items() if n}
    if missing:
        raise ValueError(f"{path}: feature columns have missing values (column: count) {missing}")
    return table[columns].to_numpy(dtype=np.float32)


@functools.lru_cache(maxsize=4)  # every worker process reloads its data set; size and mtime see edits
def read_csv_table(path: Path, size: int, mtime: int, label_column: str, split_column: str | None,
                   features: tuple[str, ...] | None):
    """(X, y, feature names) or (X, y, feature names, is_test) from the CSV file at ``path``
    (module docstring); a ValueError names the file and the column at fault."""
    table = _read_table(path)
    columns = [str(c) for c in table.columns]
    table.columns = columns
    named = [("label_column", label_column)] + ([("split_column", split_column)] if split_column else [])
    named += [("features", c) for c in features or ()]
    absent = [f"{key} {column!r}" for key, column in named if column not in columns]
    if absent:
        raise ValueError(f"{path} has no column {', '.join(absent)}; its columns: {columns}")
    used = {label_column, split_column}
    leaked = [f"{key.replace('_', ' ')} {column!r}" for key, column in named
              if key != "features" and column in (features or ())]
    if leaked:
        raise ValueError(f"{path}: features must not include the {' or the '.join(leaked)}")
    feature_columns = list(features) if features else [c for c in columns if c not in used]
    if not feature_columns:
        raise ValueError(f"{path} has no feature columns besides {sorted(c for c in used if c)}")
    X = _feature_matrix(table, feature_columns, path)
    y = integer_labels(table[label_column].to_numpy(), f"{path}: labels in column {label_column!r}")
    if split_column is None:
        check_splittable(y, f"{path}: column {label_column!r}")
        loaded = (X, y)
    else:
        split = table[split_column].astype(str).str.strip().str.lower()
        other = sorted(set(split) - set(SPLIT_VALUES))
        if other:
            raise ValueError(f"{path}: split column {split_column!r} must hold {list(SPLIT_VALUES)} in every row, "
                             f"found {other[:5]}")
        is_test = (split == "test").to_numpy()
        if is_test.all() or not is_test.any():
            raise ValueError(f"{path}: split column {split_column!r} marks every row "
                             f"{'test' if is_test.all() else 'train'}; a fixed split needs both")
        loaded = (X, y, is_test)
    return read_only(loaded), tuple(feature_columns)


@DATASETS.register
class CSVTable(DataSource):
    """A CSV feature table with a label column (and optionally a train/test column: a fixed
    split); features min-max scaled on the training split."""

    name, label, labels, scaling = "csv", "CSV table", (), "minmax"
    tags = frozenset({"tabular", "files"})
    uses = ("helpers.data.files",)

    @dataclass(frozen=True)
    class Params(Params):
        path: str | None = param(None, Optional(Text()), "the CSV file (a header row, one row per example), "
                                 "relative to the data folder; required")
        label_column: str | None = param(None, Optional(Text()), "the column of integer labels; required")
        split_column: str | None = param(None, Optional(Text()), "a column holding `train` or `test` in every row: "
                                         "a fixed split (null: runs draw their splits)")
        features: tuple[str, ...] | None = param(None, Optional(ListOf(Text(), nonempty=True, unique=True)),
                                                 "the feature columns (null: every column but the label and "
                                                 "split columns)")

        def check(self, where):
            if self.label_column is None:
                raise ConfigError(f"{where}.label_column: the option label_column is needed: the column of labels")
            checked(f"{where}.path", lambda: self.table(where))

        def table(self, where: str = "dataset.options"):
            """``read_csv_table`` of this file; a ``ConfigError`` for a path outside the data folder."""
            if self.path is None:
                raise ConfigError(f"{where}.path: the option path is needed: the CSV file, relative to the data folder")
            path = data_path(self.path, f"{where}.path")
            stat = path.stat()
            return read_csv_table(path, stat.st_size, stat.st_mtime_ns, self.label_column, self.split_column,
                                  self.features)

    @classmethod
    def input_shape(cls, params):
        return (len(params.table()[1]),)

    @classmethod
    def class_names(cls, params):
        return {int(label): str(label) for label in np.unique(params.table()[0][1])}

    @classmethod
    def has_fixed_split(cls, params):
        return params.split_column is not None

    @classmethod
    def fingerprint(cls, params):
        return file_fingerprint(params.path)

    @classmethod
    def load(cls, params):
        return params.table()[0]
