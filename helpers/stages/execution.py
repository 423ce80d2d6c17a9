"""Running a stage's Monte Carlo runs as Dask tasks, with a progress bar of their units.

A task is one run of one stage (``run_fn(cfg, run, seed)``: train every model of run r,
attack every model of run r, ...). Inside it the work is split into units that are saved
atomically and keyed by config and code (``helpers/store/units.py``), so a task that is
started again (a killed worker, a restarted stage) reuses the units it had finished and
computes only the rest. Only small things travel through the scheduler: the config, the run
index and seed going out, the run's tables (lists of small dicts) and its message coming
back; a worker builds its models from the config and the checkpoints on disk (PennyLane
devices and QNodes do not pickle).

Where the runs go (``cfg.executor``, ``cfg.workers``):

- inside ``with cluster(...)``: on that context's client (below);
- ``executor.scheduler: tcp://host:8786``: a client connected to that scheduler for the stage;
- ``workers: 1`` (and no scheduler): in this process, one run after the other (tests,
  notebooks in JupyterLab: no process to start);
- otherwise a ``LocalCluster`` for the stage: ``workers`` single-threaded worker processes
  (``auto``: one per CPU core, at most one per run; one on a GPU), torch set to one thread in
  each. Its worker processes exit when this process dies, even by SIGKILL (Dask's nanny
  holds a pipe to each; the worker leaves when it closes).

``executor.resources`` (e.g. ``{GPU: 1}``) is asked for by every task of a config that has a
circuit (a model tagged ``quantum``): such tasks go only to workers started with
``--resources GPU=1``. Where a run went never enters a unit's key or a stage's provenance.

Results come back in run order; each run's message is logged in run order as soon as the
runs before it have finished. A run that raises does not stop the others: when all have
ended, ``StageFailed`` lists every failed run with its stage and experiment (the first
failure's traceback is its cause). A worker that dies mid-task is replaced (local cluster)
and its task rescheduled on another worker (the scheduler allows
``distributed.scheduler.allowed-failures`` such deaths per task, 3 by default); the units
it had saved are reused.

The contract for several concurrent callers (the sweep runner)::

    with execution.cluster(scheduler=None, workers=4):   # or scheduler="tcp://host:8786"
        # any number of threads, each calling helpers.stages.train.run(cfg_i), attack.run(cfg_i), ...

``cluster`` starts (or connects to) one client; until the context ends every ``map_runs``
in any thread of this process submits to it (whatever the configs' ``workers`` and
``executor.scheduler`` say), so the tasks of all callers share the cluster's workers.
``map_runs`` is thread-safe: each call has its own tasks (keys made unique per call), its
own progress topic and its own bar.

Units finished inside a task report to the bar as Dask events (``Worker.log_event`` on a
topic of the call, ``Client.subscribe_topic``); a task's result says how many it reported,
and ``map_runs`` waits for that many events of that attempt before counting the run done.
Units reported by an attempt that was later killed stay counted (the bar may then pass
100%, and the rerun counts them as reused).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections import defaultdict

import torch

from ..config import resolve_device
from ..data import run_seeds
from . import progress

EVENT_WAIT_SECONDS = 10.0  # how long a finished run waits for its unit events (they arrive before its result)

_client = None  # the client of the innermost ``cluster`` context, shared by every thread
_client_lock = threading.Lock()


class StageFailed(RuntimeError):
    """Some runs of a stage raised; the others finished (their units are saved)."""


class _Defaults:
    kind, scheduler, resources = "dask", None, None


def _options(cfg):
    return getattr(cfg, "executor", None) or _Defaults  # a stand-in config (tests) may have none


def local_workers(cfg, runs: int | None = None) -> int:
    """The number of local processes for ``cfg``: ``workers``, or for ``auto`` one per CPU core
    (at most one per run) on the CPU and one on a GPU."""
    workers = cfg.workers
    if workers == "auto":
        runs = cfg.n_runs if runs is None else runs
        workers = 1 if resolve_device(cfg).type == "cuda" else min(runs, os.cpu_count() or 1)
    return workers


def _wants_resources(cfg) -> dict | None:
    resources = _options(cfg).resources
    if not resources:
        return None
    from ..registry import MODELS

    models = getattr(cfg, "models", {})
    return dict(resources) if any("quantum" in MODELS[spec.type].tags for spec in models.values()) else None


# ---- clients -------------------------------------------------------------------------------

def _set_torch_threads() -> None:
    torch.set_num_threads(1)  # one single-threaded worker per core: small tensor ops scale better so than by threads


def start_client(scheduler: str | None = None, workers: int = 1):
    """A ``distributed.Client``: connected to ``scheduler``, or (None) to a new ``LocalCluster``
    of ``workers`` single-threaded processes (no dashboard; its logs at warnings only)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        client = Client(scheduler, set_as_default=False)
    else:
        import dask

        # Dask's statistical profiler samples every worker thread's stack every 10 ms: about
        # a third more CPU time on our runs (measured against a process pool), for a dashboard we do not open.
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            # No dashboard; the scheduler's small HTTP server (health, metrics) on a free port,
            # not 8787, which another cluster on the machine may hold.
            local = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                 scheduler_kwargs={"dashboard_address": ":0"}, silence_logs=logging.WARNING)
        client = Client(local, set_as_default=False)
    return client  # torch threads: OMP_NUM_THREADS=1 from the nanny, and set again in each task


