"""The study's stages, one function per notebook: train, attack, interpret.

Each stage reads the config and the artifacts of the stage before it from
``results/<experiment>/`` and writes its own; none reaches back upstream.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .artifacts import (CellStore, checkpoint_path, load_checkpoint, model_from_checkpoint, read_checkpoint, save_arrays,
                        save_checkpoint, write_csv, write_text)
from .attacks import build_attack, predict
from .attribution import (applicability, attribute, infidelity_score, rank_correlation, sensitivity_score,
                          top_k_overlap)
from .config import resolve_device, resolved_yaml
from .data import configured_dataset, run_seeds, split_arrays, split_indices
from .evaluation import COLUMNS, WORST_CASE, evaluate_models
from .models import build_model, count_parameters
from .provenance import begin_stage, finish_stage
from .training import train_model


def _split_path(results_dir: Path, run: int) -> Path:
    return Path(results_dir) / "splits" / f"run{run:02d}.npz"


def stratified_subset(y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices of ``n`` points of ``y`` with class proportions kept (all of them if n is None)."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    # Seeded and class-balanced, then back in data order.
    rng = np.random.default_rng(seed)
    picked = []
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts / len(y) * n).astype(int)
    quota[np.argsort(-(counts / len(y) * n - quota))[: n - quota.sum()]] += 1
    for c, q in zip(classes, quota):
        picked.append(rng.permutation(np.flatnonzero(y == c))[:q])
    return np.sort(np.concatenate(picked))


def load_test_split(cfg: dict, run: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out test images and labels of ``run``, as saved by the train stage."""
    path = _split_path(cfg["results_dir"], run)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the train stage (make train) first")
    dataset = configured_dataset(cfg["dataset"])
    with np.load(path) as split:
        _, _, x_test, y_test = split_arrays(dataset, split["train_idx"], split["test_idx"])
    return torch.as_tensor(x_test, device=device), torch.as_tensor(y_test, device=device)


def _worker_init() -> None:
    torch.set_num_threads(1)  # one process per core: small tensor ops scale better so than by threads


def map_runs(cfg: dict, run_fn, log=print) -> list:
    """``run_fn(cfg, run, seed)`` for every Monte Carlo run, in run order, on ``cfg['workers']``
    processes (``auto``: one per CPU core on the CPU, one on a GPU). Each call returns
    ``(result, message)``; the messages are logged in run order as the runs finish.

    Runs are independent (own seed, split and checkpoints), so the results do not depend on
    the number of processes beyond float round-off in multi-threaded reductions.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    runs = list(enumerate(run_seeds(cfg["seed"], cfg["n_runs"])))
    workers = cfg["workers"]
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


def finished_training(path: Path) -> dict | None:
    """The training record of a finished (model, run) cell, or None if it must be trained:
    no checkpoint, one that does not read back whole, or one the current model code cannot
    load (its weights no longer fit)."""
    try:
        payload = read_checkpoint(path)
        model_from_checkpoint(payload)
    except (FileNotFoundError, ValueError, RuntimeError):
        return None
    return payload.get("training")  # None in checkpoints written before resume existed


def _train_run(cfg: dict, run: int, seed: int):
    out = Path(cfg["results_dir"])
    device = resolve_device(cfg)
    dataset = configured_dataset(cfg["dataset"])
    tr = cfg["training"]
    history, models, lines = [], [], []
    train_idx, test_idx = split_indices(dataset.y, cfg["dataset"]["test_fraction"], seed)
    save_arrays(_split_path(out, run), train_idx=train_idx, test_idx=test_idx)
    x_train, y_train, x_test, y_test = (torch.as_tensor(a, device=device)
                                        for a in split_arrays(dataset, train_idx, test_idx))
    for name, spec in cfg["models"].items():
        path = checkpoint_path(out, name, run)
        record = finished_training(path)
        if record is not None:
            lines.append(f"run {run} (seed {seed}) {name:>6}: test accuracy {record['summary']['clean_accuracy']:.3f} "
                         "(finished earlier: checkpoint reused)")
        else:
            torch.manual_seed(seed)  # fresh weights in every run, never shared between runs
            model = build_model(spec, dataset.input_shape, dataset.n_classes).to(device)
            start = time.perf_counter()
            records = train_model(model, x_train, y_train, x_test, y_test, epochs=tr["epochs"],
                                  batch_size=tr["batch_size"], learning_rate=tr["learning_rate"], seed=seed)
            seconds = time.perf_counter() - start
            record = {"history": [{"model": name, "run": run, "seed": seed, **r} for r in records],
                      "summary": {"model": name, "type": spec["type"], "run": run, "seed": seed,
                                  "parameters": count_parameters(model), "n_train": len(train_idx),
                                  "n_test": len(test_idx), "clean_accuracy": records[-1]["test_accuracy"],
                                  "train_seconds": round(seconds, 2)}}
            # The checkpoint carries its training record: written last and atomically, it
            # marks the (model, run) cell finished.
            save_checkpoint(model, spec, dataset.input_shape, dataset.n_classes, path, training=record)
            lines.append(f"run {run} (seed {seed}) {name:>6}: test accuracy {records[-1]['test_accuracy']:.3f} "
                         f"after {tr['epochs']} epochs, {seconds:.1f} s")
        history += record["history"]
        models.append(record["summary"])
    return (history, models), "\n".join(lines)


def train_stage(cfg: dict, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every model of the config in every Monte Carlo run; save checkpoints and tables.

    Returns (history: one row per model, run and epoch; models: one row per model and run
    with parameter count, clean test accuracy and training time). Within a run every model
    gets the same split, the same initialisation seed and the same batch order.
    """
    out = Path(cfg["results_dir"])
    begin_stage(cfg, "train")
    write_text(resolved_yaml(cfg), out / "config.yaml")
    results = map_runs(cfg, _train_run, log)
    history = pd.DataFrame([row for h, _ in results for row in h])
    models = pd.DataFrame([row for _, m in results for row in m])
    write_csv(history, out / "train_history.csv")
    write_csv(models, out / "models.csv")
    finish_stage(cfg, "train")
    return history, models


