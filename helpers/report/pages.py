"""The pages a reader opens in a browser: ``results/<experiment>/report.html`` (the executed
report notebook without its code, every figure embedded as data, no file outside the page
needed) and ``results/index.html`` (every experiment under ``results/`` with its key numbers,
read from the tables on disk, and links to its report and summary).

``python -m helpers.report.pages results/<experiment>`` writes the experiment's page and then
the index; the Makefile runs it after the report stage, so the index is rewritten whenever a
report is.
"""
from __future__ import annotations

import base64
import copy
import html
import io
import re
import sys
from pathlib import Path

import nbformat
import pandas as pd
import yaml
from jinja2 import DictLoader
from nbconvert import HTMLExporter
from PIL import Image

from ..store.graph import STAGES
from ..store.files import write_text
from ..store.layout import CONFIG, SUMMARY, TABLES, Layout, index_page
from ..threats import PRIMARY
from .section import read_table

# The lab template without its scripts: require.js, MathJax and mermaid come from a CDN, which a
# closed network (or a reader offline) cannot reach; the report has no widgets, formulas or diagrams.
TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
LINKED_IMAGE = re.compile(r"<img\b[^>]*\bsrc=\"(?!data:)([^\"]*)\"", re.IGNORECASE)
REPORT_NOTEBOOK = list(STAGES)[-1]  # the last stage's notebook is the report


def palette_png(encoded: str) -> str:
    """A base64 PNG re-encoded with a palette of 256 colours: a figure of lines, text and colour
    maps looks the same and takes about a third of the bytes (the page is tracked in git)."""
    image = Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB")
    out = io.BytesIO()
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii")


def report_html(notebook: nbformat.NotebookNode, title: str) -> str:
    """``notebook`` (an executed notebook) as one HTML page: prose and outputs, no code cells,
    no prompts, no stderr (kernel warnings); images are embedded as ``data:`` URIs (PNG
    outputs with a 256-colour palette). Raises ValueError if an image would still be a link
    to a file."""
    nb = copy.deepcopy(notebook)
    nb.metadata["title"] = title
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.get("name") == "stderr")]
        for output in cell.outputs:
            if "image/png" in output.get("data", {}):
                output.data["image/png"] = palette_png(output.data["image/png"])
    exporter = HTMLExporter(extra_loaders=[DictLoader({"report.html.j2": TEMPLATE})], template_file="report.html.j2",
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    linked = LINKED_IMAGE.findall(body)
    if linked:
        raise ValueError(f"report page would link images instead of embedding them: {linked[:3]}")
    return body


def write_report_page(results_dir: str | Path) -> Path:
    """``report.html`` of one experiment from its executed report notebook; returns its path."""
    layout = Layout(results_dir)
    notebook = layout.notebook(STAGES[REPORT_NOTEBOOK].notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook} is missing: run the report stage first "
                                f"(make report CONFIG=configs/{layout.root.name}.yaml)")
    text = report_html(nbformat.read(notebook, as_version=4), f"{layout.root.name}: robustness report")
    return write_text(text, layout.report_page)


def experiments(results_root: str | Path) -> list[Path]:
    """The experiment folders under ``results_root``: those with a config copy, a summary or
    the statistics table (a clone holds the shipped studies' tables without their config)."""
    marks = (CONFIG, SUMMARY, TABLES["stats"])
    return sorted(d for d in Path(results_root).iterdir() if d.is_dir() and any((d / m).is_file() for m in marks))


