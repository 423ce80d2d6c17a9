"""Defences: adversarial training sees adversarial rows, TRADES is its formula, the Lipschitz
regulariser is the certificate's bound, certified training descends the certificates' own
worst case on its schedule and certifies more, a defended MLP is really more robust, and bad
defence keys are named."""
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from helpers.analysis.evaluation import evaluate_models
from helpers.analysis.masking import masking_checks, run_checks
from helpers.certificates.bounds import (MARGIN, crown_margin_lower_bound, input_box, interval_trace,
                                         lipschitz_constant, margin_lower_bound)
from helpers.config import AttackSection, ConfigError, load_config
from helpers.defences import DEFENCES, build_defence
from helpers.defences.certified import IBPTraining, crown_margins, interval_margins, schedule
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


BOUND_SPECS = [({"type": "mlp", "hidden": [8]}, (2,)), ({"type": "cnn", "channels": [2, 4], "hidden": 8}, (1, 8, 8)),
               ({"type": "vqc", "n_qubits": 2, "n_layers": 2}, (2,)),
               ({"type": "vqc", "n_qubits": 2, "n_layers": 2, "encoding": "affine"}, (2,))]


def bound_batch(shape, n=12, classes=2, seed=0):
    """Inputs inside [0.2, 0.8] (an ε-box of up to 0.2 is never clipped) and labels."""
    g = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand((n, *shape), generator=g), torch.arange(n) % classes


@pytest.mark.parametrize("spec, shape", BOUND_SPECS)
def test_ibp_loss_is_the_cross_entropy_of_the_certificates_worst_case_logits_and_has_a_gradient(spec, shape):
    x, y = bound_batch(shape)
    torch.manual_seed(3)
    model = build_model(spec, shape, 2)
    model.fit_preprocessing(x)
    defence = build_defence({"name": "ibp", "epsilon": 0.1, "ramp": 0, "kappa": 0.3})
    loss, logits = defence.loss(model, x, y, seed=0)
    low, high = interval_trace(model.bound_ops(), *input_box(x, 0.1))[-1]   # the interval certificate's bounds
    worst = torch.where(F.one_hot(y, 2).bool(), low, high).to(logits.dtype)
    expected = 0.3 * F.cross_entropy(model(x), y) + 0.7 * F.cross_entropy(worst, y)
    assert torch.equal(logits, model(x)) and float(loss.detach()) == pytest.approx(float(expected), rel=1e-6)
    loss.backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


@pytest.mark.parametrize("spec, shape", BOUND_SPECS[:2])
def test_crown_ibp_margins_are_the_crown_certificates_and_the_mix_follows_beta(spec, shape):
    x, y = bound_batch(shape, classes=4)
    torch.manual_seed(4)
    model = build_model(spec, shape, 4)
    ops = model.bound_ops()
    box = input_box(x, 0.05)
    ibp, trace = interval_margins(ops, *box, y)
    crown = crown_margins(ops, trace, y, 4)
    others = ~F.one_hot(y, 4).bool()
    assert (ibp[~others] == 0).all() and (crown[~others].abs() < 1e-6).all()
    assert torch.allclose(crown.masked_fill(~others, float("inf")).min(1).values,
                          crown_margin_lower_bound(ops, *box, y, 4), atol=1e-5)
    assert torch.allclose(ibp.masked_fill(~others, float("inf")).min(1).values,
                          margin_lower_bound(*interval_trace(ops, *box)[-1], y), atol=1e-6)
    # Half-way through the ramp: β = 1/2, ε = 0.05 of a training ε of 0.1, κ = 1 − 0.5·(1 − 0.5).
    defence = build_defence({"name": "crown_ibp", "epsilon": 0.1, "warmup": 0, "ramp": 2})
    loss, logits = defence.loss(model, x, y, seed=0)
    worst = -(0.5 * crown + 0.5 * ibp)
    expected = 0.75 * F.cross_entropy(logits, y) + 0.25 * F.cross_entropy(worst, y)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_the_bound_training_schedule_is_what_the_config_says(monkeypatch):
    seen = []

    def margins(self, ops, low, high, y, share):
        seen.append(round(float((high - low).max()) / 2, 6))    # inputs away from 0 and 1: the box's radius is ε
        return interval_margins(ops, low, high, y)[0]

    monkeypatch.setattr(IBPTraining, "margins", margins)
    x, y = bound_batch((2,), n=8)
    model = build_model({"type": "mlp", "hidden": [4]}, (2,), 2)
    train_model(model, x, y, x, y, epochs=4, batch_size=2, learning_rate=0.01, seed=0,
                defence=build_defence({"name": "ibp", "epsilon": 0.2, "warmup": 3, "ramp": 4}))
    # 16 steps: 3 at ε = 0 (no bound computed), 4 ramping by 0.05, 9 at 0.2.
    assert seen == [0.05, 0.1, 0.15, 0.2] + [0.2] * 9
    assert [schedule(s, 3, 4) for s in (0, 2, 3, 6, 99)] == [0.0, 0.0, 0.25, 1.0, 1.0]


