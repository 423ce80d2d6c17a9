"""Complete verification (the ``exact`` certificate): on 2-D data every verdict agrees with a
dense grid of the ε-box, no ``robust`` point of a digits model is broken by sampling and
many-restart PGD, every counterexample lies in ball and box and is misclassified in float64,
the circuit's trigonometric expansion is exact and its corner bound sound, and a spent budget
leaves ``unknown``, never ``robust``."""
import copy
import math
import time

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.attacks import ATTACKS, predict
from helpers.certificates.angle_search import AnglePolytope, flat_bound, fourier_coefficients, fourier_margins, \
    vertex_bound
from helpers.certificates.exact import VERDICTS, margins64
from helpers.certificates.milp import binaries, build_program
from helpers.certificates.network_bounds import _backward_lower, crown_margins, layer_bounds, op_inputs
from helpers.data import load_dataset, split_indices
from helpers.models import build_model
from helpers.registry import CERTIFICATES
from helpers.training import train_model

EXACT = CERTIFICATES["exact"]


def trained(spec, x, y, n_classes, epochs=30):
    torch.manual_seed(0)
    model = build_model(spec, tuple(x.shape[1:]), n_classes)
    train_model(model, x, y, x, y, epochs=epochs, batch_size=32, learning_rate=0.02, seed=0)
    return model.eval()


@pytest.fixture(scope="module")
def moons():
    data = load_dataset("moons")
    return torch.as_tensor(data.X), torch.as_tensor(data.y)


def grid_fooled(model, x: torch.Tensor, y: torch.Tensor, epsilon: float, steps: int = 81) -> np.ndarray:
    """Per point: whether any point of a steps x steps grid of its ε-box ∩ [0, 1]² is misclassified."""
    t = torch.linspace(-1, 1, steps)
    offsets = torch.cartesian_prod(t, t) * epsilon                          # (steps², 2)
    fooled = []
    for point, label in zip(x, y):
        grid = (point[None] + offsets).clamp(0, 1)
        fooled.append(bool((predict(model, grid) != label).any()))
    return np.array(fooled)


def assert_counterexamples_hold(model, x, y, epsilon, result) -> None:
    broken = result["verdict"] == "not_robust"
    if not broken.any():
        return
    found = torch.as_tensor(result["counterexample"][broken])
    assert not torch.isnan(found).any()
    assert ((found - x[broken].double()).abs().reshape(len(found), -1).amax(dim=1) <= epsilon * (1 + 1e-6)).all()
    assert found.min() >= 0 and found.max() <= 1
    assert (margins64(copy.deepcopy(model).double(), found, y[broken]) <= 0).all()


@pytest.mark.parametrize("spec", [{"type": "mlp", "hidden": [16, 16]},
                                  {"type": "vqc", "n_qubits": 2, "n_layers": 3, "output_scale": 4.0}])
def test_on_two_dimensional_data_every_verdict_agrees_with_a_dense_grid(moons, spec):
    x, y = moons
    model = trained(spec, x, y, 2)
    points, labels = x[:60], y[:60]
    for epsilon in (0.03, 0.1):
        result = EXACT(seconds=5).verify(model, points, labels, epsilon)
        verdict = result["verdict"]
        assert set(verdict) <= set(VERDICTS) and (verdict != "unknown").all()
        fooled = grid_fooled(model, points, labels, epsilon)
        assert not (fooled & (verdict == "robust")).any()      # no proof is contradicted
        assert (verdict[fooled] == "not_robust").all()            # every grid counterexample is found
        assert_counterexamples_hold(model, points, labels, epsilon, result)
        assert (verdict == "robust").any() and (verdict == "not_robust").any()  # both sides have teeth


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits", [0, 1, 2, 3])
    train, test = split_indices(data.y, 0.25, seed=0)
    return (torch.as_tensor(data.X[train]), torch.as_tensor(data.y[train]), torch.as_tensor(data.X[test][:24]),
            torch.as_tensor(data.y[test][:24]))


