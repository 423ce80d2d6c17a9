"""Defences: adversarial training sees adversarial rows, TRADES is its formula, the Lipschitz
regulariser is the certificate's bound, a defended MLP is really more robust, and bad defence
keys are named."""
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from helpers.analysis.evaluation import evaluate_models
from helpers.analysis.masking import masking_checks, run_checks
from helpers.certificates.bounds import lipschitz_constant
from helpers.config import AttackSection, ConfigError, load_config
from helpers.defences import DEFENCES, build_defence
from helpers.models import build_model
from helpers.registry import DATASETS
from helpers.stages.train import train_key
from helpers.training import train_model


def moons(n, noise, seed=0):
    source = DATASETS["moons"]
    x, y = source.load(source.Params.parse({"n_samples": n, "noise": noise, "seed": seed}, "options"))
    return torch.as_tensor(x), torch.as_tensor(y)


def test_adversarial_training_trains_on_rows_at_distance_epsilon_and_keeps_the_clean_fraction():
    x, y = moons(32, 0.1)
    epsilon, batch, seed = 0.07, 8, 3
    torch.manual_seed(0)
    model = build_model({"type": "mlp", "hidden": [8]}, (2,), 2)
    seen = []
    # Only the training forward passes: the defence crafts its examples in evaluation mode.
    model.register_forward_hook(lambda module, inputs, _: seen.append(inputs[0].detach().clone()) if module.training else None)
    defence = build_defence({"name": "pgd", "epsilon": epsilon, "clean_fraction": 0.25})
    train_model(model, x, y, x, y, epochs=1, batch_size=batch, learning_rate=0.01, seed=seed, defence=defence)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))  # the loop's batch order
    assert len(seen) == len(x) // batch
    at_epsilon = 0
    for i, trained in enumerate(seen):
        clean = x[order[i * batch:(i + 1) * batch]]
        distance = (trained - clean).abs().amax(1)
        assert torch.equal(trained[:2], clean[:2])            # 25% of 8 rows kept clean
        assert (distance[2:] <= epsilon + 1e-6).all() and (trained >= 0).all() and (trained <= 1).all()
        assert (distance[2:] > 0).all()                       # every other row perturbed
        at_epsilon += int(((distance[2:] - epsilon).abs() < 1e-6).sum())
    assert at_epsilon >= 0.75 * len(seen) * (batch - 2)       # PGD's signed steps end on the ball's surface


def test_trades_loss_is_its_formula_on_a_fixed_batch():
    x, y = moons(16, 0.1)
    torch.manual_seed(1)
    model = build_model({"type": "mlp", "hidden": [8]}, (2,), 2).train()
    defence = build_defence({"name": "trades", "beta": 2.5, "epsilon": 0.1, "steps": 4})
    x_adv = defence.adversarial_batch(model, x, seed=7)
    assert model.training and (x_adv - x).abs().max() <= 0.1 + 1e-6 and not torch.equal(x_adv, x)
    clean, adv = model(x), model(x_adv)
    kl = F.kl_div(F.log_softmax(adv, 1), F.softmax(clean, 1), reduction="batchmean")  # KL(p(x) || p(x'))
    expected = F.cross_entropy(clean, y) + 2.5 * kl
    loss, logits = defence.loss(model, x, y, seed=7)
    assert torch.allclose(loss, expected, atol=1e-6) and torch.equal(logits, clean)
    # The inner maximisation found a larger KL than its start (the clean batch: KL 0).
    assert kl > 1e-4


@pytest.mark.parametrize("spec", [{"type": "mlp", "hidden": [8]},
                                  {"type": "vqc", "n_qubits": 2, "n_layers": 2, "encoding": "affine"}])
def test_lipschitz_regulariser_is_lambda_times_the_certificate_bound_and_has_a_gradient(spec):
    x, y = moons(16, 0.1)
    torch.manual_seed(2)
    model = build_model(spec, (2,), 2)
    model.fit_preprocessing(x)
    defence = build_defence({"name": "lipschitz", "lam": 0.3})
    loss, logits = defence.loss(model, x, y, seed=0)
    bound = lipschitz_constant(model.bound_ops(), (2,))
    assert float((loss - F.cross_entropy(logits, y)).detach()) == pytest.approx(0.3 * bound, rel=1e-5)
    penalty = defence.bound(model, (2,))
    penalty.backward()
    first = next(p for p in model.parameters() if p.dim() == 2)  # the first weight matrix (the encoding's for the circuit)
    assert first.grad is not None and first.grad.abs().sum() > 0


