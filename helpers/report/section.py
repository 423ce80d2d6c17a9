"""A report section, and the registry the report iterates.

A section is one module of ``helpers/report/sections/`` with one ``Section`` subclass
registered in ``SECTIONS``: it says when it applies (``applies``), which tables it computes
from the stages' tables (``tables``), which figures it draws (``figures``), which part of
``summary.md`` it writes (``text``) and what notebook 04 shows of it (``about``, ``show``).
The report stage, the summary and notebook 04 (and with it the report page) loop over the
sections that apply, in ``order``; nothing outside a section asks whether its feature is
on. Adding a section is one module plus its test.

Every method reads a ``Report``: the config, the tables by ``store.layout`` name (the
stages' tables and the report's own, read from the results folder on first use unless they
were given) and the models to report.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import pandas as pd

from ..registry import Component, Registry
from ..store.files import read_csv, read_threat
from ..store.layout import Layout, declare_tables
from ..threats import PRIMARY

# Tables with a ``norm`` column that their readers filter themselves (a certificate's rows say
# what it proves; the ceiling is the data's, per threat model); every other one is split.
WHOLE = ("certified", "ceiling")


def of_threat(name: str, table: pd.DataFrame, norm: str) -> pd.DataFrame:
    """Table ``name`` as a reader of threat model ``norm`` sees it: its rows of that threat
    model without the ``norm`` column (as it is where it has none or is in ``WHOLE``)."""
    if name in WHOLE or "norm" not in table.columns:
        return table
    return table[table["norm"] == norm].drop(columns="norm").reset_index(drop=True)


def read_table(layout: Layout, name: str, norm: str) -> pd.DataFrame:
    """Table ``name`` from disk as a reader of threat model ``norm`` sees it (``of_threat``),
    each cell parsed as in a table of that threat model's rows alone."""
    return read_csv(layout.table(name)) if name in WHOLE else read_threat(layout.table(name), norm)


class Tables(dict):
    """The tables of one threat model (``norm``, default the primary one) by layout name; a
    name not given is read from ``results_dir`` on first use, its rows of ``norm`` only
    (``of_threat``)."""

    def __init__(self, results_dir, given=None, norm: str = PRIMARY):
        super().__init__({name: of_threat(name, table, norm) for name, table in (given or {}).items()})
        self.layout, self.norm = Layout(results_dir), norm

    def __missing__(self, name: str) -> pd.DataFrame:
        self[name] = read_table(self.layout, name, self.norm)
        return self[name]

    def of(self, norm: str) -> Tables:
        """The same results read as threat model ``norm`` reads them (the tables given to this
        one that are whole, e.g. the ceiling, carried over)."""
        return Tables(self.layout.root, {name: table for name, table in self.items() if name in WHOLE}, norm)

    def get(self, name: str, default=None):
        """As ``[]`` (``dict.get`` would skip ``__missing__``), ``default`` where no file exists."""
        return self[name] if name in self or self.layout.table(name).is_file() else default


def degenerate_runs(trained: pd.DataFrame) -> set[tuple[str, int]]:
    """The (model, run) pairs ``models.csv`` marks degenerate."""
    return set(zip(trained.loc[trained["degenerate"], "model"], trained.loc[trained["degenerate"], "run"]))


def reported_models(cfg, trained: pd.DataFrame) -> list[str]:
    """The config's models that have a run to report: all of them, less those degenerate in
    every run when the config leaves degenerate runs out (``report.exclude_degenerate``)."""
    always = trained.groupby("model")["degenerate"].all()
    return [m for m in cfg.models if not (cfg.report.exclude_degenerate and always.get(m, False))]


def without_degenerate(cfg, table: pd.DataFrame, degenerate: set) -> pd.DataFrame:
    """``table`` (with model and run columns) without the ``degenerate`` (model, run) pairs,
    when the config leaves them out (``report.exclude_degenerate``)."""
    if not cfg.report.exclude_degenerate or table.empty or not degenerate:
        return table
    return table[[(m, r) not in degenerate for m, r in zip(table["model"], table["run"])]]


