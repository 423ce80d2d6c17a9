"""The data's ceiling (helpers/analysis/ceiling.py) and the true boundaries
(helpers/analysis/true_boundary.py): exact against brute force, sound, monotone; the report
puts it beside every model and never lets a certificate above it."""
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.analysis.ceiling import (_milp, ceiling_rows, conflicts, largest_conflict_free, pairwise_distances,
                                      with_ceiling)
from helpers.analysis.true_boundary import bayes_radius, circles_robust, plus_minus_robust
from helpers.config import DatasetSection, load_config
from helpers.data import (configured_dataset, load_dataset, plus_minus, run_seeds, run_split, split_arrays,
                          stratified_subset, subset_seed)
from helpers.docs import shipped_studies
from scipy.optimize import minimize
from sklearn.datasets import make_circles

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = shipped_studies()


def brute_force(x, y, epsilon, norm) -> int:
    """The largest subset with no two points of different labels within 2ε: every subset tried."""
    d = pairwise_distances(x, norm)
    best = 0
    for size in range(len(y), 0, -1):
        for subset in itertools.combinations(range(len(y)), size):
            if all(y[i] == y[j] or d[i, j] > 2 * epsilon for i, j in itertools.combinations(subset, 2)):
                return size
    return best


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_ceiling_equals_brute_force_on_small_sets(classes, norm):
    rng = np.random.default_rng(classes)
    for trial in range(12):
        n = int(rng.integers(4, 11))
        x, y = rng.random((n, 3)), rng.integers(0, classes, n)
        epsilon = float(rng.uniform(0.05, 0.4 if norm == "linf" else 0.6))
        found = largest_conflict_free(y, conflicts(pairwise_distances(x, norm), y, epsilon))
        assert found.exact
        assert found.points == brute_force(x, y, epsilon, norm), (trial, n, epsilon)


def test_two_classes_matching_equals_the_integer_program():
    rng = np.random.default_rng(7)
    for _ in range(10):
        x, y = rng.random((40, 2)), rng.integers(0, 2, 40)
        pairs = conflicts(pairwise_distances(x, "linf"), y, 0.08)
        if len(pairs) == 0:
            continue
        by_matching = largest_conflict_free(y, pairs)
        assert "matching" in by_matching.method
        assert by_matching.points == _milp(len(y), pairs, 30.0)[0]


def test_ceiling_is_one_at_zero_for_distinct_points_and_falls_monotonically():
    digits = load_dataset("digits", [0, 1, 2])
    x, y = digits.X[:120], digits.y[:120]
    for norm, budgets in (("linf", [0.0, 0.1, 0.3, 0.45, 0.6]), ("l2", [0.0, 0.5, 1.0, 1.5, 2.5])):
        rows = ceiling_rows(x, y, budgets, norm)
        assert rows[0]["ceiling"] == 1.0 and rows[0]["conflicts"] == 0
        ceilings = [r["ceiling"] for r in rows]
        assert all(b <= a for a, b in zip(ceilings, ceilings[1:]))
        assert ceilings[-1] < 1.0            # the largest budgets make classes meet
        assert ceilings[-1] >= np.bincount(y).max() / len(y)  # one class alone is always conflict-free


def test_duplicate_points_of_different_labels_conflict_at_zero():
    x, y = np.array([[0.2, 0.2], [0.2, 0.2], [0.9, 0.9]]), np.array([0, 1, 1])
    assert ceiling_rows(x, y, [0.0], "linf")[0]["ceiling_points"] == 2


def test_a_timed_out_search_is_an_upper_bound_never_exact():
    rng = np.random.default_rng(3)
    x, y = rng.random((90, 2)), rng.integers(0, 3, 90)
    pairs = conflicts(pairwise_distances(x, "linf"), y, 0.12)
    rushed, full = largest_conflict_free(y, pairs, seconds=1e-4), largest_conflict_free(y, pairs, seconds=60)
    assert full.exact
    assert rushed.points >= full.points
    if rushed.points > full.points:
        assert not rushed.exact


