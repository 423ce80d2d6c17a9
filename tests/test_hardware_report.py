"""The report's view of circuits as they run on hardware: each circuit's noise and shots beside
its bracket, and nothing for an experiment without them."""
import numpy as np
import pandas as pd

from helpers.report.sections.hardware import (device_label, hardware_label, hardware_section, hardware_settings,
                                              hardware_table, plot_hardware)


def bracket(models):
    rows = []
    for i, m in enumerate(models):
        for e in (0.0, 0.05, 0.1):
            attacked = 0.9 - i * 0.1 - 2 * e
            rows.append({"model": m, "epsilon": e, "certified": np.nan if m == "vqc_shots" else attacked - 0.2,
                         "certified_low": attacked - 0.25, "certified_high": attacked - 0.15, "attacked": attacked,
                         "attacked_low": attacked - 0.05, "attacked_high": attacked + 0.05})
    return pd.DataFrame(rows)


MODELS = {"mlp": {"type": "mlp", "hidden": [8]},
          "vqc": {"type": "vqc", "n_qubits": 4, "noise": {"depolarizing": 0.0}, "shots": None},
          "vqc_noisy": {"type": "vqc", "noise": {"depolarizing": 0.01, "readout_flip": 0.02}, "shots": None},
          "vqc_shots": {"type": "vqc", "noise": {}, "shots": 100}}


def test_labels_name_what_makes_a_circuit_noisy():
    assert hardware_label(hardware_settings(MODELS["vqc"])) == "exact"
    assert hardware_label(hardware_settings(MODELS["vqc_noisy"])) == "depolarising 0.01, read-out flip 0.02"
    assert hardware_label(hardware_settings(MODELS["vqc_shots"])) == "100 shots"
    on_device = {"type": "vqc", "noise": {"device": "fake_manila", "qubits": [0, 1, 2]}, "shots": 1000}
    assert hardware_label(hardware_settings(on_device), device_label(on_device["noise"])) == \
        "fake_manila (qubits 0, 1, 2), 1000 shots"


def test_a_circuit_on_a_device_is_a_hardware_row_even_without_channels_or_shots():
    models = {"vqc": MODELS["vqc"], "vqc_device": {"type": "vqc", "noise": {"device": "fake_manila"}}}
    table = hardware_table(bracket(models), models)
    assert set(table.loc[table["model"] == "vqc_device", "setting"]) == {"fake_manila"}


def test_the_table_puts_every_circuit_beside_its_bracket_and_is_empty_without_noise_or_shots():
    table = hardware_table(bracket(MODELS), MODELS)
    assert list(dict.fromkeys(table["model"])) == ["vqc", "vqc_noisy", "vqc_shots"]  # circuits only
    row = table[(table["model"] == "vqc_noisy") & (table["epsilon"] == 0.1)].iloc[0]
    assert np.isclose(row["clean"], 0.7) and np.isclose(row["attacked"], 0.5) and row["depolarizing"] == 0.01
    exact_only = {name: spec for name, spec in MODELS.items() if name in ("mlp", "vqc")}
    assert hardware_table(bracket(exact_only), exact_only).empty
    assert hardware_section(pd.DataFrame()) == []


def test_the_summary_and_figure_show_every_circuit_and_say_where_no_certificate_applies():
    table = hardware_table(bracket(MODELS), MODELS)
    text = "\n".join(hardware_section(table))
    assert "| vqc_shots | 100 shots | 0.600 | no certificate – 0.500 | no certificate – 0.400 |" in text
    fig = plot_hardware(table, [0.05, 0.1])
    assert [ax.get_title() for ax in fig.axes] == ["ε = 0.05", "ε = 0.1"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["vqc\nexact", "vqc_noisy\ndepolarising 0.01, "
                                                                     "read-out flip 0.02", "vqc_shots\n100 shots"]