def reference_epsilon(config: dict, epsilons) -> float | None:
    """The budget an index row quotes: the primary comparison's ε when the config names one
    that was evaluated, else the middle of the nonzero budgets (None when there are none)."""
    budgets = sorted(e for e in set(epsilons) if e > 0)
    primary = ((config or {}).get("report") or {}).get("primary") or {}
    if primary.get("epsilon") in budgets:
        return float(primary["epsilon"])
    return float(budgets[len(budgets) // 2]) if budgets else None


def key_numbers(results_dir: str | Path) -> tuple[pd.DataFrame, float | None]:
    """Per model: clean accuracy and, at the reference ε, the bracket (``certified``: lower
    bound, ``attacked``: upper bound), each a mean over runs with its interval; read from
    ``stats.csv`` and ``bracket.csv``. Returns the table (empty without ``stats.csv``) and ε.
    Where the bracket table is absent (results made before certificates), ``attacked`` comes
    from the worst case in ``stats.csv`` and ``certified`` is missing. Where complete
    verification ran at that ε, ``exact`` (the share of its verified points proved robust, with
    its interval) and ``undecided`` (the share it left open)."""
    layout = Layout(results_dir)
    config = yaml.safe_load(layout.config.read_text()) if layout.config.is_file() else {}
    if not layout.table("stats").is_file():
        return pd.DataFrame(), None
    stats = read_table(layout, "stats", PRIMARY)
    worst = stats[stats["attack"] == "worst_case"]
    epsilon = reference_epsilon(config, worst["epsilon"])
    bracket = read_table(layout, "bracket", PRIMARY) if layout.table("bracket").is_file() else None
    rows = []
    for model in dict.fromkeys(worst["model"]):
        mine = worst[worst["model"] == model]
        clean = mine[mine["epsilon"] == 0]
        row = {"model": model, "n_runs": int(mine["n_runs"].max()),
               **interval("clean", clean, "mean", "ci_low", "ci_high")}
        if bracket is not None and epsilon is not None:
            at = bracket[(bracket["model"] == model) & (bracket["epsilon"] == epsilon)]
            row.update(interval("certified", at, "certified", "certified_low", "certified_high"))
            row.update(interval("attacked", at, "attacked", "attacked_low", "attacked_high"))
            if "exact" in bracket and not at.empty and pd.notna(at["exact"].iloc[0]):  # complete verification ran
                row.update(interval("exact", at, "exact", "exact_low", "exact_high"), undecided=float(at["undecided"].iloc[0]))
        else:
            row.update(interval("certified", None, "", "", ""))
            row.update(interval("attacked", mine[mine["epsilon"] == epsilon], "mean", "ci_low", "ci_high"))
        rows.append(row)
    return pd.DataFrame(rows), epsilon


def interval(name: str, rows: pd.DataFrame | None, mean: str, low: str, high: str) -> dict:
    """``{name, name_low, name_high}`` from columns ``mean``, ``low`` and ``high`` of the first
    of ``rows`` (NaN when there is none)."""
    if rows is None or rows.empty:
        return {name: float("nan"), f"{name}_low": float("nan"), f"{name}_high": float("nan")}
    first = rows.iloc[0]
    return {name: float(first[mean]), f"{name}_low": float(first[low]), f"{name}_high": float(first[high])}


def _cell(table: pd.Series, name: str) -> str:
    if pd.isna(table.get(name, float("nan"))):
        return {"certified": "<td class='missing'>no certificate</td>",
                "exact": "<td class='missing'>not verified</td>"}.get(name, "<td class='missing'>–</td>")
    left = f" <span class='ci'>({table['undecided']:.3f} open)</span>" if name == "exact" and table["undecided"] > 0 else ""
    return (f"<td>{table[name]:.3f} <span class='ci'>[{max(0.0, table[f'{name}_low']):.3f}, "
            f"{min(1.0, table[f'{name}_high']):.3f}]</span>{left}</td>")


def index_html(results_root: str | Path) -> str:
    """The index page: per experiment its data set, links to the files that exist, and the key
    numbers (``key_numbers``) per model."""
    root = Path(results_root)
    sections = []
    for folder in experiments(root):
        layout = Layout(folder)
        config = yaml.safe_load(layout.config.read_text()) if layout.config.is_file() else {}
        dataset = (config or {}).get("dataset") or {}
        links = [f"<a href='{html.escape(folder.name)}/{html.escape(path.name)}'>{label}</a>"
                 for path, label in ((layout.report_page, "report"), (layout.summary, "summary"))
                 if path.is_file()]
        table, epsilon = key_numbers(folder)
        about = (f"data set <code>{html.escape(str(dataset['name']))}</code>, classes "
                 f"{html.escape(str(dataset.get('classes')))}, " if dataset.get("name") else "")
        runs = "" if table.empty else f"{int(table['n_runs'].max())} runs"
        parts = [f"<section id='{html.escape(folder.name)}'><h2>{html.escape(folder.name)}</h2>",
                 f"<p>{about}{runs}{' · ' if links and (about or runs) else ''}{' · '.join(links)}</p>"]
        if table.empty:
            parts.append(f"<p class='missing'>No tables on disk: <code>make all CONFIG=configs/"
                         f"{html.escape(folder.name)}.yaml</code> writes them.</p>")
        else:
            at = "" if epsilon is None else f" at ε = {epsilon:g}"
            exact = "exact" in table
            parts.append("<table><thead><tr><th>model</th><th>clean accuracy</th>"
                         f"<th>certified{at} (lower bound)</th><th>attacked{at} (upper bound)</th>"
                         + (f"<th>exact{at} (verified points)</th>" if exact else "") + "</tr></thead><tbody>")
            parts += [f"<tr><td><code>{html.escape(str(r['model']))}</code></td>{_cell(r, 'clean')}"
                      f"{_cell(r, 'certified')}{_cell(r, 'attacked')}{_cell(r, 'exact') if exact else ''}</tr>"
                      for _, r in table.iterrows()]
            parts.append("</tbody></table>")
        sections.append("\n".join(parts) + "</section>")
    body = "\n".join(sections) or "<p>No experiment under results/ yet: <code>make all</code> writes one.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>qml-robustness: experiments</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border-bottom: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; }}
.ci, .missing {{ color: #666; font-size: 0.9em; }}
</style></head>
<body>
<h1>Experiments under results/</h1>
<p>Accuracy on held-out test points: mean over runs, with the 95% interval across runs in brackets
(each experiment's summary says how it was computed). The robust accuracy lies between the certified lower
bound and the attacked upper bound (the per-sample worst case over every attack); where complete verification
ran, its column is the robust accuracy on the points it verified, with the share it left open.</p>
{body}
</body></html>
"""


def write_index(results_root: str | Path) -> Path:
    """``results/index.html`` from every experiment folder on disk; returns its path."""
    return write_text(index_html(results_root), index_page(results_root))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m helpers.report.pages results/<experiment>", file=sys.stderr)
        return 2
    page = write_report_page(argv[0])
    index = write_index(Path(argv[0]).parent)
    print(f"wrote {page} and {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
