"""How a variational circuit takes its input: one ``Encoding`` entry per way (``vqc``'s
``encoding`` option). Adding an encoding is one class here (or in any module that registers
with ``ENCODINGS``) plus its test against PennyLane.

An encoding says what maps the input before the circuit (``preprocessing``: a PCA fitted on
the training split, or a trainable affine map), what the circuit's inputs are
(``circuit_inputs``), that map as one affine op for the certificates (``affine_map``), the state they prepare (``initial_state``, for the
statevector simulation), how that state factors into real inputs and fixed phases (for the
frozen-unitary evaluation path), and the PennyLane operations of the reference circuit
(``embed``).
"""
from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import pennylane as qml
import torch

from ..params import ConfigError
from ..registry import ENCODINGS, Component
from .features import AffineAngles, PCAFeatures, amplitude_state
from .ops import Affine, pca_affine


def basis_bits(n_qubits: int, wires) -> torch.Tensor:
    """(2**n, len(wires)) bit of each wire in each basis state; wire 0 is the most significant."""
    k = torch.arange(2 ** n_qubits)[:, None]
    return (k >> (n_qubits - 1 - torch.as_tensor(list(wires)))) & 1


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


class Encoding(Component):
    """Base of the encodings (see the module docstring)."""

    # Encoded again before every layer: the trainable block is then no fixed unitary.
    repeats: ClassVar[bool] = False
    # With repeats: fresh angles before every layer, so the circuit's inputs are (B, n_layers *
    # n_qubits * angles_per_wire) and layer l takes the l-th block of them (``layer_inputs``).
    per_layer: ClassVar[bool] = False
    # Angles of each wire's encoding gate (RX: 1; Rot(φ, θ, 0): 2), adjacent in the inputs.
    angles_per_wire: ClassVar[int] = 1
    # Its preprocessing has trainable parameters (learned with the circuit, nothing fitted).
    trainable: ClassVar[bool] = False
    # lightning.qubit's adjoint differentiation gets its input gradients right.
    adjoint: ClassVar[bool] = True
    # Its state is prepared by one gate per wire (RX), so per-gate noise follows each of them;
    # False: a state preparation, taken as ideal by the noise model (``noise``).
    prepared_by_gates: ClassVar[bool] = True

    @classmethod
    def check(cls, n_inputs: int, n_qubits: int, where: str) -> None:
        """Raise ``ConfigError`` if ``n_qubits`` cannot encode ``n_inputs`` input features."""

    @classmethod
    def preprocessing(cls, n_inputs: int, n_qubits: int, n_layers: int) -> torch.nn.Module | None:
        """The map of the input before the circuit, fitted on the training split or trained
        (None: nothing before the circuit)."""
        return None

    @classmethod
    def affine_map(cls, preprocessing) -> Affine | None:
        """The circuit's inputs as one affine map of the flattened input (``ops.Affine``), for
        the certificates; None if they are not an affine image of the input."""
        return None

    @classmethod
    def times_encoded(cls, n_layers: int) -> int:
        """How often each of the circuit's inputs enters the circuit."""
        return n_layers if cls.repeats and not cls.per_layer else 1

    @classmethod
    def layer_inputs(cls, inputs, layer: int, n_qubits: int):
        """The inputs encoded before trainable layer ``layer`` (with ``repeats``)."""
        width = n_qubits * cls.angles_per_wire
        return inputs[..., layer * width:(layer + 1) * width] if cls.per_layer else inputs

    @classmethod
    def gate_matrices(cls, angles: torch.Tensor) -> torch.Tensor:
        """The encoding gate of every wire (..., n_qubits, 2, 2) complex128 for angles
        (..., n_qubits * angles_per_wire): what a re-uploading step applies."""
        raise NotImplementedError(f"encoding {cls.name!r} is not applied gate by gate")

    @classmethod
    def circuit_inputs(cls, x: torch.Tensor, preprocessing, n_qubits: int) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def initial_state(cls, inputs: torch.Tensor) -> torch.Tensor:
        """The encoded state (B, 2**n) complex128."""
        raise NotImplementedError

    @classmethod
    def real_inputs(cls, inputs: torch.Tensor) -> torch.Tensor:
        """Real (B, 2**n) float64 r with initial_state = r * phases (the unitary path)."""
        raise NotImplementedError

    @classmethod
    def phases(cls, n_qubits: int) -> torch.Tensor | None:
        """Fixed phases (2**n,) of the state's amplitudes, folded into the frozen unitary (None: all 1)."""
        return None

    @classmethod
    def embed(cls, inputs, wires) -> None:
        """The PennyLane operations of the encoding, inside a QNode (the reference circuit)."""
        raise NotImplementedError

    @classmethod
    def trace_distance_bound(cls, radii: torch.Tensor) -> torch.Tensor | None:
        """An upper bound (B,) on the trace distance between the states this encoding prepares
        from two circuit inputs that differ by at most ``radii`` (B, n) entry by entry (for the
        noise certificates); None: no such bound for this encoding."""
        return None


