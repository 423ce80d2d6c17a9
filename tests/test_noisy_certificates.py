"""Certificates for noisy circuits. The depolarising differential-privacy certificate (Du et al.
2021): its ε_DP is the channel's privacy on random states and measurements, its closed form
of the noisy outputs is PennyLane's ``default.mixed``, its trace-distance bound is never below
the trace distance of encoded states of the ball, and no attack (nor an exhaustive search in
two dimensions) beats it. Randomized smoothing through a stochastic model: the votes carry the
model's randomness, the radius stays sound, the draws are reproducible."""
import dataclasses
import functools
import itertools
import types

import numpy as np
import pennylane as qml
import pytest
import torch
from scipy.stats import norm
from torch import nn

from helpers.attacks import Square, predict
from helpers.attacks.pgd import PGDRestarts
from helpers.certificates.depolarizing import (depolarised_outputs, dp_epsilon, global_depolarizing,
                                               noise_strengths)
from helpers.models import build_model
from helpers.registry import ANSATZES, CERTIFICATES, ENCODINGS, READOUTS

DP = CERTIFICATES["dp_depolarizing"]


def with_noise(model, noise):
    """``model`` with ``params.noise`` set (the noisy circuit's interface: a mapping or Params
    with ``global_depolarizing``); the parsed Params of this worktree have no such field."""
    params = vars(model.params) if isinstance(model.params, types.SimpleNamespace) else dataclasses.asdict(model.params)
    model.params = types.SimpleNamespace(**{**params, "noise": noise})
    return model


class DepolarisedVQC(nn.Module):
    """A ``vqc`` evaluated exactly after global depolarising noise of strength ``p`` (the
    closed form, which ``test_the_closed_form_is_default_mixed`` holds to PennyLane): what the
    attacks attack. Its ``bound_ops`` and ``params`` are the circuit's, with the noise."""

    def __init__(self, vqc, p: float):
        super().__init__()
        self.vqc, self.p = with_noise(vqc, {"global_depolarizing": p}), p
        self.params = vqc.params

    def bound_ops(self):
        return self.vqc.bound_ops()

    def forward(self, x):
        layer = self.vqc.quantum
        noisy = depolarised_outputs(layer(self.vqc.encode(x)), self.p, layer.measurement)
        return self.vqc.output_scale * READOUTS[layer.readout].logits(noisy, self.vqc.n_classes).to(x.dtype)


def random_circuit(n_qubits=3, n_inputs=4, readout="expval", seed=0, scale=1.0, **spec):
    """An untrained circuit with random weights and a PCA fitted on uniform inputs."""
    torch.manual_seed(seed)
    model = build_model({"type": "vqc", "n_qubits": n_qubits, "n_layers": 2, "readout": readout,
                         "output_scale": scale, **spec}, (n_inputs,), 2)
    model.fit_preprocessing(torch.rand(200, n_inputs))
    return model.eval()


# --- the channel's privacy ------------------------------------------------------------------

def random_density(d, rank, gen):
    a = gen.normal(size=(d, rank)) + 1j * gen.normal(size=(d, rank))
    rho = a @ a.conj().T
    return rho / np.trace(rho).real


def trace_distance(rho, sigma):
    return 0.5 * np.abs(np.linalg.eigvalsh(rho - sigma)).sum()


@pytest.mark.parametrize("d", [2, 4, 8])
def test_dp_epsilon_bounds_every_measurement_of_depolarised_states_and_is_attained(d):
    gen = np.random.default_rng(d)
    for p in (0.05, 0.3, 0.9):
        noisy = lambda rho: (1 - p) * rho + p * np.eye(d) / d
        for _ in range(50):
            rho, sigma = random_density(d, gen.integers(1, d + 1), gen), random_density(d, gen.integers(1, d + 1), gen)
            tau = trace_distance(rho, sigma)
            bound = float(dp_epsilon(tau, p, d).exp())
            vectors = np.linalg.qr(gen.normal(size=(d, d)) + 1j * gen.normal(size=(d, d)))[0]
            for rank in range(1, d + 1):  # projectors and a random POVM element 0 <= M <= I
                for m in (vectors[:, :rank] @ vectors[:, :rank].conj().T,
                          vectors @ np.diag(gen.uniform(size=d)) @ vectors.conj().T):
                    assert np.trace(m @ noisy(rho)).real <= bound * np.trace(m @ noisy(sigma)).real + 1e-12
        # Orthogonal pure states and a rank-one projector onto one of them attain it.
        zero, one = np.diag(np.eye(d)[0]), np.diag(np.eye(d)[1])
        ratio = np.trace(zero @ noisy(zero)).real / np.trace(zero @ noisy(one)).real
        assert np.isclose(ratio, float(dp_epsilon(1.0, p, d).exp()))


