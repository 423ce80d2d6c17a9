"""The torch device a config asks for: read by the stages and by the provenance record."""
from __future__ import annotations

from .params import ConfigError


def resolve_device(cfg):
    """The torch device of ``cfg.device`` (``auto``: CUDA when present, else CPU)."""
    import torch

    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device is 'cuda' but no CUDA GPU is available; use 'auto' or 'cpu'")
    return torch.device(cfg.device)
