"""The train stage (``01_train.ipynb``): every model of the config in every Monte Carlo run.

Within a run every model gets the same split, the same initialisation seed and the same
batch order. The unit of work is one model in one run: its checkpoint, which carries its
training record and the key of what produced it (the data set, training and model sections,
the run's seed, and the code of the stage, the model and the data set).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from ..config import resolve_device, resolved_yaml
from ..data import configured_dataset, run_seeds, run_split, split_arrays
from ..models import build_model, count_parameters, predict
from ..defences import build_defence
from ..registry import DATASETS, DEFENCES, MODELS
from ..data.files import content_hash, data_path
from ..store.checkpoints import import_state_dict, model_from_checkpoint, read_checkpoint, save_checkpoint
from ..store.files import save_arrays, write_csv, write_text
from ..store.layout import Layout
from ..store.provenance import begin_stage, finish_stage
from ..store.units import stage_code_hash, unit_key
from ..training import train_model
from . import progress
from .execution import map_runs


def train_key(cfg, name: str, run: int, seed: int) -> str:
    """The key of the unit (model ``name``, run ``run`` with ``seed``): everything its
    checkpoint depends on (the split depends on the run's place in the k-fold repetitions)."""
    spec, source = cfg.models[name], DATASETS[cfg.dataset.name]
    # A data set read from files adds a hash of their content: edited data retrains.
    files = source.fingerprint(cfg.dataset.options)
    defence = [DEFENCES[spec.defence[0]].code_hash()] if spec.defence is not None else []
    extra = {"data_files": files} if files else {}
    if spec.checkpoint:  # an imported model: its file's content (a new file there is imported again)
        extra["imported"] = content_hash([data_path(spec.checkpoint, f"models.{name}.checkpoint")])
    own = MODELS[spec.type].spec_hash(spec.params)
    if own:  # a model built by a file of your own: that file's content
        extra["own_code"] = own
    return unit_key(stage="train", dataset=cfg.section("dataset"), training=cfg.section("training"),
                    model=spec.to_dict(), seed=seed, run=run, base_seed=cfg.seed, device=cfg.device,
                    code=[stage_code_hash("train"), MODELS[spec.type].code_hash(), source.code_hash(), *defence],
                    **extra)


def initialisation_seed(seed: int, k: int) -> int:
    """The weight seed of a run's ``k``-th initialisation (``training.best_of``): the run's
    seed for the first, so a single initialisation is what it always was."""
    return seed if k == 0 else int(np.random.SeedSequence([int(seed), 23, k]).generate_state(1)[0])


def fit(cfg, name: str, spec, seed: int, data, device) -> tuple[torch.nn.Module, list[dict], dict]:
    """Train model ``name`` on ``data`` (x_train, y_train, x_test, y_test) with its training
    section (the config's, with its own overrides): ``best_of`` initialisations, the one with
    the lowest final training loss kept. Returns (model, its epoch records, summary extras)."""
    tr, (x_train, y_train, x_test, y_test) = spec.training_section(cfg.training), data
    options = {k: getattr(tr, k) for k in ("optimizer", "momentum", "nesterov", "weight_decay", "schedule",
                                           "step_size", "gamma", "clip_grad_norm", "loss")}
    best = None
    for k in range(tr.best_of):
        torch.manual_seed(initialisation_seed(seed, k))  # fresh weights in every run, never shared between runs
        model = build_model(spec.to_dict(), cfg.dataset.input_shape, cfg.n_classes).to(device)
        defence = build_defence(spec.defence_dict().get("defence"), f"models.{name}.defence")
        records = train_model(model, x_train, y_train, x_test, y_test, epochs=tr.epochs, batch_size=tr.batch_size,
                              learning_rate=tr.learning_rate, seed=seed, defence=defence, **options)
        if best is None or records[-1]["train_loss"] < best[1][-1]["train_loss"]:
            best = (model, records, k)
    model, records, k = best
    return model, records, ({"initialisation": k, "initialisations": tr.best_of} if tr.best_of > 1 else {})


def imported_model(cfg, name: str, spec, data, device) -> tuple[torch.nn.Module, list[dict], dict]:
    """Model ``name`` with the weights of its ``checkpoint`` (under the data folder), not
    trained: what it fits on the training split first (a PCA), then the file's state_dict."""
    model = build_model(spec.to_dict(), cfg.dataset.input_shape, cfg.n_classes).to(device)
    model.fit_preprocessing(data[0])
    import_state_dict(model, spec.checkpoint, f"models.{name}.checkpoint")
    return model.eval(), [], {"imported": spec.checkpoint}


def degeneracy(predictions: torch.Tensor, labels: torch.Tensor) -> dict:
    """Whether a trained model is degenerate on its test split: it predicts a single class, or
    its clean accuracy does not beat the constant predictor of the majority class. Such a run
    sits at the class prior at every budget: it is no evidence of robustness, and is counted
    and left out of comparisons (``report.exclude_degenerate``)."""
    majority = float(torch.bincount(labels).max()) / len(labels)
    accuracy = float((predictions == labels).double().mean())
    classes = int(predictions.unique().numel())
    return {"predicted_classes": classes, "majority_share": round(majority, 6),
            "degenerate": bool(classes == 1 or accuracy <= majority)}


def finished_training(path, key: str) -> dict | None:
    """The training record of a finished unit, or None if it must be trained: no checkpoint,
    one that does not read back whole, one produced under another key, or one the current
    model code cannot load."""
    try:
        payload = read_checkpoint(path)
        if payload.get("key") != key:
            return None
        model_from_checkpoint(payload)
    except (FileNotFoundError, ValueError, RuntimeError):
        return None
    return payload.get("training")


def _train_run(cfg, run: int, seed: int):
    layout = Layout(cfg.results_dir)
    device = resolve_device(cfg)
    dataset = configured_dataset(cfg.dataset)
    history, models, lines = [], [], []
    train_idx, test_idx = run_split(dataset, cfg.dataset, run, run_seeds(cfg.seed, cfg.n_runs))
    # The split names the data files it indexes, so a later stage refuses edited data (inputs.py).
    save_arrays(layout.split(run), train_idx=train_idx, test_idx=test_idx,
                data_files=np.array(DATASETS[cfg.dataset.name].fingerprint(cfg.dataset.options) or ""))
    x_train, y_train, x_test, y_test = (torch.as_tensor(a, device=device)
                                        for a in split_arrays(dataset, train_idx, test_idx))
    for name, spec in cfg.models.items():
        path, key = layout.checkpoint(name, run), train_key(cfg, name, run, seed)
        record = finished_training(path, key)
        reused = record is not None
        if reused:
            lines.append(f"run {run} (seed {seed}) {name:>6}: test accuracy {record['summary']['clean_accuracy']:.3f} "
                         "(finished earlier: checkpoint reused)")
        else:
            start = time.perf_counter()
            data = (x_train, y_train, x_test, y_test)
            model, records, extra = (imported_model(cfg, name, spec, data, device) if spec.checkpoint
                                     else fit(cfg, name, spec, seed, data, device))
            seconds = time.perf_counter() - start
            predictions = predict(model, x_test)
            # An imported model has no epochs: its clean accuracy is measured here, on the same split.
            clean = records[-1]["test_accuracy"] if records else float((predictions == y_test).double().mean())
            record = {"history": [{"model": name, "run": run, "seed": seed, **r} for r in records],
                      "summary": {"model": name, "type": spec.type, "run": run, "seed": seed,
                                  "parameters": count_parameters(model), "n_train": len(train_idx),
                                  "n_test": len(test_idx), "clean_accuracy": clean,
                                  **degeneracy(predictions, y_test), "train_seconds": round(seconds, 2), **extra}}
            # The checkpoint carries its training record and key: written last and
            # atomically, it marks the unit finished.
            save_checkpoint(model, spec.to_dict(), dataset.input_shape, dataset.n_classes, path, training=record, key=key)
            done = (f"imported from {spec.checkpoint}" if spec.checkpoint
                    else f"after {spec.training_section(cfg.training).epochs} epochs, {seconds:.1f} s")
            lines.append(f"run {run} (seed {seed}) {name:>6}: test accuracy {record['summary']['clean_accuracy']:.3f} "
                         f"{done}")
        progress.unit_finished(reused)
        history += record["history"]
        models.append(record["summary"])
    return (history, models), "\n".join(lines)


def stale_checkpoints(cfg) -> list:
    """Checkpoints under the experiment's ``models/`` that the config no longer asks for: of a
    model it does not name, or of a run past ``n_runs``. Nothing reads them; they are listed,
    not deleted (a model taken out of a config for a while may come back)."""
    layout = Layout(cfg.results_dir)
    wanted = {layout.checkpoint(name, run) for name in cfg.models for run in range(cfg.n_runs)}
    return sorted(p for p in (layout.root / "models").glob("run*/*.pt") if p not in wanted)


def run(cfg, log=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every model of the config in every Monte Carlo run; save checkpoints and tables.
    A progress bar counts the models as they finish; each run's message goes to ``log``
    (default: a line above the bar).

    Returns (history: one row per model, run and epoch; models: one row per model and run
    with parameter count, clean test accuracy and training time).
    """
    layout = Layout(cfg.results_dir)
    begin_stage(cfg, "train")
    write_text(resolved_yaml(cfg), layout.config)
    results = map_runs(cfg, _train_run, log, stage="train", units_per_run=len(cfg.models))
    history = pd.DataFrame([row for h, _ in results for row in h])
    models = pd.DataFrame([row for _, m in results for row in m])
    write_csv(history, layout.table("train_history"))
    write_csv(models, layout.table("models"))
    stale = stale_checkpoints(cfg)
    if stale:
        (log or print)(f"{len(stale)} checkpoints of models or runs no longer in the config (unused; delete them to "
                       "reclaim the space): " + ", ".join(str(p.relative_to(layout.root)) for p in stale))
    finish_stage(cfg, "train")
    return history, models
