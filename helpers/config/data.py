"""The ``dataset`` section and the top-level keys (runs, seed, device, workers)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..params import (AnyMapping, Choice, ConfigError, Either, Integer, ListOf, Literal, Number, Optional, Params,
                      check, param)
from ..registry import DATASETS


DEVICES = ("cpu", "cuda", "auto")


@dataclasses.dataclass(frozen=True)
class DatasetSection(Params):
    """``dataset``: which data set, which of its classes, how runs split it, its options."""

    name: str = param("digits", Choice(DATASETS.names), "the data set (see the data sets table)")
    classes: tuple[int, ...] | None = param([0, 1, 2, 3], Optional(ListOf(Integer())),
                                            "labels to keep, relabelled 0..k-1 in this order (null: all of them)")
    split: str = param("kfold", Choice(("kfold", "random", "fixed")),
                       "`kfold`: repeated stratified k-fold, the test sets of one repetition disjoint; "
                       "`random`: a stratified split re-drawn per run; `fixed`: the data set's own train/test "
                       "split, the same in every run (file data sets, see docs/data.md)")
    folds: int = param(5, Integer(2), "k of `kfold` (test share 1/k); n_runs must be a multiple of it")
    test_fraction: float = param(0.25, Number(0, 1, open="low high"), "held-out share of `random` splits")
    test_subset: int | None = param(None, Optional(Integer(1)),
                                    "`fixed` only: evaluate every stage on this many test points, a stratified "
                                    "subset drawn once from the first run's seed (null: the whole test split)")
    options: Params = param(None, AnyMapping(), "the data set's own options (its table below)")

    @classmethod
    def parse(cls, given, where, owner=None):
        if given is not None and not isinstance(given, Mapping):
            raise ConfigError(f"config key {where!r} must be a mapping, got {given!r}")
        given = dict(given or {})
        name = cls.fields()[0].metadata["rule"].parse(given.get("name", "digits"), f"{where}.name")
        options = DATASETS[name].Params.parse(given.pop("options", None), f"{where}.options", owner=repr(name))
        section = dataclasses.replace(super().parse(given, where), options=options)
        unused = {"kfold": ["test_fraction", "test_subset"], "random": ["folds", "test_subset"],
                  "fixed": ["folds", "test_fraction"]}[section.split]
        for key in unused:
            check(key not in given, f"{where}.{key} does not apply to {where}.split: {section.split} "
                                    "(kfold: the test share is 1/folds; random: test_fraction; "
                                    "fixed: the data set's own split, test_subset)")
        if section.classes is None:  # all the data set's classes, written out for the record and the keys
            section = dataclasses.replace(section, classes=tuple(DATASETS[name].class_names(options)))
        section.check(where)
        return section

    def check(self, where):
        if self.options is None:
            return  # called by ``Params.parse`` before ``parse`` has set the options: checked after
        source = DATASETS[self.name]
        classes, names = self.classes, source.class_names(self.options)
        allowed = list(names) if all(names[c] == str(c) for c in names) else [f"{c} ({n})" for c, n in names.items()]
        check(len(classes) >= 2, f"{where}.classes must be null or a list of at least 2 integer labels, "
                                 f"got {list(classes)!r}")
        check(len(set(classes)) == len(classes), f"{where}.classes has duplicates: {list(classes)}")
        check(set(classes) <= set(names),
              f"{where}.classes {sorted(set(classes) - set(names))} not in {self.name!r}; allowed: "
              f"{allowed} (null: all of them)")
        fixed = source.has_fixed_split(self.options)
        check(self.split == "fixed" or not fixed,
              f"{where}.split: {self.split}, but data set {self.name!r} comes with its own train/test split "
              f"(see docs/data.md); set {where}.split: fixed, or give it no split to let runs draw theirs")
        check(self.split != "fixed" or fixed,
              f"{where}.split: fixed needs a data set that comes with its own train/test split; {self.name!r} "
              "with these options does not (an image folder's train/ and test/, an npz file's x_test and "
              "y_test, a CSV file's split_column)")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return DATASETS[self.name].input_shape(self.options)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of ``classes`` in their order (an image folder's folder names; else the numbers)."""
        names = DATASETS[self.name].class_names(self.options)
        return tuple(names[c] for c in self.classes)


@dataclasses.dataclass(frozen=True)
class RunSection(Params):
    """The top-level keys: Monte Carlo runs, seeds, where and on how many processes they run."""

    n_runs: int = param(10, Integer(1), "Monte Carlo runs")
    seed: int = param(2026, Integer(0), "base seed every run's seed derives from")
    device: str = param("auto", Choice(DEVICES), "`auto`: a CUDA GPU when present, else the CPU")
    workers: int | str = param("auto", Either(Literal("auto"), Integer(1), text="be 'auto' (one process per CPU core; "
                                              "one on a GPU) or an integer >= 1"),
                               "local worker processes the runs are spread over (a Dask local cluster; 1: this "
                               "process, serially); the numbers do not depend on it")