def global_depolarizing_kraus(n_qubits, p):
    """Kraus operators of ρ -> (1 - p) ρ + p I/d: the Pauli twirl (1/d²) Σ_P P ρ P is I/d."""
    paulis = [np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1, -1])]
    d = 2 ** n_qubits
    strings = [functools.reduce(np.kron, ops) for ops in itertools.product(paulis, repeat=n_qubits)]
    return [np.sqrt(1 - p + p / d ** 2) * strings[0]] + [np.sqrt(p) / d * s for s in strings[1:]]


@pytest.mark.parametrize("n_qubits,readout", [(2, "expval"), (3, "probs"), (4, "expval"), (4, "probs")])
def test_the_closed_form_is_default_mixed(n_qubits, readout):
    model = random_circuit(n_qubits=n_qubits, n_inputs=6, readout=readout, seed=n_qubits)
    layer, angles = model.quantum, model.encode(torch.rand(5, 6))
    p = 0.27
    kraus = global_depolarizing_kraus(n_qubits, p)
    wires = range(n_qubits)

    @qml.qnode(qml.device("default.mixed", wires=n_qubits))
    def circuit(inputs, weights):
        ENCODINGS[layer.encoding].embed(inputs, wires)
        ANSATZES[layer.ansatz].template(weights, wires=wires)
        qml.QubitChannel(kraus, wires=wires)
        return READOUTS[readout].measure(layer.n_readout)

    weights = layer.weights.detach().numpy()
    reference = np.array([np.stack(circuit(a.numpy(), weights)) if readout == "expval" else circuit(a.numpy(), weights)
                          for a in angles.detach()]).reshape(len(angles), -1)
    closed = depolarised_outputs(layer(angles).detach(), p, layer.measurement).numpy()
    assert np.allclose(closed, reference, atol=1e-6)


# --- the trace-distance bound ---------------------------------------------------------------

def encoded_density(angles):
    """The encoded state of PennyLane's AngleEmbedding (default.qubit) as a density matrix."""
    n = len(angles)

    @qml.qnode(qml.device("default.qubit", wires=n))
    def state(a):
        qml.AngleEmbedding(a, wires=range(n), rotation="X")
        return qml.state()

    psi = np.asarray(state(np.asarray(angles)))
    return np.outer(psi, psi.conj())


def test_the_angle_bound_is_never_below_the_trace_distance_and_attained_at_the_corner():
    gen = np.random.default_rng(1)
    bound = ENCODINGS["angle"].trace_distance_bound
    for radii in (np.full(3, 0.05), gen.uniform(0, 1, 3), gen.uniform(0, 5, 3)):  # above pi too
        a = gen.uniform(0, np.pi, 3)
        limit = float(bound(torch.tensor(radii)[None])[0])
        for _ in range(20):
            delta = radii * gen.uniform(-1, 1, 3)
            assert trace_distance(encoded_density(a), encoded_density(a + delta)) <= limit + 1e-9
        corner = np.minimum(radii, np.pi)
        assert np.isclose(trace_distance(encoded_density(a), encoded_density(a + corner)), limit)


@pytest.mark.parametrize("encoding", ["angle", "affine"])
def test_no_encoded_state_of_the_ball_is_further_than_the_bound(encoding):
    model = with_noise(random_circuit(encoding=encoding, seed=2), {"global_depolarizing": 0.2})
    x, epsilon = torch.rand(8, 4), 0.05
    tau = DP.trace_distance(model, x, epsilon).numpy()
    gen = torch.Generator().manual_seed(0)
    for draw in range(12):
        step = torch.sign(torch.rand(x.shape, generator=gen) - 0.5) if draw % 2 else 2 * torch.rand(x.shape, generator=gen) - 1
        moved = (x + epsilon * step).clamp(0, 1)
        for a, b, limit in zip(model.encode(x).detach().double(), model.encode(moved).detach().double(), tau):
            assert trace_distance(encoded_density(a), encoded_density(b)) <= limit + 1e-9


