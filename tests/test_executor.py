"""The Dask executor (``helpers/stages/execution.py``) on real processes: a scheduler and two
workers started with the ``dask scheduler`` / ``dask worker`` commands on 127.0.0.1 run the
train and attack stages of a tiny config with the numbers of an in-process run, lose nothing
and compute nothing twice when a worker is SIGKILLed mid-stage; a run that raises is reported
with its run and experiment after the others finish; and a local cluster's workers do not
outlive their parent when it is SIGKILLed."""
import importlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from helpers.config import parse_config
from helpers.stages import attack, execution, train
from helpers.store.layout import TABLES

ROOT = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).with_name("dask")
CONFIG = {
    "dataset": {"name": "digits", "classes": [0, 1, 2], "folds": 2},
    "n_runs": 2, "seed": 11, "workers": 1, "device": "cpu",
    "training": {"epochs": 3, "batch_size": 32, "learning_rate": 0.02},
    "models": {"mlp": {"type": "mlp", "hidden": [8]}, "vqc": {"type": "vqc", "n_qubits": 3, "n_layers": 2}},
    "attack": {"epsilons": [0.0, 0.1], "methods": ["fgsm", "pgd"], "pgd": {"steps": 5},
               "masking_epsilons": [0.5], "n_test": 30},
    "certify": {"methods": ["interval"]},
}
STAGE_TABLES = [TABLES[t] for t in ("train_history", "models", "robustness", "transfer", "large_epsilon", "by_class")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _warm_up() -> None:
    importlib.import_module("helpers.stages.attack")


@pytest.fixture(scope="module")
def scheduler():
    """``tcp://127.0.0.1:<port>`` of a scheduler and two single-threaded workers (no nanny, so
    a killed worker stays dead and its task must move); every process is gone afterwards."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "cwd": ROOT}
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], **quiet)]
    procs += [subprocess.Popen([str(DASK), "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                "--host", "127.0.0.1", "--name", f"w{i}"], **quiet) for i in range(2)]
    from distributed import Client, fire_and_forget

    with Client(address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        # The workers import the stages while the test's in-process run goes on.
        for worker in client.scheduler_info()["workers"]:
            fire_and_forget(client.submit(_warm_up, workers=[worker], allow_other_workers=False, pure=False))
    yield SimpleNamespace(address=address, procs=procs)
    for proc in procs:  # nothing of theirs to keep: no need to wait for a graceful close
        proc.kill()
        proc.wait()
    assert not any(_alive(p.pid) for p in procs)


def _tables(folder: Path) -> dict:
    return {name: pd.read_csv(folder / name) for name in STAGE_TABLES}


def _same(a: dict, b: dict) -> None:
    for name in STAGE_TABLES:
        drop = [c for c in a[name] if c.endswith("seconds")]  # wall times differ, numbers must not
        pd.testing.assert_frame_equal(a[name].drop(columns=drop), b[name].drop(columns=drop), check_exact=True)


def test_a_cluster_of_real_processes_gives_the_numbers_of_an_in_process_run_and_survives_a_killed_worker(
        tmp_path, scheduler):
    serial = parse_config(CONFIG, "exp", tmp_path / "serial")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a worker: the same reductions, so the same round-off
    try:
        train.run(serial, log=lambda m: None)
        attack.run(serial, log=lambda m: None)
    finally:
        torch.set_num_threads(threads)

    remote = parse_config({**CONFIG, "workers": 4, "executor": {"scheduler": scheduler.address}}, "exp",
                          tmp_path / "remote")
    checkpoints = remote.results_dir / "models"
    from distributed import Client

    with Client(scheduler.address, set_as_default=False) as watcher:
        pids = watcher.run(os.getpid)  # worker address -> pid
        killed = {}

        def kill_when_the_first_checkpoint_is_saved():
            # Run 0's task trains mlp then vqc: once mlp's checkpoint exists, kill the worker
            # that is still working on that task, mid-task.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (checkpoints / "run00" / "mlp.pt").exists():
                time.sleep(0.02)
            for address, keys in watcher.processing().items():
                if any("run0-" in str(k) for k in keys):
                    # Saved checkpoints only: an atomic write's temporary file (".<name>...") may vanish.
                    killed["mtimes"] = {p: p.stat().st_mtime_ns for p in checkpoints.glob("run*/*.pt")
                                        if not p.name.startswith(".")}
                    os.kill(pids[address], signal.SIGKILL)
                    killed["address"] = address
                    return

        import threading

        killer = threading.Thread(target=kill_when_the_first_checkpoint_is_saved)
        killer.start()
        lines = []
        train.run(remote, log=lines.append)
        killer.join()
    assert "address" in killed, "the worker was not killed mid-task: the test proved nothing"
    # The rerun of run 0 on the other worker reused the checkpoint saved before the kill.
    assert any("run 0" in line and "mlp" in line and "checkpoint reused" in line for line in lines), lines
    assert all(p.stat().st_mtime_ns == t for p, t in killed["mtimes"].items())  # written once
    attack.run(remote, log=lambda m: None)  # on the one worker left
    _same(_tables(serial.results_dir), _tables(remote.results_dir))


def _fails_on_run_1(cfg, run: int, seed: int):
    from helpers.store.units import Units

    def compute():
        if run == 1:
            raise ValueError("a bad unit")
        return {"x": [run]}

    Units().get(Path(cfg.folder) / f"run{run}" / "unit.npz", "key", compute)
    return run, f"run {run} done"


def test_a_run_that_raises_is_reported_with_its_unit_run_and_experiment_after_the_others_finish(tmp_path, scheduler):
    cfg = SimpleNamespace(seed=0, n_runs=3, workers=2, experiment="sweep-point-7", folder=str(tmp_path),
                          executor=SimpleNamespace(kind="dask", scheduler=scheduler.address, resources=None))
    lines = []
    with pytest.raises(execution.StageFailed, match=r"(?s)demo stage of experiment 'sweep-point-7'.*"
                                                    r"run 1 \(seed \d+\): ValueError: a bad unit "
                                                    r"\(while computing the unit \S+run1/unit.npz\)") as error:
        execution.map_runs(cfg, _fails_on_run_1, lines.append, stage="demo")
    assert [run for run, _, _ in error.value.failures] == [1]
    assert "run 0 done" in lines and "run 2 done" in lines  # the others finished, their units saved
    assert sorted(p.parent.name for p in tmp_path.glob("run*/unit.npz")) == ["run0", "run2"]


PARENT = textwrap.dedent("""
    import os, sys, time
    from types import SimpleNamespace
    from helpers.stages.execution import map_runs

    def sleepy(cfg, run, seed):
        with open(os.path.join(sys.argv[1], f"worker-{os.getpid()}"), "w"):
            pass
        time.sleep(300)
        return run, ""

    if __name__ == "__main__":
        map_runs(SimpleNamespace(seed=0, n_runs=2, workers=2), sleepy, stage="demo")
""")


def test_no_worker_outlives_its_parent_killed_with_sigkill(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(list(tmp_path.glob("worker-*"))) < 2:
        time.sleep(0.05)
    workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "a worker outlived its parent"


def _where(cfg, run: int, seed: int):
    from helpers.stages import progress

    progress.unit_finished(False)
    progress.unit_finished(True)
    return (cfg.tag, run, os.getpid()), f"{cfg.tag} run {run}"


def test_inside_a_cluster_context_concurrent_callers_share_its_client(scheduler):
    import threading

    results, logs = {}, {}

    def caller(tag):
        cfg = SimpleNamespace(seed=0, n_runs=3, workers=1, tag=tag)  # workers 1: in-process outside the context
        logs[tag] = []
        results[tag] = execution.map_runs(cfg, _where, logs[tag].append, stage=tag, units_per_run=2)

    with execution.cluster(scheduler=scheduler.address) as client:
        assert execution.current_client() is client
        threads = [threading.Thread(target=caller, args=(tag,)) for tag in ("a", "b", "c")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        workers = set(client.run(os.getpid).values())
    assert execution.current_client() is None
    for tag in ("a", "b", "c"):
        assert [(t, r) for t, r, _ in results[tag]] == [(tag, 0), (tag, 1), (tag, 2)]  # each its own, in run order
        assert {pid for _, _, pid in results[tag]} <= workers  # ran on the cluster's workers
        assert logs[tag] == [f"{tag} run {r}" for r in range(3)]


def test_resources_are_asked_for_by_configs_with_a_circuit_only():
    cfg = parse_config({**CONFIG, "executor": {"resources": {"GPU": 1}}}, "exp")
    assert execution._wants_resources(cfg) == {"GPU": 1}
    classical = parse_config({**CONFIG, "models": {"mlp": CONFIG["models"]["mlp"]}, "executor": {"resources": {"GPU": 1}}},
                             "exp")
    assert execution._wants_resources(classical) is None
    assert execution._wants_resources(parse_config(CONFIG, "exp")) is None


def test_where_runs_go_never_enters_a_key_or_provenance():
    from helpers.store.provenance import config_hash

    here = parse_config(CONFIG, "exp")
    there = parse_config({**CONFIG, "workers": 7, "executor": {"scheduler": "tcp://node:8786", "resources": {"GPU": 1}}},
                         "exp")
    assert train.train_key(here, "vqc", 0, 1) == train.train_key(there, "vqc", 0, 1)
    assert all(config_hash(here, stage) == config_hash(there, stage) for stage in ("train", "attack", "report"))
