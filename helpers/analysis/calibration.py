"""How often the gradient-masking checks flag, measured on simulated studies.

A simulated study is one model's per-point outcomes in ``runs`` runs of ``n`` test points at
``budgets`` budgets, written as the attack stage writes them (``outcomes``), under the
configured suite FGSM, PGD, two stronger runs of PGD, Square and transfer from another model,
and PGD at the masking budget. In an *honest* study the attacks are equally strong: each point
has its own chance of being broken at each budget (drawn from a Beta distribution: points
differ), and every attack breaks it with that chance, through a uniform draw it shares with the
other attacks with probability ``agreement`` (attacks mostly break the same points) and draws
afresh otherwise, so no order holds beyond chance: the null hypothesis of every paired check at its boundary, the hardest case for a
test's size. A *masked* run is one whose gradients are blind: the gradient attacks break a
point with ``masked_strength`` times its chance, the gradient-free one as before, and PGD at
the masking budget leaves most points standing. ``flag_rates`` runs ``run_checks`` on many such
studies: the share flagged is the checks' false-flag rate (honest) or their power (masked).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .evaluation import encode
from .masking import masking_checks, run_checks

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


def flag_rates(studies: int = 200, seed: int = 0, **options) -> pd.Series:
    """Per check, and ``any``, the share of ``studies`` simulated studies (``simulated_outcomes``
    with ``options``) in which the model is flagged."""
    rng = np.random.default_rng(seed)
    flagged = []
    for _ in range(studies):
        runs = options.get("runs", 10)
        checks = masking_checks(run_checks(simulated_outcomes(rng, **options), runs=runs)).set_index("check")
        flagged.append({**(checks["status"] == "FLAG").to_dict(), "any": bool((checks["status"] == "FLAG").any())})
    return pd.DataFrame(flagged).mean()
