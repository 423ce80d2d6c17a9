"""Lean simulation of the variational circuits, built from PennyLane's own gates.

A circuit is an encoding (``ENCODINGS``), a trainable block of ``n_layers`` layers of an
ansatz (``ANSATZES``) and a readout (``READOUTS``). PennyLane (``qml.qnn.TorchLayer`` on
``default.qubit``) is the reference; these paths compute the same numbers with less
overhead, in complex128:

- ``statevector``: the block's gate list comes from the template's PennyLane decomposition,
  one layer at a time, each rotation matrix from the ansatz's ``rotation_matrices`` (batched
  and differentiable in torch), each run of parameter-free entangling gates as one index
  permutation taken from ``qml.matrix``. Gates act on a (batch, 2, ..., 2) state tensor, so
  gradients reach both the weights and the inputs: the training path, and the evaluation
  path of data re-uploading.
- ``density``: with per-gate noise channels (``noise``), the same gate plan on density
  matrices, each gate and the channels after it one superoperator (``density_outputs``).
- ``unitary``: with frozen weights the whole trainable block is one matrix ``U``. When the
  encoding happens once, before the block, its state is real inputs times fixed phases
  (``Encoding.real_inputs``, ``Encoding.phases``): the phases fold into ``U`` and the forward
  pass is two real matrix products: the evaluation path (attacks, attributions).
"""
from __future__ import annotations

import contextlib
import itertools
from functools import lru_cache

import numpy as np
import pennylane as qml
import torch

from ..params import ConfigError
from ..registry import ANSATZES, ENCODINGS, READOUTS
from .encodings import basis_bits
from .noise import (Noise, apply_superoperator, before_measurement, check_noise, followed_by_channel, gate_channel,
                    outcome_matrix, sample_frequencies, unitary_superoperator)

SIMULATORS = ("fast", "pennylane", "lightning")
# In evaluation the trained block is one dense 2**n x 2**n unitary: at 12 qubits that is
# 256 MiB of complex128; above it, evaluation stays on the statevector path.
MAX_UNITARY_QUBITS = 12


def check_simulator(simulator: str, encoding: str, readout: str, where: str) -> None:
    """Raise ``ConfigError`` if ``simulator`` cannot run the encoding or the readout."""
    if simulator not in SIMULATORS:
        raise ConfigError(f"{where}.simulator {simulator!r} is unknown; allowed: {list(SIMULATORS)}")
    if simulator == "lightning" and not ENCODINGS[encoding].adjoint:
        raise ConfigError(f"{where}: simulator 'lightning' (adjoint) cannot differentiate {encoding} encoding: "
                          "use simulator: fast or pennylane")
    if simulator == "lightning" and not READOUTS[readout].adjoint:
        raise ConfigError(f"{where}: simulator 'lightning' (adjoint) cannot differentiate readout {readout!r}: "
                          "use simulator: fast or pennylane")


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