def test_points_outside_the_box_are_named():
    with pytest.raises(ValueError, match=r"inside \[0, 1\]"):
        ceiling_rows(np.array([[0.5, 1.5], [0.1, 0.2]]), np.array([0, 1]), [0.1], "linf")


def test_with_ceiling_counts_runs_at_and_above_it():
    bracket = pd.DataFrame({"model": ["m"], "epsilon": [0.1], "certified": [0.5], "attacked": [0.85], "n_runs": [2]})
    ceiling = pd.DataFrame({"run": [0, 1], "norm": "linf", "epsilon": 0.1, "ceiling_points": [8, 9],
                            "ceiling": [0.8, 0.9]})
    robustness = pd.DataFrame({"model": "m", "run": [0, 1], "attack": "worst_case", "epsilon": 0.1,
                               "accuracy": [0.8, 1.0], "n": 10})
    certified = pd.DataFrame({"model": "m", "run": [0, 1], "certificate": "best", "epsilon": 0.1,
                              "accuracy": [0.8, 0.2]})
    row = with_ceiling(bracket, ceiling, "linf", certified, robustness).iloc[0]
    assert row["ceiling"] == pytest.approx(0.85)
    assert row["attacked_share"] == pytest.approx((1.0 + 1.0 / 0.9) / 2)
    assert (row["certified_at_ceiling_runs"], row["attacked_at_ceiling_runs"]) == (1, 1)
    assert (row["attacked_above_ceiling_runs"], row["certified_above_ceiling_runs"]) == (1, 0)


def _ball_samples(point, epsilon, norm, rng, n=4000):
    """Points of the ε-ball around ``point`` inside [0, 1]: corners and uniform draws (L∞), or
    draws on and inside the sphere (L2), clipped back into the ball ∩ box."""
    d = point.size
    if norm == "linf":
        draws = point + epsilon * rng.choice([-1.0, 1.0], (n, d)) * rng.random((n, 1)) ** 0.1
    else:
        direction = rng.normal(size=(n, d))
        draws = point + epsilon * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    return np.clip(draws, 0.0, 1.0)


def _linear_worst(w, point, epsilon, norm, label):
    """The input of the ε-ball ∩ [0, 1] that pushes w·x furthest towards the other label,
    found independently of the rule under test (the sign step for L∞, SLSQP for L2)."""
    step = -w if label == 0 else w
    if norm == "linf":
        return np.clip(point + epsilon * np.sign(step), 0, 1)
    result = minimize(lambda z: -(step @ z), point, jac=lambda z: -step, method="SLSQP", bounds=[(0, 1)] * len(point),
                      constraints=[{"type": "ineq", "fun": lambda z: epsilon ** 2 - ((z - point) ** 2).sum(),
                                    "jac": lambda z: -2 * (z - point)}])
    return result.x


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_plus_minus_true_boundary_is_exact(norm):
    options = DatasetSection.parse({"name": "plus_minus", "classes": [0, 1]}, "dataset").options
    data = load_dataset("plus_minus", [0, 1], options=options)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(data.y), 40, replace=False)
    x, y = data.X[pick].reshape(40, -1).astype(np.float64), data.y[pick]
    epsilon = 0.47 if norm == "linf" else 1.3
    robust = plus_minus_robust(options, (0, 1), x, y, epsilon, norm)
    clean = plus_minus_robust(options, (0, 1), x, y, 0.0, norm)
    assert clean.mean() > 0.95 and 0 < robust.mean() < clean.mean()
    templates, _ = plus_minus(n_per_class=1, size=options.size, noise=0.0)
    plus, minus = templates[0].ravel().astype(np.float64), templates[1].ravel().astype(np.float64)
    w, threshold = plus - minus, (plus @ plus - minus @ minus) / 2
    predict = lambda z: np.where(z @ w > threshold, 0, 1)  # noqa: E731  (the nearest template)
    for point, label, verdict in zip(x, y, robust):
        worst = _linear_worst(w, point, epsilon, norm, label)
        distance = np.abs(worst - point).max() if norm == "linf" else np.linalg.norm(worst - point)
        assert distance <= epsilon + 1e-6 and worst.min() >= -1e-9 and worst.max() <= 1 + 1e-9
        if verdict:  # neither the worst case nor any sampled input of the ball changes the answer
            assert predict(worst[None])[0] == label
            assert (predict(_ball_samples(point, epsilon, norm, rng)) == label).all()
        else:
            assert predict(worst[None])[0] != label or abs(worst @ w - threshold) < 1e-6


