"""A circuit as a named device runs it (``vqc``'s ``noise: {device: ..., qubits: [...]}``).

The device is one of the calibration snapshots that ship with ``qiskit-ibm-runtime`` (its
fake backends, offline). For a trained circuit with frozen weights:

1. **Transpiled** by Qiskit onto the chosen physical qubits (``qubits``, or the
   best-calibrated chain: ``devices.best_chain``): the logical circuit (the encoding's RX on every
   wire, a barrier, the ansatz's PennyLane decomposition with the trained weights) is routed
   on the device's coupling map restricted to those qubits (SWAPs where the map forces them)
   and translated to its basis gates, with a fixed ``seed``. The encoding stays parametric:
   each of its angles enters through ``rz`` gates affine in it (read off the transpiled
   expressions and checked), so the transpiled circuit is one circuit for every input.
2. **Noise** on every gate of the transpiled circuit, after it, on its qubits: Qiskit Aer's
   calibrated gate error (``basic_device_gate_errors``: a depolarising error sized so that,
   with the thermal relaxation over the gate's duration by the qubits' T1 and T2, the gate's
   error equals the calibrated one). Virtual ``rz`` gates carry none. Qubits idle while
   others act are not relaxed (as in Aer's ``NoiseModel.from_backend``).
3. **Read-out** by each measured qubit's calibrated asymmetric confusion matrix
   (``prob_meas1_prep0``, ``prob_meas0_prep1`` of the backend's properties), on the physical
   qubit where the routing leaves the logical wire.

Simulation (the repository's own arithmetic; Aer is the reference of the tests): the
circuit after the encoding is a fixed channel, so each outcome's effect operator is evolved
backwards through it once per set of weights (the Heisenberg picture, in the Pauli basis:
``_effects``); an input's outcome probabilities are then the effects contracted with the
Pauli expectations of its noisy encoded product state, differentiable in the angles: an
attack's forward pass costs about ``outcomes x 4**n`` operations, not a density-matrix
simulation per input.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pennylane as qml
import torch
from torch.utils.checkpoint import checkpoint

from ..registry import ANSATZES
from .devices import NOT_GATES, best_chain, fake_backend, gate_errors, readout_confusion, transpile_on
from .noise import unitary_superoperator

# I, X, Y, Z.
PAULIS = torch.tensor([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]],
                      dtype=torch.complex128)

# The most numbers of product states formed at once (64 MiB of float64).
PRODUCT_ENTRIES = 2 ** 23


def logical_circuit(weights: np.ndarray, n_qubits: int, ansatz: str):
    """The logical circuit in Qiskit: RX(x_i) on wire i (x a ParameterVector "x"), a barrier,
    then the ansatz's PennyLane decomposition (every layer as the lean simulation calls it)
    with the numeric ``weights``. Qiskit qubit i is PennyLane wire i."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.circuit.library import UnitaryGate

    entry, x = ANSATZES[ansatz], ParameterVector("x", n_qubits)
    circuit = QuantumCircuit(n_qubits)
    for wire in range(n_qubits):
        circuit.rx(x[wire], wire)
    circuit.barrier()
    n_layers = weights.shape[0]
    for layer, hyperparameters in enumerate(entry.layer_hyperparameters(n_qubits, n_layers)):
        for op in entry.template(weights[layer:layer + 1], wires=range(n_qubits), **hyperparameters).decomposition():
            wires, angles = [int(w) for w in op.wires], [float(p) for p in op.parameters]
            if op.name == "Rot":                     # Rot(φ, θ, ω) = RZ(ω) RY(θ) RZ(φ)
                circuit.rz(angles[0], wires[0])
                circuit.ry(angles[1], wires[0])
                circuit.rz(angles[2], wires[0])
            elif op.name in ("RX", "RY", "RZ"):
                getattr(circuit, op.name.lower())(angles[0], wires[0])
            elif op.name in ("CNOT", "CZ"):
                getattr(circuit, {"CNOT": "cx", "CZ": "cz"}[op.name])(*wires)
            else:                                    # PennyLane's matrix is big-endian in its wires
                circuit.append(UnitaryGate(qml.matrix(op)), wires[::-1])
    return circuit, x


def _superoperator(kraus, wires: int) -> torch.Tensor:
    """Σ_k K ρ K† as a tensor (*(2,)*4k) (``noise``'s layout), from Kraus matrices (2**k, 2**k)."""
    return unitary_superoperator(torch.as_tensor(np.stack(kraus), dtype=torch.complex128), wires).sum(0)


