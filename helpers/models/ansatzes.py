"""The trainable layers of a variational circuit: one ``Ansatz`` entry per PennyLane template
(``vqc``'s ``ansatz`` option)."""
from __future__ import annotations

from typing import ClassVar

import pennylane as qml
import torch

from ..registry import ANSATZES, Component


class Ansatz(Component):
    """A layered template: its PennyLane class, the one-qubit rotation its decomposition uses
    and how many weights one rotation takes (the lean simulation builds the rotations itself
    and takes every parameter-free gate from the decomposition as a basis permutation)."""

    template: ClassVar[type]
    rotation: ClassVar[str]
    weights_per_rotation: ClassVar[int]

    @classmethod
    def weight_shape(cls, n_layers: int, n_qubits: int) -> tuple[int, ...]:
        return tuple(cls.template.shape(n_layers, n_qubits))

    @classmethod
    def layer_hyperparameters(cls, n_qubits: int, n_layers: int) -> list[dict]:
        """Keyword arguments that make a one-layer call of the template equal layer l of the full one."""
        return [{} for _ in range(n_layers)]

    @classmethod
    def rotation_matrices(cls, weights: torch.Tensor) -> torch.Tensor:
        """(n_layers * n_qubits, 2, 2) complex128 rotations of the block, in weight order."""
        raise NotImplementedError


@ANSATZES.register
class StronglyEntangling(Ansatz):
    """``StronglyEntanglingLayers``: a general rotation (3 weights) per qubit, then CNOTs of a
    range that cycles through the layers."""

    name, label = "strong", "StronglyEntanglingLayers"
    template, rotation, weights_per_rotation = qml.StronglyEntanglingLayers, "Rot", 3

    @classmethod
    def layer_hyperparameters(cls, n_qubits, n_layers):
        # The template cycles its CNOT range r through the layers (r = l % (n - 1) + 1), so a
        # one-layer call must be given its layer's range explicitly (one wire: no CNOTs).
        if n_qubits == 1:
            return [{} for _ in range(n_layers)]
        return [{"ranges": (layer % (n_qubits - 1) + 1,)} for layer in range(n_layers)]

    @classmethod
    def rotation_matrices(cls, weights):
        flat = weights.reshape(-1, 3).double()
        return qml.Rot.compute_matrix(flat[:, 0], flat[:, 1], flat[:, 2])


@ANSATZES.register
class BasicEntangler(Ansatz):
    """``BasicEntanglerLayers``: one RX (1 weight) per qubit, then a CNOT ring."""

    name, label = "basic", "BasicEntanglerLayers"
    template, rotation, weights_per_rotation = qml.BasicEntanglerLayers, "RX", 1

    @classmethod
    def rotation_matrices(cls, weights):
        return qml.RX.compute_matrix(weights.reshape(-1).double())