# --- what the certificate certifies ---------------------------------------------------------

def fooled(model, x, y, epsilon):
    wrong = predict(model, x) != y
    for attack in (PGDRestarts(steps=20, restarts=2, seed=0), Square(queries=150, seed=0)) if epsilon > 0 else ():
        wrong |= predict(model, attack(model, x, y, epsilon)) != y
    return wrong.numpy()


@pytest.mark.parametrize("p,readout,scale", [(0.1, "expval", 1.0), (0.3, "expval", 1.0), (0.1, "probs", 1.0),
                                             (0.3, "probs", 1.0), (0.3, "expval", -2.0)])
def test_no_attack_beats_the_dp_certificate(p, readout, scale):
    model = DepolarisedVQC(random_circuit(n_qubits=2, readout=readout, seed=3, scale=scale), p)
    x = torch.rand(40, 4, generator=torch.Generator().manual_seed(4))
    y = predict(model, x)
    y[::7] = 1 - y[::7]  # a few misclassified points: never certified
    certificate = DP()
    counts = []
    for epsilon in (0.0, 0.003, 0.01, 0.03):
        certified = certificate.certify(model, x, y, epsilon)
        assert certified.dtype == bool and certified.shape == (len(x),)
        assert not (certified & fooled(model, x, y, epsilon)).any(), epsilon
        counts.append(int(certified.sum()))
    assert counts[0] == int((predict(model, x) == y).sum())  # ε = 0: every correct point
    assert counts[1] > 0, counts  # the test is not vacuous


def test_what_the_dp_certificate_certifies_on_two_features_is_robust_in_an_exhaustive_search():
    model = DepolarisedVQC(random_circuit(n_qubits=2, n_inputs=2, seed=5), 0.3)
    x = torch.rand(32, 2, generator=torch.Generator().manual_seed(6))
    y = predict(model, x)
    for epsilon in (0.005, 0.02):
        certified = DP().certify(model, x, y, epsilon)
        grid = torch.linspace(-epsilon, epsilon, 41)
        offsets = torch.cartesian_prod(grid, grid)
        for i in np.flatnonzero(certified):
            assert (predict(model, (x[i] + offsets).clamp(0, 1)) == y[i]).all(), (epsilon, i)
    assert certified.any()


@pytest.mark.parametrize("readout", ["expval", "probs"])
def test_no_score_of_the_ball_leaves_the_privacy_bound(readout):
    """Every class score (and its complement) at a sampled x' of the ball is within a factor
    e^{±ε_DP} of its value at x: the DP statement the certificate rests on, on the circuit."""
    p, epsilon = 0.2, 0.02
    model = with_noise(random_circuit(n_qubits=3, readout=readout, seed=9), {"global_depolarizing": p})
    circuit = model.bound_ops()[1]
    x = torch.rand(16, 4, generator=torch.Generator().manual_seed(10))
    factor = dp_epsilon(DP.trace_distance(model, x, epsilon), p, 8).exp()[:, None]
    gen = torch.Generator().manual_seed(0)
    for sign in (1.0, -1.0):
        at_x = DP.scores(circuit, model.encode(x), p, sign)
        for draw in range(20):
            step = torch.sign(torch.rand(x.shape, generator=gen) - 0.5) if draw % 2 else 2 * torch.rand(x.shape, generator=gen) - 1
            moved = DP.scores(circuit, model.encode((x + epsilon * step).clamp(0, 1)), p, sign)
            assert (moved <= factor * at_x + 1e-12).all() and (at_x <= factor * moved + 1e-12).all()


