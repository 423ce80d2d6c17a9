"""Certified accuracy of a set of models on the same test points, in every threat model.

For one Monte Carlo run: every certificate at every budget it runs at, against every model it
applies to, and per (model, threat model, budget) the ``best`` row: a point counts when any
certificate proves it, beside how many such points an attack fooled (a sound certificate: none).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..registry import CERTIFICATES

BEST = "best"  # the certificate row of a point certified by any certificate


def certify_unit(entry, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                 norm: str = "linf") -> dict[str, np.ndarray]:
    """One certify unit in threat model ``norm``: ``certified`` (N,) and, for a complete
    verifier that leaves its ``verdicts`` (``exact``), ``refuted`` (N,): the points it broke
    with a re-checked counterexample, and ``verified`` (N,): the points it was asked to decide."""
    done = {"certified": np.asarray(entry.certify_norm(model, x, y, epsilon, norm))}
    verdicts = getattr(entry, "verdicts", None)
    if verdicts is not None:
        done["refuted"] = verdicts["verdict"] == "not_robust"
        done["verified"] = verdicts["verdict"] != "skipped"
    return done


def certify_models(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, epsilons, section, seed: int,
                   worst: dict, units=None, threats: dict | None = None) -> list[dict]:
    """Certified accuracy of ``models`` on inputs ``x`` with labels ``y`` under the
    certificates of ``section`` (a config's ``config.CertifySection``), in every threat model.

    ``threats``: norm -> (its budgets, its per-sample worst case per (model, ε)); default the
    L∞ ``epsilons`` and ``worst``. In each threat model every certificate that supports it runs
    at each budget (``Certificate.certify_norm``); ``units(model, certificate, epsilon,
    compute)`` finds finished units (see ``evaluate_models``; ``norm=`` for a threat model
    other than L∞). Returns records model, certificate, norm, epsilon, accuracy (the share of
    points certified: a certified point is correctly classified everywhere in its ball), n,
    applicable, violations: one per certificate, plus ``certificate == "best"`` (a point counts
    when any certificate certifies it), whose ``violations`` is the number of points certified
    yet fooled by an attack of that threat model; a sound certificate never has any. A complete
    verifier (``exact``) runs only at the budgets it declares (``runs_at``) and on the points it
    chooses (``points``): its rows give the shares of those points proved (``accuracy``), broken
    by a counterexample (``refuted``) and left open (``undecided``), ``n`` the points verified;
    ``best`` takes its proofs and gets ``upper``: the attacked accuracy with every refuted point
    counted as fooled (both sound whatever it skipped). A smoothed classifier's certificate
    (``smoothing``, no bound on the model itself) runs once per model (epsilon None in
    ``units``) and is reported at every radius of ``section.l2_radii`` and every budget of its
    threat models; it certifies the smoothed classifier g, not the model, so it never enters
    ``best``.
    """
    threats = threats or {"linf": (epsilons, worst)}
    bound = [c for c in section.methods if "smoothed" not in CERTIFICATES[c].tags]
    # A smoothed certificate is reported at its radii and at the budgets of the threat models it supports.
    budgets_too = {float(e) for norm, (budgets, _) in threats.items() for e in budgets
                   if any(norm in CERTIFICATES[c].norms for c in section.methods if c not in bound)}
    radii = sorted({float(r) for r in section.l2_radii} | budgets_too) if budgets_too \
        else [float(r) for r in section.l2_radii]

    def unit(name, certificate, epsilon, compute, norm):
        if units is None:
            return compute()
        return units(name, certificate, epsilon, compute, **({} if norm == "linf" else {"norm": norm}))

    records = []
    for name, model in models.items():
        # The bound certificates run on the CPU (a GPU buys nothing for their small batches).
        on_cpu = (copy.deepcopy(model).cpu(), x.cpu(), y.cpu()) if x.is_cuda else (model, x, y)
        for norm, (budgets, worst_of) in threats.items():
            entries = [c for c in bound if norm in CERTIFICATES[c].norms]
            for epsilon in map(float, budgets):
                records += _certified_at(name, on_cpu, entries, norm, epsilon, worst_of[(name, epsilon)],
                                         lambda *a: unit(name, *a, norm), section, seed)
        for certificate in (c for c in section.methods if c not in bound):
            entry = CERTIFICATES[certificate](section.params[certificate], seed=seed)
            done = unit(name, certificate, None, lambda: dict(zip(("prediction", "radius"), entry.radii(model, x, y))),
                        "linf")
            correct = done["prediction"] == y.cpu().numpy()
            records += [{"model": name, "certificate": certificate, "norm": norm, "epsilon": radius,
                         "accuracy": float((correct & (done["radius"] > radius)).mean()), "n": len(x),
                         "applicable": True, "violations": np.nan}
                        for norm in CERTIFICATES[certificate].norms for radius in radii]
    return records


def _certified_at(name, on_cpu, certificates, norm, epsilon, attacked, unit, section, seed) -> list[dict]:
    """The rows of every certificate of ``certificates`` on model ``name`` at one budget of
    threat model ``norm`` and the ``best`` row (``attacked``: the per-sample worst case)."""
    model, x, y = on_cpu
    records, certified, refuted = [], [], []
    for certificate in certificates:
        entry = CERTIFICATES[certificate](section.params[certificate], seed=seed)
        if not entry.runs_at(epsilon):
            continue
        applies, _ = entry.applies(model)
        record = {"model": name, "certificate": certificate, "norm": norm, "epsilon": epsilon,
                  "accuracy": np.nan, "n": len(x), "applicable": applies, "violations": np.nan}
        if applies:
            done = unit(certificate, epsilon, lambda: certify_unit(entry, model, x, y, epsilon, norm))
            certified.append(done["certified"].astype(bool))
            record["accuracy"] = float(certified[-1].mean())
            if "refuted" in done:  # a complete verifier: its shares over the points it verified
                refuted.append(done["refuted"].astype(bool))
                verified = done.get("verified", np.ones(len(x), dtype=bool)).astype(bool)
                robust, broken = certified[-1][verified], refuted[-1][verified]
                record.update(accuracy=float(robust.mean()), n=int(verified.sum()), refuted=float(broken.mean()),
                              undecided=float((~robust & ~broken).mean()))
        records.append(record)
    best = np.logical_or.reduce(certified) if certified else np.zeros(len(x), dtype=bool)
    # Fooled: misclassified (a randomised model: by more than half its passes, against the class a
    # certificate of its expected prediction proves); bool worst cases: ~worst.
    attacked = np.asarray(attacked, dtype=float)
    records.append({"model": name, "certificate": BEST, "norm": norm, "epsilon": epsilon,
                    "accuracy": float(best.mean()), "n": len(x), "applicable": bool(certified),
                    "violations": int((best & (attacked < 0.5)).sum()),
                    # the attacked accuracy with every refuted point counted as fooled
                    **({"upper": float(np.where(np.logical_or.reduce(refuted), 0.0, attacked).mean())}
                       if refuted else {})})
    return records
