"""The report is a list of sections: one that applies adds its tables, its summary text and
its masking checks without any other module knowing it; one that does not apply adds nothing;
the summary follows the sections' order."""
import pandas as pd
import pytest

from helpers.analysis.masking import masking_checks
from helpers.report.section import SECTIONS, Section, applicable, outputs
from helpers.report.summary import write_summary
from helpers.store import graph
from helpers.stages.report import compute_tables
from helpers.store.layout import TABLES
from test_summary import config, inputs, points


@pytest.fixture
def registered():
    """Register sections for one test, and take them out again."""
    added = []

    def register(cls):
        added.append(cls.name)
        return SECTIONS.register(cls)

    yield register
    for name in added:
        SECTIONS._entries.pop(name)
        TABLES.pop(f"{name}_table", None)


def probe(name, order, on=True, flag=None):
    """A section with one table (the models' mean clean accuracy), one summary line and, with
    ``flag``, a masking check that flags model ``flag`` in run 0."""
    class Probe(Section):
        title, about, outputs = name, "", (f"{name}_table",)

        @classmethod
        def applies(cls, cfg):
            return on

        @classmethod
        def tables(cls, report):
            return {f"{name}_table": report.tables["models"].groupby("model", as_index=False)["clean_accuracy"].mean()}

        @classmethod
        def checks(cls, report):
            if flag is None:
                return None
            return pd.DataFrame([{"model": flag, "run": 0, "check": f"{name}_check", "status": "FLAG", "value": 1.0,
                                  "threshold": 0.0, "description": "a probe", "detail": "probe"}])

        @classmethod
        def text(cls, report):
            return [f"PROBE {name}: {len(report.tables[f'{name}_table'])} models"]

    Probe.name, Probe.order = name, order
    return Probe


def test_a_section_that_applies_adds_its_table_text_and_checks(registered):
    cfg = config()
    before = compute_tables(cfg, inputs(), points())
    registered(probe("late", 1000, flag="b"))
    registered(probe("early", 15))
    tables = compute_tables(cfg, inputs(), points())
    assert set(tables) - set(before) == {"late_table", "early_table"}
    assert len(tables["early_table"]) == 3
    flagged = masking_checks(tables["masking_runs"]).set_index(["model", "check"])["status"]
    assert flagged[("b", "late_check")] == "FLAG"
    text = write_summary(cfg, {**tables, "models": inputs()["models"], "large_epsilon": inputs()["large_epsilon"],
                               "robustness": inputs()["robustness"]})
    # In order: after the robustness table (10), before the comparisons (20); the late one last.
    assert text.index("## Robust accuracy") < text.index("PROBE early") < text.index("No primary comparison")
    assert text.rstrip().endswith("PROBE late: 3 models")


def test_a_section_that_does_not_apply_adds_nothing(registered):
    cfg = config()
    registered(probe("off", 15, on=False, flag="a"))
    tables = compute_tables(cfg, inputs(), points())
    assert "off_table" not in tables and "off_check" not in set(tables["masking_runs"]["check"])
    assert "PROBE off" not in write_summary(cfg, {**tables, "models": inputs()["models"],
                                                  "large_epsilon": inputs()["large_epsilon"],
                                                  "robustness": inputs()["robustness"]})


def test_feature_sections_apply_only_with_their_feature():
    plain = config()
    names = [s.name for s in applicable(plain)]
    assert not {"threats", "universal", "reference", "boundaries"} & set(names)
    orders = [s.order for s in SECTIONS.entries()]
    assert len(set(orders)) == len(orders)  # one place for each
    assert set(graph.STAGES["report"].writes) <= set(outputs(plain)) | {"universal_stats", "universal_tests"}
    assert all(name in TABLES for section in SECTIONS.entries() for name in section.outputs)
