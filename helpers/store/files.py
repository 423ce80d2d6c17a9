"""How results are written and read back.

Every file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a truncated table, checkpoint or figure that a later stage trusts.
"""
from __future__ import annotations

import io
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd


def project_root() -> Path:
    """The repository root (the folder holding ``helpers/``), wherever the kernel runs."""
    return Path(__file__).resolve().parents[2]


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




def save_arrays(path: str | Path, **arrays) -> Path:
    """Write named numpy arrays to an ``.npz`` file."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return Path(path)


def read_arrays(path: str | Path) -> dict[str, np.ndarray] | None:
    """The arrays of an ``.npz`` file, or None if it is missing or does not read back whole."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def read_threat(path: str | Path, norm: str) -> pd.DataFrame:
    """Table ``path``'s rows of threat model ``norm`` without its ``norm`` column, each cell
    parsed from its text as a table of those rows alone would be (a count stays an integer
    however the other threat models' rows fill its column); a table without a ``norm``
    column whole (``read_csv``)."""
    raw = _existing(path).read_text()
    if not raw.strip():  # a table with no columns
        return pd.DataFrame()
    text = pd.read_csv(io.StringIO(raw), dtype=str, keep_default_na=False)
    if "norm" not in text.columns:
        return _parse(io.StringIO(raw))
    return _parse(io.StringIO(text[text["norm"] == norm].drop(columns="norm").to_csv(index=False)))


def _existing(path: str | Path) -> Path:
    """``path``, or a ``FileNotFoundError`` naming the stage to run."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the stage that writes it first (make all)")
    return path


def _parse(source) -> pd.DataFrame:
    """A table as ``write_csv`` wrote it: an empty cell is missing, every float as written."""
    return pd.read_csv(source, keep_default_na=False, na_values=[""], float_precision="round_trip")


def read_csv(path: str | Path) -> pd.DataFrame:
    """A table written by ``write_csv``; a missing one names the stage to run. A table with no
    columns (say, smoothing when no L2 certificate is configured) is written as a blank
    file and read back as an empty frame."""
    try:
        return _parse(_existing(path))
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
