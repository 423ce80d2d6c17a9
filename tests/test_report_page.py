"""The report page and the index of experiments: what they hold (built here from small
tables and a small notebook), and, in a real browser, the smoke study's pages as `make all`
wrote them (marked ``browser``: `make test` runs them after the smoke study)."""
import base64
import io
import os
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from browser import CHROMEDRIVER, CHROMIUM, Browser
from helpers.report.pages import index_html, key_numbers, reference_epsilon, report_html, write_index
from helpers.store.layout import Layout, index_page

ROOT = Path(__file__).resolve().parents[1]
SMOKE = Layout(ROOT / "results" / "smoke")
REQUIRED = os.environ.get("QMLR_REQUIRE_BROWSER") == "1"


def png() -> str:
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def test_report_page_leaves_out_code_and_stderr_and_embeds_figures():
    nb = new_notebook(cells=[
        new_markdown_cell("## Robustness curves\nLook for where each curve drops."),
        new_code_cell("secret_code_line = 1", outputs=[
            new_output("stream", name="stderr", text="Kernel is running over TCP"),
            new_output("stream", name="stdout", text="report: 13 tables"),
            new_output("execute_result", data={"image/png": png(), "text/plain": "<Image>"}, execution_count=1)])])
    page = report_html(nb, "smoke: robustness report")
    assert "Robustness curves" in page and "report: 13 tables" in page
    assert "secret_code_line" not in page and "Kernel is running over TCP" not in page
    assert page.count("<img") == 1 and 'src="data:image/png;base64,' in page
    assert "<title>smoke: robustness report</title>" in page
    assert 'src="http' not in page and "<script src=" not in page  # opens offline: nothing from a CDN


def test_report_page_refuses_an_image_linked_to_a_file():
    nb = new_notebook(cells=[new_code_cell("x", outputs=[
        new_output("display_data", data={"text/html": '<img src="figures/robustness.png">', "text/plain": ""})])])
    with pytest.raises(ValueError, match="figures/robustness.png"):
        report_html(nb, "t")


def experiment(root: Path, name: str, primary_epsilon=None, bracket=True) -> Layout:
    """A results folder with the two tables the index reads: two models, ε in {0, 0.1, 0.2, 0.3}."""
    layout = Layout(root / name)
    layout.root.mkdir(parents=True)
    config = {"dataset": {"name": "digits", "classes": [0, 1]},
              "report": {"primary": None if primary_epsilon is None else {"epsilon": primary_epsilon}}}
    layout.config.write_text(yaml.safe_dump(config))
    rows, brackets = [], []
    for m, model in enumerate(["mlp", "vqc"]):
        for epsilon in (0.0, 0.1, 0.2, 0.3):
            acc = 0.9 - m * 0.1 - epsilon
            rows.append({"model": model, "attack": "worst_case", "epsilon": epsilon, "mean": acc,
                         "ci_low": acc - 0.05, "ci_high": acc + 0.05, "n_runs": 3})
            rows.append({"model": model, "attack": "fgsm", "epsilon": epsilon, "mean": 0.99, "ci_low": 0.9,
                         "ci_high": 1.0, "n_runs": 3})
            brackets.append({"model": model, "epsilon": epsilon, "certified": acc / 2, "certified_low": acc / 2 - 0.01,
                             "certified_high": acc / 2 + 0.01, "attacked": acc, "attacked_low": acc - 0.05,
                             "attacked_high": acc + 0.05})
    pd.DataFrame(rows).to_csv(layout.table("stats"), index=False)
    if bracket:
        pd.DataFrame(brackets).to_csv(layout.table("bracket"), index=False)
    return layout


def test_reference_epsilon_is_the_primary_budget_or_the_middle_one():
    assert reference_epsilon({"report": {"primary": {"epsilon": 0.3}}}, [0, 0.1, 0.2, 0.3]) == 0.3
    assert reference_epsilon({"report": {"primary": {"epsilon": 0.5}}}, [0, 0.1, 0.2, 0.3]) == 0.2  # not evaluated
    assert reference_epsilon({}, [0, 0.1, 0.3]) == 0.3
    assert reference_epsilon({}, [0.0]) is None