@pytest.mark.parametrize("spec,epsilon", [({"type": "cnn", "channels": [4, 8], "hidden": 16}, 0.02),
                                          ({"type": "vqc", "n_qubits": 6, "n_layers": 2}, 0.05),
                                          ({"type": "vqc", "n_qubits": 3, "n_layers": 2, "encoding": "affine",
                                            "readout": "parity"}, 0.05)])
def test_no_robust_verdict_on_digits_is_broken_by_sampling_or_pgd(digits, spec, epsilon):
    x_train, y_train, x, y = digits
    n_classes = 2 if spec.get("readout") == "parity" else 4
    if n_classes == 2:
        keep_train, keep = y_train < 2, y < 2
        x_train, y_train, x, y = x_train[keep_train], y_train[keep_train], x[keep], y[keep]
    model = trained(spec, x_train, y_train, n_classes, epochs=10)
    result = EXACT(seconds=5).verify(model, x, y, epsilon)
    robust = torch.as_tensor(result["verdict"] == "robust")
    assert robust.any() and (result["verdict"] != "unknown").mean() >= 0.75
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):  # 40 x 250 = 10,000 sampled inputs of each ball, corners included
        steps = torch.where(torch.rand(250, *x.shape[1:], generator=gen) < 0.5, -1.0, 1.0)
        steps = torch.where(torch.rand(steps.shape, generator=gen) < 0.5, steps, 2 * torch.rand(steps.shape, generator=gen) - 1)
        for i in torch.nonzero(robust).flatten():
            assert (predict(model, (x[i] + epsilon * steps).clamp(0, 1)) == y[i]).all()
    attacked = ATTACKS["pgd_restarts"](steps=50, restarts=10, seed=3)(model, x, y, epsilon)
    assert not (robust & (predict(model, attacked) != y)).any()
    assert_counterexamples_hold(model, x, y, epsilon, result)


def test_the_circuits_margins_are_an_exact_trigonometric_expansion_and_the_corner_bound_is_sound():
    torch.manual_seed(1)
    model = build_model({"type": "vqc", "n_qubits": 4, "n_layers": 2}, (1, 8, 8), 3).double().eval()
    with torch.no_grad():
        model.quantum.weights.uniform_(-math.pi, math.pi)

    def margins_at(angles):
        logits = model.output_scale * model.quantum(angles)[:, :3]
        return logits[:, :1] - logits[:, 1:]

    coefficients = fourier_coefficients(margins_at, 4)
    angles = (torch.rand(30, 4, dtype=torch.float64) - 0.5) * 4 * math.pi
    assert torch.allclose(fourier_margins(coefficients, angles), margins_at(angles), atol=1e-10)
    exact = margins_at(angles).min(dim=1).values
    assert torch.allclose(vertex_bound(coefficients, angles, angles), exact, atol=1e-10)  # a box of one point
    low = (torch.rand(30, 4, dtype=torch.float64) - 0.5) * 2 * math.pi
    for width in (0.1, 1.0, 3.0):  # narrow arcs and ones wider than 2 pi / 3
        high = low + width * torch.rand(30, 4, dtype=torch.float64)
        bound = vertex_bound(coefficients, low, high)
        inside = low[:, None] + (high - low)[:, None] * torch.rand(30, 500, 4, dtype=torch.float64)
        sampled = margins_at(inside.reshape(-1, 4)).reshape(30, 500, 2).amin(dim=(1, 2))
        assert (bound <= sampled + 1e-9).all()


