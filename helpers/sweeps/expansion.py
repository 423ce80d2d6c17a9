"""A sweep file, expanded into points: each point a complete experiment config.

A sweep file (``sweeps/<name>.yaml``) holds

- ``base``: the config every point starts from (a path from the repository root);
- ``set``: overrides of the base for every point;
- ``blocks``: a list of blocks; each block has its own ``set`` (overrides for its points),
  a ``grid`` (key -> list of values: every combination) and ``zip`` (one mapping, or a list
  of them, of keys whose lists move together: the i-th values form one choice);
- ``exclude``: rules; a point whose config matches every key of one rule is left out;
- ``stages``: the stages each point runs (default: train and attack);
- ``report``: what the aggregation compares (``quantum``, ``baseline``, ``attack``,
  ``epsilon``, ``trends``).

Keys are dotted paths into the config (``models.vqc.n_qubits``, ``attack.square.queries``);
a path's missing mappings are created, a path through a value that is not a mapping is an
error. A point's name is its grid choices and each zip group's first key, in the order
written, ``key=value`` joined by commas (a leading ``models.`` left out): readable, and stable
when other blocks are added. Points of different blocks with the same config share one
results folder (the first one's name). Every point's config is parsed by
``helpers.config.parse_config`` before any work; the error names the point and the key.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import ROOT, Config, parse_config
from ..params import ConfigError
from ..store.graph import STAGES, upstream

SWEEP_KEYS = ("base", "set", "blocks", "exclude", "stages", "report")
BLOCK_KEYS = ("set", "grid", "zip")
REPORT_KEYS = ("quantum", "baseline", "attack", "epsilon", "trends")
MAX_NAME = 120  # characters of a point's folder name; a longer one is cut and given a hash
UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


class SweepError(ConfigError):
    """A sweep file that cannot be expanded, or a point whose config is invalid."""


@dataclass(frozen=True)
class Point:
    """One experiment of a sweep: ``name`` (its choices), ``choices`` (dotted key -> value, as
    written), ``config`` (the parsed, validated config) and ``folder`` (its results folder's name:
    its own name, or that of an earlier point with the same config)."""

    name: str
    choices: dict
    config: Config
    folder: str
    block: int


@dataclass(frozen=True)
class Report:
    quantum: str = "vqc"
    baseline: str = "mlp_matched"
    attack: str = "worst_case"
    epsilon: float | None = None
    trends: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sweep:
    """An expanded sweep: its ``name`` (the file's stem), where its results go, its points,
    the points left out by a rule (name -> rule), the stages each point runs, what the report
    compares, and the keys the points were swept over (in the order first written)."""

    name: str
    path: Path
    results_dir: Path
    points: list[Point]
    excluded: dict[str, dict]
    stages: tuple[str, ...]
    report: Report
    keys: tuple[str, ...]
    linked: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key -> the keys of its zip group

    @property
    def folders(self) -> list[Point]:
        """One point per distinct results folder (the first point of each), in order."""
        seen = {}
        for point in self.points:
            seen.setdefault(point.folder, point)
        return list(seen.values())

    def folder_of(self, name: str) -> str:
        """The results folder of the point called ``name`` (points that share one are one experiment)."""
        return next(p.folder for p in self.points if p.name == name)


def set_key(config: dict, key: str, value, where: str) -> None:
    """Set dotted ``key`` of the nested mapping ``config`` to (a copy of) ``value``."""
    parts = key.split(".")
    if not all(parts):
        raise SweepError(f"{where}: {key!r} is not a dotted config key")
    node = config
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SweepError(f"{where}: cannot set {key!r}: {'.'.join(parts[:i + 1])} is {child!r}, not a mapping")
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def get_key(config: Mapping, key: str, default=None):
    """The value at dotted ``key`` of a nested mapping (``default`` where a part is missing)."""
    node = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def value_text(value) -> str:
    """A value as a point's name writes it: numbers as written (``0.1``), lists joined by ``+``."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(value_text(v) for v in value)
    if isinstance(value, Mapping):
        return "+".join(f"{k}-{value_text(v)}" for k, v in value.items())
    return str(value)


def point_name(choices: dict, named: list[str]) -> str:
    """The folder-safe name of a point from its ``named`` choices (``vqc.n_qubits=4,vqc.encoding=angle``)."""
    text = ",".join(f"{key.removeprefix('models.')}={value_text(choices[key])}" for key in named) or "base"
    text = UNSAFE.sub("_", text)
    if len(text) > MAX_NAME:
        text = f"{text[:MAX_NAME - 9]}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return text


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SweepError(f"{where} must be a mapping, got {value!r}")
    return dict(value)


def _lists(group: dict, where: str) -> dict:
    for key, values in group.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{where}.{key} must be a non-empty list of values, got {values!r}")
    return group


def block_choices(block: dict, where: str) -> tuple[list[dict], list[str], dict]:
    """The choices of one block (a list of {key: value}), the keys that name its points, and
    its zip groups (key -> the keys of its group)."""
    for key in block:
        if key not in BLOCK_KEYS:
            raise SweepError(f"{where}: unknown key {key!r}; allowed: {list(BLOCK_KEYS)}")
    grid = _lists(_mapping(block.get("grid"), f"{where}.grid"), f"{where}.grid")
    zips = block.get("zip") or []
    zips = [zips] if isinstance(zips, Mapping) else zips
    if not isinstance(zips, list):
        raise SweepError(f"{where}.zip must be a mapping of key -> list, or a list of them")
    axes, named, linked = [[{k: v} for v in values] for k, values in grid.items()], list(grid), {}
    for i, group in enumerate(zips):
        group = _lists(_mapping(group, f"{where}.zip[{i}]"), f"{where}.zip[{i}]")
        lengths = {key: len(values) for key, values in group.items()}
        if len(set(lengths.values())) > 1:
            raise SweepError(f"{where}.zip[{i}]: the keys of a zip group move together, so their lists need one "
                             f"length; got {lengths}")
        clash = set(group) & (set(grid) | set(linked))
        if clash:
            raise SweepError(f"{where}.zip[{i}]: {sorted(clash)} swept twice in one block")
        axes.append([dict(zip(group, values)) for values in zip(*group.values())])
        named.append(next(iter(group)))
        linked.update({key: tuple(group) for key in group})
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes)], named, linked