@pytest.mark.parametrize("readout,scale", [("expval", 1.0), ("probs", 1.0), ("probs", -1.0)])
def test_more_noise_never_certifies_less_on_the_same_circuit(readout, scale):
    """With the circuit fixed, the condition divided by p is a decreasing function of
    u = (1 - p)/p: ε_DP falls faster than the noise flattens the scores, so the certified set
    grows with p (below p = 1, where the scores tie)."""
    base = random_circuit(n_qubits=2, readout=readout, seed=12, scale=scale)
    x = torch.rand(64, 4, generator=torch.Generator().manual_seed(13))
    y = predict(base, x)
    for epsilon in (0.001, 0.003, 0.01, 0.03):
        previous = np.zeros(len(x), dtype=bool)
        for p in (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9):
            certified = DP().certify(with_noise(base, {"global_depolarizing": p}), x, y, epsilon)
            assert not (previous & ~certified).any(), (epsilon, p)
            previous = certified
        assert previous.any() or epsilon == 0.03


def test_larger_epsilon_never_certifies_more_and_no_noise_certifies_nothing():
    base = random_circuit(n_qubits=2, seed=7)
    x = torch.rand(64, 4, generator=torch.Generator().manual_seed(8))
    y = predict(base, x)
    for p in (0.05, 0.3, 0.8):
        model = with_noise(base, {"global_depolarizing": p})
        previous = np.ones(len(x), dtype=bool)
        for epsilon in (0.0, 0.001, 0.003, 0.01, 0.03, 0.1):
            certified = DP().certify(model, x, y, epsilon)
            assert not (certified & ~previous).any(), (p, epsilon)
            previous = certified
    for noise in (None, {"global_depolarizing": 0.0}, {"global_depolarizing": 1.0}):
        model = with_noise(base, noise)
        assert not DP().certify(model, x, y, 0.0).any(), noise  # p = 1: a uniform readout proves nothing
    assert not DP.applies(with_noise(base, None))[0]


def test_the_dp_certificate_applies_only_where_its_assumptions_hold():
    assert not DP.applies(with_noise(build_model({"type": "mlp", "hidden": [4]}, (4,), 2), {"global_depolarizing": 0.2}))[0]
    noisy = {"global_depolarizing": 0.2}
    amplitude = with_noise(build_model({"type": "vqc", "n_qubits": 2, "n_layers": 1, "encoding": "amplitude"}, (4,), 2),
                           noisy)
    assert not DP.applies(amplitude)[0]
    reupload = with_noise(random_circuit(encoding="reupload"), noisy)
    applies, reason = DP.applies(reupload)
    assert not applies and "re-uploading" in reason
    assert DP.applies(with_noise(random_circuit(encoding="reupload", n_layers=1), noisy))[0]
    other = with_noise(random_circuit(), {"global_depolarizing": 0.2, "gate": {"amplitude_damping": 0.01}})
    applies, reason = DP.applies(other)
    assert not applies and "gate.amplitude_damping" in reason
    assert not DP().certify(other, torch.rand(4, 4), torch.zeros(4, dtype=torch.long), 0.0).any()


def test_the_noise_accessor_reads_every_form_of_the_noise_option():
    @dataclasses.dataclass(frozen=True)
    class Noise:
        global_depolarizing: float = 0.25
        shots_seed: bool = True  # not a strength

    assert global_depolarizing(types.SimpleNamespace()) == 0.0
    assert global_depolarizing(types.SimpleNamespace(params=types.SimpleNamespace(noise=None))) == 0.0
    assert global_depolarizing(types.SimpleNamespace(params=types.SimpleNamespace(noise=Noise()))) == 0.25
    nested = types.SimpleNamespace(params=types.SimpleNamespace(noise={"global_depolarizing": 0.1,
                                                                        "gate": types.SimpleNamespace(depolarizing=0.0)}))
    assert noise_strengths(nested) == {"global_depolarizing": 0.1, "gate.depolarizing": 0.0}


# --- randomized smoothing through a stochastic model ------------------------------------------

class RandomisedResponse(nn.Module):
    """Predicts class 1 with probability x_0 (clipped to [0, 1]) and class 0 otherwise, fresh
    for every sample of every forward: a randomised classifier whose smoothed version is known.
    Under input noise N(0, sigma²) its class-1 probability is E[clip(x_0 + sigma Z, 0, 1)],
    increasing in x_0 and 1/2 at x_0 = 1/2, so the smoothed classifier changes class exactly there."""

    stochastic = True

    def forward(self, x):
        one = (torch.rand(len(x)) < x[:, 0].clamp(0, 1)).float()
        return torch.stack([1 - one, one], dim=1)


