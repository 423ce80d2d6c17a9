"""The variational quantum classifier, and the memory its simulation needs."""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..params import Boolean, Choice, ConfigError, Integer, Number, Optional, Params, Section, param
from ..registry import ANSATZES, ENCODINGS, MODELS, READOUTS
from . import Model
from .ops import Cast, Circuit, Scale
from .noise import Noise, check_noise, density_bytes
from .quantum import SIMULATORS, QuantumLayer, check_simulator
from .simulation import count_parametrised_gates

# A statevector of n qubits holds 2**n complex amplitudes per sample; 20 qubits at batch 32
# in complex128 is already 0.5 GiB before autograd keeps intermediate states.
MAX_QUBITS = 20


def simulation_bytes(n_qubits: int, n_layers: int, batch: int) -> int:
    """Rough memory of a differentiable statevector simulation: ``batch`` complex128 states of
    2**n amplitudes, one kept for the backward pass per gate layer (n_layers * (n_qubits + 1)
    of them, plus a few for encoding and readout). Within 10% of the measured peak at 12 and
    13 qubits."""
    return batch * 2 ** n_qubits * 16 * (n_layers * (n_qubits + 1) + 4)


def weight_initialiser(distribution: str, scale: float):
    """The in-place initialisation of the circuit's weights: uniform on [0, scale] (at scale
    2 pi exactly TorchLayer's default draw) or normal with mean 0 and standard deviation scale."""
    if distribution == "uniform":
        return functools.partial(torch.nn.init.uniform_, b=scale)
    return functools.partial(torch.nn.init.normal_, std=scale)