SUITE = {"epsilons": [0.0, 0.08], "methods": ["fgsm", "pgd", "pgd_restarts", "pgd_long", "apgd_ce", "pgd_margin",
                                              "square", "noise"],
         "pgd": {"steps": 10}, "pgd_restarts": {"steps": 10, "restarts": 3}, "pgd_long": {"steps": 30},
         "apgd_ce": {"steps": 20}, "square": {"queries": 150}, "masking_epsilons": [0.5, 1.0]}


def test_a_pgd_trained_mlp_on_moons_is_more_robust_under_the_full_suite_and_not_masked():
    # A small, noisy training set and a wide network: the undefended boundary bends around
    # single points; adversarial training keeps it an ε away from them.
    x, y = moons(250, 0.2)
    x_train, y_train, x_test, y_test = x[:50], y[:50], x[50:], y[50:]
    models = {}
    for name, defence in (("plain", None), ("pgd", {"name": "pgd", "epsilon": 0.08})):
        torch.manual_seed(0)
        model = build_model({"type": "mlp", "hidden": [64, 64]}, (2,), 2)
        train_model(model, x_train, y_train, x_test, y_test, epochs=100, batch_size=50, learning_rate=0.02, seed=1,
                    defence=build_defence(defence))
        models[name] = model.eval()
    tables = evaluate_models(models, x_test, y_test, AttackSection.parse(SUITE, "attack"), seed=0)
    frames = {k: pd.DataFrame([{"run": 0, **r} for r in v]) for k, v in tables.items()}
    worst = frames["robustness"].query("attack == 'worst_case' and epsilon == 0.08").set_index("model")["accuracy"]
    assert worst["pgd"] >= worst["plain"] + 0.06, worst   # about 3 binomial standard errors on 200 points
    checks = masking_checks(run_checks(frames["outcomes"])).set_index(["model", "check"])
    assert (checks.loc["pgd", "status"] == "PASS").all(), checks.loc["pgd"]


def write(tmp_path, models, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"n_runs": 5, "models": models}))
    return path


@pytest.mark.parametrize("defence, message", [
    ({"name": "madry"}, r"models.m.defence.name 'madry' is unknown; allowed: \['pgd', 'trades', 'lipschitz'\]"),
    ({"name": "pgd", "epsilon": -0.1}, r"models.m.defence.epsilon must lie in \(0, 1\]"),
    ({"name": "trades", "beta": -1}, r"models.m.defence.beta must be a number >= 0"),
    ({"name": "lipschitz", "lam": -1}, r"models.m.defence.lam must be a number >= 0"),
    ({"name": "pgd", "eps": 0.1}, r"models.m.defence.eps is unknown for defence 'pgd'"),
    ({"epsilon": 0.1}, r"models.m.defence must be a mapping with a 'name' key"),
])
def test_bad_defence_keys_are_named(tmp_path, defence, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, {"m": {"type": "mlp", "defence": defence}}))


def test_lipschitz_refuses_a_circuit_without_a_bound(tmp_path):
    spec = {"type": "vqc", "n_qubits": 6, "n_layers": 1, "encoding": "amplitude", "defence": {"name": "lipschitz"}}
    with pytest.raises(ConfigError, match="models.m.defence: lipschitz needs a model with a Lipschitz bound"):
        load_config(write(tmp_path, {"m": spec}))


def test_a_defence_is_part_of_the_spec_and_its_key_and_matched_models_still_resolve(tmp_path):
    cfg = load_config(write(tmp_path, {
        "vqc": {"type": "vqc", "n_qubits": 8, "n_layers": 4},
        "mlp_matched": {"type": "matched_mlp", "match": "vqc"},
        "mlp_matched_pgd": {"type": "matched_mlp", "match": "vqc", "defence": {"name": "pgd", "epsilon": 0.1}},
        "vqc_trades": {"type": "vqc", "n_qubits": 8, "n_layers": 4, "defence": {"name": "trades", "beta": 6}}}))
    plain, defended = cfg.models["mlp_matched"], cfg.models["mlp_matched_pgd"]
    assert plain.to_dict() == {"type": "matched_mlp", "parameters": 97, "n_features": 8}  # as before defences
    assert defended.model_dict() == plain.to_dict()
    assert defended.to_dict()["defence"] == {"name": "pgd", **DEFENCES["pgd"].Params(epsilon=0.1).to_dict()}
    assert train_key(cfg, "mlp_matched", 0, 1) != train_key(cfg, "mlp_matched_pgd", 0, 1)
    model = build_model(defended.to_dict(), (1, 8, 8), 4)  # the checkpoint's spec builds the model alone
    undefended = build_model(plain.to_dict(), (1, 8, 8), 4)
    assert [p.shape for p in model.parameters()] == [p.shape for p in undefended.parameters()]


