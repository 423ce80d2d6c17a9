"""One registry per kind of component, and the small class every entry is.

An entry owns its ``name`` (what a config calls it), its ``label`` (what a figure calls it),
its typed ``Params`` (a ``params.Params`` dataclass: defaults, allowed values, the check
that names the key), its ``tags`` and the kind's one verb (``attack``, ``attribute``,
``load``, ...). Config validation, masking-check classification, figure labels and the
generated configs reference all read the registries, so adding a component is one class in
one module: ``@ATTACKS.register`` on a class in any module of ``helpers/attacks/``.

This module imports nothing heavy: a registry imports its package (every module in it) the
first time it is asked for an entry.
"""
from __future__ import annotations

import hashlib
import importlib
import pkgutil
import sys
from pathlib import Path
from typing import ClassVar

from .params import ConfigError, NoParams, Params

ROOT = Path(__file__).resolve().parent.parent


class Component:
    """Base of every registry entry (see the module docstring)."""

    name: ClassVar[str]
    label: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    tags: ClassVar[frozenset[str]] = frozenset()
    # Modules (dotted names) beside its own whose code the entry runs: they enter its code hash.
    uses: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def code_files(cls) -> list[Path]:
        """The source files whose content decides this entry's results."""
        modules = dict.fromkeys([cls.__module__, *cls.uses])
        return [Path(sys.modules[m].__file__ if m in sys.modules else importlib.import_module(m).__file__).resolve()
                for m in modules]

    @classmethod
    def code_hash(cls) -> str:
        return source_hash(cls.code_files())


class Registry:
    """Entries of one kind by name, filled by importing ``modules`` (a package: all of its
    modules) on first use."""

    def __init__(self, kind: str, *modules: str):
        self.kind, self.modules = kind, modules
        self._entries: dict[str, type[Component]] = {}
        self._loaded = False

    def register(self, cls: type[Component]) -> type[Component]:
        """Class decorator: add ``cls`` under ``cls.name``."""
        if not issubclass(cls.Params, Params):
            raise TypeError(f"{cls.__name__}.Params must subclass helpers.params.Params")
        if cls.name in self._entries and self._entries[cls.name] is not cls:
            raise ValueError(f"two {self.kind}s are named {cls.name!r}: {self._entries[cls.name]} and {cls}")
        self._entries[cls.name] = cls
        return cls

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for name in self.modules:
            module = importlib.import_module(name)
            for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
                importlib.import_module(f"{name}.{info.name}")

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)

    def entries(self) -> list[type[Component]]:
        self._load()
        return list(self._entries.values())

    def __contains__(self, name) -> bool:
        return name in self.names()

    def __getitem__(self, name: str) -> type[Component]:
        self._load()
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; available: {self.names()}")
        return self._entries[name]

    def lookup(self, name, where: str) -> type[Component]:
        """The entry ``name``, or a ``ConfigError`` "<where> <name> is unknown; allowed: ..."."""
        if not isinstance(name, str) or name not in self.names():
            raise ConfigError(f"{where} {name!r} is unknown; allowed: {self.names()}")
        return self._entries[name]

    def with_tag(self, tag: str) -> list[str]:
        return [e.name for e in self.entries() if tag in e.tags]

    def label(self, name: str) -> str:
        return self[name].label if name in self.names() else name

    def claimed_files(self) -> set[Path]:
        """Every file some entry names as its code (a stage's shared code excludes them)."""
        return {path for entry in self.entries() for path in entry.code_files()}


def source_hash(files) -> str:
    """SHA-256 (16 hex digits) of the files' paths (relative to the repository) and bytes."""
    digest = hashlib.sha256()
    for path in sorted({Path(f).resolve() for f in files}):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


DATASETS = Registry("data set", "helpers.data")
MODELS = Registry("model", "helpers.models")
# The circuit's parts register from any module of helpers/models/ (encodings.py, ansatzes.py, ...).
ENCODINGS = Registry("encoding", "helpers.models")
ANSATZES = Registry("ansatz", "helpers.models")
READOUTS = Registry("readout", "helpers.models")
ATTACKS = Registry("attack", "helpers.attacks")
ATTRIBUTIONS = Registry("attribution method", "helpers.explain")
CERTIFICATES = Registry("certificate", "helpers.certificates")
THREAT_MODELS = Registry("threat model", "helpers.threats")
DEFENCES = Registry("defence", "helpers.defences")
REGISTRIES = (DATASETS, MODELS, ENCODINGS, ANSATZES, READOUTS, ATTACKS, ATTRIBUTIONS, CERTIFICATES, THREAT_MODELS,
              DEFENCES)
