"""Training: Adam on cross-entropy (or a defence's loss), identical hyperparameters and batch order for every model."""
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


def train_model(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor,
                x_test: torch.Tensor, y_test: torch.Tensor, *, epochs: int, batch_size: int,
                learning_rate: float, seed: int, defence=None) -> list[dict]:
    """Train in place; return one record per epoch (epoch, train_loss, train_accuracy, test_accuracy).

    The mini-batch order comes from ``seed`` alone, so every model of a run sees the same
    batches in the same order. Each model fits what it fits on the training split (a PCA:
    ``fit_preprocessing``) before the first epoch. Without a ``defence`` the loss is the
    cross-entropy of the clean batch; with one (a ``defences.Defence``), its ``loss`` on the
    batch, its adversarial examples seeded from ``seed``, the epoch and the batch (a stream of
    their own: the batch order is the same as without it). ``train_accuracy`` is on the
    batches the model trained on (adversarial ones, for adversarial training).
    """
    model.fit_preprocessing(x_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
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
                loss = F.cross_entropy(logits, y_train[idx])
            else:
                loss, logits = defence.loss(model, x_train[idx], y_train[idx], batch_seed(seed, epoch, i))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            n_correct += int((logits.argmax(1) == y_train[idx]).sum())
        history.append({
            "epoch": epoch,
            "train_loss": total_loss / len(x_train),
            "train_accuracy": n_correct / len(x_train),
            "test_accuracy": accuracy(model, x_test, y_test),
        })
    model.eval()
    return history