@ENCODINGS.register
class Angle(Encoding):
    """PCA of the flattened input to ``n_qubits`` features (fitted on the training split only)
    -> rotation angles in [0, pi] -> ``AngleEmbedding`` (one RX per wire), once."""

    name, label = "angle", "angle (RX) encoding of PCA features"

    @classmethod
    def check(cls, n_inputs, n_qubits, where):
        if n_qubits > n_inputs:
            raise ConfigError(f"{where}: encoding {cls.name!r} puts one PCA feature on each qubit: n_qubits "
                              f"({n_qubits}) must not exceed the number of input features ({n_inputs})")

    @classmethod
    def preprocessing(cls, n_inputs, n_qubits, n_layers):
        return PCAFeatures(n_inputs, n_qubits)

    @classmethod
    def affine_map(cls, preprocessing):
        return pca_affine(preprocessing)

    @classmethod
    def circuit_inputs(cls, x, preprocessing, n_qubits):
        return preprocessing(x)

    @classmethod
    def initial_state(cls, inputs):
        return rx_product_magnitudes(inputs) * rx_product_phases(inputs.shape[1]).to(inputs.device)

    @classmethod
    def real_inputs(cls, inputs):
        return rx_product_magnitudes(inputs)

    @classmethod
    def phases(cls, n_qubits):
        return rx_product_phases(n_qubits)

    @classmethod
    def gate_matrices(cls, angles):
        return qml.RX.compute_matrix(angles.double().reshape(-1)).reshape(*angles.shape, 2, 2)

    @classmethod
    def embed(cls, inputs, wires):
        qml.AngleEmbedding(inputs, wires=wires, rotation="X")

    @classmethod
    def trace_distance_bound(cls, radii):
        """The states are products of pure qubits RX(a)|0>, whose overlap is prod_q cos((a_q - a'_q)/2),
        so their trace distance is sqrt(1 - prod_q cos²(Δ_q/2)); cos² falls on [0, pi], so |Δ_q| <= r_q
        bounds it by the same expression at min(r_q, pi) (at pi the qubit may be orthogonal)."""
        half = radii.double().abs().clamp(max=torch.pi) / 2
        log_overlap = 2 * torch.log(torch.cos(half)).sum(dim=1)  # log prod cos², accurate for small radii
        return torch.sqrt(-torch.expm1(log_overlap)).clamp(max=1.0)


@ENCODINGS.register
class Reupload(Angle):
    """Data re-uploading: the angle encoding, and again before every layer after the first."""

    name, label = "reupload", "data re-uploading (RX before every layer)"
    repeats = True


@ENCODINGS.register
class AffineEncoding(Angle):
    """Trainable angles on all input features: angle_q = w_q . x + b_q, w over the whole
    flattened input (``AffineAngles``), learned with the circuit -> one RX per wire, once."""

    name, label = "affine", "trainable affine (RX) encoding of all input features"
    trainable = True

    @classmethod
    def check(cls, n_inputs, n_qubits, where):
        """Any number of input features: every angle sees all of them."""

    @classmethod
    def n_angles(cls, n_qubits: int, n_layers: int) -> int:
        return n_qubits * cls.angles_per_wire * (n_layers if cls.per_layer else 1)

    @classmethod
    def preprocessing(cls, n_inputs, n_qubits, n_layers):
        return AffineAngles(n_inputs, cls.n_angles(n_qubits, n_layers))

    @classmethod
    def affine_map(cls, preprocessing):
        return Affine(preprocessing.linear.weight, preprocessing.linear.bias)