def _close_client(client) -> None:
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


@contextlib.contextmanager
def cluster(cfg=None, *, scheduler: str | None = None, workers: int | str | None = None):
    """Every ``map_runs`` of this process, in any thread, runs on one client until the context
    ends: connected to ``scheduler`` or to a new local cluster of ``workers`` processes
    (default: ``cfg``'s ``executor.scheduler`` and ``workers``; ``auto``: one per CPU core).
    Yields the ``distributed.Client``. Contexts nest (the innermost wins)."""
    global _client
    if cfg is not None:
        scheduler = scheduler if scheduler is not None else _options(cfg).scheduler
        workers = workers if workers is not None else cfg.workers
    if workers in (None, "auto"):
        workers = os.cpu_count() or 1
    client = start_client(scheduler, workers)
    with _client_lock:
        outer, _client = _client, client
    try:
        yield client
    finally:
        with _client_lock:
            _client = outer
        _close_client(client)


def current_client():
    """The client of the innermost ``cluster`` context (None outside one)."""
    return _client


# ---- tasks ---------------------------------------------------------------------------------

def _counted(run_fn, cfg, run: int, seed: int, sink):
    """``run_fn(cfg, run, seed)`` with each finished unit reported to ``sink(reused)``;
    returns (result, message, units reported)."""
    count = 0

    def report(reused: bool) -> None:
        nonlocal count
        count += 1
        sink(reused)

    progress.set_sink(report)
    try:
        result, message = run_fn(cfg, run, seed)
    finally:
        progress.set_sink(None)
    return result, message, count


def _dask_task(run_fn, cfg, run: int, seed: int, topic: str):
    """One run in a Dask worker: its units reported as events on ``topic`` tagged with this
    attempt; returns (result, message, units reported, attempt)."""
    from distributed import get_worker

    worker, attempt = get_worker(), uuid.uuid4().hex
    _set_torch_threads()
    result, message, count = _counted(run_fn, cfg, run, seed,
                                      sink=lambda reused: worker.log_event(topic, [attempt, bool(reused)]))
    return result, message, count, attempt


# ---- map_runs ------------------------------------------------------------------------------

