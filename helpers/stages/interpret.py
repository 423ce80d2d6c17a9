"""The interpret stage (``03_interpret.ipynb``): what the models look at, before and after attack.

For each run the same ``n_images`` test images are explained for every model, clean and after
PGD at ``interpret.epsilon`` crafted against that model, for the true class. The unit of work
is one attribution method on one model of one run; its key holds the method's parameters,
the interpret settings, the PGD parameters, the run's seed, the model's checkpoint key and
the code of the stage, the method and PGD.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..attacks import build_attack, predict
from ..config import resolve_device
from ..explain import constant_maps, infidelity_score, rank_correlation, sensitivity_score, shifted, top_k_overlap
from ..registry import ATTACKS, ATTRIBUTIONS
from ..store.files import save_arrays, write_csv
from ..store.layout import Layout
from ..store.provenance import begin_stage, finish_stage
from ..store.units import COST_COLUMNS, Units, stage_code_hash, unit_costs, unit_key
from . import progress
from .execution import map_runs
from .inputs import load_models, load_test_split, seeded_subset

SCORES = ("infidelity_clean", "sensitivity_clean", "infidelity_adv", "sensitivity_adv")
BASELINES = ("spearman_chance", "top_k_chance", "spearman_random")
SETTINGS = ("epsilon", "n_images", "top_k_fraction", "panel_images", "metric_samples", "infidelity_stdev",
            "sensitivity_radius")


def explain_unit(cfg, model, method: str, seed: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, np.ndarray]:
    """One unit: ``method`` on ``model`` for images ``x`` (N, ...) clean and after PGD.

    Arrays: ``applicable`` and ``note`` (why not), per image ``clean_pred`` and ``adv_pred``
    (the predicted labels) and ``clean_correct`` and ``adv_correct``, and where the method applies ``spearman`` and ``top_k_overlap`` between
    the clean and adversarial |maps|, their chance levels (``BASELINES``: the same metrics
    between the clean maps of two *different* images, and between the maps of two random
    inputs, which for a PCA-fed model still share whatever the PCA imposes),
    ``constant_map`` (a clean or adversarial map is constant: its metrics are undefined, not
    perfect) and Captum's infidelity and sensitivity_max of each map (``SCORES``); the first
    ``panel_images`` adversarial inputs and maps (``x_adv``, ``clean_map``, ``adv_map``) for
    the report's panels.
    """
    it = cfg.interpret
    x_adv = build_attack("pgd", cfg.attack, seed=seed)(model, x, y, it.epsilon)
    explainer = ATTRIBUTIONS[method](it.params[method], seed=seed)
    applies, reason = explainer.applies(model)
    clean_pred, adv_pred = predict(model, x), predict(model, x_adv)
    unit = {"applicable": np.array(applies), "note": np.array(reason),
            "clean_pred": clean_pred.cpu().numpy(), "adv_pred": adv_pred.cpu().numpy(),
            "clean_correct": (clean_pred == y).cpu().numpy(), "adv_correct": (adv_pred == y).cpu().numpy(),
            "x_adv": x_adv[: it.panel_images].cpu().numpy()}
    if not applies:
        return unit
    metric = dict(n_samples=it.metric_samples, seed=seed)
    maps = {}
    for kind, inputs in (("clean", x), ("adv", x_adv)):
        maps[kind] = explainer.attribute(model, inputs, y)
        unit[f"infidelity_{kind}"] = infidelity_score(model, inputs, maps[kind], y, stdev=it.infidelity_stdev, **metric)
        unit[f"sensitivity_{kind}"] = sensitivity_score(explainer, model, inputs, y, radius=it.sensitivity_radius, **metric)
    k = max(1, int(round(it.top_k_fraction * x[0].numel())))
    unit["spearman"] = rank_correlation(maps["clean"], maps["adv"])
    unit["top_k_overlap"] = top_k_overlap(maps["clean"], maps["adv"], k)
    unit["constant_map"] = constant_maps(maps["clean"]) | constant_maps(maps["adv"])
    gen = torch.Generator(device=x.device).manual_seed(seed)
    random_maps = explainer.attribute(model, torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype), y)
    unit["spearman_chance"] = rank_correlation(maps["clean"], shifted(maps["clean"]))
    unit["top_k_chance"] = top_k_overlap(maps["clean"], shifted(maps["clean"]), k)
    unit["spearman_random"] = rank_correlation(random_maps, shifted(random_maps))
    unit["clean_map"] = maps["clean"][: it.panel_images].cpu().numpy()
    unit["adv_map"] = maps["adv"][: it.panel_images].cpu().numpy()
    return unit


def unit_rows(unit: dict, name: str, method: str, run: int, seed: int, epsilon: float) -> list[dict]:
    """The stability table's rows (one per image) of one unit."""
    applies = bool(unit["applicable"])
    base = {"model": name, "run": run, "seed": seed, "method": method, "applicable": applies,
            "note": str(unit["note"]), "epsilon": epsilon}
    if not applies:
        return [{**base, "image": i, "spearman": np.nan, "top_k_overlap": np.nan,
                 "clean_correct": bool(c), "adv_correct": bool(a)}
                for i, (c, a) in enumerate(zip(unit["clean_correct"], unit["adv_correct"]))]
    return [{**base, "image": i, "spearman": unit["spearman"][i], "top_k_overlap": unit["top_k_overlap"][i],
             **{key: unit[key][i] for key in BASELINES},
             "spearman_above_chance": unit["spearman"][i] - unit["spearman_chance"][i],
             "constant_map": bool(unit["constant_map"][i]),
             **{key: float(unit[key][i]) for key in SCORES},
             "clean_correct": bool(unit["clean_correct"][i]), "adv_correct": bool(unit["adv_correct"][i])}
            for i in range(len(unit["clean_correct"]))]


