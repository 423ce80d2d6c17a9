import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch

from helpers.attacks import PGD
from helpers.data import load_dataset
from helpers.models import build_model
from helpers.models import predict
from helpers.report.figures import plot_attribution_panel, plot_decision_boundaries
from helpers.training import train_model


def test_decision_boundaries_show_each_model_and_how_many_points_flip():
    data = load_dataset("moons", [0, 1], n_samples=120)
    x, y = torch.as_tensor(data.X), torch.as_tensor(data.y)
    models = {name: build_model(spec, data.input_shape, 2) for name, spec in
              {"mlp": {"type": "mlp", "hidden": [8]}, "vqc": {"type": "vqc", "n_qubits": 2, "n_layers": 1}}.items()}
    for model in models.values():
        train_model(model, x, y, x, y, epochs=3, batch_size=32, learning_rate=0.05, seed=0)
    grid = np.linspace(0, 1, 50)
    points = torch.as_tensor(np.stack([a.ravel() for a in np.meshgrid(grid, grid)], 1), dtype=torch.float32)
    arrays = {"grid": grid, "x": x[:20].numpy(), "y": y[:20].numpy()}
    for name, model in models.items():
        x_adv = PGD(steps=5, seed=0)(model, x[:20], y[:20], 0.1)
        arrays.update({f"{name}__region": predict(model, points).numpy().reshape(50, 50),
                       f"{name}__x_adv": x_adv.numpy(), f"{name}__flipped": (predict(model, x_adv) != y[:20]).numpy()})
    fig = plot_decision_boundaries(arrays, list(models), 0.1, data.class_names)
    titles = [ax.get_title() for ax in fig.axes]
    assert [t.split(":")[0] for t in titles] == ["mlp", "vqc"] and all("flipped at ε=0.1" in t for t in titles)
    for ax in fig.axes:
        assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1)


def test_attribution_panel_draws_feature_vectors_as_strips():
    maps = {"x": np.random.rand(2, 5), "m__x_adv": np.random.rand(2, 5),
            "m__saliency__clean": np.random.rand(2, 5), "m__saliency__adv": np.random.rand(2, 5)}
    fig = plot_attribution_panel(maps, ["m"], ["saliency"], image=1)
    assert [ax.images[0].get_array().shape for ax in fig.axes] == [(1, 5)] * 4