class QuantumLayer(qml.qnn.TorchLayer):
    """Encoded inputs -> ``n_layers`` trainable layers -> readout of the first ``n_readout``
    wires, float64.

    ``encoding`` (an ``ENCODINGS`` name) says what the inputs are: angles (B, n_qubits) or
    unit-norm amplitudes (B, 2**n_qubits); ``ansatz`` (``ANSATZES``) the trainable template,
    ``weights`` of its shape; ``readout`` (``READOUTS``) what is measured: <Z> per wire
    (B, n_readout) or the probabilities of the 2**n_readout outcomes (B, 2**n_readout).

    ``init`` initialises the weights in place (None: TorchLayer's uniform draw on [0, 2 pi]).
    Inputs (B, n_layers * n_qubits) for an encoding with fresh angles per layer (``per_layer``).

    A ``qml.qnn.TorchLayer`` (same weights, same initialisation), so ``simulator="pennylane"``
    runs the reference circuit on ``default.qubit`` with backpropagation and
    ``simulator="lightning"`` on ``lightning.qubit`` with adjoint differentiation.
    ``simulator="fast"`` computes the same numbers (to float64 round-off) with the
    ``statevector`` path in training mode and the ``unitary`` path in eval mode (frozen
    weights; re-uploading, and above ``MAX_UNITARY_QUBITS`` any encoding, stays on the
    statevector path). ``path`` says which one the current mode runs.

    ``noise`` (``noise.Noise``) and ``shots`` (``fast`` only): a per-gate channel makes every
    mode the ``density`` path (``density_outputs``); global depolarising and read-out flips act
    in closed form on the measured wires' outcome distribution (``outcome_probabilities``);
    with ``shots``, eval mode outside ``exact()`` returns estimates from that many outcomes
    drawn by ``generator`` (``reseed``), with the exact expectation's gradient.
    """

    def __init__(self, n_qubits: int, n_layers: int, n_readout: int, simulator: str = "fast",
                 encoding: str = "angle", ansatz: str = "strong", readout: str = "expval", init=None,
                 noise: Noise | None = None, shots: int | None = None):
        for kind, registry, name in (("encoding", ENCODINGS, encoding), ("ansatz", ANSATZES, ansatz),
                                     ("readout", READOUTS, readout)):
            registry.lookup(name, f"quantum layer {kind}")
        check_simulator(simulator, encoding, readout, "quantum layer")
        noise = Noise() if noise is None else noise
        check_noise(noise, shots, simulator, n_qubits, "quantum layer")
        if not 1 <= n_readout <= n_qubits:
            raise ValueError(f"the readout ({n_readout} wires) must be 1..n_qubits ({n_qubits})")
        if simulator == "lightning":
            device, diff_method = qml.device("lightning.qubit", wires=n_qubits), "adjoint"
        else:
            device, diff_method = qml.device("default.qubit", wires=n_qubits), "backprop"
        wires, encoder, block, measure = range(n_qubits), ENCODINGS[encoding], ANSATZES[ansatz], READOUTS[readout]
        per_layer = block.layer_hyperparameters(n_qubits, n_layers)

        @qml.qnode(device, interface="torch", diff_method=diff_method)
        def circuit(inputs, weights):
            if encoder.repeats:
                for layer, hyperparameters in enumerate(per_layer):
                    encoder.embed(encoder.layer_inputs(inputs, layer, n_qubits), wires)
                    block.template(weights[layer:layer + 1], wires=wires, **hyperparameters)
            else:
                encoder.embed(inputs, wires)
                block.template(weights, wires=wires)
            return measure.measure(n_readout)

        super().__init__(circuit, {"weights": block.weight_shape(n_layers, n_qubits)}, init_method=init)
        self.n_qubits, self.n_layers, self.n_readout, self.simulator = n_qubits, n_layers, n_readout, simulator
        self.encoding, self.ansatz, self.readout = encoding, ansatz, readout
        self._frozen: tuple[torch.Tensor, torch.Tensor] | None = None
        self.register_buffer("measurement", measure.measurement_matrix(n_qubits, n_readout), persistent=False)
        # The same for the unitary path's [Re | Im] amplitudes.
        self.register_buffer("measurement_twice", self.measurement.repeat(2, 1), persistent=False)
        self.noise, self.shots = noise, shots
        if noise.active or shots is not None:
            # Noise and shots act on the joint distribution of the measured wires' outcomes:
            # basis probabilities @ outcomes, then the readout is that distribution @ outcome_readout.
            outcomes = outcome_matrix(n_qubits, n_readout)
            self.register_buffer("outcomes", outcomes, persistent=False)
            self.register_buffer("outcomes_twice", outcomes.repeat(2, 1), persistent=False)
            self.register_buffer("outcome_readout", measure.measurement_matrix(n_readout, n_readout), persistent=False)
        if noise.per_gate:
            self.register_buffer("channel", gate_channel(noise), persistent=False)
        # Shots are drawn on the CPU by this generator (``reseed``), so a seed gives the same
        # draws on any device; ``exact`` counts the open ``exact()`` blocks.
        self.generator, self._exact = torch.Generator().manual_seed(0), 0

    @property
    def path(self) -> str:
        """The simulation the current mode runs: 'pennylane', 'lightning', 'statevector', 'unitary'
        or 'density' (per-gate noise)."""
        if self.simulator != "fast":
            return self.simulator
        if self.noise.per_gate:
            return "density"
        if self.training or ENCODINGS[self.encoding].repeats or self.n_qubits > MAX_UNITARY_QUBITS:
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
        """``readout_matrix`` of the current weights, rebuilt whenever their values differ from
        those it was built from. The values themselves are compared (a few dozen numbers), not a
        version counter: writes through ``.data``, ``load_state_dict``, an optimiser step or
        ``vector_to_parameters`` all change them, and not all of them bump ``_version``."""
        weights = self.weights.detach()
        old = None if self._frozen is None else self._frozen[0]
        if (old is None or (old.device, old.dtype, old.shape) != (weights.device, weights.dtype, weights.shape)
                or not torch.equal(old, weights)):
            self._frozen = (weights.clone(), readout_matrix(self.block_unitary(), self.encoding))
        return self._frozen[1]

    @property
    def sampling(self) -> bool:
        """Whether forward now estimates the readout from ``shots`` outcomes: with shots set,
        in eval mode, outside ``exact()``."""
        return self.shots is not None and not self.training and self._exact == 0

    def reseed(self, seed: int) -> None:
        """Seed the generator of the shots."""
        self.generator.manual_seed(int(seed))

    @contextlib.contextmanager
    def exact(self):
        """Within it forward returns the infinite-shot readout (noise channels still applied)."""
        self._exact += 1
        try:
            yield self
        finally:
            self._exact -= 1

    def outcome_probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """Exact joint distribution (B, 2**n_readout) of the measured wires' outcomes, every
        channel applied (per-gate ones by the density-matrix path, then the closed forms)."""
        path = self.path
        if path == "density":
            probabilities = density_outputs(inputs, self.weights, self.outcomes, self.encoding, self.ansatz,
                                            self.channel)
        elif path == "statevector":
            probabilities = statevector_outputs(inputs, self.weights, self.outcomes, self.encoding, self.ansatz)
        else:
            probabilities = unitary_outputs(inputs, self.frozen_readout(), self.outcomes_twice, self.encoding)
        return before_measurement(probabilities, self.noise)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.noise.active or self.sampling:
            probabilities = self.outcome_probabilities(inputs)
            exact = probabilities @ self.outcome_readout
            if not self.sampling:
                return exact
            sampled = sample_frequencies(probabilities, self.shots, self.generator) @ self.outcome_readout
            # The value is the estimate; the gradient is the exact expectation's (straight-through).
            return sampled + (exact - exact.detach())
        path = self.path
        if path == "statevector":
            return statevector_outputs(inputs, self.weights, self.measurement, self.encoding, self.ansatz)
        if path == "unitary":
            return unitary_outputs(inputs, self.frozen_readout(), self.measurement_twice, self.encoding)
        return super().forward(inputs)