def test_the_flat_bound_plus_the_descent_over_the_preimage_never_exceeds_a_margin_of_the_image():
    torch.manual_seed(3)
    model = build_model({"type": "vqc", "n_qubits": 4, "n_layers": 2}, (1, 8, 8), 3).double().eval()

    def margins_at(angles):
        logits = model.output_scale * model.quantum(angles)[:, :3]
        return logits[:, :1] - logits[:, 1:]

    with torch.no_grad():
        coefficients = fourier_coefficients(margins_at, 4)
    rng = np.random.default_rng(5)
    weight, offset = rng.normal(size=(4, 12)), rng.normal(size=4)
    x_low = rng.uniform(0, 0.8, 12)
    x_high = x_low + 0.2
    polytope = AnglePolytope((weight, offset), x_low, x_high)
    samples = x_low + 0.2 * rng.uniform(size=(40000, 12)) ** rng.choice([0.3, 1, 3], size=(40000, 12))
    angles = samples @ weight.T + offset
    with torch.no_grad():
        margins = margins_at(torch.as_tensor(angles)).min(dim=1).values.numpy()
    tested, gaps = 0, []
    for reach in np.repeat([0.6, 0.1, 0.003], 20):  # boxes around a sampled angle, wide to tiny
        centre = angles[rng.integers(len(angles))]
        low, high = centre - rng.uniform(reach / 10, reach, 4), centre + rng.uniform(reach / 10, reach, 4)
        inside = ((angles >= low) & (angles <= high)).all(axis=1)
        middle = (low + high) / 2
        at = torch.as_tensor(middle[None]).requires_grad_(True)
        steepest = torch.autograd.grad(fourier_margins(coefficients, at).min(), at)[0][0].numpy()
        for gradient in (steepest, rng.normal(size=4), np.zeros(4)):  # sound for any g, tight for the gradient
            x = polytope.point(low, high, weight.T @ gradient)
            descent = gradient @ (weight @ x + offset - middle)
            bound = flat_bound(coefficients, low[None], high[None], gradient[None])[0] + descent
            assert bound <= margins[inside].min() + 1e-9
            tested += 1
            if reach < 0.01 and gradient is steepest:  # tight to second order in the box's width
                gaps.append(margins[inside].min() - bound)
    assert tested == 180 and max(gaps) < 5e-3


def test_a_contracted_angle_box_keeps_every_angle_of_its_preimage_and_an_empty_one_is_closed():
    rng = np.random.default_rng(4)
    weight, offset = rng.normal(size=(5, 40)), rng.normal(size=5)
    x = rng.uniform(0, 1, 40)
    x_low, x_high = np.clip(x - 0.1, 0, 1), np.clip(x + 0.1, 0, 1)
    polytope = AnglePolytope((weight, offset), x_low, x_high)
    samples = x_low + (x_high - x_low) * rng.uniform(size=(20000, 40)) ** rng.choice([0.2, 1, 5], size=(20000, 40))
    angles = samples @ weight.T + offset
    hull = (offset + np.clip(weight, 0, None) @ x_low + np.clip(weight, None, 0) @ x_high,
            offset + np.clip(weight, 0, None) @ x_high + np.clip(weight, None, 0) @ x_low)
    shrunk = 0
    for _ in range(40):  # random sub-boxes of the image's interval hull
        corner = hull[0] + (hull[1] - hull[0]) * rng.uniform(size=(2, 5))
        low, high = corner.min(axis=0), corner.max(axis=0)
        found = polytope.contract(low, high)
        inside = ((angles >= low) & (angles <= high)).all(axis=1)
        if found is None:
            assert not inside.any()  # closed only when no input of the box maps into it
            continue
        box_low, box_high, extremes = found
        assert (box_low >= low).all() and (box_high <= high).all()
        assert ((angles[inside] >= box_low) & (angles[inside] <= box_high)).all()
        shrunk += bool((box_high - box_low < high - low - 1e-3).any())
        point = polytope.point(box_low, box_high, rng.normal(size=40))
        assert point is not None and (point >= x_low - 1e-9).all() and (point <= x_high + 1e-9).all()
        assert ((weight @ point + offset >= box_low - 1e-6) & (weight @ point + offset <= box_high + 1e-6)).all()
        half = box_high.copy()  # a child: the sides its parent reached inside it are kept, not solved again
        half[0] = (box_low[0] + box_high[0]) / 2
        told, fresh = polytope.contract(box_low, half, extremes), polytope.contract(box_low, half)
        assert (told is None) == (fresh is None)
        if told is not None:
            assert np.allclose(told[0], fresh[0], atol=1e-7) and np.allclose(told[1], fresh[1], atol=1e-7)
    assert shrunk > 0  # the interval hull's corners lie outside the image: contraction cuts them
    assert polytope.contract(hull[1] + 1, hull[1] + 2) is None


