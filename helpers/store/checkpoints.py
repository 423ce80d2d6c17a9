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


def read_state_dict(path: str, where: str) -> dict:
    """The state_dict (name -> tensor) saved at ``path`` under the data folder, read with
    ``weights_only`` (a file that could run code is refused); a ``ConfigError`` names
    ``where``, the file and what is wrong."""
    from ..data.files import data_path
    from ..params import ConfigError

    file = data_path(path, where)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # not a torch file, truncated, or pickled objects beyond tensors
        raise ConfigError(f"{where}: {file} is not a state_dict that loads with weights_only: {err}") from err
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        state = state["state_dict"]  # one of this repository's own checkpoints
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{where}: {file} holds {type(state).__name__}, not a state_dict (name -> tensor)")
    return state


def import_state_dict(model: nn.Module, path: str, where: str) -> None:
    """Load the state_dict at ``path`` (``read_state_dict``) into ``model``; a ``ConfigError``
    names the missing, unexpected and wrongly shaped entries."""
    from ..params import ConfigError

    state, own = read_state_dict(path, where), model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} (the model's: {tuple(own[k].shape)})" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ConfigError(f"{where}: {path} does not fit the model: " + "; ".join(
            part for part in (f"missing {missing}" if missing else "", f"unexpected {unexpected}" if unexpected else "",
                              f"shapes {shapes}" if shapes else "") if part))
    model.load_state_dict(state)


def check_state_dict(path: str, model_type: str, params, shape, where: str) -> None:
    """Config check of an imported model: the file at ``path`` loads into a model of
    ``model_type`` with ``params`` built for ``shape`` (a ``models.DataShape``)."""
    model = build_model({"type": model_type, **params.to_dict()}, shape.input_shape, shape.n_classes, where)
    import_state_dict(model, path, where)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by ``save_checkpoint``, in eval mode on ``device``."""
    return model_from_checkpoint(read_checkpoint(path)).to(device).eval()
