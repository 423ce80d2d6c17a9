"""Circuits as they run on hardware: each circuit's noise channels and shots beside its clean
accuracy and its bracket per ε."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...models.noise import CHANNELS
from ..figures import OKABE_ITO
from ..section import SECTIONS, Section
from ..tables import markdown_table


CHANNEL_LABELS = {"depolarizing": "depolarising", "amplitude_damping": "amplitude damping",
                  "phase_damping": "phase damping", "global_depolarizing": "global depolarising",
                  "readout_flip": "read-out flip"}


def hardware_settings(spec: dict) -> dict:
    """A model's config entry (plain data) as its hardware settings: ``shots`` (None: exact)
    and the strength of every channel (0 for a classical model or a noise-free circuit)."""
    noise = spec.get("noise") or {}
    return {"shots": spec.get("shots"), **{c: float(noise.get(c, 0.0)) for c in CHANNELS}}


def device_label(noise: dict) -> str | None:
    """The device a circuit runs on, with its qubits when named: "fake_manila (qubits 0, 1, 2)"."""
    if not noise.get("device"):
        return None
    qubits = noise.get("qubits")
    return noise["device"] + (f" (qubits {', '.join(map(str, qubits))})" if qubits else "")


def hardware_label(settings: dict, device: str | None = None) -> str:
    """"exact", or what makes a circuit noisy: "depolarising 0.01, 1000 shots", "fake_manila, 1000 shots"."""
    parts = ([device] if device else []) + [f"{CHANNEL_LABELS[c]} {settings[c]:g}" for c in CHANNELS if settings[c] > 0]
    if settings["shots"] is not None:
        parts.append(f"{settings['shots']} shots")
    return ", ".join(parts) or "exact"


def hardware_table(bracket: pd.DataFrame, models: dict) -> pd.DataFrame:
    """The bracket of every circuit beside its noise and shots: per model and ε its settings,
    a label, clean accuracy (ε = 0) and the certified and attacked accuracy with intervals.
    Empty when no model of the experiment has noise or shots (nothing to compare)."""
    vqcs = {name: spec for name, spec in models.items() if spec.get("type") == "vqc"}
    settings = {name: hardware_settings(spec) for name, spec in vqcs.items()}
    devices = {name: device_label(spec.get("noise") or {}) for name, spec in vqcs.items()}
    if not any(s["shots"] is not None or any(s[c] > 0 for c in CHANNELS) or devices[name]
               for name, s in settings.items()):
        return pd.DataFrame()
    rows = []
    for name, s in settings.items():
        b = bracket[bracket["model"] == name]
        clean = b.loc[b["epsilon"] == 0.0, "attacked"]
        for r in b.itertuples(index=False):
            rows.append({"model": name, "setting": hardware_label(s, devices[name]), **s, "epsilon": r.epsilon,
                         "clean": float(clean.iloc[0]) if len(clean) else np.nan,
                         "certified": r.certified, "certified_low": r.certified_low, "certified_high": r.certified_high,
                         "attacked": r.attacked, "attacked_low": r.attacked_low, "attacked_high": r.attacked_high})
    return pd.DataFrame(rows)



def plot_hardware(hardware: pd.DataFrame, epsilons) -> plt.Figure:
    """One panel per budget: every circuit (its noise and shots on the x axis, in config
    order) with its clean accuracy, its attacked accuracy (the worst case over every attack,
    an upper bound) and its certified accuracy (a lower bound), means over runs with 95%
    intervals; a missing certified mark means no certificate applies."""
    order = list(dict.fromkeys(hardware["model"]))
    fig, axes = plt.subplots(1, len(epsilons), figsize=(1.2 + 0.9 * len(order) * len(epsilons), 4.2), sharey=True,
                             squeeze=False)
    for ax, epsilon in zip(axes[0], epsilons):
        h = hardware[hardware["epsilon"] == epsilon].set_index("model").loc[order]
        x = np.arange(len(order))
        ax.plot(x - 0.15, h["clean"], "o", color="0.4", label="clean")
        for column, shift, color, marker, label in (("attacked", 0.0, OKABE_ITO[5], "v", "attacked (upper bound)"),
                                                     ("certified", 0.15, OKABE_ITO[2], "^", "certified (lower bound)")):
            low, high = h[f"{column}_low"].clip(0, 1), h[f"{column}_high"].clip(0, 1)
            ax.errorbar(x + shift, h[column], yerr=[h[column] - low, high - h[column]], fmt=marker, color=color,
                        ms=5, capsize=2, label=label)
        ax.set_xticks(x, [f"{m}\n{s}" for m, s in zip(order, h["setting"])], rotation=60, ha="right", fontsize=7)
        ax.set(title=f"ε = {epsilon:g}", ylim=(-0.02, 1.02))
    axes[0, 0].set_ylabel("accuracy")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig



def hardware_section(hardware: pd.DataFrame) -> list[str]:
    """Each circuit's noise and shots beside its clean accuracy and its bracket per ε."""
    if hardware.empty:
        return []
    epsilons = sorted(e for e in hardware["epsilon"].unique() if e > 0)
    rows = []
    for model, h in hardware.groupby("model", sort=False):
        h = h.set_index("epsilon")
        cells = {}
        for e in epsilons:
            r = h.loc[e]
            lower = "no certificate" if pd.isna(r["certified"]) else f"{r['certified']:.3f}"
            cells[f"ε={e:g}"] = f"{lower} – {r['attacked']:.3f}"
        rows.append({"model": model, "noise and shots": h["setting"].iloc[0], "clean": f"{h['clean'].iloc[0]:.3f}",
                     **cells})
    return ["", "## Circuits as they run on hardware: noise and shots", "",
            "Each circuit's noise channels and shots (docs/noise.md) beside its clean accuracy and its bracket "
            "(certified – attacked, mean over runs). Accuracy of a circuit with shots is an expectation over its "
            "sampled predictions, and its attacks average their gradients over samples (EOT).", "",
            markdown_table(pd.DataFrame(rows)), ""]


@SECTIONS.register
class Hardware(Section):
    name = "hardware"
    order = 70
    title = "Circuits as they run on hardware: noise and shots"
    about = """Where circuits have noise channels or shots (docs/noise.md): each circuit's settings beside its
clean accuracy and its bracket (certified – attacked, mean over runs) at three budgets. Accuracy of a
circuit with shots is an expectation over its sampled predictions, and its attacks average their
gradients over samples (EOT)."""
    outputs = ("hardware",)
    drawn = ("hardware",)

    @classmethod
    def tables(cls, report):
        return {"hardware": hardware_table(report.tables["bracket"], report.cfg.section("models"))}

    @classmethod
    def figures(cls, report):
        table = report.tables["hardware"]
        if table.empty:
            return {}
        nonzero = sorted(e for e in table["epsilon"].unique() if e > 0)
        shown = [nonzero[i] for i in sorted({round(j * (len(nonzero) - 1) / 2) for j in range(3)})]
        return {"hardware": plot_hardware(table, shown)}

    @classmethod
    def text(cls, report):
        return hardware_section(report.tables["hardware"])

    @classmethod
    def show(cls, report):
        return cls.images(report) or ["no circuit of this config has noise or shots"]
