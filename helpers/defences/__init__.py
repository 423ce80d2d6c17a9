"""Defences: how a model is trained to be robust, as the training loss of one batch.

Every defence is one ``Defence`` entry of the ``DEFENCES`` registry, in a module of this
package: ``DEFENCES[name](params).loss(model, x, y, seed)`` is the loss the optimiser
descends on the batch ``x`` (B, ...) in [0, 1] with labels ``y`` (B,). A model spec's
``defence: {name: <entry>, ...its parameters}`` trains that model with it; a spec without one
is trained on the cross-entropy of the clean batch, as ever (``training.train_model``).
"""
from __future__ import annotations

from ..registry import DEFENCES
from .base import Defence, build_defence

__all__ = ["DEFENCES", "Defence", "build_defence"]
