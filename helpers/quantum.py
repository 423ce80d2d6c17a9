"""Lean simulation of the variational circuits, built from PennyLane's own gates.

A circuit is an encoding (``ENCODINGS``), a trainable block of ``n_layers`` layers of an
ansatz (``ANSATZES``) and a readout (``READOUTS``). PennyLane (``qml.qnn.TorchLayer`` on
``default.qubit``) is the reference; these paths compute the same numbers with less
overhead, in complex128:

- ``statevector``: the block's gate list comes from the template's PennyLane decomposition,
  one layer at a time, each rotation matrix from ``qml.Rot.compute_matrix`` or
  ``qml.RX.compute_matrix`` (batched and differentiable in torch), each run of
  parameter-free entangling gates as one index permutation taken from ``qml.matrix``. Gates
  act on a (batch, 2, ..., 2) state tensor, so gradients reach both the weights and the
  inputs: the training path, and the evaluation path of data re-uploading.
- ``unitary``: with frozen weights the whole trainable block is one matrix ``U``. When the
  encoding happens once, before the block, the input state is real up to a fixed phase:
  angle encoding with RX gives a product state whose amplitudes are a real magnitude times
  (-i)^popcount(k), amplitude encoding gives the real input vector itself. The phase folds
  into ``U`` and the forward pass is two real matrix products: the evaluation path (attacks,
  attributions).
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import pennylane as qml
import torch

SIMULATORS = ("fast", "pennylane", "lightning")
# angle: RX(feature) on each wire, once; amplitude: the input vector as the state's
# amplitudes; reupload: the angle encoding again before every layer.
ENCODINGS = ("angle", "amplitude", "reupload")
ANSATZES = {"strong": qml.StronglyEntanglingLayers, "basic": qml.BasicEntanglerLayers}
# The rotation each ansatz's decomposition uses, and how many weights one rotation takes.
ROTATIONS = {"strong": ("Rot", 3), "basic": ("RX", 1)}
READOUTS = ("expval", "probs")
# In evaluation the trained block is one dense 2**n x 2**n unitary: at 12 qubits that is
# 256 MiB of complex128; above it, evaluation stays on the statevector path.
MAX_UNITARY_QUBITS = 12


def check_options(simulator: str, encoding: str, ansatz: str, readout: str) -> None:
    """Raise a ValueError naming the option and its allowed values for any unknown choice."""
    for name, value, allowed in [("simulator", simulator, SIMULATORS), ("encoding", encoding, ENCODINGS),
                                 ("ansatz", ansatz, tuple(ANSATZES)), ("readout", readout, READOUTS)]:
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    # Adjoint differentiation measures expectation values only, and silently returns wrong
    # input gradients through state preparation (checked against default.qubit).
    if simulator == "lightning" and encoding == "amplitude":
        raise ValueError("simulator 'lightning' (adjoint) cannot differentiate amplitude encoding: "
                         "use simulator: fast or pennylane")
    if simulator == "lightning" and readout == "probs":
        raise ValueError("simulator 'lightning' (adjoint) supports readout 'expval' only: "
                         "use simulator: fast or pennylane")


def basis_bits(n_qubits: int, wires) -> torch.Tensor:
    """(2**n, len(wires)) bit of each wire in each basis state; wire 0 is the most significant."""
    k = torch.arange(2 ** n_qubits)[:, None]
    return (k >> (n_qubits - 1 - torch.as_tensor(list(wires)))) & 1


def z_signs(n_qubits: int, n_readout: int) -> torch.Tensor:
    """(2**n, n_readout) eigenvalue of Z on each readout wire in each basis state, float64."""
    return (1 - 2 * basis_bits(n_qubits, range(n_readout))).double()


def measurement_matrix(n_qubits: int, n_readout: int, readout: str) -> torch.Tensor:
    """(2**n, outputs) float64 M with outputs = |amplitudes|**2 @ M: for ``expval`` the Z
    eigenvalues on the first ``n_readout`` wires (``z_signs``), for ``probs`` the indicator of
    which of the 2**n_readout outcomes of those wires each basis state belongs to."""
    if readout == "expval":
        return z_signs(n_qubits, n_readout)
    outcome = torch.arange(2 ** n_qubits) >> (n_qubits - n_readout)
    return torch.nn.functional.one_hot(outcome, 2 ** n_readout).double()


def rx_product_magnitudes(angles: torch.Tensor) -> torch.Tensor:
    """|amplitude| pattern of ⊗_q RX(a_q)|0> (B, 2**n), real: products of cos(a/2), sin(a/2).

    The complex amplitude is this times ``rx_product_phases(n)`` (RX(a)|0> = cos|0> - i sin|1>).
    Built as the outer product of the two halves' patterns, so only one operation (and one
    reduction in the backward pass) touches all 2**n entries.
    """
    half = angles.double() / 2
    factors = torch.stack([torch.cos(half), torch.sin(half)], dim=2)  # (B, n, 2)

    def pattern(qubits: torch.Tensor) -> torch.Tensor:
        state = qubits[:, 0]
        for q in range(1, qubits.shape[1]):
            state = (state[:, :, None] * qubits[:, q, None, :]).reshape(len(qubits), -1)
        return state

    n = angles.shape[1]
    if n == 1:
        return factors[:, 0]
    high, low = pattern(factors[:, : n // 2]), pattern(factors[:, n // 2:])
    return (high[:, :, None] * low[:, None, :]).reshape(len(angles), -1)


@lru_cache(maxsize=None)
def rx_product_phases(n_qubits: int) -> torch.Tensor:
    """(2**n,) complex128 phase (-i)**popcount(k) of the RX product state's amplitude k."""
    popcount = basis_bits(n_qubits, range(n_qubits)).sum(1)
    return torch.tensor([1, -1j, -1, 1j], dtype=torch.complex128)[popcount % 4]