def smoothed_probability(x0, sigma):
    """E[clip(x0 + sigma Z, 0, 1)] by quadrature."""
    z = np.linspace(-8, 8, 20001)
    return float(np.trapezoid(np.clip(x0 + sigma * z, 0, 1) * norm.pdf(z), z))


def test_smoothing_votes_with_the_models_randomness_and_stays_sound():
    x0 = torch.tensor([0.05, 0.2, 0.4, 0.6, 0.8, 0.97])
    x = torch.stack([x0, torch.rand(6)], dim=1)
    y = (x0 > 0.5).long()
    sigma, n = 0.1, 2000
    smoothing = CERTIFICATES["smoothing"](n0=100, n=n, alpha=0.001, sigma=sigma, seed=11)
    votes = smoothing.counts(RandomisedResponse(), x, n, torch.Generator().manual_seed(0))[:, 1].numpy()
    truth = np.array([smoothed_probability(v, sigma) for v in x0.tolist()])
    # The votes are draws of the randomised smoothed classifier: binomial around its probability.
    assert (np.abs(votes / n - truth) <= 4 * np.sqrt(truth * (1 - truth) / n)).all(), (votes / n, truth)
    prediction, radius = smoothing.radii(RandomisedResponse(), x, y)
    assert (prediction[radius > 0] == y.numpy()[radius > 0]).all()
    # g changes class at x_0 = 1/2 only (and x_1 does not matter): no radius reaches past it.
    assert (radius <= np.abs(x0.numpy() - 0.5)).all(), radius
    assert (radius[[0, 5]] > 0).all()  # far from the boundary it certifies something
    # Sound but not tight: the radius lies below sigma * Φ⁻¹ of the true probability.
    top = np.maximum(truth, 1 - truth)
    assert (radius <= sigma * norm.ppf(top) + 1e-12).all()


def test_smoothing_a_stochastic_model_is_reproducible_and_leaves_the_callers_stream_alone():
    x = torch.rand(5, 2)
    smoothing = CERTIFICATES["smoothing"](n0=20, n=200, sigma=0.1, seed=4)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = smoothing.radii(RandomisedResponse(), x, torch.zeros(5, dtype=torch.long))
    assert torch.equal(torch.rand(3), expected_next)
    second = smoothing.radii(RandomisedResponse(), x, torch.zeros(5, dtype=torch.long))
    assert (first[0] == second[0]).all() and np.array_equal(first[1], second[1])


@pytest.mark.parametrize("readout", ["expval", "probs"])
def test_the_stand_in_is_the_real_noisy_circuit_and_certifies_the_same_points(readout):
    """The tests above attack ``DepolarisedVQC`` (the closed form on a noise-free circuit); the
    real ``vqc`` with ``noise: {global_depolarizing: p}`` is that function, and the certificate
    proves the same points on it."""
    base = random_circuit(n_qubits=3, readout=readout, seed=9)
    real = build_model({**base.params.to_dict(), "type": "vqc", "noise": {"global_depolarizing": 0.3}}, (4,), 2)
    real.load_state_dict(base.state_dict())
    real.eval()
    stand_in = DepolarisedVQC(random_circuit(n_qubits=3, readout=readout, seed=9), 0.3)
    x = torch.rand(24, 4, generator=torch.Generator().manual_seed(12))
    assert torch.allclose(real(x), stand_in(x), atol=1e-6)
    y = predict(real, x)
    for epsilon in (0.0, 0.003, 0.01):
        assert (DP().certify(real, x, y, epsilon) == DP().certify(stand_in, x, y, epsilon)).all(), epsilon


def test_no_bound_certificate_applies_to_a_circuit_with_shots():
    """A circuit with shots predicts from sampled estimates: a bound on its expected readout
    proves nothing about a sampled prediction (the noise study found certified points fooled
    by sampling alone at ε = 0 before this rule). Smoothing, which votes with the randomness,
    still applies."""
    model = random_circuit(n_qubits=3, seed=9, shots=100, noise={"global_depolarizing": 0.2})
    for name in ("interval", "crown", "lipschitz", "dp_depolarizing"):
        applies, reason = CERTIFICATES[name].applies(model)
        assert not applies and "randomised classifier" in reason, name
    assert CERTIFICATES["smoothing"].applies(model)[0]