def synthetic_tables(models, gains, n_runs=5):
    """Worst-case and certified accuracy per model and run at ε = 0 and 0.1: a model's
    accuracy is the baseline's plus its ``gains`` entry (run-dependent noise shared by all)."""
    robustness, certified, trained = [], [], []
    for run in range(n_runs):
        base = 0.5 + 0.02 * run
        for model in models:
            gain = gains.get(model, 0.0) + 0.01 * (run % 2) * bool(gains.get(model))
            for epsilon, value in ((0.0, 0.9), (0.1, base + gain)):
                robustness.append({"model": model, "run": run, "attack": "worst_case", "epsilon": epsilon,
                                   "accuracy": value})
                certified.append({"model": model, "run": run, "certificate": "best", "norm": "linf",
                                  "epsilon": epsilon, "accuracy": value / 2, "applicable": True})
            trained.append({"model": model, "run": run, "train_seconds": 1.0 + bool(gains.get(model))})
    return pd.DataFrame(robustness), pd.DataFrame(certified), pd.DataFrame(trained)


def test_the_tradeoff_table_pairs_each_defended_model_with_its_undefended_sibling(tmp_path):
    from helpers.report.sections.defences import defences_section, defences_table

    cfg = load_config(write(tmp_path, {
        "mlp": {"type": "mlp", "hidden": [8]},
        "mlp_pgd": {"type": "mlp", "hidden": [8], "defence": {"name": "pgd", "epsilon": 0.1}},
        "wide_trades": {"type": "mlp", "hidden": [16], "defence": {"name": "trades", "beta": 6}},
        "other": {"type": "mlp", "hidden": [4]}}))
    robustness, certified, trained = synthetic_tables(list(cfg.models), {"mlp_pgd": 0.2, "wide_trades": 0.1})
    table = defences_table(cfg.models, robustness, certified, trained, ratio=0.0).set_index("model")
    assert set(table.index) == {"mlp", "mlp_pgd", "wide_trades"}        # `other` is no family of a defence
    assert table.loc["mlp_pgd", "family"] == "mlp" and table.loc["mlp_pgd", "strength_value"] == 0.1
    assert table.loc["mlp_pgd", "robust_gain"] == pytest.approx(0.2 + 0.01 * 2 / 5)
    assert table.loc["mlp_pgd", "certified_gain"] == pytest.approx((0.2 + 0.01 * 2 / 5) / 2)
    assert table.loc["mlp_pgd", "robust_p_adjusted"] < 0.05 and table.loc["mlp_pgd", "train_seconds"] == 2.0
    # no undefended model of its spec: its own family, no gain to report
    assert table.loc["wide_trades", "family"] == "wide_trades" and pd.isna(table.loc["wide_trades", "robust_gain"])
    text = "\n".join(defences_section(table.reset_index()))
    assert "## Defences" in text and "`mlp_pgd` (pgd epsilon=0.1) against `mlp`: raised the worst case" in text
    # Declared as the primary comparison, the same gain keeps its own p and leaves the family.
    from helpers.config.report import Primary
    declared = defences_table(cfg.models, robustness, certified, trained, ratio=0.0,
                              primary=Primary(models=("mlp_pgd", "mlp"), attack="worst_case", epsilon=0.1))
    row = declared.set_index("model").loc["mlp_pgd"]
    assert row["primary"] and row["robust_p_adjusted"] == row["robust_p"]
    assert declared["primary"].sum() == 1 and not table["primary"].any()
    assert "the primary comparison, its own p" in "\n".join(defences_section(declared))
    plain = load_config(write(tmp_path, {"mlp": {"type": "mlp"}}, name="plain.yaml"))
    assert defences_table(plain.models, robustness, certified, trained, ratio=0.0).empty
    assert defences_section(pd.DataFrame()) == []


def test_the_attacks_shared_code_stays_in_every_stage_key():
    """``helpers/attacks/base.py`` (projection, gradients, robust accuracy) is code every attack,
    certificate and attribution unit runs: a registry entry that claims it (``uses``) would take
    it out of the stages' shared hash, and an edit to it would then reuse stale units."""
    from helpers.registry import REGISTRIES
    from helpers.store import graph

    claimed = {str(f).replace("\\", "/") for registry in REGISTRIES for f in registry.claimed_files()}
    assert not any(f.endswith("helpers/attacks/base.py") for f in claimed)
    for stage in ("train", "attack", "interpret"):
        assert any(str(f).endswith("helpers/attacks/base.py") for f in graph.files(graph.STAGES[stage].code)), stage
