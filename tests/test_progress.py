"""A run you can watch: each stage's progress bar counts its units as they finish (also from
worker processes), reused units count as reused, a unit asked for twice counts once, and
``make``'s notebook runner streams the bar to the terminal without the kernel's TCP warning
while the executed notebook keeps only the bar's last state."""
import io
import json
import subprocess
import sys
import time
from types import SimpleNamespace

import nbformat
import numpy as np

from helpers.stages import progress
from helpers.stages.execution import map_runs
from helpers.store.units import Units

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _run_with_units(cfg, run: int, seed: int):
    """A stand-in stage run: run r has r + 2 units, the even ones reused."""
    for unit in range(run + 2):
        progress.unit_finished(reused=unit % 2 == 0)
    return run, f"run {run} done"


def _final_line(text: str) -> str:
    return text.replace("\r", "\n").strip().splitlines()[-1]


def test_the_bar_counts_every_unit_of_every_run_in_worker_processes(capsys):
    cfg = SimpleNamespace(seed=0, n_runs=3, workers=2)
    results = map_runs(cfg, _run_with_units, stage="demo", units_per_run=1)  # planned 3: the runs correct it
    err = capsys.readouterr().err
    assert results == [0, 1, 2]
    # 2 + 3 + 4 units, of which 1 + 2 + 2 even (reused); the bar ends at its corrected total.
    assert "9/9 units" in _final_line(err) and "4 computed, 5 reused" in _final_line(err)
    assert "100%" in _final_line(err)
    assert [line for line in err.replace("\r", "\n").splitlines() if line.startswith("run ")] == \
        ["run 0 done", "run 1 done", "run 2 done"]  # the runs' messages, above the bar, in run order


def test_in_process_runs_count_the_same(capsys):
    messages = []
    map_runs(SimpleNamespace(seed=0, n_runs=2, workers=1), _run_with_units, messages.append, stage="demo")
    assert messages == ["run 0 done", "run 1 done"]
    assert "5/5 units" in _final_line(capsys.readouterr().err)
    assert progress.current_sink() is None  # nothing is reported outside a stage


def test_a_unit_counts_once_and_reused_units_count_as_reused(tmp_path):
    heard = []
    units = Units(on_unit=heard.append)
    compute = lambda: {"correct": np.ones(3, bool)}  # noqa: E731
    units.get(tmp_path / "a.npz", "k1", compute)
    units.get(tmp_path / "a.npz", "k1", compute)  # asked again in the same stage (escalation): counted once
    units.get(tmp_path / "b.npz", "k1", compute)
    units.get(tmp_path / "b.npz", "k2", compute)  # the same path under another key in the same stage: computed again
    again = Units(on_unit=heard.append)  # the next run of the stage
    again.get(tmp_path / "a.npz", "k1", compute)
    again.get(tmp_path / "a.npz", "k1", compute)
    assert heard == [False, False, False, True]
    assert (units.computed, units.reused, again.computed, again.reused) == (3, 0, 0, 1)


def test_a_failed_stage_leaves_its_bar_where_it_stopped():
    out = io.StringIO()
    try:
        with progress.StageBar("demo", 4, file=out) as bar:
            bar.update()
            raise RuntimeError("unit failed")
    except RuntimeError:
        pass
    assert "1/4 units" in _final_line(out.getvalue())


def test_reporting_a_unit_costs_far_less_than_any_unit():
    bar = progress.StageBar("demo", 5000, file=io.StringIO())
    start = time.perf_counter()
    for i in range(5000):
        bar.update(i % 2 == 0)
    per_unit = (time.perf_counter() - start) / 5000
    bar.close()
    assert per_unit < 1e-3, per_unit  # the smallest unit (one FGSM batch) takes tens of milliseconds


def test_the_notebook_runner_streams_the_bar_and_keeps_its_last_state(tmp_path):
    source, output = tmp_path / "demo.ipynb", tmp_path / "out.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "qml-robustness", "language": "python",
                                                           "display_name": "Python (qml-robustness)"}})
    nb.cells = [nbformat.v4.new_code_cell('config_path = ""', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import os\nfrom helpers.stages.progress import StageBar\n"
                                          "print(os.getcwd(), config_path)\n"
                                          "with StageBar('demo', 400) as bar:\n"
                                          "    for i in range(400):\n        bar.update(i < 100); bar._bar.refresh()")]
    nbformat.write(nb, source)
    done = subprocess.run([sys.executable, "-m", "helpers.stages.notebook", str(source), str(output),
                           "configs/smoke.yaml"], cwd=ROOT, capture_output=True, timeout=300)
    terminal = done.stderr.decode()  # bytes: text mode would turn the carriage returns into newlines
    assert done.returncode == 0, terminal
    assert "without encryption" not in terminal  # the kernel talks over IPC
    assert terminal.count("\r") >= 400  # the terminal saw every redraw
    outputs = json.loads(output.read_text())["cells"][2]["outputs"]
    stdout, stderr = ("".join("".join(o["text"]) for o in outputs if o.get("name") == name) for name in ("stdout", "stderr"))
    assert stdout.strip() == f"{ROOT / 'notebooks'} configs/smoke.yaml"  # run in the notebook's folder
    assert "\r" not in stderr and stderr.count("\n") == 1  # one line: the bar's last state
    assert "400/400 units" in stderr and "300 computed, 100 reused" in stderr


def test_units_beyond_the_plan_are_not_counted_twice_when_the_run_corrects_it():
    out = io.StringIO()
    with progress.StageBar("demo", 2, file=out) as bar:
        for _ in range(3):  # one run planned 2 units and had 3 (escalation)
            bar.update()
        bar.expect(3 - 2)  # the run ends: its plan takes the 3 units it had
        bar.update()  # a unit of the next run, planned with it
        bar.expect(1)
        assert bar._bar.total == 4
