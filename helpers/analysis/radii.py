"""Each point's robust radius (``certificates.exact.robust_radii``) in a study: per model and
run, the points the complete verifier's ``radius_points`` names, their certified radius (the
largest ε proved), refuted radius (the smallest ε with a counterexample) and attack radius
(the smallest ε its PGD breaks), with the time each point took."""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..certificates.exact import robust_radii
from ..registry import CERTIFICATES

COLUMNS = ["model", "index", "label", "certified", "refuted", "attacked", "decided", "seconds", "verifications"]
VERIFIER = "exact"


def radius_records(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, section, seed: int,
                   units=None) -> list[dict]:
    """One record per model and point (``COLUMNS``; ``index`` into ``x``) where ``section``
    (a config's ``CertifySection``) lists ``exact`` with ``radius_points`` > 0 and it applies;
    ``units(model, certificate, epsilon, compute, norm=...)`` finds finished units (one per
    model, certificate ``exact``, epsilon None, norm ``radius``)."""
    if VERIFIER not in section.methods or section.params[VERIFIER].radius_points == 0:
        return []
    params = section.params[VERIFIER]
    records = []
    for name, model in models.items():
        entry = CERTIFICATES[VERIFIER](params, seed=seed)
        if not entry.applies(model)[0]:
            continue
        chosen = entry.chosen(len(x))[:params.radius_points]
        on_cpu = copy.deepcopy(model).cpu() if x.is_cuda else model  # the verifier runs on the CPU

        def compute():
            found = robust_radii(entry, on_cpu, x[chosen].cpu(), y[chosen].cpu(), params.radius_high,
                                 params.radius_tolerance)
            return {"index": chosen, **found}

        done = compute() if units is None else units(name, VERIFIER, None, compute, norm="radius")
        labels = y.cpu().numpy()[done["index"]]
        for k, index in enumerate(done["index"]):
            records.append({"model": name, "index": int(index), "label": int(labels[k]),
                            **{c: done[c][k].item() for c in COLUMNS[3:]}})
    return records