@pytest.mark.parametrize("epsilon", [0.02, 0.1])
def test_the_layer_bounds_through_max_pooling_hold_every_activation_of_the_ball(epsilon):
    torch.manual_seed(2)
    model = build_model({"type": "cnn", "channels": [4, 8], "hidden": 16}, (1, 8, 8), 4).double().eval()
    ops = model.bound_ops()
    assert any(isinstance(op, torch.nn.MaxPool2d) for op in ops)
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    bounds = layer_bounds(ops, x, epsilon)
    margins = crown_margins(ops, x, 0, epsilon, [1, 2, 3], bounds)
    samples = (x + epsilon * (2 * torch.rand(4000, 1, 8, 8, dtype=torch.float64) - 1)).clamp(0, 1)
    corners = (x + epsilon * torch.sign(torch.randn(4000, 1, 8, 8, dtype=torch.float64))).clamp(0, 1)
    value = torch.cat([samples, corners])
    with torch.no_grad():
        for op, (low, high) in zip([*ops, None], bounds):  # every op's input, and the logits last
            flat = value.reshape(len(value), -1).numpy()
            assert (flat >= low - 1e-9).all() and (flat <= high + 1e-9).all()
            value = op(value) if op is not None else value
    sampled = (value[:, :1] - value[:, 1:]).min(dim=0).values.numpy()
    assert (margins <= sampled + 1e-9).all()
    program = build_program(ops, x, epsilon, bounds)[0]
    assert binaries(ops, x, bounds) == sum(program.integer) > 0  # counted as built: ReLUs and pooling windows
    # The identity's rows kept as (column, sign) give exactly the dense pass's numbers
    shapes = op_inputs(ops, x)
    for i, op in enumerate(ops):
        if isinstance(op, (torch.nn.ReLU, torch.nn.MaxPool2d)) and i > 0:
            size = len(bounds[i][0])
            dense = np.vstack([np.eye(size), -np.eye(size)])
            rows = (np.tile(np.arange(size), 2), np.repeat([1.0, -1.0], size))
            assert np.array_equal(_backward_lower(ops, i, rows, bounds, shapes, {}),
                                  _backward_lower(ops, i, dense, bounds, shapes, {}))


def test_a_spent_budget_leaves_unknown_never_robust(digits):
    x_train, y_train, x, y = digits
    model = trained({"type": "vqc", "n_qubits": 6, "n_layers": 2}, x_train, y_train, 4, epochs=10)
    exact = EXACT().verify(model, x, y, 0.1)
    starved = EXACT(boxes=1, steps=1, restarts=1).verify(model, x, y, 0.1)  # one box: the first, the whole image
    left = starved["verdict"] == "unknown"
    assert left.any() and (starved["stage"][left] == "search").all()
    assert (exact["verdict"][left] != "unknown").any()  # the budget, not the method, left them open
    decided = starved["verdict"] != "unknown"
    assert (starved["verdict"][decided] == exact["verdict"][decided]).all()
    assert (EXACT().verify(model, x, y, 0.0)["verdict"] != "unknown").all()


@pytest.mark.parametrize("spec,epsilon", [({"type": "vqc", "n_qubits": 6, "n_layers": 2}, 0.1),
                                          ({"type": "mlp", "hidden": [16, 16]}, 0.1)])
def test_a_circuits_verdicts_depend_on_its_boxes_and_a_networks_on_its_time_limit_only(digits, monkeypatch, spec,
                                                                                       epsilon):
    """Under a clock that races (1000 s between two readings: a loaded machine) a circuit's
    verdicts are the same with a time limit or without, and a ReLU network's without one
    (``seconds: null``), while its time limit then leaves points open that the program decides;
    a circuit starved of boxes leaves points open, never proved."""
    x_train, y_train, x, y = digits
    model = trained(spec, x_train, y_train, 4, epochs=10)
    circuit = spec["type"] == "vqc"
    calm = EXACT(seconds=None).verify(model, x, y, epsilon)
    searched = calm["stage"] == "search"
    assert searched.any() and (calm["verdict"][searched] != "unknown").all()
    clock = iter(range(0, 10 ** 9, 1000))
    monkeypatch.setattr(time, "monotonic", lambda: float(next(clock)))
    for seconds in (None, 60):
        raced = EXACT(seconds=seconds).verify(model, x, y, epsilon)
        same = (raced["verdict"] == calm["verdict"]).all() and \
            np.array_equal(raced["counterexample"], calm["counterexample"], equal_nan=True)
        assert same if circuit or seconds is None else not same
        changed = raced["verdict"] != calm["verdict"]
        assert (raced["verdict"][changed] == "unknown").all()
    monkeypatch.undo()
    if circuit:
        starved = EXACT(boxes=1).verify(model, x, y, epsilon)
        open_ = starved["verdict"] == "unknown"
        assert open_.any() and (starved["verdict"][~open_] == calm["verdict"][~open_]).all()


