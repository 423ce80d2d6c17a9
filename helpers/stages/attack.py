"""The attack stage (``02_attack.ipynb``): every model of every run on its held-out test split.

The unit of work is one attack on one model of one run at one ε; its key holds the attack's
parameters, ε, the run's seed, the test subset, the key of the model's checkpoint and the
code of the stage and of that attack. For 2-D data sets the stage also writes what the
report's decision-boundary figure draws (run 0), so the report never runs a model.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from ..analysis.certification import certify_models
from ..analysis.evaluation import COLUMNS, THREAT_TABLES, WORST_CASE, evaluate_models
from ..analysis.masking import run_checks
from ..analysis.radii import COLUMNS as RADIUS_COLUMNS
from ..analysis.radii import radius_records
from ..attacks import build_attack, predict
from ..attacks.base import is_stochastic
from ..config import resolve_device
from ..data import run_seeds
from ..registry import ATTACKS, CERTIFICATES
from ..store.files import save_arrays, write_csv
from ..store.layout import Layout
from ..store.provenance import begin_stage, finish_stage
from ..store.units import COST_COLUMNS, Units, stage_code_hash, unit_costs, unit_key
from . import progress
from .execution import map_runs
from .inputs import load_attacked_split, load_models, load_test_split
from .universal import COLUMNS as UNIVERSAL_COLUMNS
from .universal import planned_units as planned_universal
from .universal import universal_run

BOUNDARY_RESOLUTION = 200  # grid points per axis of the decision-boundary figure


def _attack_run(cfg, run: int, seed: int):
    layout, device, section = Layout(cfg.results_dir), resolve_device(cfg), cfg.attack
    x_test, y_test = load_attacked_split(cfg, run, device)
    loaded = load_models(cfg, run, device)
    units, shared = Units(on_unit=progress.unit_finished), stage_code_hash("attack")

    def unit(model, attack, epsilon, compute, needs):
        key = unit_key(stage="attack", attack=attack, params=section.params[attack].to_dict(), epsilon=epsilon,
                       seed=seed, n_test=section.n_test, eval_samples=section.eval_samples, checkpoint=loaded[model].key,
                       code=[shared, ATTACKS[attack].code_hash()])
        return units.get(layout.attack_unit(run, model, attack, epsilon), key, compute, needs)

    def certify_unit(model, certificate, epsilon, compute, norm="linf"):
        # An L2 unit of a certificate that also runs in L∞ has a folder of its own (certificate-<name>-l2).
        extra = {} if norm == "linf" else {"norm": norm}
        key = unit_key(stage="certify", certificate=certificate, params=cfg.certify.params[certificate].to_dict(),
                       epsilon=epsilon, seed=seed, n_test=section.n_test, checkpoint=loaded[model].key,
                       code=[shared, CERTIFICATES[certificate].code_hash()], **extra)
        folder = certificate if norm == "linf" else f"{certificate}-{norm}"
        return units.get(layout.certify_unit(run, model, folder, epsilon), key, compute)

    start = time.perf_counter()
    models = {name: loaded[name].model for name in loaded}
    threats = section.threat_sections()
    worst = {norm: {} for norm in threats}  # per threat model: the per-sample worst case per (model, ε)
    results = {key: [] for key in THREAT_TABLES}
    for norm, threat in threats.items():  # each threat model's attacks, budgets and rows (``norm``)
        tables = evaluate_models(models, x_test, y_test, threat, seed, units=unit, worst=worst[norm])
        flagged = flagged_models(tables, {name for name in loaded if loaded[name].degenerate}, run,
                                 {name for name in loaded if is_stochastic(loaded[name].model)}, cfg.n_runs) \
            if threat.escalation else set()
        if flagged:  # the first pass's units are reused
            tables = evaluate_models(models, x_test, y_test, threat, seed, units=unit, worst=worst[norm],
                                     escalate=flagged)
        for key, records in tables.items():
            results[key] += records
    results["certified"] = certify_models(models, x_test, y_test, section.epsilons, cfg.certify, seed,
                                          worst["linf"], units=certify_unit,
                                          threats={norm: (t.epsilons, worst[norm]) for norm, t in threats.items()})
    radii = radius_records(models, x_test, y_test, cfg.certify, seed, units=certify_unit)
    if radii:  # each verified point's robust radius (certify.exact.radius_points)
        results["radii"] = radii
    if section.universal is not None:  # universal perturbations (own units; helpers/stages/universal.py)
        results.update(universal_run(cfg, run, seed, loaded, x_test, y_test, worst["linf"], units,
                                    shared))
    results["attack_costs"] = unit_costs(units, layout)
    tables = {key: [{"run": run, "seed": seed, **r} for r in records] for key, records in results.items()}
    worst = [r for r in results["robustness"]
             if r["norm"] == "linf" and r["attack"] == WORST_CASE and r["epsilon"] == max(section.epsilons)]
    message = (f"run {run}: worst case at ε={max(section.epsilons):g}: "
               + ", ".join(f"{r['model']}={r['accuracy']:.2f}" for r in worst)
               + f" ({units.computed} units computed, {units.reused} reused; {time.perf_counter() - start:.1f} s)")
    return tables, message


def planned_units(cfg) -> int:
    """The units of one run before escalation, were every certificate to apply to every model:
    in each threat model each attack at each ε, its masking attack at the masking budgets and
    each certificate at each ε it runs at; each smoothed certificate and the radii once, per model
    (the progress bar's plan; each finished run corrects it)."""
    attacks, certificates = set(), 0
    for norm, threat in cfg.attack.threat_sections().items():
        attacks |= {(a, float(e)) for a in threat.methods for e in threat.epsilons}
        attacks |= {(threat.large_attack, float(e)) for e in threat.masking_epsilons}
        certificates += sum(CERTIFICATES[c](cfg.certify.params[c]).runs_at(float(e)) for c in cfg.certify.methods
                            if "smoothed" not in CERTIFICATES[c].tags and norm in CERTIFICATES[c].norms
                            for e in threat.epsilons)
    certificates += sum("smoothed" in CERTIFICATES[c].tags for c in cfg.certify.methods)
    certificates += "radii" in stage_columns(cfg)  # one radius unit per model
    return len(cfg.models) * (len(attacks) + certificates) + planned_universal(cfg)


def stage_columns(cfg) -> dict[str, list[str]]:
    """The attack stage's tables and their columns: those every threat model writes to, its rows
    marked by ``norm`` (``COLUMNS``), and with ``attack.universal`` the universal perturbations'
    tables; with ``exact`` in ``certify.methods`` the certified table's complete-verifier columns
    and, with its ``radius_points``, ``radii``."""
    columns = dict(COLUMNS)
    columns["attack_costs"] = COST_COLUMNS
    if cfg.attack.universal is not None:
        columns.update(UNIVERSAL_COLUMNS)
    if "exact" in cfg.certify.methods:  # a complete verifier's shares, and what its counterexamples leave
        columns["certified"] = [*columns["certified"], "refuted", "undecided", "upper"]
        if cfg.certify.params["exact"].radius_points:
            columns["radii"] = RADIUS_COLUMNS
    return columns


def flagged_models(results: dict[str, list[dict]], degenerate: set[str], run: int, stochastic=(),
                   runs: int = 1) -> set[str]:
    """The models of one run that a gradient-masking check flags (degenerate ones are not
    checked; ``stochastic``: the randomised ones, for the EOT check; ``runs``: the study's, over
    which each model's family of tests is adjusted), from the first pass of ``evaluate_models``:
    the same decisions as the report's checks of that run."""
    outcomes = pd.DataFrame([{"run": run, **r} for r in results["outcomes"]], columns=["run", *COLUMNS["outcomes"]])
    checks = run_checks(outcomes, None, {(name, run) for name in degenerate}, stochastic, runs)
    return set(checks.loc[checks["status"] == "FLAG", "model"])


def decision_boundaries(cfg, run: int = 0, resolution: int = BOUNDARY_RESOLUTION) -> dict[str, np.ndarray]:
    """For 2-D data: the arrays of the report's decision-boundary figure for ``run``.

    ``grid`` (R,) the coordinates of each axis over [0, 1]; ``x`` (N, 2) and ``y`` (N,) the
    test points; per model ``<name>__region`` (R, R) its predicted class over the grid,
    ``<name>__x_adv`` (N, 2) each point's PGD example at ``interpret.epsilon`` and
    ``<name>__flipped`` (N,) whether that example is misclassified.
    """
    seed = run_seeds(cfg.seed, cfg.n_runs)[run]
    x, y = load_test_split(cfg, run, "cpu")
    grid = np.linspace(0, 1, resolution)
    gx, gy = np.meshgrid(grid, grid)
    points = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32)
    pgd = build_attack("pgd", cfg.attack, seed=seed)
    arrays = {"grid": grid, "x": x.numpy(), "y": y.numpy()}
    for name, (model, _, _) in load_models(cfg, run, "cpu").items():
        x_adv = pgd(model, x, y, cfg.interpret.epsilon)
        arrays[f"{name}__region"] = predict(model, points).numpy().reshape(gx.shape)
        arrays[f"{name}__x_adv"] = x_adv.numpy()
        arrays[f"{name}__flipped"] = (predict(model, x_adv) != y).numpy()
    return arrays


