"""The ``training`` section: how every model is trained unless its own ``training`` says otherwise."""
from __future__ import annotations

import dataclasses

from ..params import Boolean, Choice, Integer, Number, Optional, Params, check, param


@dataclasses.dataclass(frozen=True)
class TrainingSection(Params):
    """``training``: the same for every model (by default Adam on cross-entropy); a model's own
    ``training`` mapping overrides keys for that model alone (``ModelSpec.training``)."""

    epochs: int = param(30, Integer(1), "epochs")
    batch_size: int = param(32, Integer(1), "mini-batch size")
    learning_rate: float = param(0.01, Number(0, open="low"), "the optimiser's (initial) learning rate")
    optimizer: str = param("adam", Choice(["adam", "adamw", "sgd"]), "the optimiser", quiet=True)
    momentum: float = param(0.0, Number(0, 1, open="high"), "SGD momentum (sgd only)", quiet=True)
    nesterov: bool = param(False, Boolean(), "Nesterov momentum (sgd with momentum > 0 only)", quiet=True)
    weight_decay: float = param(0.0, Number(0), "weight decay (L2 penalty for adam and sgd, decoupled for adamw)",
                                quiet=True)
    schedule: str | None = param(None, Optional(Choice(["cosine", "step"])),
                                 "learning-rate schedule per epoch: cosine annealing to 0 over the epochs, or "
                                 "step (times gamma every step_size epochs); null: constant", quiet=True)
    step_size: int = param(10, Integer(1), "epochs between the step schedule's decays", quiet=True)
    gamma: float = param(0.1, Number(0, 1, open="low"), "the step schedule's decay factor", quiet=True)
    clip_grad_norm: float | None = param(None, Optional(Number(0, open="low")),
                                         "clip the gradient's global L2 norm to this before each step (null: no "
                                         "clipping)", quiet=True)
    loss: str = param("cross_entropy", Choice(["cross_entropy", "mse"]),
                      "cross_entropy on the logits, or mse: the squared error between the softmax probabilities and "
                      "the one-hot label (a defence's own loss replaces either)", quiet=True)
    best_of: int = param(1, Integer(1), "initialisations per model and run: each trained in full, the one with the "
                                        "lowest final training loss kept (its seed recorded)", quiet=True)

    def check(self, where):
        check(self.optimizer == "sgd" or self.momentum == 0, f"{where}.momentum applies to optimizer sgd only, "
                                                             f"got momentum {self.momentum} with {self.optimizer!r}")
        check(not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
              f"{where}.nesterov needs optimizer sgd with momentum > 0")

    def described(self) -> str:
        """The optimiser in words, for the summary: "Adam lr 0.01" for the defaults."""
        name = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}[self.optimizer]
        words = [f"{name} lr {self.learning_rate}"]
        if self.momentum:
            words.append(f"momentum {self.momentum:g}" + (" (Nesterov)" if self.nesterov else ""))
        if self.weight_decay:
            words.append(f"weight decay {self.weight_decay:g}")
        if self.schedule == "cosine":
            words.append("cosine schedule")
        elif self.schedule == "step":
            words.append(f"step schedule (×{self.gamma:g} every {self.step_size} epochs)")
        if self.clip_grad_norm is not None:
            words.append(f"gradients clipped to norm {self.clip_grad_norm:g}")
        if self.loss == "mse":
            words.append("squared-error loss on the probabilities")
        if self.best_of > 1:
            words.append(f"best of {self.best_of} initialisations")
        return ", ".join(words)