def map_runs(cfg, run_fn, log=None, stage: str = "runs", units_per_run: int = 0) -> list:
    """``run_fn(cfg, run, seed)`` for every Monte Carlo run, in run order, on the executor
    (module docstring). Each call returns ``(result, message)``; the messages are logged in
    run order as the runs finish (``log``, default: a line above the progress bar).

    The bar (``progress.StageBar``, named ``stage``) plans ``units_per_run`` units per run and
    counts each unit the runs report (``progress.unit_finished``) as it finishes; when a run
    ends, the plan takes the number of units it actually had (escalation adds units, a
    certificate that does not apply to a model removes some).

    Runs are independent (own seed, split and checkpoints), so the results do not depend on
    where they ran beyond float round-off in multi-threaded reductions. Raises ``StageFailed``
    (after every other run has ended) if any run raised.
    """
    runs = list(enumerate(run_seeds(cfg.seed, cfg.n_runs)))
    options, client = _options(cfg), _client
    with progress.StageBar(stage, units_per_run * len(runs)) as bar:
        log = log or bar.write
        if client is not None:
            return _on_dask(client, cfg, run_fn, runs, bar, log, stage, units_per_run)
        if options.scheduler is None and local_workers(cfg, len(runs)) == 1:
            return _in_process(cfg, run_fn, runs, bar, log, stage, units_per_run)
        own = start_client(options.scheduler, local_workers(cfg, len(runs)))
        try:
            return _on_dask(own, cfg, run_fn, runs, bar, log, stage, units_per_run)
        finally:
            _close_client(own)


def _describe(error: BaseException) -> str:
    """``Type: message`` and the unit it was computing (a note ``Units.get`` adds)."""
    return f"{type(error).__name__}: {error}" + "".join(f" ({note})" for note in getattr(error, "__notes__", ()))


def _failure(cfg, stage: str, failures: list) -> StageFailed:
    lines = [f"  run {run} (seed {seed}): {_describe(error)}" for run, seed, error in failures]
    error = StageFailed(f"{stage} stage of experiment {getattr(cfg, 'experiment', '?')!r}: {len(failures)} "
                        "run(s) failed (the other runs finished and their units are saved):\n" + "\n".join(lines))
    error.failures = failures
    return error


def _in_process(cfg, run_fn, runs, bar, log, stage, units_per_run) -> list:
    results, failures = [], []
    for run, seed in runs:
        try:
            result, message, count = _counted(run_fn, cfg, run, seed, sink=bar.update)
        except Exception as error:  # the other runs go on; the stage fails at the end
            failures.append((run, seed, error))
            log(f"run {run} (seed {seed}) FAILED: {_describe(error)}")
            continue
        results.append(result)
        bar.expect(count - units_per_run)
        log(message)
    if failures:
        raise _failure(cfg, stage, failures) from failures[0][2]
    return results


def _on_dask(client, cfg, run_fn, runs, bar, log, stage, units_per_run) -> list:
    from distributed import as_completed

    call = uuid.uuid4().hex[:12]
    topic = f"units-{stage}-{call}"
    heard, lock = defaultdict(int), threading.Condition()

    def on_event(event) -> None:  # in the client's event loop thread
        attempt, reused = event[1]
        bar.update(reused)
        with lock:
            heard[attempt] += 1
            lock.notify_all()

    client.subscribe_topic(topic, on_event)
    resources = _wants_resources(cfg)
    experiment = getattr(cfg, "experiment", "experiment")
    futures = {client.submit(_dask_task, run_fn, cfg, run, seed, topic, pure=False, resources=resources,
                             key=f"{stage}-{experiment}-run{run}-{call}"): (run, seed) for run, seed in runs}
    done, failures, logged = {}, [], 0
    try:
        for future in as_completed(futures, loop=client.loop):
            run, seed = futures[future]
            if future.status != "finished":
                try:
                    future.result()
                    error = RuntimeError(f"task ended as {future.status}")
                except Exception as raised:  # noqa: BLE001 - the run's own error, or a cancelled or lost task
                    error = raised
                failures.append((run, seed, error))
                done[run] = None
                log(f"run {run} (seed {seed}) FAILED: {_describe(error)}")
                continue
            result, message, count, attempt = future.result()
            with lock:  # its unit events were sent before its result: wait until all are counted
                lock.wait_for(lambda: heard[attempt] >= count, timeout=EVENT_WAIT_SECONDS)
            bar.expect(count - units_per_run)
            done[run] = (result, message)
            while logged in done:  # messages in run order, each as soon as the runs before it ended
                if done[logged] is not None:
                    log(done[logged][1])
                logged += 1
    finally:
        client.cancel(list(futures))
        client.unsubscribe_topic(topic)
    if failures:
        failures.sort(key=lambda f: f[0])
        raise _failure(cfg, stage, failures) from failures[0][2]
    return [done[run][0] for run, _ in runs]