def matches(config: Mapping, rule: Mapping) -> bool:
    """Whether a config (plain mapping) matches an exclusion rule: every key's value equals the
    rule's value, or is one of the rule's values when it gives a list."""
    for key, allowed in rule.items():
        value = get_key(config, key)
        if isinstance(allowed, list) and not isinstance(value, list):
            if value not in allowed:
                return False
        elif value != allowed:
            return False
    return True


def read_yaml(path: Path, what: str) -> dict:
    if not path.is_file():
        raise SweepError(f"{what} {path} does not exist")
    with open(path) as fh:
        given = yaml.safe_load(fh) or {}
    if not isinstance(given, dict):
        raise SweepError(f"{what} {path} must be a YAML mapping")
    return given


def _stages(given, where: str) -> tuple[str, ...]:
    stages = tuple(given or ("train", "attack"))
    for stage in stages:
        if stage not in STAGES:
            raise SweepError(f"{where}.stages: unknown stage {stage!r}; allowed: {list(STAGES)}")
        missing = [s for s in upstream(stage) if s not in stages]
        if missing:
            raise SweepError(f"{where}.stages: {stage} needs {missing} before it")
    return tuple(s for s in STAGES if s in stages)


def _report(given, where: str) -> Report:
    given = _mapping(given, f"{where}.report")
    unknown = set(given) - set(REPORT_KEYS)
    if unknown:
        raise SweepError(f"{where}.report: unknown keys {sorted(unknown)}; allowed: {list(REPORT_KEYS)}")
    trends = given.get("trends", [])
    if not isinstance(trends, list):
        raise SweepError(f"{where}.report.trends must be a list of swept keys, got {trends!r}")
    return Report(**{**given, "trends": tuple(trends)})


