"""What a variational circuit measures and how that becomes logits: one ``Readout`` entry per
way (``vqc``'s ``readout`` option)."""
from __future__ import annotations

import functools
import math
import operator
from typing import ClassVar

import pennylane as qml
import torch

from ..params import ConfigError
from ..registry import READOUTS, Component
from .encodings import basis_bits

# Floor under the probabilities of the probs readout before the logarithm.
PROBABILITY_FLOOR = 1e-10


class Readout(Component):
    """Measured outputs = |amplitudes|**2 @ ``measurement_matrix``; ``logits`` turns them into
    one score per class (before the model's trainable scale)."""

    # lightning.qubit's adjoint differentiation supports it.
    adjoint: ClassVar[bool] = True
    # The smallest measured value (the largest is 1), and the largest slope of a logit in a
    # measured value: what the bound certificates need of the readout.
    floor: ClassVar[float] = -1.0
    slope: ClassVar[float] = 1.0
    # Every class has a measured value of its own (an event's probability, up to an affine map).
    per_class: ClassVar[bool] = True
    # The logits are linear in the measured values.
    linear: ClassVar[bool] = True

    @classmethod
    def n_wires(cls, n_classes: int, n_qubits: int) -> int:
        """How many wires (the first ones) are measured for ``n_classes`` classes."""
        raise NotImplementedError

    @classmethod
    def check(cls, n_classes: int, n_qubits: int, where: str) -> None:
        """Raise ``ConfigError`` if ``n_qubits`` cannot read out ``n_classes`` classes."""

    @classmethod
    def measurement_matrix(cls, n_qubits: int, n_wires: int) -> torch.Tensor:
        """(2**n, outputs) float64."""
        raise NotImplementedError

    @classmethod
    def measure(cls, n_wires: int):
        """The PennyLane measurement of the reference circuit."""
        raise NotImplementedError

    @classmethod
    def logits(cls, outputs: torch.Tensor, n_classes: int) -> torch.Tensor:
        return outputs

    @classmethod
    def logit_bounds(cls, low: torch.Tensor, high: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Bounds on the logits for measured values in [low, high] (each logit is nondecreasing
        in the measured values unless a readout says otherwise)."""
        return cls.logits(low, n_classes), cls.logits(high, n_classes)


@READOUTS.register
class ExpectationZ(Readout):
    """<Z> in [-1, 1] on the first ``n_classes`` wires, one per class."""

    name, label = "expval", "<Z> per class"

    @classmethod
    def n_wires(cls, n_classes, n_qubits):
        return n_classes

    @classmethod
    def check(cls, n_classes, n_qubits, where):
        if n_classes > n_qubits:
            raise ConfigError(f"{where}: n_classes ({n_classes}) must not exceed n_qubits ({n_qubits}): readout "
                              "'expval' measures one <Z> per class; use more qubits or readout: probs")

    @classmethod
    def measurement_matrix(cls, n_qubits, n_wires):
        """The Z eigenvalue on each readout wire in each basis state."""
        return (1 - 2 * basis_bits(n_qubits, range(n_wires))).double()

    @classmethod
    def measure(cls, n_wires):
        return [qml.expval(qml.PauliZ(w)) for w in range(n_wires)]


@READOUTS.register
class Probabilities(Readout):
    """The probabilities of the first m = max(1, ceil(log2(n_classes))) wires' outcomes; the
    first ``n_classes`` outcomes are the classes and logits = log(p + 1e-10). With scale 1 the
    softmax is the circuit's own distribution conditioned on a class outcome, so cross-entropy
    is its negative log-likelihood; the logarithm keeps logits and input gradients from
    saturating (unlike scale * p)."""

    name, label = "probs", "log-probabilities of basis outcomes"
    adjoint = False
    floor, slope = 0.0, 1 / PROBABILITY_FLOOR  # log(p + floor) has slope up to 1 / floor
    linear = False

    @classmethod
    def n_wires(cls, n_classes, n_qubits):
        return max(1, math.ceil(math.log2(n_classes)))

    @classmethod
    def check(cls, n_classes, n_qubits, where):
        wires = cls.n_wires(n_classes, n_qubits)
        if wires > n_qubits:
            raise ConfigError(f"{where}: readout 'probs' needs ceil(log2(n_classes)) = {wires} "
                              f"wires for {n_classes} classes, but n_qubits is {n_qubits}")

    @classmethod
    def measurement_matrix(cls, n_qubits, n_wires):
        """The indicator of which of the 2**n_wires outcomes each basis state belongs to."""
        outcome = torch.arange(2 ** n_qubits) >> (n_qubits - n_wires)
        return torch.nn.functional.one_hot(outcome, 2 ** n_wires).double()

    @classmethod
    def measure(cls, n_wires):
        return qml.probs(wires=range(n_wires))

    @classmethod
    def logits(cls, outputs, n_classes):
        return torch.log(outputs[:, :n_classes] + PROBABILITY_FLOOR)


@READOUTS.register
class Parity(Readout):
    """The parity of all wires, <Z ⊗ ... ⊗ Z> in [-1, 1], for two classes: class 0 when it is
    positive (even parity more likely), class 1 when negative; logits (p, -p). One measured
    value shared by both classes."""

    name, label = "parity", "parity <Z⊗…⊗Z> of all wires (two classes)"
    per_class = False

    @classmethod
    def n_wires(cls, n_classes, n_qubits):
        return n_qubits

    @classmethod
    def check(cls, n_classes, n_qubits, where):
        if n_classes != 2:
            raise ConfigError(f"{where}: readout 'parity' decides between two classes by the sign of one parity, "
                              f"got {n_classes} classes: use readout expval or probs")

    @classmethod
    def measurement_matrix(cls, n_qubits, n_wires):
        """The parity (±1) of the readout wires' bits in each basis state, one column."""
        return (1 - 2 * (basis_bits(n_qubits, range(n_wires)).sum(1, keepdim=True) % 2)).double()

    @classmethod
    def measure(cls, n_wires):
        return [qml.expval(functools.reduce(operator.matmul, [qml.PauliZ(w) for w in range(n_wires)]))]

    @classmethod
    def logits(cls, outputs, n_classes):
        parity = outputs.reshape(len(outputs), -1)[:, :1]
        return torch.cat([parity, -parity], dim=1)

    @classmethod
    def logit_bounds(cls, low, high, n_classes):
        low, high = low.reshape(len(low), -1)[:, :1], high.reshape(len(high), -1)[:, :1]
        return torch.cat([low, -high], dim=1), torch.cat([high, -low], dim=1)
