"""The ``executor`` section: where the units of work run."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from ..params import AnyMapping, Optional, Params, Text, check, param


@dataclasses.dataclass(frozen=True)
class ExecutorSection(Params):
    """``executor``: where the units of work run (``helpers/stages/execution.py``,
    [clusters](cluster.md)). Nothing here enters a unit's key or a stage's provenance: the
    numbers do not depend on where they were computed."""

    scheduler: str | None = param(None, Optional(Text()),
                                  "null: a local cluster of `workers` single-threaded processes, started per "
                                  "stage; `tcp://host:8786`: the running Dask scheduler to submit to")
    resources: Mapping | None = param(None, Optional(AnyMapping()), "worker resources each task of a config with "
                                      "a circuit asks for, e.g. `{GPU: 1}` (workers started with `--resources GPU=1`)")

    def check(self, where):
        check(self.scheduler is None or re.fullmatch(r"[a-z]+://\S+", self.scheduler) is not None,
              f"{where}.scheduler must be null or a scheduler address such as 'tcp://host:8786', got {self.scheduler!r}")
        for name, amount in (self.resources or {}).items():
            check(isinstance(name, str) and isinstance(amount, (int, float)) and not isinstance(amount, bool)
                  and amount > 0, f"{where}.resources must map resource names to amounts > 0, got {name!r}: {amount!r}")
