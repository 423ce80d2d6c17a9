"""The earlier study's setting (configs/plus_minus_study.yaml): the plus/minus data set, its two models
and the quantum-free control, and the report section that sets the published result beside ours."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers.config import ConfigError, ReportSection, load_config
from helpers.data import load_dataset, plus_minus
from helpers.models import build_model, count_parameters


def test_plus_minus_shapes_range_balance_and_reproducibility():
    X, y = plus_minus()
    assert X.shape == (400, 1, 8, 8) and X.dtype == np.float32 and y.shape == (400,)
    assert X.min() >= 0 and X.max() <= 1
    assert np.bincount(y).tolist() == [200, 200]
    again, _ = plus_minus()
    assert np.array_equal(X, again)
    assert not np.array_equal(X, plus_minus(seed=43)[0])


def test_plus_and_minus_differ_only_in_the_vertical_bar():
    X, y = plus_minus(n_per_class=1, noise=0.0)
    difference = X[0, 0] - X[1, 0]  # plus - minus
    assert set(np.unique(difference)) == {0.0, 1.0}
    rows, cols = np.nonzero(difference)
    assert set(cols) == {3, 4} and set(rows) == {1, 2, 5, 6}  # the vertical bar outside the crossing
    assert X[1, 0, 3:5, 1:7].min() == 1.0  # the minus: a 2-pixel bar with a 1-pixel margin


def test_plus_minus_options_and_their_errors():
    ds = load_dataset("plus_minus", [0, 1], size=16, n_per_class=5)
    assert ds.X.shape == (10, 1, 16, 16) and ds.class_names == ("0", "1")
    with pytest.raises(ValueError, match="dataset.options.colour is unknown for 'plus_minus'"):
        load_dataset("plus_minus", [0, 1], colour="red")
    with pytest.raises(ValueError, match="dataset.options.size must be an integer >= 4"):
        load_dataset("plus_minus", [0, 1], size=2)


@pytest.mark.parametrize("spec,parameters", [
    ({"type": "plus_minus_cnn"}, 7018),                                  # "about 7,000 parameters"
    ({"type": "plus_minus_hybrid"}, 4800 + 128 * 4 + 4 + 24 + 2 * 2 + 2),  # backbone, 128->4, 24 weights, 2->2
    ({"type": "plus_minus_hybrid", "head": "classical"}, 4800 + 516 + 4 * 2 + 2 + 6),
])
def test_plus_minus_models_shapes_gradients_and_parameter_counts(spec, parameters):
    torch.manual_seed(0)
    model = build_model(spec, (1, 8, 8), 2)
    assert count_parameters(model) == parameters
    assert isinstance(model.gradcam_layer, nn.Conv2d)  # Grad-CAM applies to the hybrid too
    x = torch.rand(5, 1, 8, 8, requires_grad=True)
    for train in (True, False):
        model.train(train)
        out = model(x)
        assert out.shape == (5, 2)
        grad, = torch.autograd.grad(out[:, 0].sum(), x)
        assert grad.abs().sum() > 0


def test_every_run_gets_its_own_quantum_weights():
    torch.manual_seed(1)
    first = build_model({"type": "plus_minus_hybrid"}, (1, 8, 8), 2)
    torch.manual_seed(2)
    second = build_model({"type": "plus_minus_hybrid"}, (1, 8, 8), 2)
    assert first.quantum.weights is not second.quantum.weights
    assert first.quantum.weights.shape == (2, 4, 3)
    assert not torch.equal(first.quantum.weights, second.quantum.weights)


@pytest.mark.parametrize("train", [True, False])
def test_hybrid_circuit_equals_pennylane(train):
    torch.manual_seed(3)
    fast = build_model({"type": "plus_minus_hybrid"}, (1, 8, 8), 2)
    with torch.no_grad():
        fast.quantum.weights.uniform_(-math.pi, math.pi)
    reference = build_model({"type": "plus_minus_hybrid", "simulator": "pennylane"}, (1, 8, 8), 2)
    reference.load_state_dict(fast.state_dict())
    x = torch.rand(6, 1, 8, 8)
    outputs, grads = [], []
    for model in (fast, reference):
        model.train(train)
        xi = x.clone().requires_grad_(True)
        out = model(xi)
        out.square().sum().backward()
        outputs.append(out.detach())
        grads.append(xi.grad)
    assert fast.quantum.path == ("statevector" if train else "unitary")
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_plus_minus_config_loads_and_bad_variants_name_the_key(tmp_path):
    cfg = load_config("configs/plus_minus_study.yaml")
    assert cfg.dataset.options.seed == 42 and cfg.report.reference.epsilon == 0.25
    pgd = cfg.attack.params["pgd"]
    assert pgd.step_ratio * 0.25 == pytest.approx(0.04) and pgd.steps == 10 and not pgd.random_start
    for body, message in [
        ("dataset: {name: plus_minus, classes: [0, 1], options: {noise: -1}}", "dataset.options.noise must be a number >= 0"),
        ("dataset: {name: plus_minus, classes: [0, 1], options: {shape: 8}}", "dataset.options.shape is unknown"),
        ("models: {h: {type: plus_minus_hybrid, head: photonic}}", r"models.h.head 'photonic' is unknown; allowed: \['quantum', 'classical'\]"),
        ("report: {reference: {source: x, attack: cw, epsilon: 0.1, accuracy: {mlp: 0.5}}}",
         "report.reference.attack 'cw' is not in attack.methods"),
    ]:
        path = tmp_path / "bad.yaml"
        path.write_text(body + "\n")
        with pytest.raises(ConfigError, match=message):
            load_config(path)


def test_reference_section_quotes_the_published_numbers_and_computes_the_verdict():
    from helpers.analysis.statistics import ACCURACY_BOUNDS, comparisons, robust_auc, summarize_runs
    from helpers.config import Reference
    from helpers.report.sections.reference import reference_section

    # hybrid beats cnn under PGD in every run, but not under the worst case
    acc = {("hybrid", "pgd"): 0.55, ("cnn", "pgd"): 0.35, ("hybrid", "worst_case"): 0.10, ("cnn", "worst_case"): 0.12}
    rob = pd.DataFrame([{"model": m, "attack": a, "epsilon": 0.25, "run": r, "accuracy": v + 0.01 * (r % 2) * (m == "cnn")}
                        for (m, a), v in acc.items() for r in range(4)])
    by_class = pd.DataFrame([{"model": m, "attack": a, "epsilon": 0.25, "run": r, "label": lab,
                              "accuracy": v + (0.2 if lab == 0 else -0.2) * (a == "pgd")}
                             for (m, a), v in acc.items() for r in range(4) for lab in (0, 1)])
    stats = summarize_runs(rob, ["model", "attack", "epsilon"], "accuracy", bounds=ACCURACY_BOUNDS)
    classes = summarize_runs(by_class, ["model", "attack", "epsilon", "label"], "accuracy", bounds=ACCURACY_BOUNDS)
    large = pd.DataFrame([{"model": m, "epsilon": 0.5, "run": 0, "accuracy": 0.0} for m in ("cnn", "hybrid")])
    reference = Reference.parse({"source": "the old notebook", "attack": "pgd", "epsilon": 0.25,
                                 "accuracy": {"hybrid": 0.554, "cnn": 0.350}}, "report.reference")
    paired = comparisons(rob, robust_auc(rob), ["cnn", "hybrid"], ratio=0.25)
    text = "\n".join(reference_section(reference, stats, paired, classes, large, None, ["cnn", "hybrid"]))
    assert "`hybrid` 0.554, `cnn` 0.350" in text
    assert "Under pgd, `hybrid` is more robust than `cnn` at ε=0.25" in text
    assert "Under worst case, `hybrid` is *less* robust than `cnn`" in text
    assert "| hybrid | pgd | 0.750" in text  # per class: class 0 at 0.55 + 0.2
    assert "PGD accuracy at ε=0.5" in text


def test_a_published_best_run_is_set_beside_our_best_run():
    """``report.reference.statistic``: a paper that reports its best seed is compared with our best
    run, computed from the per-run accuracies, and the text says which statistic it is."""
    from helpers.analysis.statistics import ACCURACY_BOUNDS, summarize_runs
    from helpers.report.sections.reference import reference_section

    cfg = ReportSection.parse({"reference": {"source": "a paper", "attack": "pgd", "epsilon": 0.25, "statistic": "max",
                                             "accuracy": {"hybrid": 0.9}}}, "report")
    runs = [0.40, 0.70, 0.55]
    rob = pd.DataFrame([{"model": "hybrid", "attack": a, "epsilon": 0.25, "run": r, "accuracy": v}
                        for r, v in enumerate(runs) for a in ("pgd", "worst_case")])
    stats = summarize_runs(rob, ["model", "attack", "epsilon"], "accuracy", bounds=ACCURACY_BOUNDS)
    classes = summarize_runs(rob.assign(label=0), ["model", "attack", "epsilon", "label"], "accuracy",
                             bounds=ACCURACY_BOUNDS)
    empty = pd.DataFrame(columns=["model_a", "model_b", "attack", "epsilon"])
    text = "\n".join(reference_section(cfg.reference, stats, empty, classes, pd.DataFrame(), None, ["hybrid"], rob))
    assert ": the accuracy of the best run under PGD at ε=0.25" in text
    assert "| ours: pgd (max over runs) |" in text and f"| {max(runs):.3f} |" in text
    for bad, message in [({"statistic": "mode"}, r"report.reference.statistic 'mode' is unknown"),
                         ({"colour": "red"}, r"report.reference must be null or a mapping with the keys")]:
        with pytest.raises(ConfigError, match=message):
            ReportSection.parse({"reference": {"source": "a", "attack": "pgd", "epsilon": 0.25,
                                               "accuracy": {"hybrid": 0.9}, **bad}}, "report")
