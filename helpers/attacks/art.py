"""Running an attack of the Adversarial Robustness Toolbox (ART) on our models."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..threats.base import PIXEL_MAX, PIXEL_MIN
from .base import project


def art_classifier(model: nn.Module, x: torch.Tensor):
    """``model`` as ART's ``PyTorchClassifier`` on logits, inputs clipped to [0, 1], with
    ``predict`` as one batched forward pass per ``batch_size`` slice: ART's own goes through a
    per-sample ``DataLoader``, which makes the Square attack (hundreds of predictions per call)
    five times slower than the model itself."""
    from art.estimators.classification import PyTorchClassifier

    class BatchedClassifier(PyTorchClassifier):
        def predict(self, x: np.ndarray, batch_size: int = 128, training_mode: bool = False, **kwargs) -> np.ndarray:
            self._model.train(mode=training_mode)
            x_preprocessed, _ = self._apply_preprocessing(x, y=None, fit=False)
            inputs = torch.from_numpy(x_preprocessed).to(self._device)
            outputs = [np.zeros((0, self.nb_classes), dtype=np.float32)]
            with torch.no_grad():
                for i in range(0, len(inputs), batch_size):
                    outputs.append(self._model(inputs[i:i + batch_size])[-1].cpu().numpy().astype(np.float32))
            return self._apply_postprocessing(preds=np.vstack(outputs), fit=False)

    with torch.no_grad():
        n_classes = model(x[:1]).shape[1]
    return BatchedClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=n_classes,
                             clip_values=(PIXEL_MIN, PIXEL_MAX), device_type="gpu" if x.is_cuda else "cpu")


def run_art(make_attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, seed: int) -> torch.Tensor:
    """``make_attack(classifier)`` -> an ART evasion attack, run on ``x`` with labels ``y``.
    ART draws its randomness from numpy's global generator, seeded from ``seed`` first; the
    result is projected onto the ball (ART's own clipping leaves float round-off)."""
    attack = make_attack(art_classifier(model, x))
    np.random.seed(seed % 2**32)
    x_adv = attack.generate(x.cpu().numpy(), y=y.detach().cpu().numpy())
    return project(torch.as_tensor(x_adv, device=x.device, dtype=x.dtype), x, epsilon)
