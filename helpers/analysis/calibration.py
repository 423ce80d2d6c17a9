"""How often the gradient-masking checks flag, and how the paired tests of two models hold
their level, measured on simulated studies (docs/statistics.md shows both tables).

**Masking checks** (``flag_rates``, ``calibration_table``). A simulated study is one model's
per-point outcomes in ``runs`` runs of ``n`` test points at ``budgets`` budgets, written as the
attack stage writes them (``outcomes``), under the configured suite FGSM, PGD, two stronger
runs of PGD, Square and transfer from another model, and PGD at the masking budget. In an
*honest* study the attacks are equally strong: each point has its own chance of being broken
at each budget (drawn from a Beta distribution: points differ), and every attack breaks it
with that chance, through a uniform draw it shares with the other attacks with probability
``agreement`` (attacks mostly break the same points) and draws afresh otherwise, so no order
holds beyond chance: the null hypothesis of every paired check at its boundary, the hardest
case for a test's size. A *masked* run is one whose gradients are blind: the gradient attacks
break a point with ``masked_strength`` times its chance, the gradient-free one as before, and
PGD at the masking budget leaves most points standing. The share of studies flagged is the
checks' false-flag rate (honest) or their power (masked).

**Paired tests of two models** (``inference_rates``, ``inference_table``; ``make
calibration``): data sets drawn from a population, two models trained and tested under 2 × 5
repeated k-fold; the share of studies each test rejects "no difference" in, and the coverage
of its intervals of the population difference.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .evaluation import encode
from .masking import ALPHA, masking_checks, run_checks
from .paired_points import point_paired_test
from .statistics import corrected_paired_test, corrected_t_interval

GRADIENT = ("fgsm", "pgd", "pgd_restarts", "pgd_long")
FREE = ("square",)


def simulated_outcomes(rng: np.random.Generator, runs: int = 10, n: int = 100, budgets: int = 6,
                       masked_runs=(), masked_strength: float = 0.3, agreement: float = 0.8) -> pd.DataFrame:
    """One model's ``outcomes`` table (see the module's docstring)."""
    rows = []
    for run in range(runs):
        masked = run in masked_runs
        blind = masked_strength if masked else 1.0  # the gradient attacks' share of each point's chance
        for epsilon in np.linspace(0.05, 0.3, budgets):
            chance = rng.beta(2, 2, n) * min(1.0, epsilon / 0.3)  # each point's chance of breaking at ε
            latent = rng.random(n)  # shared by the attacks: they mostly break the same points

            def draw():  # one attack's uniform per point: the shared one, redrawn with probability 1 − agreement
                return np.where(rng.random(n) < agreement, latent, rng.random(n))

            for table, attack, scale in [*(("robustness", a, blind) for a in GRADIENT),
                                         *(("robustness", a, 1.0) for a in FREE),
                                         ("transfer", "transfer:m", blind), ("transfer", "transfer:other", 1.0)]:
                rows.append((run, table, attack, epsilon, draw() >= chance * scale))
        rows.append((run, "large_epsilon", "pgd", 1.0, rng.random(n) < (0.9 if masked else 0.0)))
    return pd.DataFrame([{"run": run, "table": table, "model": "m", "attack": attack, "epsilon": float(epsilon),
                          "n": n, "correct": encode(correct)} for run, table, attack, epsilon, correct in rows])


def flag_rates(studies: int = 200, seed: int = 0, alone: bool = False, **options) -> pd.Series:
    """Per check, and ``any``, the share of ``studies`` simulated studies (``simulated_outcomes``
    with ``options``) in which the model is flagged; with ``alone``, were each test taken on its
    own at α (no family adjustment), for comparison."""
    rng = np.random.default_rng(seed)
    runs, flagged = options.get("runs", 10), []
    for _ in range(studies):
        checks = run_checks(simulated_outcomes(rng, **options), runs=runs)
        if alone:
            checks = checks.assign(status=np.where(checks["p_value"] <= ALPHA, "FLAG", "PASS"))
        status = masking_checks(checks).set_index("check")["status"] == "FLAG"
        flagged.append({**status.to_dict(), "any": bool(status.any())})
    return pd.DataFrame(flagged).mean()


def calibration_table(studies: int = 100, seed: int = 0) -> pd.DataFrame:
    """The share of simulated studies flagged, per check and in all, for an honest model, a
    study with one strongly masked run of ten (gradient attacks at 0.3 of each point's chance)
    and one with a mildly masked run (0.6): with the family adjustment, and each test alone."""
    scenarios = {"honest": {}, "one run of ten masked (0.3)": {"masked_runs": (3,)},
                 "one run of ten mildly masked (0.6)": {"masked_runs": (3,), "masked_strength": 0.6}}
    rows = []
    for name, options in scenarios.items():
        for alone in (False, True):
            rates = flag_rates(studies, seed, alone, **options)
            rows.append({"study": name, "tests": "each alone at α" if alone else "one family per model",
                         **rates.round(3).to_dict()})
    return pd.DataFrame(rows)


# The paired tests of two models (``inference_table``). A population of two classes in
# ``FEATURES`` dimensions (one informative direction and one interaction, so models of
# different capacity differ); each study draws ``N_POINTS`` points from it and runs 2 × 5
# repeated k-fold as the shipped studies do; a model is a random-feature
# classifier (``features`` random cosine features of a seeded projection, ridge readout), so
# its per-point outcomes vary with its seed and with its training split, as a network's do.
FEATURES, N_POINTS, REPETITIONS, FOLDS = 20, 400, 2, 5
STUDIES = 400  # simulated studies per scenario of `make calibration`


def _population(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 1.0, (n, FEATURES))
    x[:, 0] += (2 * y - 1) * 0.8
    x[:, 1] += (2 * y - 1) * 0.5 * np.sign(x[:, 2])
    return x, y


def _correct(seed: int, features: int, x_train, y_train, x_test, y_test) -> np.ndarray:
    """Per test point, whether a random-feature classifier trained on (x_train, y_train) is right."""
    r = np.random.default_rng(seed)
    weights, phases = r.normal(0.0, 0.5, (FEATURES, features)), r.uniform(0, 2 * np.pi, features)
    embed = lambda x: np.cos(x @ weights + phases)  # noqa: E731
    f = embed(x_train)
    readout = np.linalg.solve(f.T @ f + np.eye(features), f.T @ (2 * y_train - 1))
    return (embed(x_test) @ readout > 0) == y_test


def simulated_comparison(rng: np.random.Generator, features=(100, 100)) -> tuple[list, list]:
    """One study of two models (``features`` each) on a data set drawn from the population:
    per run (repetition × fold) the per-point differences A − B and the points' ids."""
    x, y = _population(rng, N_POINTS)
    differences, ids = [], []
    for _ in range(REPETITIONS):
        order = rng.permutation(N_POINTS)
        for test in np.array_split(order, FOLDS):
            train = np.setdiff1d(order, test)
            a, b = (_correct(int(rng.integers(1 << 31)), m, x[train], y[train], x[test], y[test]) for m in features)
            differences.append(a.astype(float) - b)
            ids.append(test)
    return differences, ids


def population_difference(features=(100, 100), draws: int = 200, seed: int = 1) -> float:
    """The difference the studies estimate: A − B trained on a population draw of the studies'
    training size, on fresh population points, averaged over ``draws`` trainings."""
    rng = np.random.default_rng(seed)
    n_train = N_POINTS - N_POINTS // FOLDS
    total = 0.0
    for _ in range(draws):
        (x, y), (xt, yt) = _population(rng, n_train), _population(rng, 2000)
        a, b = (_correct(int(rng.integers(1 << 31)), m, x, y, xt, yt) for m in features)
        total += a.mean() - b.mean()
    return total / draws


def inference_rates(studies: int = STUDIES, seed: int = 0, features=(100, 100)) -> pd.DataFrame:
    """Per test (the textbook paired t-test, the corrected resampled t-test, the per-point
    paired test), over ``studies`` simulated studies: the share rejecting "no difference" at
    ``ALPHA``, the share of 95% intervals covering the population difference, and their mean
    width."""
    rng, truth = np.random.default_rng(seed), population_difference(features)
    ratio = 1 / (FOLDS - 1)  # n_test / n_train
    rows = []
    for _ in range(studies):
        differences, ids = simulated_comparison(rng, features)
        means = np.array([d.mean() for d in differences])
        for test, r in (("textbook paired t-test", 0.0), ("corrected resampled t-test", ratio)):
            _, _, low, high = corrected_t_interval(means, r)
            rows.append({"test": test, "p": corrected_paired_test(means, r)[1], "low": low, "high": high})
        point = point_paired_test(differences, ids)
        rows.append({"test": "paired test on every point", "p": point["p"], "low": point["ci_low"],
                     "high": point["ci_high"]})
    frame = pd.DataFrame(rows)
    frame["p"] = frame["p"].fillna(1.0)
    return frame.groupby("test", sort=False).apply(lambda g: pd.Series({
        "rejects at α": (g["p"] <= ALPHA).mean(), "covers the population difference": (
            (g["low"] <= truth) & (truth <= g["high"])).mean(), "mean interval width": (g["high"] - g["low"]).mean(),
        "population difference": truth, "studies": len(g)}), include_groups=False).reset_index()


def inference_table(studies: int = STUDIES, seed: int = 0) -> pd.DataFrame:
    """``inference_rates`` for two identical models (size) and for two that differ (100
    against 30 features: power and coverage)."""
    frames = [inference_rates(studies, seed, features).assign(study=name)
              for name, features in (("identical models", (100, 100)), ("models that differ", (100, 30)))]
    table = pd.concat(frames, ignore_index=True)
    return table[["study", *[c for c in table.columns if c != "study"]]]


def main(argv: list[str]) -> int:
    """``python -m helpers.analysis.calibration OUT.csv [STUDIES]``: writes ``inference_table``."""
    import sys
    from pathlib import Path

    if len(argv) not in (1, 2):
        print(main.__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    inference_table(int(argv[1]) if len(argv) == 2 else STUDIES).round(4).to_csv(out, index=False)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
