"""Training: by default Adam on cross-entropy (or a defence's loss), identical hyperparameters and
batch order for every model; the optimiser, schedule, gradient clipping and loss are the
``training`` section's (``config.TrainingSection``)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import predict


def batch_seed(seed: int, epoch: int, start: int) -> int:
    """The seed of a defence's random draws on one batch (the run's ``seed``, the epoch, the
    batch's first position), apart from the batch-order generator."""
    return int(np.random.SeedSequence([int(seed), 17, int(epoch), int(start)]).generate_state(1)[0])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Clean accuracy of ``model`` on inputs (N, *input_shape) with labels (N,)."""
    model.eval()
    return float((predict(model, x) == y).double().mean())


def make_optimizer(parameters, learning_rate: float, optimizer: str = "adam", momentum: float = 0.0,
                   nesterov: bool = False, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimiser ``optimizer`` (adam, adamw, sgd) over ``parameters``."""
    if optimizer == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate, weight_decay=weight_decay)
    if optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=momentum, nesterov=nesterov,
                               weight_decay=weight_decay)
    raise ValueError(f"optimizer {optimizer!r} is unknown; allowed: adam, adamw, sgd")


def make_schedule(optimizer: torch.optim.Optimizer, schedule: str | None, epochs: int, step_size: int = 10,
                  gamma: float = 0.1):
    """The per-epoch learning-rate schedule (cosine annealing to 0 over ``epochs``, or a step
    decay by ``gamma`` every ``step_size`` epochs); None for a constant rate."""
    if schedule is None:
        return None
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    raise ValueError(f"schedule {schedule!r} is unknown; allowed: null, cosine, step")


def batch_loss(logits: torch.Tensor, y: torch.Tensor, loss: str = "cross_entropy") -> torch.Tensor:
    """The loss of a batch of logits (B, classes) against labels (B,): cross-entropy, or the
    mean squared error between the softmax probabilities and the one-hot labels (``mse``)."""
    if loss == "cross_entropy":
        return F.cross_entropy(logits, y)
    if loss == "mse":
        return F.mse_loss(logits.softmax(1), F.one_hot(y, logits.shape[1]).to(logits.dtype))
    raise ValueError(f"loss {loss!r} is unknown; allowed: cross_entropy, mse")


def train_model(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor,
                x_test: torch.Tensor, y_test: torch.Tensor, *, epochs: int, batch_size: int,
                learning_rate: float, seed: int, defence=None, optimizer: str = "adam", momentum: float = 0.0,
                nesterov: bool = False, weight_decay: float = 0.0, schedule: str | None = None,
                step_size: int = 10, gamma: float = 0.1, clip_grad_norm: float | None = None,
                loss: str = "cross_entropy") -> list[dict]:
    """Train in place; return one record per epoch (epoch, train_loss, train_accuracy, test_accuracy).

    The mini-batch order comes from ``seed`` alone, so every model of a run sees the same
    batches in the same order. Each model fits what it fits on the training split (a PCA:
    ``fit_preprocessing``) before the first epoch. Without a ``defence`` the loss is ``loss``
    of the clean batch (``batch_loss``); with one (a ``defences.Defence``), its ``loss`` on the
    batch, its adversarial examples seeded from ``seed``, the epoch and the batch (a stream of
    their own: the batch order is the same as without it). ``train_accuracy`` is on the
    batches the model trained on (adversarial ones, for adversarial training). The optimiser
    (``make_optimizer``), its per-epoch schedule (``make_schedule``) and the clipping of the
    gradient's norm before each step take the ``training`` section's options.
    """
    model.fit_preprocessing(x_train)
    step = make_optimizer(model.parameters(), learning_rate, optimizer, momentum, nesterov, weight_decay)
    scheduler = make_schedule(step, schedule, epochs, step_size, gamma)
    order = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(x_train), generator=order).to(x_train.device)
        total_loss, n_correct = 0.0, 0
        for i in range(0, len(x_train), batch_size):
            idx = perm[i:i + batch_size]
            if defence is None:
                logits = model(x_train[idx])
                value = batch_loss(logits, y_train[idx], loss)
            else:
                value, logits = defence.loss(model, x_train[idx], y_train[idx], batch_seed(seed, epoch, i))
            step.zero_grad()
            value.backward()
            if clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            step.step()
            total_loss += value.item() * len(idx)
            n_correct += int((logits.argmax(1) == y_train[idx]).sum())
        if scheduler is not None:
            scheduler.step()
        history.append({
            "epoch": epoch,
            "train_loss": total_loss / len(x_train),
            "train_accuracy": n_correct / len(x_train),
            "test_accuracy": accuracy(model, x_test, y_test),
        })
    model.eval()
    return history
