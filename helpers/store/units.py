"""Finished units of work, each saved the moment it is done and reused only while the key of
what produced it (config values, input units, a hash of the code it ran) is unchanged.

A unit is one ``.npz`` file holding its arrays and its key (``__key__``). ``load`` returns
the arrays if the file exists, reads back whole and carries the expected key; otherwise the
unit is computed again and ``save`` overwrites it atomically. So a stage resumes where it was
interrupted, a config change recomputes exactly the units whose values changed, and a code
fix recomputes the units that ran that code, without ``make clean``.
"""
from __future__ import annotations

import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from .files import read_arrays, save_arrays

KEY = "__key__"
SECONDS = "__seconds__"  # what computing the unit took (wall seconds), kept beside its arrays


def unit_key(**parts) -> str:
    """SHA-256 (16 hex digits) of ``parts`` as canonical JSON: what a unit's result depends on."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Units:
    """Counts the units a stage reused and computed, and loads and saves them.

    ``on_unit(reused)`` (optional) hears of each unit the first time ``get`` finishes it (a
    progress bar); a unit asked for again (the escalation pass reuses the first pass's) is
    counted once. ``costs`` lists each unit once: its path, the seconds computing it took
    (saved with it, so a reused unit reports what it cost when it was computed; NaN for a unit
    saved before units were timed) and whether it was reused.
    """

    def __init__(self, on_unit=None):
        self.reused = self.computed = 0
        self.on_unit = on_unit
        self._seen: set[str] = set()
        self.costs: list[dict] = []

    def _read(self, path, key: str, needs: tuple[str, ...]) -> tuple[dict[str, np.ndarray] | None, float]:
        arrays = read_arrays(path)
        if arrays is None or str(arrays.pop(KEY, "")) != key or not set(needs) <= set(arrays):
            return None, np.nan
        return arrays, float(arrays.pop(SECONDS, np.nan))

    def load(self, path: str | Path, key: str, needs: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
        """The unit at ``path`` if it was produced under ``key`` and holds the arrays ``needs``."""
        arrays, _ = self._read(path, key, needs)
        if arrays is not None:
            self.reused += 1
        return arrays

    def save(self, path: str | Path, key: str, arrays: dict[str, np.ndarray]) -> None:
        save_arrays(path, **arrays, **{KEY: np.array(key)})
        self.computed += 1

    def get(self, path: str | Path, key: str, compute, needs: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """The unit at ``path`` under ``key``, computed by ``compute()`` (a dict of arrays) and
        saved (with the seconds it took) if it is missing, stale or lacks ``needs``."""
        arrays, seconds = self._read(path, key, needs)
        reused = arrays is not None
        if not reused:
            start = time.perf_counter()
            try:
                arrays = compute()
            except Exception as error:  # the failed run's report names the unit (stages.execution)
                error.add_note(f"while computing the unit {path}")
                raise
            seconds = time.perf_counter() - start
            save_arrays(path, **arrays, **{KEY: np.array(key), SECONDS: np.array(seconds)})
        # A unit asked for again in the same stage (escalation asks for the configured attacks
        # once more) and found on disk is the same unit: counted once. A computation always counts.
        seen = str(path) in self._seen
        self._seen.add(str(path))
        if reused and seen:
            return arrays
        self.costs.append({"path": str(path), "seconds": seconds, "reused": reused})
        if reused:
            self.reused += 1
        else:
            self.computed += 1
        if self.on_unit is not None:
            self.on_unit(reused)
        return arrays

    def merge(self, other: "Units") -> None:
        self.reused += other.reused
        self.computed += other.computed
        self.costs += other.costs


COST_COLUMNS = ["model", "kind", "name", "epsilon", "seconds", "reused"]


def unit_costs(units: Units, layout) -> list[dict]:
    """One record per unit ``units`` finished (``COST_COLUMNS``): what it is
    (``Layout.describe_unit``), the seconds computing it took and whether this stage reused it."""
    return [{**layout.describe_unit(c["path"]), "seconds": c["seconds"], "reused": c["reused"]} for c in units.costs]


@lru_cache(maxsize=None)
def stage_code_hash(stage: str) -> str:
    """Hash of the code a stage's units share: the stage's own files (``store.graph``)
    without those of any registry entry; each unit's key adds the ``code_hash`` of the
    entries it runs (its model, attack, attribution method, ...), so a change to one entry's
    module recomputes that entry's units and no others."""
    from ..registry import REGISTRIES, source_hash
    from . import graph

    claimed = set().union(*(registry.claimed_files() for registry in REGISTRIES))
    claimed |= set(graph.files([*graph.KEYED_APART.get(stage, ()), *graph.CHOOSES.get(stage, ())]))
    return source_hash([f for f in graph.files(graph.STAGES[stage].code) if f not in claimed])
