"""What a variational circuit measures and how that becomes logits: one ``Readout`` entry per
way (``vqc``'s ``readout`` option)."""
from __future__ import annotations

import math
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

    @classmethod
    def n_wires(cls, n_classes: int) -> int:
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


@READOUTS.register
class ExpectationZ(Readout):
    """<Z> in [-1, 1] on the first ``n_classes`` wires, one per class."""

    name, label = "expval", "<Z> per class"

    @classmethod
    def n_wires(cls, n_classes):
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

    @classmethod
    def n_wires(cls, n_classes):
        return max(1, math.ceil(math.log2(n_classes)))

    @classmethod
    def check(cls, n_classes, n_qubits, where):
        if cls.n_wires(n_classes) > n_qubits:
            raise ConfigError(f"{where}: readout 'probs' needs ceil(log2(n_classes)) = {cls.n_wires(n_classes)} "
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
