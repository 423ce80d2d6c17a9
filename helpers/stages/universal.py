"""The attack stage's universal perturbations (``attack.universal``; docs/universal.md).

A unit is one universal perturbation δ: (run, model, ε, target class or none), crafted on the
run's training split. Its key holds the section's parameters, ε, the target, the run's seed,
the key of the model's checkpoint and the code of this module and of ``attacks/universal.py``
(and the stage's shared code); it stores δ. Evaluation on the test points the per-input
attacks use is cheap and runs every time: per model and ε the fooling rate and accuracy under
δ, beside a random δ of the same norm (the baseline) and the per-input worst case; the transfer
matrix (each model's δ on every model); per target class the targeted success rate. Run 0's
perturbations are saved for the report's pictures.
"""
from __future__ import annotations

import numpy as np
import torch

from ..attacks.base import derived_seed, reseed
from ..attacks.universal import fooling, fooling_rate, random_perturbation, targeted_success, universal_perturbation
from ..registry import source_hash
from ..store.files import save_arrays
from ..store.layout import UNTARGETED, Layout, delta_name
from ..store.units import unit_key
from ..store.graph import KEYED_APART, files
from .inputs import load_train_split

COLUMNS = {
    "universal": ["model", "epsilon", "target", "fooling_rate", "accuracy", "clean_accuracy", "success_rate",
                  "baseline_fooling_rate", "baseline_accuracy", "baseline_success_rate", "worst_case_accuracy",
                  "beyond_worst_case", "linf", "n", "n_clean_correct", "only_universal", "only_random"],
    "universal_transfer": ["source", "target_model", "epsilon", "fooling_rate", "accuracy", "n", "only_source",
                           "only_own"],
}


def targets_of(section, n_classes: int) -> list[int | None]:
    """None (untargeted), then each target class when ``section.targeted``."""
    if not section.targeted:
        return [None]
    return [None, *(range(n_classes) if section.targets is None else section.targets)]


def planned_units(cfg) -> int:
    """Universal perturbations per run (the progress bar's plan)."""
    section = cfg.attack.universal
    return 0 if section is None else len(cfg.models) * len(section.epsilons) * len(targets_of(section, cfg.n_classes))


def only(first: dict, second: dict) -> tuple[int, int]:
    """The points ``first`` fools and ``second`` does not, and the reverse (two ``fooling``
    results on the same points; a randomised model's point counts as fooled when at least half
    its passes are)."""
    a, b = np.asarray(first["fooled"]) >= 0.5, np.asarray(second["fooled"]) >= 0.5
    return int((a & ~b).sum()), int((~a & b).sum())