def decision_boundary_inputs(cfg: dict, run: int = 0):
    """For 2-D data (the report's decision-boundary figure): the models of ``run`` (on the
    CPU), its test points ``x`` (N, 2) and labels ``y`` (N,) as numpy arrays, and per model
    the PGD examples at ``interpret.epsilon`` crafted against it."""
    seed = run_seeds(cfg["seed"], cfg["n_runs"])[run]
    x, y = load_test_split(cfg, run, "cpu")
    models = {name: load_checkpoint(checkpoint_path(cfg["results_dir"], name, run)) for name in cfg["models"]}
    pgd = build_attack("pgd", cfg["attack"], seed=seed)
    x_adv = {name: pgd(model, x, y, cfg["interpret"]["epsilon"]).numpy() for name, model in models.items()}
    return models, x.numpy(), y.numpy(), x_adv


def _attack_run(cfg: dict, run: int, seed: int):
    out = Path(cfg["results_dir"])
    device = resolve_device(cfg)
    at = cfg["attack"]
    x_test, y_test = load_test_split(cfg, run, device)
    keep = torch.as_tensor(stratified_subset(y_test.cpu().numpy(), at["n_test"], seed), device=device)
    models = {name: load_checkpoint(checkpoint_path(out, name, run), device) for name in cfg["models"]}
    start = time.perf_counter()
    cells = CellStore(out / "cells" / "attack" / f"run{run:02d}")
    results = evaluate_models(models, x_test[keep], y_test[keep], at, seed, cells=cells)
    tables = {key: [{"run": run, "seed": seed, **r} for r in records] for key, records in results.items()}
    worst = [r for r in results["robustness"] if r["attack"] == WORST_CASE and r["epsilon"] == max(at["epsilons"])]
    message = (f"run {run}: worst case at ε={max(at['epsilons']):g}: "
               + ", ".join(f"{r['model']}={r['accuracy']:.2f}" for r in worst)
               + f" ({cells.computed} cells computed, {cells.reused} reused; {time.perf_counter() - start:.1f} s)")
    return tables, message


def attack_stage(cfg: dict, log=print) -> dict[str, pd.DataFrame]:
    """Attack every model of every run on its held-out test split (``evaluation.evaluate_models``).

    Returns and writes four tidy tables, each with ``run`` and ``seed`` columns:
    ``robustness`` (robustness.csv: model, attack, epsilon, accuracy, n, n_correct, linf,
    including the per-sample ``worst_case``), ``transfer`` (transfer.csv: source, target,
    epsilon, accuracy, n), ``large_epsilon`` (large_epsilon.csv: PGD at the masking
    budgets) and ``by_class`` (by_class.csv: the accuracy of each class).
    """
    out = Path(cfg["results_dir"])
    begin_stage(cfg, "attack")
    results = map_runs(cfg, _attack_run, log)
    frames = {key: pd.DataFrame([r for tables in results for r in tables[key]], columns=["run", "seed", *columns])
              for key, columns in COLUMNS.items()}
    for key, frame in frames.items():
        write_csv(frame, out / f"{key}.csv")
    finish_stage(cfg, "attack")
    return frames


