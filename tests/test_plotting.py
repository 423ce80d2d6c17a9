import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch

from helpers.attacks import PGD
from helpers.data import load_dataset
from helpers.models import build_model
from helpers.models import predict
from helpers.report.sections.attribution import plot_attribution_panel
from helpers.report.sections.boundaries import plot_decision_boundaries
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


def panel_maps(rng, shape, models=("m",), methods=("saliency",), scale=1.0):
    """``attribution_maps`` as the interpret stage stores them, for two images of ``shape``:
    true labels (1, 2); each model predicts image 0 right clean and wrong attacked."""
    maps = {"x": rng.random((2, *shape)), "y": np.array([1, 2])}
    for m in models:
        maps.update({f"{m}__x_adv": rng.random((2, *shape)), f"{m}__clean_pred": np.array([1, 0]),
                     f"{m}__adv_pred": np.array([3, 0])})
        for method in methods:
            maps[f"{m}__{method}__clean"] = scale * rng.normal(size=(2, *shape))
            maps[f"{m}__{method}__adv"] = 3 * scale * rng.normal(size=(2, *shape))
    return maps


def test_attribution_panel_draws_feature_vectors_as_strips(rng):
    maps = panel_maps(rng, (5,))
    fig = plot_attribution_panel(maps, ["m"], ["saliency"], image=1)
    assert [ax.images[0].get_array().shape for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"] \
        == [(1, 5)] * 4


def test_attribution_panel_labels_every_row_and_puts_a_colour_bar_on_every_map(rng):
    models, methods = ["cnn", "vqc"], ["saliency", "gradcam"]
    maps = panel_maps(rng, (1, 8, 8), models, methods)
    for kind in ("clean", "adv"):  # Grad-CAM does not apply to the circuit
        del maps[f"vqc__gradcam__{kind}"]
    maps["vqc__saliency__clean"] *= 1e-4  # a model with tiny gradients keeps its own scale
    maps["vqc__saliency__adv"] *= 1e-4
    names = ["zero", "one", "two", "three"]
    fig = plot_attribution_panel(maps, models, methods, image=0, class_names=names, epsilon=0.1)
    grid = np.array([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]).reshape(len(models), 6)
    for model, row in zip(models, grid):
        assert row[0].get_ylabel() == f"{model}\ntrue: one"
        assert row[0].get_title() == "clean input\npredicted one"
        assert row[1].get_title() == "PGD ε=0.1 input\npredicted three (fooled)"
        for ax in row[2:]:
            if model == "vqc" and "Grad-CAM" in ax.get_title():
                assert not ax.images and ax.texts[0].get_text().startswith("n/a")
                continue
            image = ax.images[0]
            assert image.colorbar is not None  # a bar on every map
        maps_shown = [ax.images[0] for ax in row[2:] if ax.images]
        for clean, attacked in zip(maps_shown[::2], maps_shown[1::2]):  # one scale per model and method
            assert clean.get_clim() == attacked.get_clim()
            assert clean.get_clim()[1] == pytest.approx(max(np.abs(clean.get_array()).max(),
                                                            np.abs(attacked.get_array()).max()))
    scales = [ax.images[0].get_clim()[1] for ax in grid[:, 2]]
    assert scales[1] < 1e-3 < scales[0]
    assert "shared" in fig._suptitle.get_text()
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 2 * 2 + 2  # cnn: two methods x (clean, attacked); vqc: saliency only


def test_attribution_panel_shows_rgb_images_in_colour_and_maps_summed_over_channels(rng):
    maps = panel_maps(rng, (3, 6, 6))
    fig = plot_attribution_panel(maps, ["m"], ["saliency"], image=0)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert [a.shape for a in shown] == [(6, 6, 3), (6, 6, 3), (6, 6), (6, 6)]
    np.testing.assert_allclose(shown[2], np.abs(maps["m__saliency__clean"][0]).sum(axis=0))
