import numpy as np
import pytest
import torch

from helpers.explain import ATTRIBUTIONS, attribute, rank_correlation, top_k_overlap


@pytest.mark.parametrize("name", ["mlp", "cnn", "vqc"])
@pytest.mark.parametrize("method", ATTRIBUTIONS.names())
def test_maps_have_the_input_shape_or_say_why_not(trained_models, digits_split, name, method):
    model = trained_models[name]
    x, y = digits_split[2][:3], digits_split[3][:3]
    applies, reason = ATTRIBUTIONS[method].applies(model)
    if method == "gradcam" and name != "cnn":
        assert not applies and reason == "no convolutional layer"
        with pytest.raises(ValueError, match="no convolutional layer"):
            attribute(method, model, x, y)
        return
    options = {"integrated_gradients": {"steps": 8}, "smoothgrad": {"samples": 4}}.get(method, {})
    maps = attribute(method, model, x, y, **options)
    assert maps.shape == x.shape and torch.isfinite(maps).all()
    assert (maps.abs().reshape(3, -1).sum(1) > 0).all()


def test_smoothgrad_is_reproducible_with_a_seed(trained_models, digits_split):
    x, y = digits_split[2][:3], digits_split[3][:3]
    a = attribute("smoothgrad", trained_models["mlp"], x, y, samples=4, seed=3)
    b = attribute("smoothgrad", trained_models["mlp"], x, y, samples=4, seed=3)
    assert torch.equal(a, b)


def test_stability_measures():
    a = torch.rand(4, 1, 8, 8)
    assert np.allclose(rank_correlation(a, a), 1.0)
    assert np.allclose(rank_correlation(a, -a), 1.0)  # compares |maps|
    assert np.allclose(top_k_overlap(a, a, 6), 1.0)
    reversed_order = 1.0 - a
    assert np.all(rank_correlation(a, reversed_order) < -0.99)
    assert np.allclose(top_k_overlap(a, reversed_order, 6), 0.0)
    assert np.isnan(rank_correlation(torch.zeros(1, 1, 8, 8), a[:1])).all()


def test_constant_maps_are_undefined_not_perfect_and_chance_pairs_differ():
    from helpers.explain import constant_maps, shifted

    zeros, a = torch.zeros(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    assert np.isnan(top_k_overlap(zeros, zeros, 6)).all()  # two all-zero maps do not "agree"
    assert np.isnan(top_k_overlap(a, zeros, 6)).all() and constant_maps(torch.cat([zeros, a])).tolist() == [1, 1, 0, 0]
    maps = torch.arange(3.0)[:, None] * torch.ones(3, 4)
    assert torch.equal(shifted(maps)[0], maps[1]) and torch.equal(shifted(maps)[2], maps[0])
