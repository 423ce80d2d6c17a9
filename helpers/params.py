"""Typed parameters: a frozen dataclass per config section or component, every field with a
rule that checks its value and says in words what it allows.

A field is declared with ``param(default, rule, doc)``. ``Params.parse(mapping, where)``
fills the defaults, refuses unknown keys, checks every value with its rule and returns the
dataclass; a bad value raises ``ConfigError`` with a message that names the key
(``where.key``), what is allowed and what was given. The same rules write the generated
configs reference (``describe``). Lists are stored as tuples, so a parsed config is immutable.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from numbers import Real
from typing import ClassVar


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the key."""


class Rule:
    """What a value may be: ``text`` completes "<key> must ..."."""

    text = "be any value"
    item_word = "values"  # how a list of these names a bad element: "<key> values must ..."

    def __init__(self, text: str | None = None):
        if text is not None:
            self.text = text

    def accepts(self, value) -> bool:
        return True

    def parse(self, value, where: str):
        if not self.accepts(value):
            raise ConfigError(f"{where} must {self.text}, got {value!r}")
        return value

    def describe(self) -> str:
        """The allowed values, for the configs reference."""
        return self.text.removeprefix("be ").removeprefix("lie ")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


class Integer(Rule):
    def __init__(self, low: int | None = None, high: int | None = None, text: str | None = None):
        self.low, self.high = low, high
        if high is not None:
            default = f"be an integer in {low}..{high}"
        elif low is not None:
            default = f"be an integer >= {low}"
        else:
            default = "be an integer"
        super().__init__(text or default)

    def accepts(self, v) -> bool:
        return _is_int(v) and (self.low is None or v >= self.low) and (self.high is None or v <= self.high)


class Number(Rule):
    """A real number, optionally bounded; ``open`` names the bounds that are excluded."""

    def __init__(self, low: float | None = None, high: float | None = None, open: str = "", note: str = ""):
        self.low, self.high, self.open = low, high, open
        if low is not None and high is not None:
            left, right = "(" if "low" in open else "[", ")" if "high" in open else "]"
            default = f"lie in {left}{low:g}, {high:g}{right}"
        elif low is not None:
            default = f"be a number {'>' if 'low' in open else '>='} {low:g}"
        elif high is not None:
            default = f"be a number {'<' if 'high' in open else '<='} {high:g}"
        else:
            default = "be a number"
        super().__init__(default + (f" {note}" if note else ""))

    def accepts(self, v) -> bool:
        if not _is_real(v):
            return False
        low_ok = self.low is None or (v > self.low if "low" in self.open else v >= self.low)
        high_ok = self.high is None or (v < self.high if "high" in self.open else v <= self.high)
        return low_ok and high_ok

    def parse(self, value, where):
        return float(super().parse(value, where))


class Boolean(Rule):
    text = "be true or false"

    def accepts(self, v) -> bool:
        return isinstance(v, bool)


class Text(Rule):
    text = "be a string"

    def accepts(self, v) -> bool:
        return isinstance(v, str)


class Choice(Rule):
    """One of a fixed set of names (``choices``: a collection, or a callable returning one,
    for registries that fill up on first use)."""

    item_word = "entry"

    def __init__(self, choices):
        self._choices = choices
        super().__init__()

    @property
    def choices(self) -> list:
        return list(self._choices() if callable(self._choices) else self._choices)

    @property
    def text(self) -> str:
        return f"be one of {self.choices}"

    def parse(self, value, where):
        if not (isinstance(value, str) or _is_int(value)) or value not in self.choices:
            raise ConfigError(f"{where} {value!r} is unknown; allowed: {self.choices}")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(f"`{c}`" for c in self.choices)


class Optional(Rule):
    """``null`` or a value of ``rule``."""

    def __init__(self, rule: Rule, text: str | None = None):
        self.rule = rule
        super().__init__(text or "be null or " + rule.text.removeprefix("be "))

    def parse(self, value, where):
        if value is None:
            return None
        if isinstance(self.rule, Choice):
            return self.rule.parse(value, where)
        if not self.rule.accepts(value):
            raise ConfigError(f"{where} must {self.text}, got {value!r}")
        return self.rule.parse(value, where)


class ListOf(Rule):
    """A list of values of ``item`` (stored as a tuple)."""

    def __init__(self, item: Rule, nonempty: bool = False, unique: bool = False):
        self.item, self.nonempty, self.unique = item, nonempty, unique
        super().__init__(f"be a {'non-empty ' if nonempty else ''}list")

    def parse(self, value, where):
        if not isinstance(value, (list, tuple)) or (self.nonempty and not value):
            raise ConfigError(f"{where} must {self.text}, got {value!r}")
        items = tuple(self.item.parse(v, f"{where} {self.item.item_word}") for v in value)
        if self.unique and len(set(items)) != len(items):
            raise ConfigError(f"{where} has duplicates: {list(value)}")
        return items

    def describe(self) -> str:
        return f"{'non-empty ' if self.nonempty else ''}list, each {self.item.describe()}"


