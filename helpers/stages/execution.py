"""Running a stage's Monte Carlo runs on local processes."""
from __future__ import annotations

import os

import torch

from ..config import resolve_device
from ..data import run_seeds


def _worker_init() -> None:
    torch.set_num_threads(1)  # one process per core: small tensor ops scale better so than by threads


def map_runs(cfg, run_fn, log=print) -> list:
    """``run_fn(cfg, run, seed)`` for every Monte Carlo run, in run order, on ``cfg.workers``
    processes (``auto``: one per CPU core on the CPU, one on a GPU). Each call returns
    ``(result, message)``; the messages are logged in run order as the runs finish.

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
    if workers == 1:
        calls = (run_fn(cfg, run, seed) for run, seed in runs)
    else:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init)
        calls = pool.map(run_fn, *zip(*[(cfg, run, seed) for run, seed in runs]))
    try:
        for result, message in calls:
            results.append(result)
            log(message)
    finally:
        if workers != 1:
            pool.shutdown(cancel_futures=True)
    return results