def test_a_networks_program_past_its_binaries_is_not_solved_and_its_point_left_open(digits):
    """A cap on the program's binary variables is a count of work: programs under it are solved
    as without it; a program over it is not solved, so what only the program decided is left
    open, never proved or refuted by anything else."""
    x_train, y_train, x, y = digits
    model = trained({"type": "mlp", "hidden": [16, 16]}, x_train, y_train, 4, epochs=10)
    full = EXACT(seconds=None).verify(model, x, y, 0.1)
    searched = (full["stage"] == "search") & (full["verdict"] != "unknown")
    assert searched.any()
    under = EXACT(seconds=None, binaries=32).verify(model, x, y, 0.1)  # 32 ReLUs: every program fits
    assert (under["verdict"] == full["verdict"]).all()
    assert np.array_equal(under["counterexample"], full["counterexample"], equal_nan=True)
    capped = EXACT(seconds=None, binaries=0).verify(model, x, y, 0.1)
    changed = capped["verdict"] != full["verdict"]
    assert changed.any() and (capped["verdict"][changed] == "unknown").all()
    assert searched[changed].all()


@pytest.mark.parametrize("spec,reason", [
    ({"type": "net", "layers": ["flatten", {"kind": "linear", "width": 8}, "tanh"]}, "Tanh has no exact MILP encoding"),
    ({"type": "vqc", "n_qubits": 6, "n_layers": 1, "encoding": "amplitude"}, "no bound propagation"),
    ({"type": "vqc", "n_qubits": 4, "n_layers": 1, "shots": 100}, "a randomised classifier"),
])
def test_models_without_an_exact_treatment_are_refused_with_the_reason(spec, reason):
    applies, why = EXACT.applies(build_model(spec, (1, 8, 8), 4))
    assert not applies and reason in why


def test_each_points_robust_radius_is_bracketed_and_the_bracket_holds(moons):
    """Certified radius <= refuted radius, within the tolerance where decided; at the certified
    radius the point is proved robust, at the refuted one a counterexample exists; the attack's
    radius is never below the certified one (no attack beats a proof)."""
    from helpers.certificates.exact import robust_radii

    x, y = moons
    model = trained({"type": "mlp", "hidden": [16, 16]}, x, y, 2)
    points, labels = x[:12], y[:12]
    verifier = EXACT(seconds=5)
    radii = robust_radii(verifier, model, points, labels, high=0.3, tolerance=0.01)
    certified, refuted = radii["certified"], radii["refuted"]
    assert radii["decided"].all() and (certified <= refuted).all() and (radii["attacked"] >= certified).all()
    assert (radii["seconds"] > 0).all() and (radii["verifications"] >= 1).all()
    finite = np.isfinite(refuted) & (refuted > 0)
    assert finite.any() and (refuted[finite] - certified[finite] <= 0.01 + 1e-12).all()
    for i in np.flatnonzero(finite):
        assert verifier.verify(model, points[i:i + 1], labels[i:i + 1], float(refuted[i]))["verdict"][0] == "not_robust"
        if certified[i] > 0:
            assert verifier.verify(model, points[i:i + 1], labels[i:i + 1], float(certified[i]))["verdict"][0] == "robust"