def test_key_numbers_are_the_tables_values_at_the_reference_budget(tmp_path):
    table, epsilon = key_numbers(experiment(tmp_path, "a", primary_epsilon=0.1).root)
    assert epsilon == 0.1 and list(table["model"]) == ["mlp", "vqc"]
    vqc = table.set_index("model").loc["vqc"]
    assert vqc["clean"] == pytest.approx(0.8) and vqc["attacked"] == pytest.approx(0.7)  # worst case, not FGSM
    assert vqc["certified"] == pytest.approx(0.35) and vqc["certified_low"] == pytest.approx(0.34)
    older, _ = key_numbers(experiment(tmp_path, "b", bracket=False).root)  # results before certificates
    assert older["certified"].isna().all() and older.set_index("model").loc["mlp", "attacked"] == pytest.approx(0.7)


def test_the_index_shows_the_exact_share_where_complete_verification_ran(tmp_path):
    layout = experiment(tmp_path, "verified", primary_epsilon=0.1)
    bracket = pd.read_csv(layout.table("bracket"))
    ran = bracket["epsilon"] == 0.1
    bracket.loc[ran, ["exact", "exact_low", "exact_high", "undecided"]] = [0.6, 0.55, 0.65, 0.05]
    bracket.to_csv(layout.table("bracket"), index=False)
    table, _ = key_numbers(layout.root)
    assert table["exact"].tolist() == [0.6, 0.6] and table["undecided"].tolist() == [0.05, 0.05]
    page = index_html(tmp_path)
    assert "exact at ε = 0.1 (verified points)" in page and "(0.050 open)" in page
    plain = index_html(experiment(tmp_path / "other", "plain", primary_epsilon=0.1).root.parent)
    assert "verified points" not in plain  # no column where it did not run


def test_index_lists_every_experiment_and_links_only_files_that_exist(tmp_path):
    with_page = experiment(tmp_path, "alpha", primary_epsilon=0.3)
    with_page.report_page.write_text("<html></html>")
    experiment(tmp_path, "beta")
    (tmp_path / "gamma").mkdir()
    (tmp_path / "gamma" / "summary.md").write_text("# a clone: summary only")
    (tmp_path / "bench").mkdir()  # no config, summary or statistics: not an experiment
    (tmp_path / "bench" / "bench.md").write_text("timings")
    page = write_index(tmp_path).read_text()
    assert index_page(tmp_path).is_file()
    assert [s.split("'")[0] for s in page.split("<section id='")[1:]] == ["alpha", "beta", "gamma"]
    assert "href='alpha/report.html'" in page and "href='beta/report.html'" not in page
    assert "href='gamma/summary.md'" in page and "No tables on disk" in page
    assert "attacked at ε = 0.3" in page and "attacked at ε = 0.2" in page
    assert "0.600 <span class='ci'>[0.550, 0.650]" in page  # mlp attacked at 0.3 in alpha
    assert page == index_html(tmp_path)


def need_browser_and_smoke_pages():
    """Skip (or fail, with QMLR_REQUIRE_BROWSER=1) without Chromium or the smoke study's pages."""
    missing = [what for what, ok in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER),
                                     (str(SMOKE.report_page), SMOKE.report_page.is_file()),
                                     (str(index_page(SMOKE.root.parent)), index_page(SMOKE.root.parent).is_file()))
               if not ok]
    if missing:
        message = f"missing {', '.join(missing)} (apt-get install chromium chromium-driver; " \
                  "make all CONFIG=configs/smoke.yaml)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)


def local_path(url: str) -> Path:
    """The file a ``file://`` URL names (percent-escapes decoded)."""
    return Path(url2pathname(urlparse(url).path))


@pytest.mark.browser
def test_smoke_report_and_index_open_in_chromium_with_every_figure_loaded():
    need_browser_and_smoke_pages()
    index = index_page(SMOKE.root.parent)
    with Browser() as browser:
        browser.open(SMOKE.report_page)
        images = browser.images()
        assert len(images) >= 5, images  # robustness, attacks, bracket, attributions, stability at least
        assert all(i["complete"] and i["width"] > 0 and i["src"].startswith("data:image/png") for i in images), images
        assert "robustness report" in browser.run("return document.title;")
        browser.screenshot(SMOKE.screenshot)

        browser.open(index)
        links = browser.links()
        assert SMOKE.report_page.resolve().as_uri() in links
        for link in links:  # every link of the index points at a file on disk
            assert link.startswith("file://") and local_path(link).is_file(), link
        numbers = browser.run("return Array.from(document.querySelectorAll('#smoke td')).map(td => td.textContent);")
        assert len(numbers) == 4 * 4  # four models: name, clean, certified, attacked
        for link in links:  # and every report it links opens with its figures
            if link.endswith(SMOKE.report_page.name):
                browser.open(local_path(link))
                assert all(i["complete"] and i["width"] > 0 for i in browser.images()), link
    assert SMOKE.screenshot.stat().st_size > 10_000