def _explain(cfg: dict, name: str, run: int, seed: int, x: torch.Tensor, y: torch.Tensor) -> tuple[list[dict], dict]:
    """One (model, run) cell of the interpret stage: rows of the stability table for ``x``, and
    the first ``panel_images`` maps of every method, clean and attacked."""
    it, at = cfg["interpret"], cfg["attack"]
    model = load_checkpoint(checkpoint_path(cfg["results_dir"], name, run), x.device)
    k = max(1, int(round(it["top_k_fraction"] * x[0].numel())))
    rows, panel = [], {}
    pgd = build_attack("pgd", at, seed=seed)
    x_adv = pgd(model, x, y, it["epsilon"])
    clean_correct = (predict(model, x) == y).cpu().numpy()
    adv_correct = (predict(model, x_adv) == y).cpu().numpy()
    panel[f"{name}__x_adv"] = x_adv[: it["panel_images"]].cpu().numpy()
    for method in it["methods"]:
        applies, reason = applicability(method, model)
        base = {"model": name, "run": run, "seed": seed, "method": method, "applicable": applies,
                "note": reason, "epsilon": it["epsilon"]}
        if not applies:
            rows += [{**base, "image": i, "spearman": np.nan, "top_k_overlap": np.nan,
                      "clean_correct": bool(clean_correct[i]), "adv_correct": bool(adv_correct[i])}
                     for i in range(len(x))]
            continue
        params = dict(ig_steps=it["ig_steps"], smoothgrad_samples=it["smoothgrad_samples"],
                      smoothgrad_stdev=it["smoothgrad_stdev"])
        metric = dict(n_samples=it["metric_samples"], seed=seed)
        maps, scores = {}, {}
        for kind, inputs in (("clean", x), ("adv", x_adv)):
            maps[kind] = attribute(method, model, inputs, y, seed=seed, **params)
            scores[f"infidelity_{kind}"] = infidelity_score(
                model, inputs, maps[kind], y, stdev=it["infidelity_stdev"], **metric)
            scores[f"sensitivity_{kind}"] = sensitivity_score(
                method, model, inputs, y, radius=it["sensitivity_radius"], **metric, **params)
        clean_map, adv_map = maps["clean"], maps["adv"]
        rho = rank_correlation(clean_map, adv_map)
        overlap = top_k_overlap(clean_map, adv_map, k)
        rows += [{**base, "image": i, "spearman": rho[i], "top_k_overlap": overlap[i],
                  **{key: float(v[i]) for key, v in scores.items()},
                  "clean_correct": bool(clean_correct[i]), "adv_correct": bool(adv_correct[i])}
                 for i in range(len(x))]
        panel[f"{name}__{method}__clean"] = clean_map[: it["panel_images"]].cpu().numpy()
        panel[f"{name}__{method}__adv"] = adv_map[: it["panel_images"]].cpu().numpy()
    return rows, panel


def _interpret_run(cfg: dict, run: int, seed: int):
    device = resolve_device(cfg)
    it = cfg["interpret"]
    x_all, y_all = load_test_split(cfg, run, device)
    keep = torch.as_tensor(stratified_subset(y_all.cpu().numpy(), it["n_images"], seed), device=device)
    x, y = x_all[keep], y_all[keep]
    panel = {"x": x[: it["panel_images"]].cpu().numpy(), "y": y[: it["panel_images"]].cpu().numpy()}
    folder = Path(cfg["results_dir"]) / "cells" / "interpret" / f"run{run:02d}"
    frames, reused = [], 0
    for name in cfg["models"]:
        # A cell is its rows (.csv, written last: the marker that it is finished) and its maps (.npz).
        table, maps = folder / f"{name}.csv", folder / f"{name}.npz"
        if table.is_file() and maps.is_file():
            reused += 1
        else:
            rows, cell_panel = _explain(cfg, name, run, seed, x, y)
            save_arrays(maps, **cell_panel)
            write_csv(pd.DataFrame(rows), table)
        # Rows always come back from the file, so a resumed stage's table equals a fresh one's.
        frames.append(pd.read_csv(table))
        with np.load(maps, allow_pickle=False) as arrays:
            panel.update({key: arrays[key] for key in arrays.files})
    message = (f"run {run}: attributions for {len(cfg['models'])} models x {len(it['methods'])} methods "
               f"on {len(x)} images ({len(cfg['models']) - reused} cells computed, {reused} reused)")
    return (pd.concat(frames, ignore_index=True), panel if run == 0 else None), message


def interpret_stage(cfg: dict, log=print) -> pd.DataFrame:
    """Explain held-out images of every model, clean and attacked, with every method.

    For each run the same ``n_images`` test images are explained for every model, clean and
    after PGD at ``interpret.epsilon`` crafted against that model, for the true class.
    Returns the tidy stability table (one row per model, run, method and image: Spearman
    rank correlation and top-k overlap between clean and adversarial |maps|, and Captum's
    infidelity and sensitivity_max of the clean and of the adversarial map), written to
    ``attribution_stability.csv``. The maps of run 0 go to ``attribution_maps.npz``.
    """
    out = Path(cfg["results_dir"])
    begin_stage(cfg, "interpret")
    results = map_runs(cfg, _interpret_run, log)
    stability = pd.concat([frame for frame, _ in results], ignore_index=True)
    panel = results[0][1]
    write_csv(stability, out / "attribution_stability.csv")
    save_arrays(out / "attribution_maps.npz", **panel)
    finish_stage(cfg, "interpret")
    return stability