class Report:
    """What a section reads: ``cfg``, ``tables`` (a ``Tables``), ``models`` (those with a run
    to report, in config order), the runs' data overlap ``ratio`` (``n_test/n_train``), the
    degenerate (model, run) pairs, which ``keep`` leaves out of a table when the config says so
    (``report.exclude_degenerate``), and the randomised models (``stochastic``: the masking
    checks' EOT check; the report stage says which, from the models as the config builds them) and
    each run's point ids (``points``: the data-set index of each attacked point, which pairs a
    point's outcomes across runs; ``point_outcomes``)."""

    def __init__(self, cfg, tables: Tables, models=None, stochastic=None, points=None):
        from ..analysis.statistics import overlap_ratio

        self.cfg, self.tables, self.layout, self.norm = cfg, tables, tables.layout, tables.norm
        trained = tables["models"]
        self.models = reported_models(cfg, trained) if models is None else list(models)
        self.ratio = overlap_ratio(cfg.dataset.split, trained)
        self.degenerate = degenerate_runs(trained)
        self._stochastic, self._points = stochastic, points
        self._threats = None

    @property
    def stochastic(self) -> set[str]:
        if self._stochastic is None:
            raise ValueError("the masking checks need the randomised models: pass Report(..., stochastic=...)")
        return self._stochastic

    def point_outcomes(self, table: str = "outcomes"):
        """The per-point outcomes of ``table`` with each run's point ids (``analysis.paired_points``)."""
        from ..analysis.paired_points import PointOutcomes

        if self._points is None:
            raise ValueError("paired per-point tests need each run's point ids: pass Report(..., points=...)")
        return PointOutcomes(self.tables[table], self._points, self.stochastic)

    @property
    def primary(self) -> bool:
        """Whether this is the report of the primary threat model (the config's ``attack``)."""
        return self.norm == PRIMARY

    def threats(self) -> list[Report]:
        """The report of every other threat model of the config, in order (``attack.l2``: L2):
        its tables are that threat model's rows (``Tables.of``), its config's ``attack`` that
        threat model's budgets and attacks (no escalation, no universal perturbations) and no
        primary comparison is declared in it. Built once per report: its sections share the
        views and the tables they have read."""
        if self._threats is not None:
            return self._threats
        reports = []
        for norm, threat in self.cfg.attack.threat_sections().items():
            if norm == self.norm:
                continue
            attack = dataclasses.replace(self.cfg.attack, epsilons=threat.epsilons, methods=threat.methods,
                                         transfer_from=threat.transfer_from, masking_epsilons=threat.masking_epsilons,
                                         escalation=threat.escalation, universal=None)
            cfg = dataclasses.replace(self.cfg, attack=attack, report=dataclasses.replace(self.cfg.report, primary=None))
            reports.append(Report(cfg, self.tables.of(norm), self.models, self._stochastic, self._points))
        self._threats = reports
        return reports

    def keep(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` without the degenerate runs, when the config leaves them out."""
        return without_degenerate(self.cfg, table, self.degenerate)

    def image(self, name: str):
        """Figure ``name`` for a notebook (an ``IPython.display.Image``), None when not drawn."""
        from IPython.display import Image

        path = self.layout.figure(name)
        return Image(filename=str(path)) if path.exists() else None


class Section(Component):
    """Base of every report section (see the module docstring)."""

    order: ClassVar[float]          # place in the summary and the notebook (ascending)
    title: ClassVar[str]            # the notebook's heading
    about: ClassVar[str] = ""       # what the reader is looking at (the notebook's prose, Markdown)
    outputs: ClassVar[tuple[str, ...]] = ()  # the report tables ``tables`` returns (layout names)
    per_threat: ClassVar[tuple[str, ...]] = ()  # those computed for every threat model (a ``norm`` column)
    drawn: ClassVar[tuple[str, ...]] = ()    # the figures ``figures`` may draw (names)

    @classmethod
    def applies(cls, cfg) -> bool:
        return True

    @classmethod
    def tables(cls, report: Report) -> dict[str, pd.DataFrame]:
        """Its tables (``outputs``), from the stages' tables and those of the sections before it."""
        return {}

    @classmethod
    def checks(cls, report: Report) -> pd.DataFrame | None:
        """Masking-check rows (``analysis.masking`` columns) it adds to every run's checks."""
        return None

    @classmethod
    def figures(cls, report: Report) -> dict:
        """Its figures by name (matplotlib figures), from the tables on disk."""
        return {}

    @classmethod
    def text(cls, report: Report) -> list[str]:
        """Its lines of ``summary.md``."""
        return []

    @classmethod
    def show(cls, report: Report) -> list:
        """What notebook 04 displays under its heading (default: the figures it drew)."""
        return cls.images(report) or ["(nothing to show for this config)"]

    @classmethod
    def images(cls, report: Report) -> list:
        """Its figures on disk, for a notebook (``drawn``, or ``figure_names`` where they vary)."""
        return [image for name in cls.figure_names(report) if (image := report.image(name)) is not None]

    @classmethod
    def figure_names(cls, report: Report) -> list[str]:
        return list(cls.drawn)


class SectionRegistry(Registry):
    """The sections by name; registering one declares its tables in the results layout."""

    def register(self, cls):
        declare_tables(cls.outputs, f"report section {cls.name!r}")
        return super().register(cls)


SECTIONS = SectionRegistry("report section", "helpers.report.sections")


def applicable(cfg) -> list[type[Section]]:
    """The sections that apply to ``cfg``, in order."""
    return sorted((s for s in SECTIONS.entries() if s.applies(cfg)), key=lambda s: s.order)


def outputs(cfg) -> list[str]:
    """Every table the report writes for ``cfg``."""
    return [name for section in applicable(cfg) for name in section.outputs]