def test_circles_true_boundary_agrees_with_a_dense_grid():
    options = DatasetSection.parse({"name": "circles", "classes": [0, 1]}, "dataset").options
    data = load_dataset("circles", [0, 1], options=options)
    x, y = data.X[:60].astype(np.float64), data.y[:60]
    epsilon = 0.04
    robust = circles_robust(options, (0, 1), x, y, epsilon, "linf")
    raw, _ = make_circles(n_samples=options.n_samples, noise=options.noise, factor=options.factor,
                          random_state=options.seed)
    low, span = raw.min(0), np.ptp(raw, 0)   # the data set's unit-square map, inverted below
    radius = bayes_radius(options.factor, options.noise)
    assert options.factor < radius < 1
    grid = np.linspace(-1, 1, 41)
    for point, label, verdict in zip(x, y, robust):
        box = np.clip(point + epsilon * np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2), 0, 1)
        inside = (((box * span + low) ** 2).sum(1) < radius ** 2).astype(int)  # inner ring: label 1
        assert verdict == bool((inside == label).all())
    assert robust.any() and not robust.all()
    assert circles_robust(options, (0, 1), x, y, epsilon, "l2") is None


def configured_points(cfg, run):
    """The points the attack stage evaluates in ``run``, split from the config as the train
    stage splits them (a clean clone has no split files)."""
    dataset = configured_dataset(cfg.dataset)
    seeds = run_seeds(cfg.seed, cfg.n_runs)
    _, _, x, y = split_arrays(dataset, *run_split(dataset, cfg.dataset, run, seeds))
    keep = stratified_subset(y, cfg.attack.n_test, subset_seed(cfg.dataset, run, seeds))
    return x[keep], y[keep]


@pytest.mark.parametrize("name", SHIPPED)
def test_no_certificate_in_a_shipped_study_beats_the_ceiling(name):
    """Soundness both ways on the committed results: in every run, threat model and budget of
    a shipped study, no model's certified accuracy (certified.csv) exceeds the data's ceiling
    on its points, computed here from the config (only where something is certified: zero
    never can)."""
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    certified = pd.read_csv(ROOT / "results" / name / "certified.csv")
    best = certified[(certified["certificate"] == "best") & certified["applicable"].astype(bool)
                     & (certified["epsilon"] > 0)]
    checked = 0
    for run, at_run in best[best["accuracy"] > 0].groupby("run"):
        x, y = configured_points(cfg, int(run))
        for norm, g in at_run.groupby("norm"):
            ceiling = {r["epsilon"]: r["ceiling"] for r in ceiling_rows(x, y, sorted(g["epsilon"].unique()), norm)}
            assert (g["accuracy"] <= g["epsilon"].map(ceiling) + 1e-12).all(), (run, norm)
            checked += len(g)
    assert checked > 0
    bracket = ROOT / "results" / name / "bracket.csv"
    if "ceiling" in pd.read_csv(bracket):  # regenerated with the ceiling: its own count agrees
        assert (pd.read_csv(bracket)["certified_above_ceiling_runs"].fillna(0) == 0).all()
