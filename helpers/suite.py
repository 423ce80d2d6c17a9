"""One call for a model of your own, from your own notebook or script: the attack suite, the
certificates, the masking checks (with escalation) and the data's ceiling, as the attack and
report stages run them, on a model object and your test points, without a config file or make.

    import helpers
    tables = helpers.evaluate(model, x_test, y_test, attack={"epsilons": [0, 0.05, 0.1]})
    tables["robustness"], tables["certified"], tables["masking"], tables["ceiling"]

``attack`` and ``certify`` are what a config's ``attack`` and ``certify`` sections hold
(docs/configs.md), defaults included; ``model`` is one ``nn.Module`` mapping a float batch
(B, ...) in [0, 1] to logits, or a mapping name -> module (then transfer between them is
measured too). Every table is the tidy table the attack or report stage writes for one run.
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch
from torch import nn

from .analysis.ceiling import ceiling_rows
from .analysis.certification import certify_models
from .analysis.evaluation import COLUMNS, THREAT_TABLES, evaluate_models
from .attacks.base import is_stochastic
from .config import AttackSection, CertifySection
from .models import Model
from .models.own import Wrapped
from .analysis.masking import escalation_checks, run_checks


def _inputs(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` as float32 in [0, 1] and ``y`` as int64 labels of the same length; a ValueError names what is wrong."""
    x, y = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y).long()
    if x.ndim < 2 or len(x) != len(y) or y.ndim != 1:
        raise ValueError(f"x_test must be (N, ...) and y_test (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"x_test must lie in [0, 1] (put any normalisation inside the model), got "
                         f"[{float(x.min()):g}, {float(x.max()):g}]")
    return x, y


def _frames(records: dict[str, list[dict]]) -> dict[str, pd.DataFrame]:
    return {key: pd.DataFrame([{"run": 0, **r} for r in records[key]], columns=["run", *COLUMNS[key]])
            for key in THREAT_TABLES}


def evaluate(model: nn.Module | Mapping[str, nn.Module], x_test, y_test, attack: Mapping | None = None,
             certify: Mapping | None = None, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Attack, certify and check ``model`` (or each model of a mapping) on ``x_test`` (N, ...)
    in [0, 1] with labels ``y_test`` (N,); returns the tables by name: ``robustness``,
    ``transfer``, ``large_epsilon``, ``by_class``, ``convergence``, ``escalation``,
    ``attack_traces``, ``masking`` (every gradient-masking check of the configured attacks),
    ``escalation_checks`` (each flag after the escalation attacks ran), each with a ``norm``
    column (rows of L∞ and, with an ``l2`` block, of L2), ``certified`` and ``ceiling``."""
    models = dict(model) if isinstance(model, Mapping) else {"model": model}
    for name, m in models.items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"model {name!r} is {type(m).__name__}, not a torch nn.Module")
        # A plain module is wrapped: certified as it is when it is a Sequential of layers with bound rules.
        models[name] = (m if isinstance(m, Model) else Wrapped(m)).eval()
    x, y = _inputs(x_test, y_test)
    section, certify_section = AttackSection.parse(attack, "attack"), CertifySection.parse(certify, "certify")
    stochastic = {name for name, m in models.items() if is_stochastic(m)}
    threats, units = section.threat_sections(), _memory()
    worst, per_threat = {norm: {} for norm in threats}, []
    for norm, threat in threats.items():
        frames = _frames(evaluate_models(models, x, y, threat, seed, units=units, worst=worst[norm]))
        checks = run_checks(frames["outcomes"], None, (), stochastic)
        flagged = set(checks.loc[checks["status"] == "FLAG", "model"])
        if flagged and threat.escalation:  # the stronger attacks, where a check flags a model (the first pass reused)
            frames = _frames(evaluate_models(models, x, y, threat, seed, units=units, worst=worst[norm],
                                             escalate=flagged))
        # The checks diagnose the configured suite (the first pass); what escalation made of a flag is its own table.
        frames["masking"] = checks.assign(norm=norm)
        frames["escalation_checks"] = escalation_checks(checks, frames["escalation"], frames["outcomes"],
                                                        threat.methods, (), stochastic).assign(norm=norm)
        per_threat.append(frames)
    tables = {key: pd.concat([frames[key] for frames in per_threat], ignore_index=True) for key in per_threat[0]}
    certified = certify_models(models, x, y, section.epsilons, certify_section, seed, worst["linf"],
                               threats={norm: (t.epsilons, worst[norm]) for norm, t in threats.items()})
    tables["certified"] = pd.DataFrame([{"run": 0, **r} for r in certified], columns=["run", *COLUMNS["certified"]])
    tables["ceiling"] = pd.DataFrame([{"run": 0, **row} for norm, t in threats.items()
                                      for row in ceiling_rows(x.numpy(), y.numpy(), t.epsilons, norm)])
    return tables


def _memory():
    """Units of work kept in memory for one call (the attack stage keeps them on disk): an
    attack on a model at a budget is computed once, and again only if it lacks arrays a
    later pass ``needs``."""
    done = {}

    def units(model, attack, epsilon, compute, needs=()):
        key = (model, attack, float(epsilon))
        if key not in done or not set(needs) <= set(done[key]):
            done[key] = compute()
        return done[key]

    return units
