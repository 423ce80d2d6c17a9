"""Training your way: the optimiser, schedule, clipping, loss and best-of-k initialisations of
``training`` (and a model's own ``training``) do what they say; an imported state_dict is the
model, not a retrained one; every bad input is named before any work."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from helpers.config import parse_config
from helpers.data import load_dataset, split_indices
from helpers.models import build_model
from helpers.params import ConfigError
from helpers.stages import train
from helpers.store.checkpoints import load_checkpoint
from helpers.store.layout import Layout
from helpers.training import batch_loss, make_optimizer, make_schedule, train_model

BASE = {"dataset": {"classes": [0, 1], "folds": 2}, "n_runs": 2, "seed": 5, "workers": 1,
        "training": {"epochs": 2, "batch_size": 32, "learning_rate": 0.05},
        "attack": {"methods": ["fgsm", "pgd"]}}


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits", [0, 1])
    tr, te = split_indices(ds.y, 0.3, seed=0)
    return tuple(torch.as_tensor(a) for a in (ds.X[tr], ds.y[tr], ds.X[te], ds.y[te]))


def test_the_optimisers_are_torch_s_own_with_the_given_settings():
    w = [torch.nn.Parameter(torch.zeros(3))]
    sgd = make_optimizer(w, 0.1, "sgd", momentum=0.9, nesterov=True, weight_decay=1e-3)
    assert isinstance(sgd, torch.optim.SGD)
    assert {k: sgd.param_groups[0][k] for k in ("lr", "momentum", "nesterov", "weight_decay")} == \
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}
    assert isinstance(make_optimizer(w, 0.1, "adamw", weight_decay=0.01), torch.optim.AdamW)
    assert type(make_optimizer(w, 0.1)) is torch.optim.Adam


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_the_schedule_sets_each_epoch_s_learning_rate(schedule):
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(1))], 0.2)
    sched = make_schedule(opt, schedule, epochs=10, step_size=3, gamma=0.5)
    for epoch in range(1, 11):
        opt.step()
        sched.step()
        expected = (0.2 * (1 + math.cos(math.pi * epoch / 10)) / 2 if schedule == "cosine"
                    else 0.2 * 0.5 ** (epoch // 3))
        assert opt.param_groups[0]["lr"] == pytest.approx(expected, abs=1e-12)


def test_the_squared_error_loss_is_its_formula():
    logits, y = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 3.0]]), torch.tensor([0, 1])
    p = logits.softmax(1)
    target = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    assert float(batch_loss(logits, y, "mse")) == pytest.approx(float(((p - target) ** 2).mean()))


def test_clipping_bounds_every_step_s_gradient_norm(digits, monkeypatch):
    x_tr, y_tr, x_te, y_te = digits
    torch.manual_seed(0)
    model = build_model({"type": "mlp", "hidden": [16]}, (1, 8, 8), 2)
    norms = []
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):  # the norm of the gradient the optimiser is about to apply
        norms.append(float(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm()))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    train_model(model, x_tr, y_tr, x_te, y_te, epochs=1, batch_size=16, learning_rate=0.5, seed=0,
                clip_grad_norm=0.01)
    assert norms and max(norms) <= 0.01 + 1e-6


def test_best_of_keeps_the_initialisation_with_the_lowest_training_loss(tmp_path):
    cfg = parse_config({**BASE, "n_runs": 2, "models": {"mlp": {"type": "mlp", "hidden": [4],
                                                                "training": {"best_of": 3, "epochs": 1}}}},
                       "best", tmp_path / "best")
    data = load_dataset("digits", [0, 1])
    tr, te = split_indices(data.y, 0.3, seed=1)
    split = tuple(torch.as_tensor(a) for a in (data.X[tr], data.y[tr], data.X[te], data.y[te]))
    model, records, extra = train.fit(cfg, "mlp", cfg.models["mlp"], 123, split, "cpu")
    losses = []
    for k in range(3):
        torch.manual_seed(train.initialisation_seed(123, k))
        other = build_model({"type": "mlp", "hidden": [4]}, (1, 8, 8), 2)
        losses.append(train_model(other, *split, epochs=1, batch_size=32, learning_rate=0.05, seed=123)[-1]["train_loss"])
    assert extra == {"initialisation": int(np.argmin(losses)), "initialisations": 3}
    assert records[-1]["train_loss"] == pytest.approx(min(losses))
    assert train.initialisation_seed(123, 0) == 123  # one initialisation trains as it always did


def test_an_imported_state_dict_reproduces_the_accuracy_it_was_saved_with(tmp_path, monkeypatch):
    monkeypatch.setenv("QML_ROBUSTNESS_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    first = parse_config({**BASE, "models": {"mlp": {"type": "mlp", "hidden": [8]}}}, "first", tmp_path / "first")
    train.run(first)
    trained = pd.read_csv(Layout(first.results_dir).table("models"))
    torch.save(load_checkpoint(Layout(first.results_dir).checkpoint("mlp", 0)).state_dict(),
               tmp_path / "data" / "mlp.pt")
    again = parse_config({**BASE, "models": {"mlp": {"type": "mlp", "hidden": [8], "checkpoint": "mlp.pt"}}},
                         "again", tmp_path / "again")
    history, models = train.run(again)
    assert history.empty and (models["imported"] == "mlp.pt").all()
    # Run 0 has the split the weights were trained on: the same accuracy; run 1 another split.
    assert models.loc[models["run"] == 0, "clean_accuracy"].item() == trained.loc[trained["run"] == 0, "clean_accuracy"].item()


def config_error(tmp_path, models, training=None):
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, "training": {**BASE["training"], **(training or {})}, "models": models}, "bad",
                     tmp_path / "bad")
    return str(err.value)


def test_bad_training_options_and_imports_are_named(tmp_path, monkeypatch):
    assert "training.momentum applies to optimizer sgd only" in config_error(
        tmp_path, {"m": {"type": "mlp"}}, {"momentum": 0.9})
    assert "nesterov needs optimizer sgd with momentum > 0" in config_error(
        tmp_path, {"m": {"type": "mlp"}}, {"optimizer": "sgd", "nesterov": True})
    assert "models.m.training" in config_error(tmp_path, {"m": {"type": "mlp", "training": {"optimiser": "sgd"}}})
    assert "training.schedule" in config_error(tmp_path, {"m": {"type": "mlp"}}, {"schedule": "linear"})
    monkeypatch.setenv("QML_ROBUSTNESS_DATA", str(tmp_path))
    assert "models.m.checkpoint: file 'missing.pt' does not exist" in config_error(
        tmp_path, {"m": {"type": "mlp", "checkpoint": "missing.pt"}})
    torch.save({"layers.0.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pt")
    message = config_error(tmp_path, {"m": {"type": "mlp", "checkpoint": "wrong.pt"}})
    assert "models.m.checkpoint: wrong.pt does not fit the model: missing" in message
    torch.save(build_model({"type": "mlp", "hidden": [5]}, (1, 8, 8), 2).state_dict(), tmp_path / "narrow.pt")
    assert "shapes" in config_error(tmp_path, {"m": {"type": "mlp", "hidden": [8], "checkpoint": "narrow.pt"}})
    (tmp_path / "text.pt").write_text("not a torch file")
    assert "is not a state_dict that loads with weights_only" in config_error(
        tmp_path, {"m": {"type": "mlp", "checkpoint": "text.pt"}})


def test_a_model_s_own_training_is_in_its_key_and_the_summary(tmp_path):
    given = {**BASE, "models": {"a": {"type": "mlp"}, "b": {"type": "mlp", "training": {"optimizer": "sgd",
                                                                                         "momentum": 0.9}}}}
    cfg = parse_config(given, "own", tmp_path / "own")
    assert cfg.models["b"].training_section(cfg.training).optimizer == "sgd"
    assert cfg.models["a"].training_section(cfg.training) is cfg.training
    assert train.train_key(cfg, "a", 0, 1) != train.train_key(cfg, "b", 0, 1)
    from helpers.report.summary import training_sentence
    assert training_sentence(cfg) == ("2 epochs, batch 32, Adam lr 0.05 for every model but these: `b` 2 epochs, "
                                      "batch 32, SGD lr 0.05, momentum 0.9 (their hyperparameters differ)")
    # A config without the new keys records (and keys) its training exactly as before they existed.
    assert cfg.section("training") == {"epochs": 2, "batch_size": 32, "learning_rate": 0.05}
    assert yaml.safe_load(yaml.safe_dump(cfg.section("models")))["a"] == {"type": "mlp", **cfg.models["a"].params.to_dict()}


def test_checkpoints_of_models_no_longer_in_the_config_are_listed(tmp_path, capsys):
    cfg = parse_config({**BASE, "models": {"a": {"type": "mlp", "hidden": [4]},
                                                        "b": {"type": "mlp", "hidden": [4]}}}, "stale", tmp_path / "s")
    train.run(cfg)
    fewer = parse_config({**BASE, "models": {"a": {"type": "mlp", "hidden": [4]}}}, "stale", tmp_path / "s")
    assert train.stale_checkpoints(fewer) == [Layout(fewer.results_dir).checkpoint("b", r) for r in (0, 1)]
    train.run(fewer)
    assert "2 checkpoints of models or runs no longer in the config" in capsys.readouterr().out
    assert Layout(fewer.results_dir).checkpoint("b", 0).exists()  # listed, never deleted