def _interpret_run(cfg, run: int, seed: int):
    layout, device, it = Layout(cfg.results_dir), resolve_device(cfg), cfg.interpret
    x_all, y_all = load_test_split(cfg, run, device)
    keep = torch.as_tensor(seeded_subset(cfg, run, y_all.cpu().numpy(), it.n_images), device=device)
    x, y = x_all[keep], y_all[keep]
    panel = {"x": x[: it.panel_images].cpu().numpy(), "y": y[: it.panel_images].cpu().numpy()}
    units, shared = Units(on_unit=progress.unit_finished), stage_code_hash("interpret")
    settings = {key: getattr(it, key) for key in SETTINGS}
    frames = []
    for name, (model, checkpoint, _) in load_models(cfg, run, device).items():
        rows = []
        for method in it.methods:
            key = unit_key(stage="interpret", method=method, params=it.params[method].to_dict(), settings=settings,
                           pgd=cfg.attack.params["pgd"].to_dict(), seed=seed, checkpoint=checkpoint,
                           code=[shared, ATTRIBUTIONS[method].code_hash(), ATTACKS["pgd"].code_hash()])
            unit = units.get(layout.interpret_unit(run, name, method), key,
                             lambda: explain_unit(cfg, model, method, seed, x, y))
            rows += unit_rows(unit, name, method, run, seed, it.epsilon)
            panel[f"{name}__x_adv"] = unit["x_adv"]
            panel[f"{name}__clean_pred"] = unit["clean_pred"][: it.panel_images]
            panel[f"{name}__adv_pred"] = unit["adv_pred"][: it.panel_images]
            if bool(unit["applicable"]):
                panel[f"{name}__{method}__clean"], panel[f"{name}__{method}__adv"] = unit["clean_map"], unit["adv_map"]
        frames.append(pd.DataFrame(rows))
    message = (f"run {run}: attributions for {len(cfg.models)} models x {len(it.methods)} methods "
               f"on {len(x)} images ({units.computed} units computed, {units.reused} reused)")
    costs = pd.DataFrame(unit_costs(units, layout), columns=COST_COLUMNS).assign(run=run, seed=seed)
    return (pd.concat(frames, ignore_index=True), panel if run == 0 else None, costs), message


def run(cfg, log=None) -> pd.DataFrame:
    """Explain held-out images of every model, clean and attacked, with every method; a
    progress bar counts the units as they finish, each run's message goes to ``log`` (default:
    a line above the bar).

    Returns the tidy stability table (one row per model, run, method and image: Spearman rank
    correlation and top-k overlap between clean and adversarial |maps|, and Captum's
    infidelity and sensitivity_max of the clean and of the adversarial map), written as
    ``attribution_stability``; the maps of run 0 go to ``attribution_maps`` (with the panel
    images' true labels ``y`` and each model's clean and adversarial predictions).
    """
    layout = Layout(cfg.results_dir)
    begin_stage(cfg, "interpret")
    results = map_runs(cfg, _interpret_run, log, stage="interpret",
                       units_per_run=len(cfg.models) * len(cfg.interpret.methods))
    stability = pd.concat([frame for frame, _, _ in results], ignore_index=True)
    write_csv(stability, layout.table("attribution_stability"))
    costs = pd.concat([frame for _, _, frame in results], ignore_index=True)
    write_csv(costs[["run", "seed", *COST_COLUMNS]], layout.table("interpret_costs"))
    save_arrays(layout.arrays("attribution_maps"), **results[0][1])
    finish_stage(cfg, "interpret")
    return stability
