"""Where results live and how they are written and read back.

Every file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a truncated table, checkpoint or figure that a later stage trusts.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .models import build_model

CHECKPOINT_FORMAT = "qml-robustness-checkpoint/1"


def project_root() -> Path:
    """The repository root (the folder holding ``helpers/``), wherever the kernel runs."""
    return Path(__file__).resolve().parent.parent


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    # mkstemp creates the file private (0600); give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_figure(fig, path: str | Path, dpi: int = 150) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix.lstrip("."))
    return Path(path)


def checkpoint_path(results_dir: Path, model_name: str, run: int) -> Path:
    return Path(results_dir) / "models" / f"run{run:02d}" / f"{model_name}.pt"


def save_checkpoint(model: nn.Module, spec: dict, input_shape, n_classes: int, path: str | Path,
                    training: dict | None = None) -> Path:
    """Save the weights and everything ``load_checkpoint`` needs to rebuild the Module, with
    the ``training`` record (history and summary: plain lists, dicts, numbers and strings)
    that a resumed train stage reuses instead of training again."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": dict(spec),
        "input_shape": [int(s) for s in input_shape],
        "n_classes": int(n_classes),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training": training,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | Path) -> dict:
    """The payload of a checkpoint saved by ``save_checkpoint``, loaded with
    ``weights_only=True`` (no arbitrary code runs); a missing file raises
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


def save_arrays(path: str | Path, **arrays) -> Path:
    """Write named numpy arrays to an ``.npz`` file."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return Path(path)


class CellStore:
    """Finished cells of a stage, one ``.npz`` file each under ``folder/<model>__<cell>.npz``.

    A stage saves each cell as soon as it is computed and loads the ones that exist, so an
    interrupted stage resumes where it stopped. Files are written atomically; one that does
    not read back whole counts as missing (computed again).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.reused = self.computed = 0

    def path(self, model: str, cell: str) -> Path:
        return self.folder / f"{model}__{cell}.npz"

    def load(self, model: str, cell: str) -> dict[str, np.ndarray] | None:
        path = self.path(model, cell)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as arrays:
                cell_arrays = {key: arrays[key] for key in arrays.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None
        self.reused += 1
        return cell_arrays

    def save(self, model: str, cell: str, arrays: dict[str, np.ndarray]) -> None:
        save_arrays(self.path(model, cell), **arrays)
        self.computed += 1