def universal_run(cfg, run: int, seed: int, loaded: dict, x_test: torch.Tensor, y_test: torch.Tensor, worst: dict,
                  units, shared: str) -> dict[str, list[dict]]:
    """Craft (or reuse) every universal perturbation of ``run`` and evaluate them on ``x_test``
    (N, ...) and ``y_test`` (N,): the test points the per-input attacks used, whose per-sample
    worst case per (model, ε) is ``worst``. ``loaded``: ``inputs.load_models``; ``units``: the
    stage's ``Units``; ``shared``: the stage's code hash. Returns the records of the
    ``universal`` and ``universal_transfer`` tables (without run and seed)."""
    section, layout = cfg.attack.universal, Layout(cfg.results_dir)
    samples = cfg.attack.eval_samples
    code = [shared, source_hash(files(KEYED_APART["attack"]))]
    params = {k: v for k, v in section.to_dict().items() if k not in ("epsilons", "targets", "targeted")}
    x_train, y_train = load_train_split(cfg, run, x_test.device)
    deltas, rows, transfer = {}, [], []
    for name, (model, checkpoint, _) in loaded.items():
        for epsilon in map(float, section.epsilons):
            for target in targets_of(section, cfg.n_classes):
                key = unit_key(stage="universal", params=params, epsilon=epsilon, target=target, seed=seed,
                               checkpoint=checkpoint, code=code)

                def craft():
                    delta = universal_perturbation(model, x_train, y_train, epsilon, target=target, steps=section.steps,
                                                   batch_size=section.batch_size, step_ratio=section.step_ratio,
                                                   loss=section.loss, seed=derived_seed(seed, 4, 0 if target is None
                                                                                        else target + 1),
                                                   samples=section.eot_samples)
                    return {"delta": delta.cpu().numpy()}

                path = layout.universal_unit(run, name, epsilon, UNTARGETED if target is None else target)
                deltas[(name, epsilon, target)] = torch.as_tensor(units.get(path, key, craft)["delta"])
    for name, (model, _, _) in loaded.items():
        reseed(model, seed, 5)
        clean = fooling(model, x_test, y_test, torch.zeros(x_test.shape[1:]), samples)["clean"]
        for epsilon in map(float, section.epsilons):
            baseline_delta = random_perturbation(x_test.shape[1:], epsilon, derived_seed(seed, 6))
            baseline = fooling(model, x_test, y_test, baseline_delta, samples, clean=clean)
            worst_case = worst.get((name, epsilon))
            for target in targets_of(section, cfg.n_classes):
                delta = deltas[(name, epsilon, target)]
                result = fooling(model, x_test, y_test, delta, samples, clean=clean)
                row = {"model": name, "epsilon": epsilon, "target": UNTARGETED if target is None else str(target),
                       "fooling_rate": fooling_rate(result), "accuracy": float(np.mean(result["perturbed"])),
                       "clean_accuracy": float(np.mean(clean)), "success_rate": np.nan,
                       "baseline_fooling_rate": fooling_rate(baseline),
                       "baseline_accuracy": float(np.mean(baseline["perturbed"])), "baseline_success_rate": np.nan,
                       "worst_case_accuracy": np.nan, "beyond_worst_case": np.nan,
                       "linf": float(delta.abs().max()), "n": len(y_test), "n_clean_correct": float(np.sum(clean)),
                       # the points one δ fools and the other does not (the masking checks' paired test)
                       **dict(zip(("only_universal", "only_random"), only(result, baseline)))}
                if target is None and worst_case is not None:
                    # Points δ fools that survived every per-input attack: a universal δ is one
                    # candidate per point, so the per-input attacks should have found these.
                    survived = np.asarray(worst_case, dtype=float) >= 0.5
                    wrong = np.asarray(result["perturbed"], dtype=float) < 0.5
                    row["worst_case_accuracy"] = float(np.mean(worst_case))
                    row["beyond_worst_case"] = int((survived & wrong).sum())
                if target is not None:
                    row["success_rate"] = targeted_success(model, x_test, y_test, delta, target, samples)[0]
                    row["baseline_success_rate"] = targeted_success(model, x_test, y_test, baseline_delta, target,
                                                                    samples)[0]
                rows.append(row)
    fooled = {}
    for source in loaded:
        for name, (model, _, _) in loaded.items():
            reseed(model, seed, 7)
            clean = fooling(model, x_test, y_test, torch.zeros(x_test.shape[1:]), samples)["clean"]
            for epsilon in map(float, section.epsilons):
                result = fooling(model, x_test, y_test, deltas[(source, epsilon, None)], samples, clean=clean)
                fooled[(source, name, epsilon)] = result
                transfer.append({"source": source, "target_model": name, "epsilon": epsilon,
                                 "fooling_rate": fooling_rate(result), "accuracy": float(np.mean(result["perturbed"])),
                                 "n": len(y_test)})
    for row in transfer:  # against the model's own δ on the same points
        own = fooled[(row["target_model"], row["target_model"], row["epsilon"])]
        row["only_source"], row["only_own"] = only(fooled[(row["source"], row["target_model"], row["epsilon"])], own)
    if run == 0:  # the report draws run 0's perturbations
        save_arrays(layout.arrays("universal_perturbations"),
                    **{delta_name(*k): v.cpu().numpy() for k, v in deltas.items()})
    return {"universal": rows, "universal_transfer": transfer}