def run(cfg, log=None) -> dict[str, pd.DataFrame]:
    """Attack every model of every run on its held-out test split (``evaluate_models``); a
    progress bar counts the units as they finish, each run's message goes to ``log`` (default:
    a line above the bar).

    Returns and writes the tidy tables of ``stage_columns``, each with ``run`` and ``seed``
    columns, among them ``robustness`` (model, attack, norm, epsilon, accuracy, n, n_correct,
    distance, including the per-sample ``worst_case``), ``transfer`` (source, target, norm,
    epsilon, accuracy, n), ``large_epsilon`` (PGD at the masking budgets) and ``by_class`` (the
    accuracy of each class); for 2-D data also ``decision_boundaries``.
    """
    layout = Layout(cfg.results_dir)
    begin_stage(cfg, "attack")
    results = map_runs(cfg, _attack_run, log, stage="attack", units_per_run=planned_units(cfg))
    frames = {key: pd.DataFrame([r for tables in results for r in tables[key]], columns=["run", "seed", *columns])
              for key, columns in stage_columns(cfg).items()}
    for key, frame in frames.items():
        write_csv(frame, layout.table(key))
    if cfg.dataset.input_shape == (2,):
        save_arrays(layout.arrays("decision_boundaries"), **decision_boundaries(cfg))
    finish_stage(cfg, "attack")
    return frames
