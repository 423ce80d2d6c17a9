"""Data sets with features in [0, 1], stratified splits and per-run seeds.

Every data set is one ``DataSource`` entry of the ``DATASETS`` registry, in a module of this
package: its name, labels, options (``Params``), input shape and ``load``. Image data sets
load as ``X`` of shape (N, C, H, W), tabular and 2-D ones as (N, D); ``X`` is float32 and
``y`` (N,) holds int64 labels relabelled to 0..k-1 in the order of the requested classes.
Features lie in [0, 1] (every normalisation sits inside the models) so that an L-infinity
epsilon means the same thing for every model; tabular features load unscaled and are min-max
scaled per run on its training split by ``split_arrays`` (``scaling == "minmax"``).
User data sets come from files under the data folder (``files.py``): ``image_folder``,
``npz`` and ``csv``; they may fix their own train/test split (``Dataset.is_test``).
"""
from __future__ import annotations

import numpy as np

from ..params import Params
from ..registry import DATASETS
from .base import Dataset, DataSource
from .idx import IDX_FILES, area_downsample
from .plus_minus import plus_minus
from .splits import (fixed_split, kfold_indices, run_seeds, run_split, split_arrays, split_indices, stratified_subset,
                     subset_seed)

__all__ = ["DATASETS", "Dataset", "DataSource", "IDX_FILES", "area_downsample", "configured_dataset", "load_dataset",
           "fixed_split", "kfold_indices", "plus_minus", "run_seeds", "run_split", "split_arrays", "split_indices", "stratified_subset",
           "subset_seed"]


def load_dataset(name: str, classes=None, options: Params | None = None, **kwargs) -> Dataset:
    """Load data set ``name`` restricted to ``classes`` (all when None), labels relabelled.

    Its options come as a parsed ``options`` (the entry's ``Params``) or as keyword
    arguments, checked like ``dataset.options`` in a config (a ``ConfigError`` names the key).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {DATASETS.names()}")
    source = DATASETS[name]
    if options is None:
        options = source.Params.parse(kwargs, "dataset.options", owner=repr(name))
    names = source.class_names(options)
    classes = list(names) if classes is None else list(classes)
    unknown = sorted(set(classes) - set(names))
    if unknown:
        raise ValueError(f"dataset {name!r} has no classes {unknown}; available: {list(names)}")
    X, y, *split = source.load(options)
    keep = np.isin(y, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    y_new = np.array([relabel[c] for c in y[keep]], dtype=np.int64)
    is_test = np.ascontiguousarray(split[0][keep]) if split else None
    return Dataset(name, np.ascontiguousarray(X[keep]), y_new, tuple(names[c] for c in classes),
                   source.scaling_of(options), is_test)


def configured_dataset(section) -> Dataset:
    """The data set a config's ``dataset`` section (``config.DatasetSection``) names."""
    return load_dataset(section.name, section.classes, options=section.options)