def layer_hyperparameters(ansatz: str, n_qubits: int, n_layers: int) -> list[dict]:
    """Keyword arguments that make a one-layer call of the ansatz template equal layer l of
    the full template: ``StronglyEntanglingLayers`` cycles its CNOT range r through the layers
    (r = l % (n - 1) + 1), so a one-layer call must be given its layer's range explicitly."""
    if ansatz == "basic" or n_qubits == 1:  # no range to carry over (one wire: no CNOTs)
        return [{} for _ in range(n_layers)]
    return [{"ranges": (layer % (n_qubits - 1) + 1,)} for layer in range(n_layers)]


@lru_cache(maxsize=None)
def _circuit_plan(n_qubits: int, n_layers: int, ansatz: str, reupload: bool) -> tuple:
    """The block's steps in order: ("gate", wire, rotation index), ("perm", source index) and,
    for data re-uploading, ("encode",) before every layer after the first.

    Taken from PennyLane's decomposition of each layer of the ansatz (as
    ``layer_hyperparameters`` calls it): the weights are numbered so each rotation's first
    parameter says which row of ``rotation_matrices`` it uses, and each run of parameter-free
    gates becomes one basis permutation (``new[k] = old[source[k]]``).
    """
    template = ANSATZES[ansatz]
    rotation, per_gate = ROTATIONS[ansatz]
    shape = template.shape(n_layers, n_qubits)
    numbered = np.arange(np.prod(shape), dtype=float).reshape(shape)
    plan = []
    for layer, hyperparameters in enumerate(layer_hyperparameters(ansatz, n_qubits, n_layers)):
        if reupload and layer > 0:
            plan.append(("encode",))
        ops = template(numbered[layer:layer + 1], wires=range(n_qubits), **hyperparameters).decomposition()
        for parameter_free, run in itertools.groupby(ops, key=lambda op: op.num_params == 0):
            if parameter_free:  # the whole run as one basis permutation
                source = np.arange(2 ** n_qubits)
                for op in run:
                    source = source[_permutation(op, n_qubits)]
                plan.append(("perm", tuple(int(j) for j in source)))
                continue
            for op in run:
                if op.name != rotation:
                    raise ValueError(f"no lean simulation for gate {op.name}: use simulator: pennylane")
                plan.append(("gate", int(op.wires[0]), int(op.parameters[0]) // per_gate))
    return tuple(plan)


def _permutation(op, n_qubits: int):
    """Source index of every basis state under the parameter-free gate ``op`` (a permutation
    matrix on its own wires, from ``qml.matrix``), as a numpy array over all 2**n states."""
    local = np.real(qml.matrix(op))
    if not (np.allclose(np.sort(local, axis=1)[:, :-1], 0) and np.allclose(local.max(1), 1)):
        raise ValueError(f"no lean simulation for gate {op.name}: not a permutation; use simulator: pennylane")
    width = len(op.wires)
    bits = basis_bits(n_qubits, op.wires).numpy()                    # (2**n, width)
    weights = 1 << np.arange(width - 1, -1, -1)
    moved = local.argmax(1)[bits @ weights]                           # source local index per state
    moved_bits = (moved[:, None] >> np.arange(width - 1, -1, -1)) & 1
    shifts = n_qubits - 1 - np.array(op.wires.tolist())
    return np.arange(2 ** n_qubits) + ((moved_bits - bits) << shifts).sum(1)


@lru_cache(maxsize=None)
def _device_plan(n_qubits: int, n_layers: int, ansatz: str, reupload: bool, device: torch.device) -> tuple:
    """``_circuit_plan`` with the permutations as index tensors on ``device``."""
    return tuple(("perm", torch.as_tensor(step[1], device=device)) if step[0] == "perm" else step
                 for step in _circuit_plan(n_qubits, n_layers, ansatz, reupload))


def rotation_matrices(weights: torch.Tensor, ansatz: str) -> torch.Tensor:
    """(n_layers * n_qubits, 2, 2) complex128 rotations of the block: ``Rot`` for ``strong``
    (weights (L, n, 3)), ``RX`` for ``basic`` (weights (L, n))."""
    if ansatz == "strong":
        flat = weights.reshape(-1, 3).double()
        return qml.Rot.compute_matrix(flat[:, 0], flat[:, 1], flat[:, 2])
    return qml.RX.compute_matrix(weights.reshape(-1).double())


def apply_gate(state: torch.Tensor, gate: torch.Tensor, wire: int) -> torch.Tensor:
    """Apply a one-qubit ``gate`` (2, 2), or one per sample (B, 2, 2), on ``wire`` to states (B, 2**n)."""
    psi = state.reshape(len(state), 2 ** wire, 2, -1)
    equation = "bij,bajc->baic" if gate.dim() == 3 else "ij,bajc->baic"
    return torch.einsum(equation, gate, psi).reshape(len(state), -1)


def simulate_block(state: torch.Tensor, weights: torch.Tensor, ansatz: str = "strong",
                   reupload_angles: torch.Tensor | None = None) -> torch.Tensor:
    """Apply the trainable block (``n_layers`` layers of ``ansatz``) to states (B, 2**n)
    complex128; with ``reupload_angles`` (B, n) each layer after the first is preceded by
    RX(angle) on every wire, the angles per sample."""
    n_layers, n_qubits = weights.shape[:2]
    gates = rotation_matrices(weights, ansatz)
    reupload = reupload_angles is not None
    if reupload:
        encoding_gates = qml.RX.compute_matrix(reupload_angles.double())   # (B, n, 2, 2)
    for kind, *args in _device_plan(n_qubits, n_layers, ansatz, reupload, state.device):
        if kind == "gate":
            wire, row = args
            state = apply_gate(state, gates[row], wire)
        elif kind == "perm":
            state = state[:, args[0]]
        else:
            for wire in range(n_qubits):
                state = apply_gate(state, encoding_gates[:, wire], wire)
    return state


def initial_state(inputs: torch.Tensor, encoding: str) -> torch.Tensor:
    """The encoded state (B, 2**n) complex128: the RX product state of angles (B, n), or the
    amplitudes (B, 2**n) themselves (real, unit norm) for amplitude encoding."""
    if encoding == "amplitude":
        return inputs.to(torch.complex128)
    return rx_product_magnitudes(inputs) * rx_product_phases(inputs.shape[1]).to(inputs.device)


def statevector_outputs(inputs: torch.Tensor, weights: torch.Tensor, measurement: torch.Tensor,
                        encoding: str, ansatz: str) -> torch.Tensor:
    """Readout (B, outputs) of the encoded ``inputs`` through the block, ``measurement`` from
    ``measurement_matrix``."""
    state = initial_state(inputs, encoding)
    amplitudes = simulate_block(state, weights, ansatz, inputs if encoding == "reupload" else None)
    return (amplitudes.real ** 2 + amplitudes.imag ** 2) @ measurement


def readout_matrix(unitary: torch.Tensor, encoding: str = "angle") -> torch.Tensor:
    """Real (2**n, 2 * 2**n) matrix W with [Re a | Im a] = real_inputs @ W for the frozen block:
    for angle encoding a = (magnitudes * phases) @ U^T = magnitudes @ (phases[:, None] * U^T),
    for amplitude encoding a = amplitudes @ U^T."""
    folded = unitary.T
    if encoding == "angle":
        folded = rx_product_phases(unitary.shape[0].bit_length() - 1).to(unitary.device)[:, None] * folded
    return torch.cat([folded.real, folded.imag], dim=1)


def unitary_outputs(inputs: torch.Tensor, readout: torch.Tensor, measurement: torch.Tensor,
                    encoding: str) -> torch.Tensor:
    """Readout (B, outputs) through a frozen block given by ``readout_matrix``; ``measurement``
    is ``measurement_matrix`` stacked twice (2 * 2**n, outputs), for the real and imaginary parts."""
    real_inputs = inputs.double() if encoding == "amplitude" else rx_product_magnitudes(inputs)
    amplitudes = real_inputs @ readout
    return (amplitudes * amplitudes) @ measurement


class QuantumLayer(qml.qnn.TorchLayer):
    """Encoded inputs -> ``n_layers`` trainable layers -> readout of the first ``n_readout``
    wires, float64.

    ``encoding``: ``angle`` (inputs: angles (B, n_qubits), ``AngleEmbedding`` with RX),
    ``amplitude`` (inputs: real unit-norm amplitudes (B, 2**n_qubits), ``AmplitudeEmbedding``)
    or ``reupload`` (angles (B, n_qubits), the angle encoding again before every layer).
    ``ansatz``: ``strong`` (``StronglyEntanglingLayers``, ``weights`` (n_layers, n_qubits, 3))
    or ``basic`` (``BasicEntanglerLayers``: RX rotations and a CNOT ring, ``weights``
    (n_layers, n_qubits)). ``readout``: ``expval`` (<Z> on each readout wire, (B, n_readout))
    or ``probs`` (probabilities of the 2**n_readout outcomes of the readout wires,
    (B, 2**n_readout)).

    A ``qml.qnn.TorchLayer`` (same weights, same initialisation), so ``simulator="pennylane"``
    runs the reference circuit on ``default.qubit`` with backpropagation and
    ``simulator="lightning"`` on ``lightning.qubit`` with adjoint differentiation (angle
    encodings and ``expval`` only). ``simulator="fast"`` computes the same numbers (to float64
    round-off) with the ``statevector`` path in training mode and the ``unitary`` path in eval
    mode (frozen weights; re-uploading, and above ``MAX_UNITARY_QUBITS`` any encoding, stays
    on the statevector path). ``path`` says which one the current mode runs.
    """

    def __init__(self, n_qubits: int, n_layers: int, n_readout: int, simulator: str = "fast",
                 encoding: str = "angle", ansatz: str = "strong", readout: str = "expval"):
        check_options(simulator, encoding, ansatz, readout)
        if not 1 <= n_readout <= n_qubits:
            raise ValueError(f"the readout ({n_readout} wires) must be 1..n_qubits ({n_qubits})")
        if simulator == "lightning":
            device, diff_method = qml.device("lightning.qubit", wires=n_qubits), "adjoint"
        else:
            device, diff_method = qml.device("default.qubit", wires=n_qubits), "backprop"
        wires, template = range(n_qubits), ANSATZES[ansatz]
        per_layer = layer_hyperparameters(ansatz, n_qubits, n_layers)

        @qml.qnode(device, interface="torch", diff_method=diff_method)
        def circuit(inputs, weights):
            if encoding == "amplitude":
                qml.AmplitudeEmbedding(inputs, wires=wires)  # already padded and normalised
            else:
                qml.AngleEmbedding(inputs, wires=wires, rotation="X")
            if encoding == "reupload":
                for layer, hyperparameters in enumerate(per_layer):
                    if layer > 0:
                        qml.AngleEmbedding(inputs, wires=wires, rotation="X")
                    template(weights[layer:layer + 1], wires=wires, **hyperparameters)
            else:
                template(weights, wires=wires)
            if readout == "probs":
                return qml.probs(wires=range(n_readout))
            return [qml.expval(qml.PauliZ(w)) for w in range(n_readout)]

        super().__init__(circuit, {"weights": template.shape(n_layers, n_qubits)})
        self.n_qubits, self.n_layers, self.n_readout, self.simulator = n_qubits, n_layers, n_readout, simulator
        self.encoding, self.ansatz, self.readout = encoding, ansatz, readout
        self._readout_cache: tuple | None = None
        self.register_buffer("measurement", measurement_matrix(n_qubits, n_readout, readout), persistent=False)
        # The same for the unitary path's [Re | Im] amplitudes.
        self.register_buffer("measurement_twice", self.measurement.repeat(2, 1), persistent=False)

    @property
    def path(self) -> str:
        """The simulation the current mode runs: 'pennylane', 'lightning', 'statevector' or 'unitary'."""
        if self.simulator != "fast":
            return self.simulator
        if self.training or self.encoding == "reupload" or self.n_qubits > MAX_UNITARY_QUBITS:
            return "statevector"
        return "unitary"

    def block_unitary(self) -> torch.Tensor:
        """The trainable block's unitary (2**n, 2**n) for the current weights (not defined for
        re-uploading, whose block contains the encoding): the statevector simulation of every
        basis state (equal to ``qml.matrix`` of the template, which a test checks, and
        milliseconds instead of seconds at 8+ qubits)."""
        weights = self.weights.detach()
        with torch.no_grad():
            basis = torch.eye(2 ** self.n_qubits, dtype=torch.complex128, device=weights.device)
            return simulate_block(basis, weights, self.ansatz).T

    def frozen_readout(self) -> torch.Tensor:
        """``readout_matrix`` of the current weights, rebuilt only when they change."""
        key = (self.weights.data_ptr(), self.weights._version, self.weights.device)
        if self._readout_cache is None or self._readout_cache[0] != key:
            self._readout_cache = (key, readout_matrix(self.block_unitary(), self.encoding))
        return self._readout_cache[1]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        path = self.path
        if path == "statevector":
            return statevector_outputs(inputs, self.weights, self.measurement, self.encoding, self.ansatz)
        if path == "unitary":
            return unitary_outputs(inputs, self.frozen_readout(), self.measurement_twice, self.encoding)
        return super().forward(inputs)
