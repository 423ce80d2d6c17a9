"""Checkpoints: a trained model's weights with everything needed to rebuild it, its training
record and the key of the unit of work that produced it. Loaded with
``torch.load(weights_only=True)``, so a checkpoint can never run code."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..models import build_model
from .files import atomic_path

CHECKPOINT_FORMAT = "qml-robustness-checkpoint/2"


def save_checkpoint(model: nn.Module, spec: dict, input_shape, n_classes: int, path: str | Path,
                    training: dict | None = None, key: str | None = None) -> Path:
    """Save the weights and everything ``load_checkpoint`` needs to rebuild the Module, with
    the ``training`` record (history and summary: plain lists, dicts, numbers and strings)
    and the unit ``key`` (what produced it) that a resumed train stage compares."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": dict(spec),
        "input_shape": [int(s) for s in input_shape],
        "n_classes": int(n_classes),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training": training,
        "key": key,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | Path) -> dict:
    """The payload of a checkpoint saved by ``save_checkpoint``; a missing file raises
    ``FileNotFoundError``, a truncated or foreign one ``ValueError``, each naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; run the train stage first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle with forbidden globals, not a torch file
        raise ValueError(f"checkpoint {path} is corrupt or not a qml-robustness checkpoint: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} is not a {CHECKPOINT_FORMAT} file")
    return payload


def model_from_checkpoint(payload: dict) -> nn.Module:
    """The Module a checkpoint payload (``read_checkpoint``) describes, with its weights; a
    ``RuntimeError`` if the weights do not fit the current model code."""
    model = build_model(payload["spec"], payload["input_shape"], payload["n_classes"])
    model.load_state_dict(payload["state_dict"])
    return model


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by ``save_checkpoint``, in eval mode on ``device``."""
    return model_from_checkpoint(read_checkpoint(path)).to(device).eval()
