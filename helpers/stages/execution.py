"""Running a stage's Monte Carlo runs on local processes, with a progress bar of their units."""
from __future__ import annotations

import os
import threading
from functools import partial

import torch

from ..config import resolve_device
from ..data import run_seeds
from . import progress

_queue = None  # in a worker process: where its finished units are reported


def _worker_init(queue) -> None:
    global _queue
    _queue = queue
    torch.set_num_threads(1)  # one process per core: small tensor ops scale better so than by threads


def _counted(run_fn, cfg, run: int, seed: int, sink=None):
    """``run_fn(cfg, run, seed)`` with each finished unit reported to ``sink(reused)`` (in a
    worker: the queue); returns (result, message, units reported)."""
    sink = sink or (lambda reused: _queue.put(reused))
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


def _drain(queue, bar: progress.StageBar) -> None:
    """Move the units the workers report onto the bar until the stop sentinel (None)."""
    while (reused := queue.get()) is not None:
        bar.update(reused)


def map_runs(cfg, run_fn, log=None, stage: str = "runs", units_per_run: int = 0) -> list:
    """``run_fn(cfg, run, seed)`` for every Monte Carlo run, in run order, on ``cfg.workers``
    processes (``auto``: one per CPU core on the CPU, one on a GPU). Each call returns
    ``(result, message)``; the messages are logged in run order as the runs finish (``log``,
    default: a line above the progress bar).

    The bar (``progress.StageBar``, named ``stage``) plans ``units_per_run`` units per run and
    counts each unit the runs report (``progress.unit_finished``) as it finishes; when a run
    ends, the plan takes the number of units it actually had (escalation adds units, a
    certificate that does not apply to a model removes some).

    Runs are independent (own seed, split and checkpoints), so the results do not depend on
    the number of processes beyond float round-off in multi-threaded reductions.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    runs = list(enumerate(run_seeds(cfg.seed, cfg.n_runs)))
    workers = cfg.workers
    if workers == "auto":
        workers = 1 if resolve_device(cfg).type == "cuda" else min(len(runs), os.cpu_count() or 1)
    results = []
    with progress.StageBar(stage, units_per_run * len(runs)) as bar:
        log = log or bar.write
        if workers == 1:
            calls = (_counted(run_fn, cfg, run, seed, sink=bar.update) for run, seed in runs)
        else:
            context = get_context("spawn")
            queue = context.Queue()
            drain = threading.Thread(target=_drain, args=(queue, bar), daemon=True)
            drain.start()
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                       initargs=(queue,))
            calls = pool.map(partial(_counted, run_fn), *zip(*[(cfg, run, seed) for run, seed in runs]))
        try:
            for result, message, count in calls:
                results.append(result)
                bar.expect(count - units_per_run)
                log(message)
        finally:
            if workers != 1:
                pool.shutdown(cancel_futures=True)
                queue.put(None)  # every worker has exited: what they reported is in the queue before it
                drain.join()
    return results