class Either(Rule):
    """A value that one of ``rules`` accepts; ``text`` says which in words."""

    def __init__(self, *rules: Rule, text: str):
        self.rules = rules
        super().__init__(text)

    def accepts(self, v) -> bool:
        return any(r.accepts(v) for r in self.rules)


class Literal(Rule):
    def __init__(self, value):
        self.value = value
        super().__init__(f"be {value!r}")

    def accepts(self, v) -> bool:
        return v == self.value


class AnyMapping(Rule):
    text = "be a mapping"

    def accepts(self, v) -> bool:
        return isinstance(v, Mapping)


class Section(Rule):
    """A mapping of the fields of the ``Params`` class ``params`` (null: all defaults), parsed
    by it: unknown keys refused, every value checked by its own rule."""

    def __init__(self, params: type):
        self.params = params
        super().__init__(f"be a mapping of {[f.name for f in params.fields()]}")

    def parse(self, value, where):
        return self.params.parse(value, where)

    def describe(self) -> str:
        return "mapping: " + "; ".join(f"`{row['key']}` ({row['allowed']}, default {row['default']})"
                                       for row in self.params.describe())


def param(default, rule: Rule, doc: str, quiet: bool = False):
    """A dataclass field with a ``rule`` and a one-line ``doc`` (for the configs reference).
    A ``quiet`` field is left out of ``to_dict`` while it holds its default: an option added
    to a section after results were recorded, so a config without it hashes, records and runs
    exactly as before the option existed."""
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(default=default, metadata={"rule": rule, "doc": doc, "quiet": quiet})


@dataclasses.dataclass(frozen=True)
class Params:
    """Base of every parameter dataclass; subclasses declare fields with ``param``.

    A section whose ``components`` is a registry also takes one mapping per entry of it
    (``attack.pgd: {steps: 10}``), parsed by that entry's ``Params`` into the field
    ``params`` (name -> Params, defaults where not given) for the entries it uses
    (``used_components``) and those the config sets.
    """

    components: ClassVar = None

    @classmethod
    def parse(cls, given: Mapping | None, where: str, owner: str | None = None):
        """The dataclass for ``given`` (a mapping of some or all fields; None: all defaults).

        Unknown keys are refused: "unknown config key 'where.key'", or with ``owner`` (e.g.
        "type 'vqc'") "where.key is unknown for type 'vqc'", listing the allowed keys.
        """
        given = {} if given is None else given
        if not isinstance(given, Mapping):
            raise ConfigError(f"config key {where!r} must be a mapping, got {given!r}")
        allowed = [f.name for f in cls.fields()] + (cls.components.names() if cls.components else [])
        for key in given:
            if key not in allowed:
                name = f"{where}.{key}" if where else str(key)
                if owner:
                    raise ConfigError(f"{name} is unknown for {owner}; allowed: {allowed}")
                raise ConfigError(f"unknown config key {name!r}; allowed: {sorted(allowed)}")
        values = {}
        for f in cls.fields():
            name = f"{where}.{f.name}" if where else f.name
            values[f.name] = f.metadata["rule"].parse(given[f.name], name) if f.name in given else f.default
        if cls.components is not None:
            used = cls.used_components(values) | {key for key in given if key in cls.components}
            values["params"] = {e.name: e.Params.parse(given.get(e.name), f"{where}.{e.name}", owner=repr(e.name))
                                for e in cls.components.entries() if e.name in used}
        params = cls(**values)
        params.check(where)
        return params

    @classmethod
    def fields(cls) -> list[dataclasses.Field]:
        """The configurable fields (those declared with ``param``)."""
        return [f for f in dataclasses.fields(cls) if "rule" in f.metadata]

    @classmethod
    def used_components(cls, values: dict) -> set[str]:
        """The entries of ``components`` whose parameters the section keeps (besides those the
        config sets): those it will run. Only these enter the section's hash (override)."""
        return set()

    def check(self, where: str) -> None:
        """Checks across fields; raise ``ConfigError`` naming the key (override)."""

    def to_dict(self) -> dict:
        """Plain data (tuples as lists), for YAML, JSON and hashes; quiet fields at their
        default are left out (``param``)."""
        data = {f.name: getattr(self, f.name) for f in self.fields()
                if not (f.metadata["quiet"] and getattr(self, f.name) == f.default)}
        if self.components is not None:
            data.update(self.params)
        return plain(data)

    @classmethod
    def describe(cls) -> list[dict]:
        """One row per field: key, default, allowed values, meaning (the configs reference)."""
        return [{"key": f.name, "default": plain(f.default), "allowed": f.metadata["rule"].describe(),
                 "meaning": f.metadata["doc"]} for f in cls.fields()]


@dataclasses.dataclass(frozen=True)
class NoParams(Params):
    """A component without options."""


def plain(value):
    """``value`` with tuples as lists and Params as dicts, recursively."""
    if isinstance(value, Params):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def check(condition: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``condition``."""
    if not condition:
        raise ConfigError(message)
