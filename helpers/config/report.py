"""The ``report`` section: the primary comparison, a published reference, the data's ceiling."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..params import AnyMapping, Boolean, Choice, ListOf, Number, Optional, Params, Text, check, param
from .attack import BUDGET


# What a published number can be over its runs (``Reference.statistic``): pandas' aggregations.
REFERENCE_STATISTICS = ("mean", "median", "max", "min")


@dataclasses.dataclass(frozen=True)
class Reference(Params):
    """A published result to set beside ours."""

    source: str = param("", Text(), "where it was published")
    attack: str = param("pgd", Text(), "its attack (one of attack.methods)")
    epsilon: float = param(0.0, BUDGET, "its budget (one of attack.epsilons)")
    accuracy: Mapping = param(None, AnyMapping(), "model name -> published accuracy")
    statistic: str = param("mean", Choice(REFERENCE_STATISTICS),
                           "what the published number is over its runs: mean, median, max (the best run) or min "
                           "(the worst); ours is set beside it with the same statistic", quiet=True)


@dataclasses.dataclass(frozen=True)
class Primary(Params):
    """The one comparison an experiment is run to make, declared before its results exist:
    tested without correction for multiplicity; every other comparison is Holm-adjusted."""

    models: tuple[str, ...] = param([], ListOf(Text(), nonempty=True, unique=True), "the two models compared (a − b)")
    attack: str = param("worst_case", Text(), "`worst_case` or one of attack.methods")
    epsilon: float | None = param(None, Optional(BUDGET), "the budget compared (null: the area under the "
                                  "accuracy-vs-ε curve)")


@dataclasses.dataclass(frozen=True)
class ReportSection(Params):
    """``report``: the primary comparison, what counts as a run, and a published result to compare with."""

    primary: Primary | None = param(None, Optional(AnyMapping()),
                                    "the pre-declared comparison: {models: [a, b], attack, epsilon}")
    exclude_degenerate: bool = param(True, Boolean(), "leave degenerate runs (models.csv) out of every "
                                     "statistic and comparison; they are counted either way")
    reference: Reference | None = param(None, Optional(AnyMapping()),
                                        "a published result: {source, attack, epsilon, accuracy: {model: value}}")
    ceiling_seconds: float = param(60.0, Number(0, open="low"),
                                   "time limit of the exact search for the data's ceiling (analysis.ceiling) per run, "
                                   "norm and ε with more than two classes; past it the ceiling is the solver's upper bound")

    @classmethod
    def parse(cls, given, where, owner=None):
        section = super().parse(given, where)
        if section.primary is not None:
            section = dataclasses.replace(section, primary=Primary.parse(section.primary, f"{where}.primary"))
        ref = section.reference
        if ref is None:
            return section
        keys = [f.name for f in Reference.fields() if not f.metadata["quiet"]]
        optional = [f.name for f in Reference.fields() if f.metadata["quiet"]]
        check(isinstance(ref, Mapping) and set(keys) <= set(ref) <= set(keys + optional),
              f"{where}.reference must be null or a mapping with the keys {keys} (and optionally {optional}), "
              f"got {ref!r}")
        return dataclasses.replace(section, reference=Reference.parse(ref, f"{where}.reference"))

    def to_dict(self) -> dict:
        return {"primary": None if self.primary is None else self.primary.to_dict(),
                "exclude_degenerate": self.exclude_degenerate,
                "reference": None if self.reference is None else self.reference.to_dict(),
                "ceiling_seconds": self.ceiling_seconds}