def _compose(after: torch.Tensor, before: torch.Tensor, wires: int) -> torch.Tensor:
    """The superoperator of ``before`` then ``after`` (both (*(2,)*4k))."""
    size = 4 ** wires
    return (after.reshape(size, size) @ before.reshape(size, size)).reshape(after.shape)


# One wire where nothing happens, as a superoperator.
IDLE = _superoperator([np.eye(2)], 1)


@dataclass(frozen=True)
class DeviceCircuit:
    """A frozen circuit as the device runs it: the effect of every outcome of the measured
    wires evolved back to just after the encoding (``effects``), and each wire's encoding as
    a list of noisy steps (``encoding``: fixed superoperators, or an ``rz`` affine in the
    angle: (slope, offset, the noise after it))."""

    device: str
    qubits: tuple[int, ...]          # physical qubit of position p (logical wire p before routing)
    measured: tuple[int, ...]        # position where each measured logical wire ends
    effects: torch.Tensor            # (outcomes, 4**n) real: outcome probability = effects @ the
                                     # encoded state's Pauli expectations (I, X, Y, Z per wire, wire 0 first)
    encoding: tuple[tuple, ...]      # per wire: ("fixed", superop) or ("rz", slope, offset, superop | None)
    transpiled: object               # the Qiskit circuit on positions 0..n-1 (for checks against Aer)
    errors: dict                     # (gate name, positions) -> Aer QuantumError on positions
    readout: torch.Tensor            # (n, 2, 2) confusion [measured, prepared] per position

    def probabilities(self, angles: torch.Tensor) -> torch.Tensor:
        """Outcome probabilities (B, outcomes) of the measured wires for encoding angles (B, n).
        The product states are formed ``PRODUCT_ENTRIES`` numbers at a time and, under
        autograd, recomputed in the backward pass (checkpointing): memory stays bounded
        however many inputs (a certificate's boxes) come at once."""
        vectors = self.encoded(angles)
        effects = self.effects.to(angles.device)
        rows = max(1, PRODUCT_ENTRIES // effects.shape[1])
        parts = [checkpoint(_contract, chunk, effects, use_reentrant=False)
                 if torch.is_grad_enabled() and chunk.requires_grad else _contract(chunk, effects)
                 for chunk in vectors.split(rows)]
        return torch.cat(parts)

    def encoded(self, angles: torch.Tensor) -> torch.Tensor:
        """Each wire's encoded state (B, n, 4) by its Pauli expectations (Tr ρ, <X>, <Y>, <Z>)
        after its noisy encoding steps from |0><0|."""
        n = angles.shape[1]
        rho0 = torch.zeros(2, 2, dtype=torch.complex128, device=angles.device)
        rho0[0, 0] = 1
        vectors = []
        for wire in range(n):
            rho = rho0.expand(len(angles), 2, 2)
            for step in self.encoding[wire]:
                if step[0] == "fixed":
                    rho = torch.einsum("abcd,ncd->nab", step[1].to(rho.device), rho)
                    continue
                _, slope, offset, noise = step
                phase = torch.exp(-0.5j * (slope * angles[:, wire].double() + offset))      # RZ = diag(e^{-iφ/2}, e^{iφ/2})
                diag = torch.stack([phase, phase.conj()], dim=1)
                rho = diag[:, :, None] * rho * diag.conj()[:, None, :]
                if noise is not None:
                    rho = torch.einsum("abcd,ncd->nab", noise.to(rho.device), rho)
            vectors.append(torch.einsum("nrc,pcr->np", rho, PAULIS.to(rho.device)).real)
        return torch.stack(vectors, dim=1)


def _contract(vectors: torch.Tensor, effects: torch.Tensor) -> torch.Tensor:
    """Outcome probabilities (B, outcomes): the product states' 4**n Pauli expectations (wire 0
    the most significant) times the effects' coefficients."""
    product = vectors[:, 0]
    for wire in range(1, vectors.shape[1]):
        product = (product[:, :, None] * vectors[:, wire, None, :]).reshape(len(vectors), -1)
    return product @ effects.T


def _affine(expression, parameter) -> tuple[float, float]:
    """(slope, offset) of a transpiled angle that must be affine in ``parameter``."""
    at = [float(expression.bind({parameter: v})) for v in (0.0, 1.0, 0.37)]
    slope, offset = at[1] - at[0], at[0]
    if abs(offset + 0.37 * slope - at[2]) > 1e-9:
        raise ValueError(f"a transpiled encoding angle is not affine in its input: {expression}")
    return slope, offset


@lru_cache(maxsize=8)
def _cached(device, qubits, weights: bytes, shape: tuple, ansatz, n_readout, seed) -> DeviceCircuit:
    values = np.frombuffer(weights, dtype=np.float64).reshape(shape)
    return device_circuit(device, qubits, values, ansatz, n_readout, seed)


def frozen_device_circuit(device: str, qubits, weights: torch.Tensor, ansatz: str, n_readout: int,
                          seed: int) -> DeviceCircuit:
    """``device_circuit`` for these weights, shared by every model of the process with the same
    circuit and weights (a unit reloads its model; the transpilation and the effects are
    built once)."""
    values = weights.detach().to("cpu", torch.float64).contiguous().numpy()
    return _cached(device, None if qubits is None else tuple(qubits), values.tobytes(), values.shape, ansatz,
                   n_readout, seed)


def device_circuit(device: str, qubits: tuple[int, ...] | None, weights: np.ndarray, ansatz: str,
                   n_readout: int, seed: int = 0, noisy: bool = True) -> DeviceCircuit:
    """Transpile the circuit with ``weights`` onto ``device`` and build its ``DeviceCircuit``
    (``noisy=False``: the same transpiled circuit without any noise, for checks)."""
    backend = fake_backend(device)
    n = weights.shape[1]
    qubits = tuple(qubits) if qubits is not None else best_chain(backend, n)
    circuit, x = logical_circuit(weights, n, ansatz)
    transpiled = transpile_on(backend, qubits, circuit, seed)
    index = {q: p for p, q in enumerate(qubits)}
    errors = {(name, tuple(index[q] for q in qargs)): error for (name, qargs), error in gate_errors(device).items()
              if noisy and all(q in index for q in qargs)}
    readout = readout_confusion(device, qubits) if noisy else torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
    encoding, block = _steps(transpiled, x.name, errors)
    final = transpiled.layout.final_index_layout() if transpiled.layout is not None else list(range(n))
    measured = tuple(int(final[wire]) for wire in range(n_readout))
    return DeviceCircuit(device, qubits, measured, _effects(_fused(block), measured, readout, n), encoding,
                         transpiled, errors, readout)


def _steps(transpiled, parameters: str, errors: dict) -> tuple[tuple, list]:
    """The transpiled circuit as noisy steps on positions: per wire its encoding's steps
    (before the barrier; ``DeviceCircuit.encoding``) and the block's (wires, superoperator)
    in order, each gate followed by its error from ``errors`` ((gate name, positions) -> Aer
    QuantumError). ``parameters`` names the encoding's ParameterVector."""
    from qiskit.quantum_info import Kraus, Operator

    @lru_cache(maxsize=None)
    def noise_of(name, positions):
        error = errors.get((name, positions))
        return None if error is None else _superoperator(Kraus(error).data, len(positions))

    encoding: list[list] = [[] for _ in range(transpiled.num_qubits)]
    block: list[tuple[list[int], torch.Tensor]] = []
    before_barrier = True
    for instruction in transpiled.data:
        operation = instruction.operation
        positions = tuple(transpiled.find_bit(q).index for q in instruction.qubits)
        if operation.name == "barrier":
            before_barrier = False
            continue
        if operation.name in NOT_GATES:
            raise ValueError(f"unexpected instruction {operation.name} in the transpiled circuit")
        noise = noise_of(operation.name, positions)
        free = [p for p in getattr(operation, "params", []) if hasattr(p, "parameters") and p.parameters]
        if free:
            if not before_barrier or operation.name != "rz" or len(free[0].parameters) != 1:
                raise ValueError(f"the transpiled encoding has an unexpected parametric gate {operation.name}")
            parameter = next(iter(free[0].parameters))
            if parameter.vector.name != parameters or parameter.index != positions[0]:
                raise ValueError("a transpiled encoding angle acts on another wire than its own")
            encoding[positions[0]].append(("rz", *_affine(free[0], parameter), noise))
            continue
        # Qiskit's matrices are little-endian in the qubits: the first qubit is the last wire.
        wires = list(positions[::-1])
        step = _superoperator([Operator(operation).data], len(wires))
        if noise is not None:
            step = _compose(noise, step, len(wires))
        if before_barrier:
            if len(positions) != 1:
                raise ValueError("the transpiled encoding has a multi-qubit gate")
            encoding[positions[0]].append(("fixed", step))
        else:
            block.append((wires, step))
    return tuple(tuple(steps) for steps in encoding), block


def _fused(block: list[tuple[list[int], torch.Tensor]]) -> list[tuple[list[int], torch.Tensor]]:
    """``block`` with every run of one-wire steps on a wire composed into the next multi-wire
    step that touches the wire (or, at the end, into one step of its own): the same channel
    in a fraction of the steps."""
    fused, pending = [], {}
    for wires, step in block:
        if len(wires) == 1:
            wire = wires[0]
            pending[wire] = step if wire not in pending else _compose(step, pending[wire], 1)
            continue
        before = [pending.pop(w, None) for w in wires]
        if any(b is not None for b in before):
            step = _compose(step, _product([IDLE if b is None else b for b in before]), len(wires))
        fused.append((wires, step))
    fused.extend(([wire], pending[wire]) for wire in sorted(pending))
    return fused


def _product(steps: list[torch.Tensor]) -> torch.Tensor:
    """One-wire superoperators, one per wire, as one superoperator on those wires."""
    k = len(steps)
    operands, out_r, out_c, in_r, in_c = [], [], [], [], []
    for i, step in enumerate(steps):
        axes = [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]
        operands += [step, axes]
        out_r.append(axes[0]), out_c.append(axes[1]), in_r.append(axes[2]), in_c.append(axes[3])
    return torch.einsum(*operands, out_r + out_c + in_r + in_c).reshape(*(2,) * (4 * k))


@lru_cache(maxsize=None)
def _pauli_basis(wires: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The Pauli products on k wires (first wire most significant) as rows: row-major vec(P)
    and vec(Pᵀ), each (4**k, 4**k)."""
    paulis = PAULIS
    for _ in range(wires - 1):
        paulis = torch.einsum("aij,bkl->abikjl", paulis, PAULIS).reshape(len(paulis) * 4, *(2 * paulis.shape[1],) * 2)
    size = 4 ** wires
    return paulis.reshape(size, -1), paulis.transpose(1, 2).reshape(size, -1)


def pauli_transfer(superoperator: torch.Tensor, wires: int) -> torch.Tensor:
    """The Pauli transfer matrix R (4**k, 4**k) float64 of a channel on k wires (a
    superoperator in ``noise``'s layout): R[a, b] = Tr(P_a Φ(P_b)) / 2**k, the Paulis P_a the
    tensor products of I, X, Y, Z over the wires, the first wire's the most significant."""
    vec, vec_transposed = _pauli_basis(wires)             # Tr(P_a X) = vec(P_a^T) · vec(X)
    size = 4 ** wires
    transfer = vec_transposed @ superoperator.reshape(size, size) @ vec.T / 2 ** wires
    if transfer.imag.abs().max() > 1e-9:
        raise ValueError("a channel's Pauli transfer matrix is not real: not a channel")
    return transfer.real.contiguous()


def _effects(block, measured: tuple[int, ...], readout: torch.Tensor, n: int) -> torch.Tensor:
    """Each outcome's effect operator evolved back through ``block`` (a list of (wires,
    superoperator) in circuit order), as its coefficients (outcomes, 4**n) on the Pauli
    products (I, X, Y, Z per wire, wire 0 the most significant).

    Outcome k of the measured positions (the first measured wire its most significant bit)
    is read as k with probability Π_j readout[pos_j][k_j, bit]: its effect is a product of
    diag(P(k_j | 0), P(k_j | 1)) = (c0 + c1)/2 I + (c0 − c1)/2 Z on each measured wire and I
    elsewhere. A channel Φ maps the coefficients o of an observable to those of Φ†(O), Rᵀ o
    on its wires (R its Pauli transfer matrix); all real, four times fewer operations than
    the same in complex matrix units."""
    m = len(measured)
    outcome_bits = (torch.arange(2 ** m)[:, None] >> torch.arange(m - 1, -1, -1)) & 1     # (K, m)
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    factors = [identity.expand(2 ** m, 4)] * n
    for j, position in enumerate(measured):
        c = readout[position][outcome_bits[:, j]]                                         # (K, 2): P(k_j | bit)
        zero = torch.zeros(2 ** m, dtype=torch.float64)
        factors[position] = torch.stack([(c[:, 0] + c[:, 1]) / 2, zero, zero, (c[:, 0] - c[:, 1]) / 2], dim=1)
    effects = factors[0]
    for factor in factors[1:]:
        effects = (effects[:, :, None] * factor[:, None, :]).reshape(2 ** m, -1)
    effects = effects.reshape(2 ** m, *(4,) * n)
    for wires, step in reversed(block):
        k = len(wires)
        axes = [1 + w for w in wires]
        moved = effects.movedim(axes, list(range(-k, 0)))
        shape = moved.shape
        moved = (moved.reshape(-1, 4 ** k) @ pauli_transfer(step, k)).reshape(shape)
        effects = moved.movedim(list(range(-k, 0)), axes)
    return effects.reshape(2 ** m, 4 ** n).contiguous()
