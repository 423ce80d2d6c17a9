"""Lean simulation of the angle-encoded variational circuit, built from PennyLane's own gates.

PennyLane (``qml.qnn.TorchLayer`` on ``default.qubit``) is the reference; these paths compute
the same numbers with less overhead, in complex128:

- ``statevector``: the circuit's gate list comes from the template's PennyLane decomposition
  (``compute_decomposition``), each ``Rot`` matrix from ``qml.Rot.compute_matrix`` (batched
  and differentiable in torch), each run of parameter-free entangling gates as one index
  permutation taken from ``qml.matrix``. Gates act on a (batch, 2, ..., 2) state tensor, so
  gradients reach both the weights and the inputs: this is the training path.
- ``unitary``: with frozen weights the whole trainable block is one matrix ``U`` (from
  ``qml.matrix``). Angle encoding with RX gives a product state whose amplitudes are a real
  magnitude times the fixed phase (-i)^popcount(k), so the phase folds into ``U`` and the
  forward pass is two real matrix products: the evaluation path (attacks, attributions).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pennylane as qml
import torch

SIMULATORS = ("fast", "pennylane", "lightning")
# In evaluation the trained block is one dense 2**n x 2**n unitary: at 12 qubits that is
# 256 MiB of complex128; above it, evaluation stays on the statevector path.
MAX_UNITARY_QUBITS = 12


def basis_bits(n_qubits: int, wires) -> torch.Tensor:
    """(2**n, len(wires)) bit of each wire in each basis state; wire 0 is the most significant."""
    k = torch.arange(2 ** n_qubits)[:, None]
    return (k >> (n_qubits - 1 - torch.as_tensor(list(wires)))) & 1


def z_signs(n_qubits: int, n_readout: int) -> torch.Tensor:
    """(2**n, n_readout) eigenvalue of Z on each readout wire in each basis state, float64."""
    return (1 - 2 * basis_bits(n_qubits, range(n_readout))).double()


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


@lru_cache(maxsize=None)
def _circuit_plan(n_qubits: int, n_layers: int) -> tuple:
    """The block's gates in order: ("rot", wire, flat weight index) and ("perm", source index).

    Taken from PennyLane's decomposition of ``StronglyEntanglingLayers`` (default ranges and
    CNOT imprimitive): the weights are numbered so each Rot's parameters say which weight
    row it uses, and each run of parameter-free gates becomes one basis permutation
    (``new[k] = old[source[k]]``).
    """
    numbered = np.arange(n_layers * n_qubits * 3, dtype=float).reshape(n_layers, n_qubits, 3)
    ops = qml.StronglyEntanglingLayers.compute_decomposition(
        numbered, wires=range(n_qubits), **qml.StronglyEntanglingLayers(numbered, wires=range(n_qubits)).hyperparameters)
    plan, source = [], None

    def flush():
        nonlocal source
        if source is not None:
            plan.append(("perm", tuple(int(j) for j in source)))
            source = None

    for op in ops:
        if op.num_params == 0:
            step = _permutation(op, n_qubits)
            source = step if source is None else source[step]
            continue
        flush()
        if op.name != "Rot":
            raise ValueError(f"no lean simulation for gate {op.name}: use simulator: pennylane")
        plan.append(("rot", int(op.wires[0]), int(op.parameters[0]) // 3))
    flush()
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


def simulate_block(state: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Apply ``StronglyEntanglingLayers(weights)`` (L, n, 3) to states (B, 2**n) complex128."""
    n_layers, n_qubits, _ = weights.shape
    flat = weights.reshape(-1, 3).double()
    gates = qml.Rot.compute_matrix(flat[:, 0], flat[:, 1], flat[:, 2])  # (L*n, 2, 2)
    batch = len(state)
    for kind, *args in _device_plan(n_qubits, n_layers, state.device):
        if kind == "rot":
            wire, row = args
            psi = state.reshape(batch, 2 ** wire, 2, -1)
            state = torch.einsum("ij,bajc->baic", gates[row], psi).reshape(batch, -1)
        else:
            state = state[:, args[0]]
    return state


@lru_cache(maxsize=None)
def _device_plan(n_qubits: int, n_layers: int, device: torch.device) -> tuple:
    """``_circuit_plan`` with the permutations as index tensors on ``device``."""
    return tuple(step if step[0] == "rot" else ("perm", torch.as_tensor(step[1], device=device))
                 for step in _circuit_plan(n_qubits, n_layers))


