"""Robustness evaluation of a set of models on the same test points under one threat model.

For one Monte Carlo run: every configured attack at every epsilon against every model, the
per-sample worst case over attacks, the transfer matrix (adversarial examples crafted on
each model, evaluated on every model) and PGD at large budgets for the masking checks.

A randomised model (finite shots, noise: ``attacks.is_stochastic``) is classified by
``attack.eval_samples`` passes per point, so its per-sample correctness is a share in [0, 1]
(the probability of a correct answer) rather than a bool; the worst case over attacks is then
the per-sample minimum of those shares. A deterministic model's arrays stay bool, and every
number is what it was.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..attacks import build_attack, evaluate_attack
from ..attacks.base import expected_correct, reseed
from ..registry import ATTACKS, CERTIFICATES

WORST_CASE = "worst_case"
LARGE_EPSILON_ATTACK = "pgd"  # the attack run at the masking budgets
# The columns of each table (so that an empty table still has them).
COLUMNS = {
    "robustness": ["model", "attack", "epsilon", "accuracy", "n", "n_correct", "linf"],
    "transfer": ["source", "target", "epsilon", "accuracy", "n"],
    "large_epsilon": ["model", "epsilon", "accuracy", "n"],
    "by_class": ["model", "attack", "epsilon", "label", "accuracy", "n"],
    "convergence": ["model", "epsilon", "accuracy", "n"],
    "certified": ["model", "certificate", "norm", "epsilon", "accuracy", "n", "applicable", "violations"],
    "attack_traces": ["model", "attack", "epsilon", "iteration", "accuracy"],
    "escalation": ["model", "epsilon", "kind", "before", "after", "deciding", "n"],
}
# The tables of a threat model other than L∞ (``threat_columns``): the same, the distance column
# named after the norm, no escalation, and each point's minimal distance under a minimum-norm attack.
MINIMUM_NORM_COLUMNS = ["model", "attack", "index", "distance"]


def threat_columns(norm: str) -> dict[str, list[str]]:
    """The columns of each table of threat model ``norm`` (L∞: ``COLUMNS``)."""
    if norm == "linf":
        return COLUMNS
    columns = {key: [norm if c == "linf" else c for c in value] for key, value in COLUMNS.items()
               if key not in ("certified", "escalation")}
    return {**columns, "minimum_norm": MINIMUM_NORM_COLUMNS}
TRACE_POINTS = 40  # points of an attack's convergence curve kept in the table
BEST = "best"  # the certificate row of a point certified by any certificate


def survived(correct) -> np.ndarray:
    """Per-sample survival of every attack in ``correct`` (a list of (N,) arrays): their
    logical and for bool arrays (deterministic models, exactly as before), the per-sample
    minimum of the probabilities of a correct answer for a randomised model."""
    return np.minimum.reduce([np.asarray(c) for c in correct])


def attack_outcome(model: nn.Module, attack, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                   keep_adversarial: bool = False, eval_samples: int = 1) -> dict[str, np.ndarray]:
    """One unit: ``attack`` on ``x`` (N, ...) in [0, 1] with labels ``y`` at one ``epsilon``.

    Returns numpy arrays: ``correct`` (N,) bool per sample (for a randomised model: the share
    of ``eval_samples`` passes that classify it correctly, float), ``linf`` () the largest
    achieved ||x_adv - x||_inf, ``sampling_se`` () the standard error the finite passes add to
    the accuracy (zero for a deterministic model) and, with ``keep_adversarial``, ``x_adv`` (N, ...).
    An attack in another norm than L∞ adds the largest achieved distance in its norm (``l2``),
    and a minimum-norm attack (``cw_l2``) each point's minimal distance (``distances``, (N,)).
    """
    result = evaluate_attack(model, attack, x, y, epsilon, eval_samples=eval_samples)
    unit = {"correct": result["correct"], "linf": np.asarray(result["linf"]),
            "sampling_se": np.asarray(result["sampling_se"])}
    for norm in getattr(attack, "norms", ("linf",)):
        if norm != "linf":
            unit[norm] = np.asarray(result[norm])
    if result["distances"] is not None:
        unit["distances"] = result["distances"]
    if result["trace"] is not None:
        unit["trace"] = result["trace"]
    if keep_adversarial:
        unit["x_adv"] = result["x_adv"].cpu().numpy()
    return unit


def evaluate_models(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, section, seed: int,
                    units=None, worst: dict | None = None, escalate=()) -> dict[str, list[dict]]:
    """Evaluate ``models`` on inputs ``x`` (N, ...) in [0, 1] with labels ``y`` (N,) under the
    attacks of ``section`` (a config's ``config.AttackSection``), each built from ``seed``.

    ``units`` (optional) finds finished units: ``units(model, attack, epsilon, compute, needs)``
    returns the unit's arrays, reused if stored or else ``compute()``d and stored (the attack
    stage's resume); without it every unit is computed. ``escalate``: the models a masking
    check flagged (in this run): they are also attacked by ``section.escalation`` at every
    budget (those not among ``section.methods`` already) and masking budget, and their worst
    case also counts every other model's transfer examples. ``worst`` (optional) receives, per (model, epsilon), the per-sample worst case
    (True: survived every attack). Returns lists of records:

    - ``robustness``: model, attack, epsilon, accuracy, n, n_correct, linf — one per
      configured (and escalation) attack and epsilon, plus ``attack == "worst_case"``: a sample
      counts as robust only if it survives every attack (mean over x of min over attacks);
    - ``transfer``: source, target, epsilon, accuracy, n — examples crafted by
      ``section.transfer_from`` on ``source`` and classified by ``target`` (the diagonal is
      the white-box attack);
    - ``large_epsilon``: model, epsilon, accuracy, n — PGD at ``masking_epsilons``;
    - ``by_class``: model, attack, epsilon, label, accuracy, n — the robust accuracy of each
      class (worst case included): a model that never flips one class scores that class's
      share of the test set without being robust;
    - ``convergence``: model, epsilon, accuracy, n — the per-sample worst case over the
      configured attacks that are not a stronger run of another (``Attack.refines``): if the
      stronger runs lower it much, the reported worst case may not have converged either;
    - ``escalation``: model, epsilon, kind, before, after, deciding, n — for escalated models,
      the worst case (``kind`` "masking": at a masking budget, PGD) before and after escalation, and the attack
      (or ``transfer:<source>``) that fooled the most points alone;
    - ``attack_traces``: model, attack, epsilon, iteration, accuracy — the convergence curves
      of the attacks that record one.
    """
    robustness, transfer, large, by_class, convergence, traces, escalation = [], [], [], [], [], [], []
    minimum = []
    labels = y.cpu().numpy()
    # The threat model: L∞ for an ``AttackSection``; a ``config.ThreatSection`` names its norm,
    # whose achieved distance fills the column named after it, and its masking-budget attack.
    norm = getattr(section, "norm", "linf")
    large_attack = getattr(section, "large_attack", LARGE_EPSILON_ATTACK)
    epsilons = [float(e) for e in section.epsilons]
    # The worst case takes the attacks that give one input per point (not a mean over noise draws).
    counted = [a for a in section.methods if build_attack(a, section).per_point]
    base = [a for a in counted if ATTACKS[a].refines not in section.methods]

    def outcome(name, model, attack_name, epsilon, keep):
        attack = build_attack(attack_name, section, seed=seed)
        compute = lambda: attack_outcome(model, attack, x, y, epsilon, keep, section.eval_samples)  # noqa: E731
        if units is None:
            return compute()
        return units(name, attack_name, epsilon, compute, ("x_adv",) if keep else ())

    def record(name, attack_name, epsilon, correct, distance):
        robustness.append({"model": name, "attack": attack_name, "epsilon": epsilon,
                           "accuracy": float(correct.mean()), "n": len(correct),
                           "n_correct": int(correct.sum()) if correct.dtype == bool else float(correct.sum()),
                           norm: distance})
        for label in np.unique(labels):
            hits = correct[labels == label]
            by_class.append({"model": name, "attack": attack_name, "epsilon": epsilon, "label": int(label),
                             "accuracy": float(hits.mean()), "n": len(hits)})

    def attack_rows(name, model, attack_names, keep_for=None):
        units_of = {}
        for attack_name in attack_names:
            keep = attack_name == keep_for
            units_of[attack_name] = [outcome(name, model, attack_name, e, keep) for e in epsilons]
            for epsilon, unit in zip(epsilons, units_of[attack_name]):
                record(name, attack_name, epsilon, unit["correct"], float(unit[norm]))
                if "distances" in unit and epsilon == max(epsilons):
                    minimum.extend({"model": name, "attack": attack_name, "index": i, "distance": float(d)}
                                   for i, d in enumerate(unit["distances"]))
                if "trace" in unit:
                    trace = unit["trace"]
                    for i in np.unique(np.linspace(0, len(trace) - 1, TRACE_POINTS).round().astype(int)):
                        traces.append({"model": name, "attack": attack_name, "epsilon": epsilon, "iteration": int(i),
                                       "accuracy": float(trace[i])})
        return units_of

    crafted: dict[tuple[str, float], np.ndarray] = {}
    finished = {}
    for name, model in models.items():
        finished[name] = attack_rows(name, model, section.methods, keep_for=section.transfer_from)
        if section.transfer_from in section.methods:
            for epsilon, unit in zip(epsilons, finished[name][section.transfer_from]):
                crafted[(name, epsilon)] = unit["x_adv"]
        for i, epsilon in enumerate(epsilons):
            survived_base = survived([finished[name][a][i]["correct"] for a in base])
            convergence.append({"model": name, "epsilon": epsilon, "accuracy": float(survived_base.mean()),
                                "n": len(survived_base)})
        for epsilon in map(float, section.masking_epsilons):
            correct = outcome(name, model, large_attack, epsilon, False)["correct"]
            large.append({"model": name, "epsilon": epsilon, "accuracy": float(correct.mean()), "n": len(correct)})
    hits_of = {}
    for (source, epsilon), x_adv in crafted.items():
        for target, model in models.items():
            reseed(model, seed, 2)  # a randomised target's passes (nothing for a deterministic one)
            hits = expected_correct(model, torch.as_tensor(x_adv, device=x.device), y, section.eval_samples)
            hits_of[(source, target, epsilon)] = hits
            transfer.append({"source": source, "target": target, "epsilon": epsilon,
                             "accuracy": float(hits.mean()), "n": len(hits)})
    for name, model in models.items():
        extra = {}
        if name in escalate:
            stronger = [a for a in section.escalation if a not in section.methods]  # the others ran already
            extra = {a: [u["correct"] for u in units_of] for a, units_of in attack_rows(name, model, stronger).items()}
            extra.update({f"transfer:{source}": [hits_of[(source, name, e)] for e in epsilons]
                          for source in models if source != name and (source, name, epsilons[0]) in hits_of})
        for i, epsilon in enumerate(epsilons):
            before = survived([finished[name][a][i]["correct"] for a in counted])
            after = survived([before, *(correct[i] for correct in extra.values())])
            if worst is not None:
                worst[(name, epsilon)] = after
            record(name, WORST_CASE, epsilon, after, max(float(finished[name][a][i][norm]) for a in counted))
            if extra:
                deciding = min(extra, key=lambda a: extra[a][i].mean())
                escalation.append({"model": name, "epsilon": epsilon, "kind": "budget", "before": float(before.mean()),
                                   "after": float(after.mean()), "deciding": deciding, "n": len(after)})
        if name in escalate:
            for epsilon in map(float, section.masking_epsilons):
                pgd = outcome(name, model, large_attack, epsilon, False)["correct"]
                others = {a: outcome(name, model, a, epsilon, False)["correct"] for a in section.escalation}
                deciding = min(others, key=lambda a: others[a].mean())
                after = survived([pgd, *others.values()])
                escalation.append({"model": name, "epsilon": epsilon, "kind": "masking", "before": float(pgd.mean()),
                                   "after": float(after.mean()), "deciding": deciding, "n": len(pgd)})
    results = {"robustness": robustness, "transfer": transfer, "large_epsilon": large, "by_class": by_class,
               "convergence": convergence, "escalation": escalation, "attack_traces": traces}
    if norm != "linf":
        results["minimum_norm"] = minimum
    return results


def certify_unit(entry, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> dict[str, np.ndarray]:
    """One certify unit: ``certified`` (N,) and, for a complete verifier that leaves its
    ``verdicts`` (``exact``), ``refuted`` (N,): the points it broke with a re-checked
    counterexample, and ``verified`` (N,): the points it was asked to decide."""
    done = {"certified": np.asarray(entry.certify(model, x, y, epsilon))}
    verdicts = getattr(entry, "verdicts", None)
    if verdicts is not None:
        done["refuted"] = verdicts["verdict"] == "not_robust"
        done["verified"] = verdicts["verdict"] != "skipped"
    return done


def certify_models(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, epsilons, section, seed: int,
                   worst: dict, units=None, l2_epsilons=None, worst_l2: dict | None = None) -> list[dict]:
    """Certified accuracy of ``models`` on inputs ``x`` with labels ``y`` under the
    certificates of ``section`` (a config's ``config.CertifySection``).

    L∞ certificates run at every epsilon; ``units(model, certificate, epsilon, compute)`` finds
    finished units (see ``evaluate_models``). Returns records model, certificate, norm,
    epsilon, accuracy (the share of points certified: a certified point is correctly
    classified everywhere in its ball), n, applicable, violations: one per certificate, plus
    ``certificate == "best"`` (a point counts when any L∞ certificate certifies it), whose
    ``violations`` is the number of points certified yet fooled by an attack (``worst``: the
    per-sample worst case per (model, epsilon)); a sound certificate never has any. A
    complete verifier (``exact``) runs only at the budgets it declares (``runs_at``) and on the
    points it chooses (``points``): its rows give the shares of those points proved
    (``accuracy``), broken by a counterexample (``refuted``) and left open (``undecided``), ``n``
    the points verified; ``best`` takes its proofs and gets ``upper``: the attacked accuracy
    with every refuted point counted as fooled (both sound whatever it skipped). L2
    certificates of a smoothed classifier (``smoothing``) run once per model (epsilon None in
    ``units``) and are reported at every radius of ``section.l2_radii``.

    With ``l2_epsilons`` (the L2 threat model's budgets, ``attack.l2.epsilons``) the
    certificates that support L2 also run at each of them (``Certificate.certify_norm``;
    ``units(model, certificate, epsilon, compute, norm="l2")``), with a ``best`` row of norm
    l2 (any of them) whose ``violations`` count the points fooled by an L2 attack
    (``worst_l2``); smoothing is then reported at those budgets too. Smoothing certifies the
    smoothed classifier g, not the model, so it never enters ``best``.
    """
    records = []
    linf = [c for c in section.methods if "linf" in CERTIFICATES[c].norms]
    l2 = [c for c in section.methods if c not in linf]

    def unit(name, certificate, epsilon, compute, norm="linf"):
        if units is None:
            return compute()
        return units(name, certificate, epsilon, compute) if norm == "linf" else units(name, certificate, epsilon,
                                                                                         compute, norm=norm)

    radii = [float(r) for r in section.l2_radii]
    if l2_epsilons is not None:
        radii = sorted(set(radii) | {float(e) for e in l2_epsilons})
    bound_l2 = [c for c in linf if "l2" in CERTIFICATES[c].norms] if l2_epsilons is not None else []

    for name, model in models.items():
        # The bound certificates run on the CPU (a GPU buys nothing for their small batches).
        on_cpu, x_cpu, y_cpu = (copy.deepcopy(model).cpu(), x.cpu(), y.cpu()) if x.is_cuda else (model, x, y)
        for epsilon in map(float, epsilons):
            certified, refuted = [], []
            for certificate in linf:
                entry = CERTIFICATES[certificate](section.params[certificate], seed=seed)
                if not entry.runs_at(epsilon):
                    continue
                applies, _ = entry.applies(model)
                record = {"model": name, "certificate": certificate, "norm": "linf", "epsilon": epsilon,
                          "accuracy": np.nan, "n": len(x), "applicable": applies, "violations": np.nan}
                if applies:
                    done = unit(name, certificate, epsilon, lambda: certify_unit(entry, on_cpu, x_cpu, y_cpu, epsilon))
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
            # Fooled: misclassified (a randomised model: by more than half its passes, against
            # the class a certificate of its expected prediction proves); bool worst cases: ~worst.
            attacked = np.asarray(worst[(name, epsilon)], dtype=float)
            fooled = attacked < 0.5
            records.append({"model": name, "certificate": BEST, "norm": "linf", "epsilon": epsilon,
                            "accuracy": float(best.mean()), "n": len(x), "applicable": bool(certified),
                            "violations": int((best & fooled).sum()),
                            # the attacked accuracy with every refuted point counted as fooled
                            **({"upper": float(np.where(np.logical_or.reduce(refuted), 0.0, attacked).mean())}
                               if refuted else {})})
        for epsilon in (map(float, l2_epsilons) if bound_l2 else ()):
            certified = []
            for certificate in bound_l2:
                entry = CERTIFICATES[certificate](section.params[certificate], seed=seed)
                applies, _ = entry.applies(model)
                if applies:
                    done = unit(name, certificate, epsilon, lambda: {
                        "certified": entry.certify_norm(on_cpu, x_cpu, y_cpu, epsilon, "l2")}, norm="l2")
                    certified.append(done["certified"].astype(bool))
                records.append({"model": name, "certificate": certificate, "norm": "l2", "epsilon": epsilon,
                                "accuracy": float(certified[-1].mean()) if applies else np.nan, "n": len(x),
                                "applicable": applies, "violations": np.nan})
            best = np.logical_or.reduce(certified) if certified else np.zeros(len(x), dtype=bool)
            fooled = np.asarray(worst_l2[(name, epsilon)], dtype=float) < 0.5
            records.append({"model": name, "certificate": BEST, "norm": "l2", "epsilon": epsilon,
                            "accuracy": float(best.mean()), "n": len(x), "applicable": bool(certified),
                            "violations": int((best & fooled).sum())})
        for certificate in l2:
            entry = CERTIFICATES[certificate](section.params[certificate], seed=seed)

            def compute():
                prediction, radius = entry.radii(model, x, y)
                return {"prediction": prediction, "radius": radius}

            done = unit(name, certificate, None, compute)
            correct = done["prediction"] == y.cpu().numpy()
            for radius in radii:
                records.append({"model": name, "certificate": certificate, "norm": "l2", "epsilon": radius,
                                "accuracy": float((correct & (done["radius"] > radius)).mean()), "n": len(x),
                                "applicable": True, "violations": np.nan})
    return records