def expand(path: str | Path, results_root: str | Path | None = None) -> Sweep:
    """Read and expand sweep file ``path`` (relative paths from the repository root): every
    point's config parsed and validated, so a ``SweepError`` naming the point and the key comes
    before any work (all invalid points are listed, not just the first)."""
    path = Path(path)
    path = path if path.is_absolute() else ROOT / path
    given = read_yaml(path, "sweep file")
    where = path.name
    for key in given:
        if key not in SWEEP_KEYS:
            raise SweepError(f"{where}: unknown key {key!r}; allowed: {list(SWEEP_KEYS)}")
    if "base" not in given:
        raise SweepError(f"{where}: `base` (the config every point starts from, e.g. configs/default.yaml) is required")
    base = read_yaml(ROOT / given["base"], f"{where}: base config")
    for key, value in _mapping(given.get("set"), f"{where}.set").items():
        set_key(base, key, value, f"{where}.set")
    blocks = given.get("blocks") or [{}]
    if not isinstance(blocks, list):
        raise SweepError(f"{where}.blocks must be a list of blocks (each: set, grid, zip)")
    rules = given.get("exclude") or []
    if not isinstance(rules, list) or not all(isinstance(r, Mapping) and r for r in rules):
        raise SweepError(f"{where}.exclude must be a list of non-empty mappings (dotted key -> value or list)")
    name = path.stem
    if (ROOT / "configs" / f"{name}.yaml").is_file():
        raise SweepError(f"{where}: configs/{name}.yaml already owns results/{name}/: give the sweep another name")
    results_dir = Path(results_root or ROOT / "results") / name
    stages, report = _stages(given.get("stages"), where), _report(given.get("report"), where)

    points, excluded, errors, keys, linked, by_config, names = [], {}, [], {}, {}, {}, {}
    for b, block in enumerate(blocks):
        at = f"{where}.blocks[{b}]"
        block = _mapping(block, at)
        choices_list, named, block_linked = block_choices(block, at)
        linked.update(block_linked)
        for choices in choices_list:
            config = copy.deepcopy(base)
            for key, value in {**_mapping(block.get("set"), f"{at}.set"), **choices}.items():
                set_key(config, key, value, at)
            label = point_name(choices, named)
            rule = next((r for r in rules if matches(config, r)), None)
            if rule is not None:
                excluded[label] = dict(rule)
                continue
            keys.update(dict.fromkeys(choices))
            try:
                cfg = parse_config(config, experiment=label, results_dir=results_dir / label)
            except ConfigError as error:
                errors.append(f"point {label}: {error}")
                continue
            # The same complete config (defaults included) is one experiment, whatever block wrote it.
            digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
            if names.setdefault(label, digest) != digest:
                errors.append(f"point {label}: two points of this name have different configs (blocks' `set` "
                              "differ but their choices do not): sweep a key that tells them apart")
                continue
            if any(p.name == label for p in points):  # the same point written twice
                continue
            folder = by_config.setdefault(digest, label)
            cfg = dataclasses.replace(cfg, experiment=folder, results_dir=results_dir / folder)
            points.append(Point(label, choices, cfg, folder, b))
    if errors:
        raise SweepError(f"sweep {where}: {len(errors)} invalid point(s), nothing was run:\n  " + "\n  ".join(errors))
    if not points:
        raise SweepError(f"sweep {where}: every point is excluded by a rule of `exclude`")
    for trend in report.trends:
        if trend not in keys:
            raise SweepError(f"{where}.report.trends: {trend!r} is not a swept key; swept: {list(keys)}")
    return Sweep(name, path, results_dir, points, excluded, stages, report, tuple(keys), linked)


def main(argv: list[str]) -> int:
    """``python -m helpers.sweeps.expansion SWEEP``: list the points, or the problem (exit 2)."""
    try:
        sweep = expand(argv[0])
    except (SweepError, yaml.YAMLError) as error:
        print(f"sweep error: {error}")
        return 2
    for point in sweep.points:
        print(point.name + ("" if point.folder == point.name else f"  (same config as {point.folder})"))
    for label, rule in sweep.excluded.items():
        print(f"{label}  excluded by {rule}")
    return 0