def statevector_expectations(angles: torch.Tensor, weights: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """<Z> on the readout wires (B, n_readout) of RX-encoded ``angles`` (B, n) through the block."""
    n_qubits = angles.shape[1]
    state = rx_product_magnitudes(angles) * rx_product_phases(n_qubits).to(angles.device)
    amplitudes = simulate_block(state, weights)
    return (amplitudes.real ** 2 + amplitudes.imag ** 2) @ signs


def readout_matrix(unitary: torch.Tensor) -> torch.Tensor:
    """Real (2**n, 2 * 2**n) matrix W with [Re a | Im a] = magnitudes @ W for the frozen block:
    a = (magnitudes * phases) @ U^T = magnitudes @ (phases[:, None] * U^T)."""
    folded = rx_product_phases(unitary.shape[0].bit_length() - 1).to(unitary.device)[:, None] * unitary.T
    return torch.cat([folded.real, folded.imag], dim=1)


def unitary_expectations(angles: torch.Tensor, readout: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """<Z> on the readout wires (B, n_readout) through a frozen block given by ``readout_matrix``;
    ``signs`` is ``z_signs`` stacked twice (2 * 2**n, n_readout), for the real and imaginary parts."""
    amplitudes = rx_product_magnitudes(angles) @ readout
    return (amplitudes * amplitudes) @ signs


class QuantumLayer(qml.qnn.TorchLayer):
    """Angles (B, n_qubits) -> ``AngleEmbedding`` (RX) -> ``StronglyEntanglingLayers`` with
    trainable ``weights`` (n_layers, n_qubits, 3) -> <Z> on the first ``n_readout`` wires
    (B, n_readout), float64.

    A ``qml.qnn.TorchLayer`` (same weights, same initialisation), so ``simulator="pennylane"``
    runs the reference circuit on ``default.qubit`` with backpropagation and
    ``simulator="lightning"`` on ``lightning.qubit`` with adjoint differentiation.
    ``simulator="fast"`` computes the same numbers (to float64 round-off) with the
    ``statevector`` path in training mode and the ``unitary`` path in eval mode (frozen
    weights; above ``MAX_UNITARY_QUBITS`` eval stays on the statevector path). ``path`` says
    which one the current mode runs.
    """

    def __init__(self, n_qubits: int, n_layers: int, n_readout: int, simulator: str = "fast"):
        if simulator not in SIMULATORS:
            raise ValueError(f"simulator must be one of {SIMULATORS}, got {simulator!r}")
        if not 1 <= n_readout <= n_qubits:
            raise ValueError(f"the readout ({n_readout} wires) must be 1..n_qubits ({n_qubits})")
        if simulator == "lightning":
            device, diff_method = qml.device("lightning.qubit", wires=n_qubits), "adjoint"
        else:
            device, diff_method = qml.device("default.qubit", wires=n_qubits), "backprop"

        @qml.qnode(device, interface="torch", diff_method=diff_method)
        def circuit(inputs, weights):
            qml.AngleEmbedding(inputs, wires=range(n_qubits), rotation="X")
            qml.StronglyEntanglingLayers(weights, wires=range(n_qubits))
            return [qml.expval(qml.PauliZ(w)) for w in range(n_readout)]

        super().__init__(circuit, {"weights": (n_layers, n_qubits, 3)})
        self.n_qubits, self.n_layers, self.n_readout, self.simulator = n_qubits, n_layers, n_readout, simulator
        self._readout_cache: tuple | None = None
        self.register_buffer("z_signs", z_signs(n_qubits, n_readout), persistent=False)
        # The same for the unitary path's [Re | Im] amplitudes.
        self.register_buffer("z_signs_twice", self.z_signs.repeat(2, 1), persistent=False)

    @property
    def path(self) -> str:
        """The simulation the current mode runs: 'pennylane', 'lightning', 'statevector' or 'unitary'."""
        if self.simulator != "fast":
            return self.simulator
        if self.training or self.n_qubits > MAX_UNITARY_QUBITS:
            return "statevector"
        return "unitary"

    def block_unitary(self) -> torch.Tensor:
        """The trainable block's unitary (2**n, 2**n) for the current weights: the
        statevector simulation of every basis state (equal to ``qml.matrix`` of the template,
        which a test checks, and milliseconds instead of seconds at 8+ qubits)."""
        weights = self.weights.detach()
        with torch.no_grad():
            basis = torch.eye(2 ** self.n_qubits, dtype=torch.complex128, device=weights.device)
            return simulate_block(basis, weights).T

    def frozen_readout(self) -> torch.Tensor:
        """``readout_matrix`` of the current weights, rebuilt only when they change."""
        key = (self.weights.data_ptr(), self.weights._version, self.weights.device)
        if self._readout_cache is None or self._readout_cache[0] != key:
            self._readout_cache = (key, readout_matrix(self.block_unitary()))
        return self._readout_cache[1]

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        path = self.path
        if path == "statevector":
            return statevector_expectations(angles, self.weights, self.z_signs)
        if path == "unitary":
            return unitary_expectations(angles, self.frozen_readout(), self.z_signs_twice)
        return super().forward(angles)
