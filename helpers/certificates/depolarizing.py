"""The depolarising differential-privacy certificate (Du, Hsieh, Liu, Tao, Liu, Phys. Rev.
Research 3, 023153 (2021)) for a circuit measured after global depolarising noise.

The argument, in three steps:

1. The ε-ball of inputs maps (through the PCA or the trained affine map) into a box of angles
   (``bounds.interval_trace``, as the interval certificate does), and the encoded states of
   any two points of that box are within trace distance τ (``Encoding.trace_distance_bound``).
   The trainable block is unitary (and any later data-independent channel contracts trace
   distance), so τ holds up to the noise.
2. Global depolarising noise ρ -> (1 - p) ρ + p I/d (d = 2**n_qubits) makes the measurement
   (ε_DP, 0)-differentially private for states within trace distance τ, with
   ε_DP = ln(1 + d (1 - p) τ / p): for 0 <= M <= I, Tr M(ρ - σ) <= τ λ_max(M) while
   Tr M D(σ) >= p Tr M / d >= p λ_max(M) / d, so Tr M D(ρ) <= e^{ε_DP} Tr M D(σ) (the
   depolarising lemma behind Du et al.'s bound; equality for orthogonal pure states and a
   rank-one M, so it cannot be tightened for every measurement).
3. An (ε_DP, 0)-DP randomised classifier whose expected scores s_k lie in [0, 1] keeps its
   argmax k over the ball if s_k > e^{2 ε_DP} max_{j != k} s_j (Lecuyer et al. 2019,
   Proposition 1, with δ = 0): each score moves by at most a factor e^{±ε_DP}.

The scores are the measured distribution's, not a softmax: for readout ``expval`` the
probability that class k's wire reads 0 (s_k = (1 + <Z_k>)/2, an event of the measurement,
and <Z_k> = 2 s_k - 1 is monotone in it), for ``probs`` the probability of outcome k. The
model's prediction is the argmax of its logits, a monotone function of these scores (times
the output scale: a negative scale makes it the argmin, the argmax of the complementary events
1 - s_k). The noisy scores are computed here in closed form from the noise-free circuit:
global depolarising maps the basis probabilities P to (1 - p) P + p / d, so every readout
value o = P @ M becomes (1 - p) o + p mean(M) (<Z> -> (1 - p) <Z>, outcome probabilities of
m wires -> (1 - p) P + p / 2**m).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import torch

from ..models.ops import Cast, Circuit, Scale, run_ops
from ..models.simulation import statevector_outputs
from ..registry import CERTIFICATES, ENCODINGS, READOUTS
from .base import Certificate
from .bounds import input_box, interval_trace

# The certified score must beat e^{2 ε} times the runner-up by this relative and absolute
# slack: the model's logits are float32, so a float64 win by 1e-9 proves nothing.
RELATIVE_SLACK, ABSOLUTE_SLACK = 1e-4, 1e-6


def noise_strengths(model) -> dict[str, float]:
    """Every noise strength of ``model.params.noise`` by its (dotted) key, {} when the model
    has no ``noise`` (the noise-free circuit, every classical model). ``noise`` may be a
    ``Params``, another dataclass, a mapping or a namespace, nested or not."""
    def flatten(value, prefix):
        if value is None:
            return {}
        if hasattr(value, "to_dict"):
            value = value.to_dict()
        elif dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        elif not isinstance(value, Mapping) and hasattr(value, "__dict__"):
            value = vars(value)
        if isinstance(value, Mapping):
            return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}{key}.").items()}
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return {prefix.rstrip("."): float(value)} if is_number else {}

    return flatten(getattr(getattr(model, "params", None), "noise", None), "")


def global_depolarizing(model) -> float:
    """The strength p of the global depolarising channel before measurement
    (``noise.global_depolarizing`` of a ``vqc``), 0.0 when the model has none."""
    return noise_strengths(model).get("global_depolarizing", 0.0)


def dp_epsilon(tau, p: float, dimension: int) -> torch.Tensor:
    """ε_DP = ln(1 + d (1 - p) τ / p) (float64, the shape of ``tau``) of global depolarising
    noise of strength ``p`` > 0 on a ``dimension``-dimensional system, for states within trace
    distance ``tau`` (a number or a tensor)."""
    return torch.log1p(dimension * (1 - p) * torch.as_tensor(tau, dtype=torch.float64) / p)


def depolarised_outputs(outputs: torch.Tensor, p: float, measurement: torch.Tensor) -> torch.Tensor:
    """Readout values (B, outputs) after global depolarising noise of strength ``p``, from the
    noise-free ones, ``measurement`` the readout's (2**n, outputs) measurement matrix:
    (1 - p) o + p * (the value of the maximally mixed state, the mean of M's rows)."""
    return (1 - p) * outputs.double() + p * measurement.double().mean(dim=0)


@CERTIFICATES.register
class DepolarizingPrivacy(Certificate):
    """The robustness bound of Du et al. (2021): global depolarising noise of strength p before
    the measurement makes the circuit (ε_DP, 0)-differentially private over the states the
    ε-ball encodes (trace distance at most τ, bounded through the encoding's angle box),
    ε_DP = ln(1 + 2**n (1 - p) τ / p), and a point is certified when its predicted class's
    score (the probability of its measured event, noise included, exact) exceeds e^{2 ε_DP}
    times every other class's (Lecuyer et al. 2019). Applies to an angle (RX product-state)
    encoding entered once, with ``noise.global_depolarizing`` > 0 and no other channel; it
    certifies the exact (infinite-shot) noisy classifier."""

    name, label = "dp_depolarizing", "differential privacy of depolarising noise (Du et al. 2021)"
    tags = frozenset({"noise"})  # proves something only for a noisy circuit
    uses = ("helpers.certificates.bounds",)

    @classmethod
    def applies(cls, model):
        if getattr(model, "stochastic", False):
            return False, "a randomised classifier (shots): the privacy bound holds for its exact readout, not its samples"
        ops = getattr(model, "bound_ops", lambda: None)()
        circuits = [i for i, op in enumerate(ops or []) if isinstance(op, Circuit)]
        if not circuits:
            return False, "no variational circuit with an affine encoding (e.g. a classical model, amplitude encoding)"
        layer = ops[circuits[0]].layer
        encoding = ENCODINGS[layer.encoding]
        if encoding.trace_distance_bound(torch.zeros(1, layer.n_qubits)) is None:
            return False, f"no trace-distance bound for the states of encoding {layer.encoding!r}"
        if not READOUTS[layer.readout].per_class:
            return False, f"readout {layer.readout!r}: the classes share one measured value, no score per class"
        if encoding.repeats and layer.n_layers > 1:
            return False, "the data enters the circuit more than once (re-uploading): no single encoded state"
        if not all(isinstance(op, (Cast, Scale)) for op in ops[circuits[0] + 1:]):
            return False, "the logits are not a scaled readout of the circuit"
        if getattr(layer.noise, "device", None) is not None:
            return False, "the noise of a device (noise.device) is no global depolarising channel"
        strengths = noise_strengths(model)
        others = sorted(k for k, v in strengths.items() if k != "global_depolarizing" and v != 0)
        if others:
            return False, f"noise channels other than global depolarising are on ({', '.join(others)})"
        p = strengths.get("global_depolarizing", 0.0)
        if not 0 < p <= 1:
            return False, "no global depolarising noise (noise.global_depolarizing is 0)"
        return True, ""

    @staticmethod
    def scores(circuit: Circuit, angles: torch.Tensor, p: float, sign: float) -> torch.Tensor:
        """Class scores (B, classes) in [0, 1] whose argmax is the model's prediction: the
        noisy readout values rescaled to the probability of their measured event (or of its
        complement when the output scale is negative)."""
        layer = circuit.layer
        outputs = statevector_outputs(angles.double(), layer.weights.detach(), layer.measurement, layer.encoding,
                                      layer.ansatz)
        noisy = depolarised_outputs(outputs, p, layer.measurement)[:, :circuit.outputs]
        columns = layer.measurement.double()[:, :circuit.outputs]
        low, high = columns.min(dim=0).values, columns.max(dim=0).values
        scores = (noisy - low) / (high - low)
        return scores if sign > 0 else 1 - scores

    @staticmethod
    @torch.no_grad()
    def trace_distance(model, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        """Upper bounds τ (B,) on the trace distance between the encoded state of each x and
        that of any x' of its ε-ball (inside [0, 1]), for a model the certificate applies to:
        the interval bounds of the circuit's angles over the ball (the interval certificate's),
        then the encoding's bound for those angle radii."""
        ops = model.bound_ops()
        k = next(i for i, op in enumerate(ops) if isinstance(op, Circuit))
        angles = run_ops(ops[:k], x).double()
        low, high = (t.double() for t in interval_trace(ops[:k], *input_box(x, epsilon))[-1])
        # x and every x' of the ball lie in the angle box, so |a' - a| <= the larger side.
        radii = torch.maximum(high - angles, angles - low).clamp(min=0)
        return ENCODINGS[ops[k].layer.encoding].trace_distance_bound(radii)

    @torch.no_grad()
    def certify(self, model, x, y, epsilon):
        certified = np.zeros(len(x), dtype=bool)
        if not self.applies(model)[0]:
            return certified
        ops = model.bound_ops()
        k = next(i for i, op in enumerate(ops) if isinstance(op, Circuit))
        circuit, p = ops[k], global_depolarizing(model)
        sign = math.prod(float(op.scale) for op in ops[k + 1:] if isinstance(op, Scale))
        if sign == 0:  # every logit 0: the prediction is a tie broken by position, nothing to prove
            return certified
        angles = run_ops(ops[:k], x).double()
        privacy = dp_epsilon(self.trace_distance(model, x, epsilon), p, 2 ** circuit.layer.n_qubits)
        scores = self.scores(circuit, angles, p, sign)
        top = scores.argmax(dim=1)
        runner_up = scores.scatter(1, top[:, None], float("-inf")).max(dim=1).values
        wins = scores.gather(1, top[:, None])[:, 0] > torch.exp(2 * privacy) * (1 + RELATIVE_SLACK) * runner_up \
            + ABSOLUTE_SLACK
        return ((top == y.to(top.device)) & wins).cpu().numpy()
