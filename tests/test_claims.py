"""Every comparative sentence of the README, docs/results.md and the studies' readings traces
to the table row it rests on, and says what that row says (helpers/claims.py)."""
import numpy as np
import pandas as pd
import pytest

from helpers.claims import check, claims, prose_files, verdict


def comparison(a="vqc", b="mlp", difference=0.05, p_points=0.01, p_adjusted=0.3, role="secondary"):
    return {"attack": "worst_case", "measure": "auc", "epsilon": np.nan, "model_a": a, "model_b": b,
            "mean_difference": difference, "p_value": 0.2, "p_adjusted": p_adjusted, "p_points": p_points,
            "p_points_adjusted": p_points, "role": role}


@pytest.fixture
def study(tmp_path):
    (tmp_path / "results" / "toy").mkdir(parents=True)
    pd.DataFrame([comparison(), comparison(b="cnn", difference=-0.1, p_points=0.5)]).to_csv(
        tmp_path / "results" / "toy" / "paired_tests.csv", index=False)
    pd.DataFrame([{"model": "vqc", "check": "large_epsilon", "status": "FLAG", "runs_flagged": 3}]).to_csv(
        tmp_path / "results" / "toy" / "masking_checks.csv", index=False)
    return tmp_path


def write(root, text):
    path = root / "reading.md"
    path.write_text(text)
    return claims(path)


def test_a_claim_that_matches_its_row_passes_and_one_that_contradicts_it_fails(study):
    found, bare = write(study, "# Reading\n\nThe circuit is more robust than the MLP. <!-- claim toy/paired_tests "
                               "model_a=vqc model_b=mlp measure=auc : verdict == a>b -->\nThe circuit is not separated "
                               "from the CNN. <!-- claim toy/paired_tests model_a=vqc model_b=cnn : verdict == ns "
                               "and mean_difference < 0 -->\n\nIt is flagged in three runs. <!-- claim "
                               "toy/masking_checks model=vqc check=large_epsilon : status == FLAG and "
                               "runs_flagged == 3 -->\n")
    assert bare == [] and len(found) == 3
    assert [check(c, study) for c in found] == [None, None, None]
    wrong, _ = write(study, "The circuit is less robust than the CNN. <!-- claim toy/paired_tests model_a=vqc "
                            "model_b=cnn : verdict == a<b -->\n")
    assert "verdict = 'ns'" in check(wrong[0], study)


def test_a_claim_must_select_one_row_of_a_table_that_exists(study):
    ambiguous, _ = write(study, "Both differ significantly. <!-- claim toy/paired_tests model_a=vqc : verdict == ns -->")
    assert "selects 2 rows" in check(ambiguous[0], study)
    missing, _ = write(study, "It is flagged. <!-- claim toy/nothing model=vqc : status == FLAG -->")
    assert "no table" in check(missing[0], study)
    # `every`: a sentence about all the rows its filters select, each of which must agree.
    every, _ = write(study, "No difference is significant. <!-- claim toy/paired_tests model_a=vqc every : verdict == ns -->")
    assert "verdict = 'a>b'" in check(every[0], study)
    some, _ = write(study, "Both favour the circuit? <!-- claim toy/paired_tests model_a=vqc every : p_points < 0.6 -->")
    assert check(some[0], study) is None
    pattern, _ = write(study, "Flagged. <!-- claim toy/paired_tests model_b~^c every : verdict == ns -->")  # a regex
    assert check(pattern[0], study) is None
    # `none`: a sentence that says there is no such row.
    nothing, _ = write(study, "No model is flagged. <!-- claim toy/masking_checks status=FLAG none : -->")
    assert "1 rows where the sentence says there is none" in check(nothing[0], study)
    absent, _ = write(study, "No model is flagged. <!-- claim toy/masking_checks model=cnn none : -->")
    assert check(absent[0], study) is None


def test_a_comparative_sentence_without_a_marker_is_found(study):
    _, bare = write(study, "# Heading about significant things\n\nThe circuit is significantly more robust. It "
                           "has eight qubits.\n\n| table | significant |\n|---|---|\n")
    assert len(bare) == 1 and "significantly more robust" in bare[0]


def test_the_verdict_reads_the_deciding_p():
    assert verdict(pd.Series(comparison())) == "a>b"                                    # every point: 0.01
    assert verdict(pd.Series(comparison(p_points=np.nan))) == "ns"                     # run level, adjusted: 0.3
    assert verdict(pd.Series(comparison(difference=-0.1))) == "a<b"
    assert verdict(pd.Series(comparison(p_points=0.5, role="primary"))) == "ns"


def test_every_shipped_sentence_says_what_its_row_says():
    failures, unreferenced = [], []
    for path in prose_files():
        found, bare = claims(path)
        failures += [error for claim in found if (error := check(claim)) is not None]
        unreferenced += bare
    assert not failures, "\n".join(failures)
    assert not unreferenced, "comparative sentences without a claim marker:\n" + "\n".join(unreferenced)