@ENCODINGS.register
class AffineReupload(AffineEncoding):
    """Data re-uploading with trainable angles: before every layer its own w . x + b per wire
    (the published re-uploading classifiers); each angle enters the circuit once."""

    name, label = "affine_reupload", "trainable affine (RX) encoding before every layer"
    repeats, per_layer = True, True


def rot_matrices(phi: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rot(φ, θ, 0) = RY(θ) RZ(φ) (..., 2, 2) complex128, entry by entry."""
    c, s = torch.cos(theta.double() / 2), torch.sin(theta.double() / 2)
    turn = torch.polar(torch.ones_like(c), -phi.double() / 2)  # e^{-iφ/2}
    top = torch.stack([c * turn, -s * turn.conj()], dim=-1)
    bottom = torch.stack([s * turn, c * turn.conj()], dim=-1)
    return torch.stack([top, bottom], dim=-2)


@ENCODINGS.register
class AffineRot(AffineEncoding):
    """Two trainable angles per wire, Rot(w0 . x + b0, w1 . x + b1, 0) = RY(w1 . x + b1) RZ(w0 . x + b0),
    both affine in all input features (the published re-uploading classifiers' encoding gate).
    Inputs: (B, 2 n_qubits), wire q's (φ, θ) at 2q and 2q + 1. Entered once on |0>, RZ(φ) is a
    phase: the state is RY(θ)'s and φ has no effect (it matters when re-uploaded, ``rot_reupload``)."""

    name, label = "rot", "trainable two-angle Rot(w0·x+b0, w1·x+b1, 0) encoding"
    angles_per_wire = 2

    @staticmethod
    def pairs(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(φ, θ) of every wire, each (..., n_qubits)."""
        paired = inputs.reshape(*inputs.shape[:-1], -1, 2)
        return paired[..., 0], paired[..., 1]

    @classmethod
    def initial_state(cls, inputs):
        """RY(θ)|0> per wire, the phases e^{-iφ/2} left out: together they are a global phase."""
        return rx_product_magnitudes(cls.pairs(inputs)[1]).to(torch.complex128)

    @classmethod
    def real_inputs(cls, inputs):
        return rx_product_magnitudes(cls.pairs(inputs)[1])

    @classmethod
    def phases(cls, n_qubits):
        return None

    @classmethod
    def gate_matrices(cls, angles):
        return rot_matrices(*cls.pairs(angles))

    @classmethod
    def embed(cls, inputs, wires):
        phi, theta = cls.pairs(inputs)
        for q, wire in enumerate(wires):
            qml.Rot(phi[..., q], theta[..., q], 0.0, wires=wire)


@ENCODINGS.register
class AffineRotReupload(AffineRot):
    """``rot`` before every layer, each with its own w0, b0, w1, b1 per wire: inputs (B,
    n_layers * 2 n_qubits); each angle enters the circuit once."""

    name, label = "rot_reupload", "trainable two-angle Rot encoding before every layer"
    repeats, per_layer = True, True


@ENCODINGS.register
class Amplitude(Encoding):
    """The flattened input itself, zero-padded to 2**n_qubits and L2-normalised inside the
    model (``amplitude_state``) -> ``AmplitudeEmbedding``. No PCA, so it needs 2**n_qubits >=
    the number of input features (64 pixels: 6 qubits); fewer qubits is an error rather than a
    PCA, whose signed features would need a shift fitted on the training range and would no
    longer be the pixels' amplitudes. The state ignores the input's overall scale."""

    name, label = "amplitude", "amplitude encoding of the input"
    # Adjoint differentiation silently returns wrong input gradients through state
    # preparation (checked against default.qubit).
    adjoint = False
    prepared_by_gates = False

    @classmethod
    def check(cls, n_inputs, n_qubits, where):
        if n_inputs > 2 ** n_qubits:
            needed = (n_inputs - 1).bit_length()
            raise ConfigError(f"{where}: encoding 'amplitude' needs 2**n_qubits >= the number of input features "
                              f"({n_inputs}): n_qubits >= {needed}, got {n_qubits}")

    @classmethod
    def circuit_inputs(cls, x, preprocessing, n_qubits):
        return amplitude_state(x, n_qubits)

    @classmethod
    def initial_state(cls, inputs):
        return inputs.to(torch.complex128)

    @classmethod
    def real_inputs(cls, inputs):
        return inputs.double()

    @classmethod
    def embed(cls, inputs, wires):
        qml.AmplitudeEmbedding(inputs, wires=wires)  # already padded and normalised