def test_the_certify_stage_counts_every_verdict_and_the_counterexamples_close_the_bracket_from_above(moons):
    """Through ``certify_models``: the exact rows' robust, refuted and undecided shares sum to 1,
    ``best`` takes its proofs, and its ``upper`` (the attacked accuracy with every refuted point
    counted as fooled) is what the bracket's attacked side becomes, never above the attacks'."""
    from helpers.analysis.certification import certify_models
    from helpers.analysis.evaluation import evaluate_models
    from helpers.analysis.statistics import bracket_table
    from helpers.config import AttackSection, CertifySection

    x, y = moons
    model = trained({"type": "mlp", "hidden": [16, 16]}, x, y, 2)
    points, labels = x[:40], y[:40]
    # A deliberately weak attack (one FGSM step), so that the verifier finds what it misses.
    attacks = AttackSection.parse({"epsilons": [0.0, 0.1], "methods": ["fgsm"], "transfer_from": None}, "attack")
    worst = {}
    robustness = pd.DataFrame(evaluate_models({"m": model}, points, labels, attacks, seed=0, worst=worst)["robustness"])
    section = CertifySection.parse({"methods": ["crown", "exact"], "exact": {"seconds": 5}}, "certify")
    rows = pd.DataFrame(certify_models({"m": model}, points, labels, [0.0, 0.1], section, seed=0, worst=worst))
    exact = rows[(rows["certificate"] == "exact") & (rows["epsilon"] == 0.1)].iloc[0]
    assert exact["accuracy"] + exact["refuted"] + exact["undecided"] == pytest.approx(1.0)
    best = rows[(rows["certificate"] == "best") & (rows["epsilon"] == 0.1)].iloc[0]
    assert best["violations"] == 0 and best["accuracy"] >= exact["accuracy"]
    attacked = robustness[(robustness["attack"] == "worst_case") & (robustness["epsilon"] == 0.1)]["accuracy"].iloc[0]
    assert best["upper"] == pytest.approx(1 - exact["refuted"]) and best["upper"] <= attacked
    bracket = bracket_table(rows.assign(run=0), robustness.assign(run=0)).set_index("epsilon")
    assert bracket.loc[0.1, "attacked"] == pytest.approx(best["upper"])
    assert bracket.loc[0.1, "undecided"] == pytest.approx(exact["undecided"])
    if exact["undecided"] == 0:
        assert bracket.loc[0.1, "exact_runs"] == 1  # every point decided: the bracket is closed


def test_the_summary_says_what_the_verifier_left_open_and_which_comparisons_it_decides():
    from helpers.analysis.statistics import bracket_table
    from helpers.report.sections.exact import exact_comparisons, exact_paragraph

    # Two runs; at ε=0.1 vqc proves 0.8 and leaves nothing open, cnn proves 0.5 and leaves 0.1
    # open: vqc is exactly more robust in both runs; at ε=0.05 cnn's open share overlaps.
    rows = []
    for run in (0, 1):
        for model, e, robust, open_ in (("cnn", 0.05, 0.7, 0.2), ("vqc", 0.05, 0.8, 0.0),
                                        ("cnn", 0.1, 0.5, 0.1), ("vqc", 0.1, 0.8, 0.0)):
            rows += [{"model": model, "run": run, "certificate": "exact", "norm": "linf", "epsilon": e, "accuracy": robust,
                      "n": 30, "applicable": True, "violations": np.nan, "refuted": 1 - robust - open_,
                      "undecided": open_},
                     {"model": model, "run": run, "certificate": "best", "norm": "linf", "epsilon": e, "accuracy": 0.4,
                      "n": 144, "applicable": True, "violations": 0, "upper": 0.9}]
    certified = pd.DataFrame(rows)
    attacked = certified[certified["certificate"] == "best"][["model", "run", "epsilon"]].assign(attack="worst_case",
                                                                                                accuracy=0.95)
    bracket = bracket_table(certified, attacked)
    assert (bracket["verified"] == 30).all() and bracket.set_index(["model", "epsilon"]).loc[("cnn", 0.1), "exact"] == 0.5
    comparisons = exact_comparisons(certified, ["cnn", "vqc"])
    text = "\n".join(exact_paragraph(bracket, comparisons, pd.DataFrame(), ["cnn", "vqc"]))
    assert "each of 30 test points per run" in text and "0.100 open" in text
    assert "Every verified point of `vqc` was decided at every ε" in text
    assert "Exactly, `vqc` is more robust than `cnn` at ε=0.1" in text
    assert "`vqc` is more robust than `cnn` at ε=0.05" not in text and "`cnn` vs `vqc` at ε=0.05" in text
    assert (comparisons.loc[comparisons["model_a"] == "cnn", "runs_above"] == 0).all()  # never above the better one
    without = bracket.drop(columns=["undecided", "exact", "verified"])
    assert exact_paragraph(without, comparisons, pd.DataFrame(), ["cnn", "vqc"]) == []