def certified_accuracy(model, x, y, epsilon):
    with torch.no_grad():
        margin = margin_lower_bound(*interval_trace(model.bound_ops(), *input_box(x, epsilon))[-1], y)
    return float(((margin > MARGIN) & (model(x).argmax(1) == y)).double().mean())


@pytest.mark.parametrize("defence", ["ibp", "crown_ibp"])
def test_certified_training_certifies_far_more_of_a_toy_problem_than_standard_training(defence):
    x, y = moons(300, 0.1)
    epsilon, results = 0.05, {}
    for name, spec in (("plain", None), (defence, {"name": defence, "epsilon": epsilon, "warmup": 20, "ramp": 100})):
        torch.manual_seed(0)
        model = build_model({"type": "mlp", "hidden": [32, 32]}, (2,), 2)
        train_model(model, x[:200], y[:200], x[200:], y[200:], epochs=40, batch_size=20, learning_rate=0.01, seed=1,
                    defence=build_defence(spec))
        model.eval()
        results[name] = certified_accuracy(model, x[200:], y[200:], epsilon)
    assert results[defence] >= results["plain"] + 0.2, results


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
    ({"name": "madry"}, r"models.m.defence.name 'madry' is unknown; allowed: \[('\w+'(, )?){5}\]"),
    ({"name": "pgd", "epsilon": -0.1}, r"models.m.defence.epsilon must lie in \(0, 1\]"),
    ({"name": "trades", "beta": -1}, r"models.m.defence.beta must be a number >= 0"),
    ({"name": "lipschitz", "lam": -1}, r"models.m.defence.lam must be a number >= 0"),
    ({"name": "pgd", "eps": 0.1}, r"models.m.defence.eps is unknown for defence 'pgd'"),
    ({"name": "ibp", "warmup": -1}, r"models.m.defence.warmup must be an integer >= 0"),
    ({"name": "crown_ibp", "kappa": 2}, r"models.m.defence.kappa must lie in \[0, 1\]"),
    ({"epsilon": 0.1}, r"models.m.defence must be a mapping with a 'name' key"),
])
def test_bad_defence_keys_are_named(tmp_path, defence, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, {"m": {"type": "mlp", "defence": defence}}))


def test_lipschitz_refuses_a_circuit_without_a_bound(tmp_path):
    spec = {"type": "vqc", "n_qubits": 6, "n_layers": 1, "encoding": "amplitude", "defence": {"name": "lipschitz"}}
    with pytest.raises(ConfigError, match="models.m.defence: lipschitz needs a model with a Lipschitz bound"):
        load_config(write(tmp_path, {"m": spec}))


@pytest.mark.parametrize("spec, message", [
    ({"type": "vqc", "n_qubits": 4, "n_layers": 1, "defence": {"name": "crown_ibp"}},
     "models.m.defence: crown_ibp trains classical networks"),
    ({"type": "vqc", "n_qubits": 6, "n_layers": 1, "encoding": "amplitude", "defence": {"name": "ibp"}},
     "models.m.defence: ibp needs interval bounds of the model; amplitude encoding has none")])
def test_certified_training_refuses_models_it_cannot_bound(tmp_path, spec, message):
    with pytest.raises(ConfigError, match=message):
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
    """Worst-case, certified and exact accuracy per model and run at ε = 0 and 0.1 (exact: at 0.1
    only): a model's accuracy is the baseline's plus its ``gains`` entry (run-dependent noise
    shared by all)."""
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
            certified.append({"model": model, "run": run, "certificate": "exact", "norm": "linf", "epsilon": 0.1,
                              "accuracy": (base + gain) / 4, "applicable": True, "undecided": 0.05})
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
    assert table.loc["mlp_pgd", "exact_gain"] == pytest.approx((0.2 + 0.01 * 2 / 5) / 4)
    assert table.loc["mlp_pgd", "exact_unknown"] == pytest.approx(0.05)
    # no undefended model of its spec: its own family, no gain to report
    assert table.loc["wide_trades", "family"] == "wide_trades" and pd.isna(table.loc["wide_trades", "robust_gain"])
    text = "\n".join(defences_section(table.reset_index()))
    assert "## Defences" in text and "`mlp_pgd` (pgd epsilon=0.1) against `mlp`: raised the worst case" in text
    assert "raised exact robust accuracy (+0.051" in text and "| exact (unknown) |" in text
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
