"""What the stages after training read back: a run's held-out test split and its trained models."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..attacks.base import is_stochastic
from ..data import configured_dataset, run_seeds, split_arrays, stratified_subset, subset_seed
from ..models import build_model
from ..registry import DATASETS
from ..store.checkpoints import model_from_checkpoint, read_checkpoint
from ..store.layout import Layout
from ..store.provenance import StaleResultsError


def load_test_split(cfg, run: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out test inputs and labels of ``run``, as split (and scaled) by the train stage."""
    return _load_split(cfg, run, device)[2:]


def seeded_subset(cfg, run: int, y: np.ndarray, n: int | None) -> np.ndarray:
    """The positions in ``run``'s test split (labels ``y``) of ``n`` points drawn stratified by the
    run's subset seed (all of them when None): what the attack stage attacks (``attack.n_test``)
    and the interpret stage explains (``interpret.n_images``)."""
    return stratified_subset(y, n, subset_seed(cfg.dataset, run, run_seeds(cfg.seed, cfg.n_runs)))


def load_attacked_split(cfg, run: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The test points the attack stage attacks and verifies in ``run``: ``attack.n_test`` of its
    held-out split (``seeded_subset``)."""
    x, y = load_test_split(cfg, run, device)
    keep = torch.as_tensor(seeded_subset(cfg, run, y.cpu().numpy(), cfg.attack.n_test), device=device)
    return x[keep], y[keep]


def load_train_split(cfg, run: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The training inputs and labels of ``run``, as split (and scaled) by the train stage
    (what the universal perturbations are crafted on)."""
    return _load_split(cfg, run, device)[:2]


def _load_split(cfg, run: int, device) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test) of ``run``, checked against the data files it was split from."""
    path = Layout(cfg.results_dir).split(run)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the train stage (make train) first")
    dataset = configured_dataset(cfg.dataset)
    with np.load(path) as split:
        trained_on = str(split["data_files"]) if "data_files" in split else ""
        now = DATASETS[cfg.dataset.name].fingerprint(cfg.dataset.options) or ""
        if trained_on != now:
            raise StaleResultsError(f"the data files of {cfg.dataset.name!r} changed since run {run} was trained "
                                    f"(content hash {trained_on} then, {now} now): its split would index other "
                                    f"data; retrain with make -B train CONFIG=<config> (nothing was deleted)")
        arrays = split_arrays(dataset, split["train_idx"], split["test_idx"])
    return tuple(torch.as_tensor(a, device=device) for a in arrays)


class Loaded(NamedTuple):
    model: torch.nn.Module
    key: str            # the key of the unit that trained it (units built on a model put it into theirs)
    degenerate: bool    # its run is degenerate (``stages.train.degeneracy``)


def load_models(cfg, run: int, device) -> dict[str, Loaded]:
    """Every model of ``run`` in eval mode on ``device``, with its checkpoint's key and whether
    the run is degenerate."""
    layout, models = Layout(cfg.results_dir), {}
    for name in cfg.models:
        payload = read_checkpoint(layout.checkpoint(name, run))
        models[name] = Loaded(model_from_checkpoint(payload).to(device).eval(), payload["key"],
                              bool(payload["training"]["summary"].get("degenerate", False)))
    return models


def stochastic_models(cfg) -> set[str]:
    """The names of the config's randomised models (``attacks.is_stochastic``: finite shots,
    noise), from the models as the config builds them, untrained: whether a model samples is
    a property of its spec, not of its weights. For the masking checks' ``eot_convergence``."""
    return {name for name, spec in cfg.models.items()
            if is_stochastic(build_model(spec.to_dict(), cfg.dataset.input_shape, cfg.n_classes))}
