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
- ``device``: in eval mode with a ``device`` (``noise.device``), the frozen circuit
  transpiled onto the device and run with its calibrated noise (``device_noise``).
- ``unitary``: with frozen weights the whole trainable block is one matrix ``U``. When the
  encoding happens once, before the block, its state is real inputs times fixed phases
  (``Encoding.real_inputs``, ``Encoding.phases``): the phases fold into ``U`` and the forward
  pass is two real matrix products: the evaluation path (attacks, attributions).
"""
from __future__ import annotations

import contextlib

import pennylane as qml
import torch

from ..params import ConfigError
from ..registry import ANSATZES, ENCODINGS, READOUTS
from .device_noise import frozen_device_circuit
from .noise import Noise, before_measurement, check_noise, gate_channel, outcome_matrix, sample_frequencies
from .simulation import density_outputs, readout_matrix, simulate_block, statevector_outputs, unitary_outputs

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
    mode the ``density`` path (``density_outputs``); a ``device`` makes eval mode the ``device``
    path (the frozen circuit transpiled onto the device and run with its calibrated noise,
    ``device_noise``; training stays noise-free); global depolarising and read-out flips act
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
        check_noise(noise, shots, simulator, n_qubits, "quantum layer", encoding)
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
        """The simulation the current mode runs: 'pennylane', 'lightning', 'statevector', 'unitary',
        'density' (per-gate noise) or 'device' (eval mode on a device)."""
        if self.simulator != "fast":
            return self.simulator
        if self.noise.per_gate:
            return "density"
        if self.noise.device is not None and not self.training:
            return "device"
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
        if path == "device":
            noise = self.noise
            return frozen_device_circuit(noise.device, noise.qubits, self.weights, self.ansatz, self.n_readout,
                                         noise.transpiler_seed).probabilities(inputs)
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
