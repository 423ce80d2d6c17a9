"""Every comparative claim in the prose traces to a table row.

A reading (``results/<study>/reading.md``), the README or ``docs/results.md`` states what the
numbers mean in words. Each sentence that compares (one model more robust than another, a
difference the runs do or do not separate, a model flagged or not) ends with a marker, an HTML
comment that renders as nothing:

    The circuit is not separated from its twin. <!-- claim default/paired_tests
    model_a=vqc model_b=mlp_matched attack=worst_case measure=auc : verdict == ns -->

It names a study's table, filters and, after the colon, what the sentence says of the row.
Filters select exactly one row: ``column=value`` (``nan`` matches an empty cell) and
``column~pattern`` (a regular expression); with the word ``every`` they may select several
(one at least), each of which must agree, and with ``none`` they must select no row (a
sentence saying there is none; nothing after the colon). What the sentence says is conditions
``field op value`` joined by ``and`` (op one of ``== != < <= > >=``; a value may name another
column of the row). Besides its columns, a comparison row (``paired_tests``) has ``verdict``:
``a>b`` or ``a<b`` when its deciding p (``statistics.deciding_p``: the paired test on every
point where there is one, Holm-adjusted unless it is the primary comparison) is below α, else
``ns``. ``check`` (``tests/test_claims.py``) fails when a row is missing or ambiguous, when a
condition is false, and when a sentence uses comparative words (``COMPARATIVE``) without a
marker. A sentence that only names a comparison carries ``<!-- no claim: why -->`` instead,
and a question claims nothing.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .analysis.statistics import ALPHA, deciding_p

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!--\s*claim\s+(?P<table>[\w./-]+)\s+(?P<filters>[^:]*?)\s*:\s*(?P<says>.*?)\s*-->", re.S)
NO_CLAIM = re.compile(r"<!--\s*no claim:.*?-->", re.S)  # a sentence that names a comparison without making one
OPERATORS = {"==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge, "<": operator.lt,
             ">": operator.gt}
CONDITION = re.compile(r"^\s*(?P<field>\w+)\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>\S+)\s*$")
# Words that make a sentence a comparison (case-insensitive, as whole words or phrases).
COMPARATIVE = ("more robust", "less robust", "most robust", "least robust", "significant", "significantly",
               "separate", "separates", "separated", "flagged", "outperform", "outperforms", "beats")


@dataclass(frozen=True)
class Claim:
    source: str          # the file and line it was found at
    sentence: str        # the sentence it follows
    table: str           # <study>/<table> under results/
    filters: dict
    says: str


def verdict(row: pd.Series) -> str:
    """A comparison row's verdict: ``a>b``, ``a<b`` or ``ns`` (see the module docstring)."""
    p = deciding_p(row)
    if pd.isna(p) or p >= ALPHA:
        return "ns"
    return "a>b" if row["mean_difference"] > 0 else "a<b"


def sentences(text: str) -> list[tuple[int, str]]:
    """(line, sentence) of the prose of ``text``: headings, tables, code and comments left out;
    a marker stays with the sentence it follows."""
    found = []
    for start, paragraph in _paragraphs(text):
        flat = " ".join(line.strip() for line in paragraph.splitlines())
        for part in re.split(r"(?:(?<=[.!?])|(?<=[.!?]\*\*))\s+(?=[A-Z*`(\[])", flat):
            found.append((start, part))
    return found


def _paragraphs(text: str):
    """(first line, paragraph) of the written prose: fenced code and generated blocks (copied
    from a summary by ``make docs``: the tables themselves) left out."""
    lines, start, block, skipped = text.splitlines(), 0, [], None
    for number, line in enumerate(lines + [""], 1):
        opening = re.match(r"\s*(```|<!-- generated:[\w-]+ -->)", line)
        if skipped is None and opening:
            skipped = "```" if opening.group(1) == "```" else "<!-- /generated"
            continue
        if skipped is not None:
            if line.lstrip().startswith(skipped):
                skipped = None
            continue
        prose = line.strip() and not line.lstrip().startswith(("#", "|"))
        if prose and block and re.match(r"\s*([-*]|\d+\.)\s", line):  # a list item is a paragraph of its own
            yield start, "\n".join(block)
            start, block = 0, []
        if prose:
            start = start or number
            block.append(line)
        elif block:
            yield start, "\n".join(block)
            start, block = 0, []