@torch.no_grad()
def initialise_encoder(linear: nn.Linear, distribution: str, scale: float) -> None:
    """A trainable encoding's own start: w uniform on [-scale, scale] or normal with standard
    deviation scale, b zero (every angle starts as a pure function of the input)."""
    if distribution == "uniform":
        linear.weight.uniform_(-scale, scale)
    else:
        linear.weight.normal_(0.0, scale)
    linear.bias.zero_()


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@MODELS.register
class VQC(Model):
    """Variational quantum classifier.

    inputs (B, *input_shape) in [0, 1] -> ``encoding`` -> ``n_layers`` trainable layers of
    ``ansatz`` on ``n_qubits`` -> ``readout`` -> output scale (trainable unless
    ``output_scale_trainable`` is false) -> logits (B, n_classes). The circuit's weights start
    from ``init`` (uniform on [0, 2 pi] by default: PennyLane's draw).
    The encodings (``ENCODINGS``), ansatzes (``ANSATZES``) and readouts (``READOUTS``) are
    registries of their own. Every step is differentiable, so gradients reach the input and
    the model is attacked in the same input space as the classical ones.

    ``simulator`` picks the simulation of the circuit (``quantum.QuantumLayer``): ``fast``
    (a statevector path in training, the frozen block as one unitary in eval when the
    encoding happens once), ``pennylane`` (``qml.qnn.TorchLayer`` on ``default.qubit``, the
    reference) or ``lightning`` (``lightning.qubit``, adjoint); all give the same numbers.
    ``path`` says which simulation the current mode runs.

    ``noise`` (channels after every gate and before measurement) and ``shots`` (the readout
    estimated from that many outcomes in evaluation; training stays exact) make it a circuit
    as it runs on hardware (``noise``, docs/noise.md); with shots it is ``stochastic``, with
    ``reseed`` and ``exact()``.
    """

    name, label = "vqc", "variational quantum circuit"
    tags = frozenset({"quantum"})
    uses = ("helpers.models.quantum", "helpers.models.simulation", "helpers.models.encodings",
            "helpers.models.ansatzes", "helpers.models.readouts", "helpers.models.features", "helpers.models.noise",
            "helpers.models.device_noise", "helpers.models.devices")

    @dataclass(frozen=True)
    class Params(Params):
        n_qubits: int = param(8, Integer(1, MAX_QUBITS), "qubits (statevector memory grows as 2**n)")
        n_layers: int = param(4, Integer(1), "trainable layers of the ansatz")
        output_scale: float = param(1.0, Number(), "initial value of the scale of the readout")
        output_scale_trainable: bool = param(True, Boolean(), "train the output scale (false: it stays output_scale)")
        init: str = param("uniform", Choice(("uniform", "normal")),
                          "distribution of the circuit's initial weights: uniform on [0, init_scale] or normal "
                          "with mean 0 and standard deviation init_scale")
        init_scale: float = param(2 * math.pi, Number(0, open="low"), "width of that distribution (2 pi: PennyLane's draw)")
        encoding_init: str = param("default", Choice(("default", "uniform", "normal")),
                                   "initial weights of a trainable encoding's w: PyTorch's default for a linear map, "
                                   "uniform on [-encoding_init_scale, encoding_init_scale] or normal with mean 0 and "
                                   "standard deviation encoding_init_scale (then b starts at 0)", quiet=True)
        encoding_init_scale: float = param(1.0, Number(0, open="low"), "width of that distribution", quiet=True)
        simulator: str = param("fast", Choice(SIMULATORS), "simulation of the circuit (all give the same numbers)")
        encoding: str = param("angle", Choice(ENCODINGS.names), "how the input enters the circuit (ENCODINGS)")
        ansatz: str = param("strong", Choice(ANSATZES.names), "the trainable template (ANSATZES)")
        readout: str = param("expval", Choice(READOUTS.names), "what is measured (READOUTS)")
        noise: Noise = param(Noise(), Section(Noise), "noise channels and their strengths (all 0: noise-free; "
                             "docs/noise.md)")
        shots: int | None = param(None, Optional(Integer(1)), "outcomes per input that estimate the readout in "
                                  "evaluation (null: exact); training stays exact")

    @classmethod
    def check(cls, params, shape, where):
        super().check(params, shape, where)
        check_simulator(params.simulator, params.encoding, params.readout, where)
        check_noise(params.noise, params.shots, params.simulator, params.n_qubits, where, params.encoding)
        READOUTS[params.readout].check(shape.n_classes, params.n_qubits, where)
        ENCODINGS[params.encoding].check(shape.n_inputs, params.n_qubits, where)
        if params.encoding_init != "default" and not ENCODINGS[params.encoding].trainable:
            trainable = [e.name for e in ENCODINGS.entries() if e.trainable]
            raise ConfigError(f"{where}.encoding_init applies to a trainable encoding ({', '.join(trainable)}); "
                              f"encoding {params.encoding!r} has no weights")
        if shape.batch_size is not None:
            need, have = simulation_bytes(params.n_qubits, params.n_layers, shape.batch_size), physical_memory_bytes()
            what = "simulating"
            if params.noise.per_gate:
                what = "the density matrices (per-gate noise) of"
                gates = count_parametrised_gates(params.n_qubits, params.n_layers, params.ansatz,
                                                 ENCODINGS[params.encoding].repeats)
                need = density_bytes(params.n_qubits, gates, shape.batch_size)
            if need > have:
                raise ConfigError(f"{where}: {what} {params.n_qubits} qubits with {params.n_layers} layers at batch "
                                  f"{shape.batch_size} needs about {need / 2**30:.1f} GiB, this machine has "
                                  f"{have / 2**30:.1f} GiB: use fewer n_qubits")

    @classmethod
    def capacity(cls, params, shape):
        encoding = ENCODINGS[params.encoding]
        # Only a PCA gives reduced features to share (amplitudes have none; trained angles are no PCA).
        if encoding.trainable or encoding.preprocessing(shape.n_inputs, params.n_qubits, params.n_layers) is None:
            return None
        weights = int(np.prod(ANSATZES[params.ansatz].weight_shape(params.n_layers, params.n_qubits)))
        return weights + int(params.output_scale_trainable), params.n_qubits

    def __init__(self, input_shape, n_classes: int, params=None):
        super().__init__(input_shape, n_classes, params)
        p = self.params
        self.n_qubits, self.n_layers, self.n_classes = p.n_qubits, p.n_layers, n_classes
        self.encoding, self.readout = p.encoding, p.readout
        encoding = ENCODINGS[p.encoding]
        preprocessing = encoding.preprocessing(int(np.prod(input_shape)), p.n_qubits, p.n_layers)
        # A map fitted on the training split is the PCA; a trained one the encoder (its w and b).
        self.pca = None if encoding.trainable else preprocessing
        self.encoder = preprocessing if encoding.trainable else None
        if self.encoder is not None and p.encoding_init != "default":
            initialise_encoder(self.encoder.linear, p.encoding_init, p.encoding_init_scale)
        n_readout = READOUTS[p.readout].n_wires(n_classes, p.n_qubits)
        self.quantum = QuantumLayer(p.n_qubits, p.n_layers, n_readout, p.simulator, p.encoding, p.ansatz, p.readout,
                                    init=weight_initialiser(p.init, p.init_scale), noise=p.noise, shots=p.shots)
        # <Z> lies in [-1, 1]: without a trainable scale the logit margins stay small.
        scale = torch.tensor(float(p.output_scale))
        if p.output_scale_trainable:
            self.output_scale = nn.Parameter(scale)
        else:
            self.register_buffer("output_scale", scale)

    def fit_preprocessing(self, x_train: torch.Tensor) -> None:
        """Fit the PCA and the angle range on training inputs (N, *input_shape) only
        (amplitude encoding has nothing to fit)."""
        if self.pca is not None:
            self.pca.fit(x_train)

    @property
    def preprocessing(self) -> nn.Module | None:
        """The map of the input before the circuit: the PCA, the trained encoder, or None."""
        return self.pca if self.pca is not None else self.encoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The circuit's inputs: angles (B, n_qubits) (PCA: training inputs map into [0, pi];
        fresh angles per layer: (B, n_layers * n_qubits)) or, for amplitude encoding,
        unit-norm amplitudes (B, 2**n_qubits)."""
        return ENCODINGS[self.encoding].circuit_inputs(x, self.preprocessing, self.n_qubits)

    @property
    def path(self) -> str:
        return self.quantum.path

    @property
    def stochastic(self) -> bool:
        """True when the circuit has ``shots``: its predictions in evaluation are then random."""
        return self.params.shots is not None

    def reseed(self, seed: int) -> None:
        """Seed the draws of the shots (a CPU generator: the same draws on any device)."""
        self.quantum.reseed(seed)

    def exact(self):
        """A context manager within which forward returns the infinite-shot logits (noise
        channels still applied): the expected readout that EOT and the certificates work on."""
        return self.quantum.exact()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        readout = READOUTS[self.readout].logits(self.quantum(self.encode(x)), self.n_classes)
        return self.output_scale * readout.to(x.dtype)

    def bound_ops(self):
        angles = None if self.preprocessing is None else ENCODINGS[self.encoding].affine_map(self.preprocessing)
        if angles is None:  # amplitude encoding: the normalised state has no such bound here
            return None
        return [angles, Circuit(self.quantum, self.n_classes), Cast(torch.float32), Scale(self.output_scale)]
