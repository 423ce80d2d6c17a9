"""The fast paths' simulation of a variational circuit, one function per step: the gate plan
of the trainable block (from PennyLane's own decomposition, cached), gates on a batched state
tensor, the block on a state, and the readout from a state vector, a density matrix (per-gate
noise) or the block's unitary with frozen weights. ``quantum.QuantumLayer`` chooses the path;
its module docstring says which runs when.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import pennylane as qml
import torch

from ..registry import ANSATZES, ENCODINGS
from .encodings import basis_bits
from .noise import apply_superoperator, followed_by_channel, unitary_superoperator


@lru_cache(maxsize=None)
def _circuit_plan(n_qubits: int, n_layers: int, ansatz: str, reupload: bool, split: bool = False) -> tuple:
    """The block's steps in order: ("gate", wire, rotation index), ("perm", source index) and,
    for data re-uploading, ("encode",) before every layer after the first.

    Taken from PennyLane's decomposition of each layer of the ansatz (as its
    ``layer_hyperparameters`` call it): the weights are numbered so each rotation's first
    parameter says which row of ``rotation_matrices`` it uses, and each run of parameter-free
    gates becomes one basis permutation (``new[k] = old[source[k]]``). With ``split`` (the
    density-matrix path, where a channel follows every gate) each parameter-free gate is a
    step of its own instead: ("op", wires, its matrix on them as nested tuples, from ``qml.matrix``).
    """
    entry = ANSATZES[ansatz]
    shape = entry.weight_shape(n_layers, n_qubits)
    numbered = np.arange(np.prod(shape), dtype=float).reshape(shape)
    plan = []
    for layer, hyperparameters in enumerate(entry.layer_hyperparameters(n_qubits, n_layers)):
        if reupload and layer > 0:
            plan.append(("encode",))
        ops = entry.template(numbered[layer:layer + 1], wires=range(n_qubits), **hyperparameters).decomposition()
        for parameter_free, run in itertools.groupby(ops, key=lambda op: op.num_params == 0):
            if parameter_free and split:
                plan.extend(("op", tuple(int(w) for w in op.wires), tuple(map(tuple, qml.matrix(op).tolist())))
                            for op in run)
                continue
            if parameter_free:  # the whole run as one basis permutation
                source = np.arange(2 ** n_qubits)
                for op in run:
                    source = source[_permutation(op, n_qubits)]
                plan.append(("perm", tuple(int(j) for j in source)))
                continue
            for op in run:
                if op.name != entry.rotation:
                    raise ValueError(f"no lean simulation for gate {op.name}: use simulator: pennylane")
                plan.append(("gate", int(op.wires[0]), int(op.parameters[0]) // entry.weights_per_rotation))
    return tuple(plan)


def count_parametrised_gates(n_qubits: int, n_layers: int, ansatz: str, reupload: bool) -> int:
    """Gates of the block whose matrix depends on the weights or the inputs (rotations, and one
    encoding gate per wire at every re-uploading step): the density-matrix path keeps one matrix for the
    backward pass per such gate (a fixed gate's backward needs none)."""
    plan = _circuit_plan(n_qubits, n_layers, ansatz, reupload, split=True)
    return sum(n_qubits if step[0] == "encode" else step[0] == "gate" for step in plan)


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


def apply_gate(state: torch.Tensor, gate: torch.Tensor, wire: int) -> torch.Tensor:
    """Apply a one-qubit ``gate`` (2, 2), or one per sample (B, 2, 2), on ``wire`` to states (B, 2**n)."""
    psi = state.reshape(len(state), 2 ** wire, 2, -1)
    equation = "bij,bajc->baic" if gate.dim() == 3 else "ij,bajc->baic"
    return torch.einsum(equation, gate, psi).reshape(len(state), -1)


def simulate_block(state: torch.Tensor, weights: torch.Tensor, ansatz: str = "strong",
                   reupload_gates: torch.Tensor | None = None) -> torch.Tensor:
    """Apply the trainable block (``n_layers`` layers of ``ansatz``) to states (B, 2**n)
    complex128; with ``reupload_gates`` (the encoding's ``gate_matrices``) each layer after the
    first is preceded by an encoding gate on every wire, per sample: (B, n, 2, 2) the same
    before every layer, or (B, n_layers, n, 2, 2) layer l's own (row 0 is the initial state's,
    not used here)."""
    n_layers, n_qubits = weights.shape[:2]
    gates = ANSATZES[ansatz].rotation_matrices(weights)
    reupload = reupload_gates is not None
    layer = 0
    for kind, *args in _device_plan(n_qubits, n_layers, ansatz, reupload, state.device):
        if kind == "gate":
            wire, row = args
            state = apply_gate(state, gates[row], wire)
        elif kind == "perm":
            state = state[:, args[0]]
        else:
            layer += 1
            now = reupload_gates[:, layer] if reupload_gates.dim() == 5 else reupload_gates  # (B, n, 2, 2)
            for wire in range(n_qubits):
                state = apply_gate(state, now[:, wire], wire)
    return state


def split_inputs(inputs: torch.Tensor, n_layers: int, encoding: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The angles of the initial state and the encoding gates of the re-uploading steps (None:
    the encoding happens once) of the circuit's ``inputs``; fresh angles per layer are (B,
    n_layers * n * angles_per_wire), one row per layer."""
    entry = ENCODINGS[encoding]
    if entry.per_layer:
        angles = inputs.reshape(len(inputs), n_layers, -1)
        return angles[:, 0], entry.gate_matrices(angles)
    return inputs, entry.gate_matrices(inputs) if entry.repeats else None


def statevector_outputs(inputs: torch.Tensor, weights: torch.Tensor, measurement: torch.Tensor,
                        encoding: str, ansatz: str) -> torch.Tensor:
    """Readout (B, outputs) of the encoded ``inputs`` through the block, ``measurement`` from
    the readout's ``measurement_matrix``."""
    first, reupload = split_inputs(inputs, weights.shape[0], encoding)
    amplitudes = simulate_block(ENCODINGS[encoding].initial_state(first), weights, ansatz, reupload)
    return (amplitudes.real ** 2 + amplitudes.imag ** 2) @ measurement


def density_outputs(inputs: torch.Tensor, weights: torch.Tensor, measurement: torch.Tensor,
                    encoding: str, ansatz: str, channel: torch.Tensor) -> torch.Tensor:
    """Readout (B, outputs) = diag(ρ) @ ``measurement`` of the circuit's final density matrix ρ,
    every gate followed by the one-wire superoperator ``channel`` (``noise.gate_channel``) on
    each wire it acts on; differentiable in ``inputs`` and ``weights``. The same encodings and
    ansatzes as ``statevector_outputs``, from the same gate plan with every gate a step of its
    own; the encoding gates are followed by the channel too (``prepared_by_gates``)."""
    entry = ENCODINGS[encoding]
    n_layers, n_qubits = weights.shape[:2]
    first, reupload = split_inputs(inputs, n_layers, encoding)
    psi = entry.initial_state(first)
    rho = (psi[:, :, None] * psi.conj()[:, None, :]).reshape(len(psi), *(2,) * (2 * n_qubits))
    if entry.prepared_by_gates:  # one gate per wire, each followed by the channel (they commute)
        for wire in range(n_qubits):
            rho = apply_superoperator(rho, channel, [wire])
    rotations = ANSATZES[ansatz].rotation_matrices(weights)
    rotation_steps = followed_by_channel(unitary_superoperator(rotations, 1), channel, 1)
    layer = 0
    for kind, *args in _circuit_plan(n_qubits, n_layers, ansatz, reupload is not None, split=True):
        if kind == "gate":
            wire, row = args
            rho = apply_superoperator(rho, rotation_steps[row], [wire])
        elif kind == "op":
            wires, matrix = args
            unitary = torch.tensor(matrix, dtype=torch.complex128, device=rho.device)
            step = followed_by_channel(unitary_superoperator(unitary, len(wires)), channel.to(rho.device), len(wires))
            rho = apply_superoperator(rho, step, list(wires))
        else:
            layer += 1
            gates = reupload[:, layer] if reupload.dim() == 5 else reupload        # (B, n, 2, 2)
            steps = followed_by_channel(unitary_superoperator(gates, 1), channel, 1)  # (B, n, 2, 2, 2, 2)
            for wire in range(n_qubits):
                rho = apply_superoperator(rho, steps[:, wire], [wire])
    size = 2 ** n_qubits
    probabilities = rho.reshape(len(rho), size, size).diagonal(dim1=1, dim2=2).real
    return probabilities @ measurement


def readout_matrix(unitary: torch.Tensor, encoding: str = "angle") -> torch.Tensor:
    """Real (2**n, 2 * 2**n) matrix W with [Re a | Im a] = real_inputs @ W for the frozen block:
    a = (real_inputs * phases) @ U^T = real_inputs @ (phases[:, None] * U^T)."""
    folded = unitary.T
    phases = ENCODINGS[encoding].phases(unitary.shape[0].bit_length() - 1)
    if phases is not None:
        folded = phases.to(unitary.device)[:, None] * folded
    return torch.cat([folded.real, folded.imag], dim=1)


def unitary_outputs(inputs: torch.Tensor, readout: torch.Tensor, measurement: torch.Tensor,
                    encoding: str) -> torch.Tensor:
    """Readout (B, outputs) through a frozen block given by ``readout_matrix``; ``measurement``
    is the measurement matrix stacked twice (2 * 2**n, outputs), for the real and imaginary parts."""
    amplitudes = ENCODINGS[encoding].real_inputs(inputs) @ readout
    return (amplitudes * amplitudes) @ measurement