def claims(path: Path) -> tuple[list[Claim], list[str]]:
    """The claims of one Markdown file, and its comparative sentences without one (a question
    claims nothing)."""
    text = path.read_text()
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    found, bare = [], []
    for line, sentence in sentences(text):
        markers = list(MARKER.finditer(sentence))
        words = MARKER.sub("", sentence).strip()
        for m in markers:
            filters = dict(_filter(f) for f in m.group("filters").split())
            found.append(Claim(f"{name}:{line}", words, m.group("table"), filters, m.group("says")))
        comparative = any(re.search(rf"\b{re.escape(w)}\b", words, re.I) for w in COMPARATIVE)
        described = NO_CLAIM.search(sentence) is not None
        words = NO_CLAIM.sub("", words).strip()
        if not markers and comparative and not described and not words.rstrip("*").endswith("?"):
            bare.append(f"{name}:{line}: {words[:160]}")
    return found, bare


def _filter(text: str) -> tuple[str, object]:
    """``column=value`` → (column, value); ``column~pattern`` → (column, compiled pattern);
    ``every`` → ("every", True)."""
    if "~" in text and ("=" not in text or text.index("~") < text.index("=")):
        column, pattern = text.split("~", 1)
        return column, re.compile(pattern)
    return tuple(text.split("=", 1)) if "=" in text else (text, True)


def _matches(column: pd.Series, value) -> pd.Series:
    if isinstance(value, re.Pattern):
        return column.astype(str).map(lambda cell: value.search(cell) is not None)
    if value == "nan":
        return column.isna()
    numeric = pd.to_numeric(column, errors="coerce")
    try:
        number = float(value)
    except ValueError:
        return column.astype(str) == value
    return numeric.sub(number).abs() < 1e-9


def rows_of(claim: Claim, root: Path = ROOT) -> list[pd.Series]:
    """The rows of ``claim.table`` its filters select: exactly one, or with ``every`` one or
    more (ValueError otherwise)."""
    path = root / "results" / f"{claim.table}.csv"
    if not path.is_file():
        raise ValueError(f"{claim.source}: no table {path.relative_to(root)}")
    table = pd.read_csv(path)
    selected = pd.Series(True, index=table.index)
    for column, value in claim.filters.items():
        if column in ("every", "none"):
            continue
        if column not in table:
            raise ValueError(f"{claim.source}: {claim.table} has no column {column!r}")
        selected &= _matches(table[column], value)
    count, every = int(selected.sum()), "every" in claim.filters
    if "none" in claim.filters:
        if count:
            raise ValueError(f"{claim.source}: {claim.table} has {count} rows where the sentence says there is none")
        return []
    if count == 0 or (count > 1 and not every):
        raise ValueError(f"{claim.source}: {claim.filters} selects {count} rows of {claim.table}, not one")
    return [row for _, row in table[selected].iterrows()]


def check(claim: Claim, root: Path = ROOT) -> str | None:
    """None when the rows say what the sentence says; else why not (the first that does not)."""
    try:
        rows = rows_of(claim, root)
    except ValueError as error:
        return str(error)
    for row in rows:
        if (problem := _check_row(claim, row)) is not None:
            return problem
    return None


def _check_row(claim: Claim, row: pd.Series) -> str | None:
    if {"mean_difference", "model_a", "p_adjusted"} <= set(row.index):  # a row of `comparisons`
        row = pd.concat([row, pd.Series({"verdict": verdict(row)})])
    for condition in claim.says.split(" and "):
        m = CONDITION.match(condition)
        if m is None:
            return f"{claim.source}: cannot read the condition {condition!r}"
        field, op, value = m.group("field", "op", "value")
        if field not in row.index:
            return f"{claim.source}: the row of {claim.table} has no {field!r}"
        actual, value = row[field], row[value] if value in row.index else value  # a value may name a column
        try:
            expected, actual = float(value), float(actual)
        except (TypeError, ValueError):
            expected, actual = value, str(actual)
        if isinstance(actual, float) and math.isnan(actual) or not OPERATORS[op](actual, expected):
            return (f"{claim.source}: {claim.table} {claim.filters} has {field} = {row[field]!r}, but the sentence "
                    f"says {field} {op} {value}: {claim.sentence[:140]}")
    return None


def prose_files(root: Path = ROOT) -> list[Path]:
    """Every file whose sentences are held to their rows: the README, docs/results.md and each
    shipped study's reading."""
    return [root / "README.md", root / "docs" / "results.md", *sorted((root / "results").glob("*/reading.md"))]