def test_a_declared_subset_of_points_and_budgets_is_what_runs_and_the_radii_bracket_every_point(moons):
    """``points`` and ``epsilons``: the exact rows exist only at the declared budgets, cover
    the same drawn points for every model, and their shares sum to 1; best stays sound. The
    radius table brackets each of the first ``radius_points`` of them: certified <= refuted,
    certified <= attack radius, so every run's tightness is at most 1."""
    from helpers.analysis.certification import certify_models
    from helpers.analysis.evaluation import evaluate_models
    from helpers.analysis.radii import radius_records
    from helpers.config import AttackSection, CertifySection
    from helpers.report.sections.exact import radius_summary

    x, y = moons
    models = {"a": trained({"type": "mlp", "hidden": [16, 16]}, x, y, 2),
              "b": trained({"type": "mlp", "hidden": [8]}, x, y, 2, epochs=3)}
    points, labels = x[:40], y[:40]
    attacks = AttackSection.parse({"epsilons": [0.0, 0.05, 0.1], "methods": ["pgd"], "transfer_from": None}, "attack")
    worst = {}
    evaluate_models(models, points, labels, attacks, seed=3, worst=worst)
    section = CertifySection.parse({"methods": ["interval", "exact"], "exact": {
        "seconds": 5, "points": 12, "epsilons": [0.1], "radius_points": 5, "radius_high": 0.2,
        "radius_tolerance": 0.02}}, "certify")
    rows = pd.DataFrame(certify_models(models, points, labels, [0.0, 0.05, 0.1], section, seed=3, worst=worst))
    exact = rows[rows["certificate"] == "exact"]
    assert list(exact["epsilon"]) == [0.1, 0.1] and (exact["n"] == 12).all()
    assert np.allclose(exact["accuracy"] + exact["refuted"] + exact["undecided"], 1.0)
    assert (rows.loc[rows["certificate"] == "best", "violations"] == 0).all()
    chosen = CERTIFICATES["exact"](section.params["exact"], seed=3).chosen(40)
    assert len(set(chosen.tolist())) == 12
    radii = pd.DataFrame(radius_records(models, points, labels, section, seed=3))
    assert len(radii) == 10 and set(radii.groupby("model")["index"].apply(tuple)) == {tuple(chosen[:5])}
    assert (radii["certified"] <= radii["refuted"]).all() and (radii["certified"] <= radii["attacked"]).all()
    summary = radius_summary(radii.assign(run=0), high=0.2)
    assert (summary["tightness"].dropna() <= 1 + 1e-12).all() and (summary["points"] == 5).all()


def test_a_study_with_the_verifier_keeps_its_columns_and_one_without_it_keeps_its_shape():
    """The attack stage writes only the columns a table declares: with ``exact`` the certified
    table carries refuted, undecided and upper (and ``radii`` exists with radius_points); a
    config without it writes exactly the columns it wrote before."""
    from helpers.analysis.evaluation import COLUMNS
    from helpers.config import load_config
    from helpers.stages.attack import stage_columns

    plain = load_config("configs/smoke.yaml")
    assert stage_columns(plain)["certified"] == COLUMNS["certified"] and "radii" not in stage_columns(plain)
    verified = load_config("configs/iris.yaml")
    columns = stage_columns(verified)
    assert {"refuted", "undecided", "upper"} <= set(columns["certified"]) and "radii" in columns
