"""JupyterLab as a way in: every stage notebook, opened from ``notebooks/`` and run top to
bottom as Lab's Run All does (nbclient, the kernel in the notebook's own folder, no
papermill, no injected cell), imports ``helpers`` and finds its config and results from the
project root, not from the working directory.

Run by ``make test`` after the smoke study (so every unit is reused and each notebook takes
seconds); ``pytest tests`` does not collect it (its name does not start with ``test_``).
It never writes the executed notebooks that papermill made and nbval checks: the notebooks
run in memory. The one change to a notebook: its parameters cell names the smoke config
instead of the default study (which takes many minutes); everything else is a user's Run All.
"""
import json
import time

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.store.graph import ROOT, STAGES

DEFAULT, SMOKE = '"configs/default.yaml"', '"configs/smoke.yaml"'


def with_smoke_config(path):
    """The notebook at ``path`` with only its parameters cell's config path replaced."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert cell.source.count(DEFAULT) == 1, cell.source  # the default a user would run
    cell.source = cell.source.replace(DEFAULT, SMOKE)
    return nb


@pytest.mark.parametrize("notebook", [stage.notebook for stage in STAGES.values()])
def test_run_all_from_the_notebooks_folder(notebook):
    results = ROOT / "results" / "smoke"
    if not (results / f"{notebook}.ipynb").exists():
        pytest.fail("no smoke results: run `make all CONFIG=configs/smoke.yaml` first (`make test` does)")
    executed = (results / f"{notebook}.ipynb").read_bytes()
    started = time.time()
    nb = with_smoke_config(ROOT / "notebooks" / f"{notebook}.ipynb")
    client = NotebookClient(nb, kernel_name=nb.metadata.kernelspec.name, timeout=900,
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    # The stage ran and wrote to the project's results (not to notebooks/results), and the
    # papermill-executed notebook that nbval checks is untouched.
    stage = next(s.name for s in STAGES.values() if s.notebook == notebook)
    provenance = json.loads((results / "provenance.json").read_text())
    assert provenance["stages"][stage]["finished"] is not None
    assert (results / "provenance.json").stat().st_mtime >= started
    assert not (ROOT / "notebooks" / "results").exists()
    assert (results / f"{notebook}.ipynb").read_bytes() == executed
