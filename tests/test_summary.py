import pandas as pd

from helpers.analysis.masking import CHECKS
from helpers.analysis.statistics import paired_tests, summarize_attribution_stability, summarize_runs
from helpers.config import parse_config
from helpers.report.summary import write_summary

CFG = parse_config({"dataset": {"classes": [0, 1]}, "n_runs": 3,
                    "training": {"epochs": 1, "batch_size": 8, "learning_rate": 0.1},
                    "models": {"a": {"type": "mlp"}, "b": {"type": "mlp"}},
                    "attack": {"methods": ["fgsm", "pgd"]}, "interpret": {"epsilon": 0.1}}, experiment="toy")


def tables(acc_b_at_eps, robustness=None, checks=None):
    runs = range(3)
    trained = pd.DataFrame([{"model": m, "run": r, "parameters": p, "clean_accuracy": 0.9, "n_test": 10}
                            for m, p in (("a", 10), ("b", 2000)) for r in runs])
    rob = pd.DataFrame([{"model": m, "run": r, "attack": at, "epsilon": e,
                         "accuracy": 0.9 if e == 0 else (0.70 + 0.01 * r if m == "a" else acc_b_at_eps + 0.01 * r)}
                        for m in "ab" for r in runs for at in ("fgsm", "pgd") for e in (0.0, 0.1)])
    stab = pd.DataFrame([{"model": m, "run": r, "method": "saliency", "image": 0, "spearman": 0.5 + 0.1 * r,
                          "note": ""} for m in "ab" for r in runs])
    empty = pd.DataFrame(columns=["model", "attack", "mean"])
    return {"models": trained, "stats": summarize_runs(rob, ["model", "attack", "epsilon"], "accuracy"),
            "attribution_summary": summarize_attribution_stability(stab),
            "masking_checks": checks if checks is not None else pd.DataFrame(columns=["model", "check", "status"]),
            "paired_tests": paired_tests(robustness if robustness is not None else rob, "pgd", ["a", "b"]),
            "auc": empty, "attribution_metrics": empty}


def test_summary_quotes_computed_numbers_and_separates_models():
    text = write_summary(CFG, tables(0.2))
    assert "`a` 0.710 [0.685, 0.735], `b` 0.210 [0.185, 0.235]" in text
    assert "The intervals of `a` and `b` do not overlap." in text
    assert "`a` 10, `b` 2,000" in text
    assert "0.600 [0.352, 0.848]" in text  # Spearman mean and t-interval over the three runs


def test_summary_says_when_runs_do_not_separate_models():
    text = write_summary(CFG, tables(0.695))
    assert "overlap: these runs do not separate them" in text


def test_summary_reports_paired_tests_and_names_the_flagged_model():
    rob = pd.DataFrame([{"model": m, "run": r, "attack": "pgd", "epsilon": 0.1,
                         "accuracy": 0.70 + 0.01 * r if m == "a" else 0.2 + 0.02 * r} for m in "ab" for r in range(3)])
    checks = pd.DataFrame([{"model": m, "check": c, "status": "FLAG" if (m, c) == ("b", "large_epsilon") else "PASS",
                            "value": 0.4 if m == "b" else 0.0, "threshold": 0.1, "description": d, "detail": ""}
                           for m in "ab" for c, d in CHECKS.items()])
    text = write_summary(CFG, tables(0.2, robustness=rob, checks=checks))
    assert "| a − b | +0.490 [+0.465, +0.515] |" in text  # differences 0.50, 0.49, 0.48
    assert "The robustness numbers of `a` survive every masking check" in text
    assert "`b` is flagged by large_epsilon" in text
    assert "FLAG (0.400)" in text
