import pytest
import torch

from helpers.store.checkpoints import load_checkpoint, save_checkpoint
from helpers.store.files import atomic_path, write_text

from conftest import SPECS


@pytest.mark.parametrize("name", list(SPECS))
def test_checkpoint_round_trip(tmp_path, trained_models, name):
    model = trained_models[name]
    path = save_checkpoint(model, SPECS[name], (1, 8, 8), 4, tmp_path / f"{name}.pt")
    loaded = load_checkpoint(path)
    x = torch.rand(7, 1, 8, 8)
    assert not loaded.training
    assert torch.allclose(model(x), loaded(x), atol=1e-6)


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path, trained_models):
    path = save_checkpoint(trained_models["mlp"], SPECS["mlp"], (1, 8, 8), 4, tmp_path / "m.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a qml-robustness"):
        load_checkpoint(foreign)
    # A pickle that would run code when unpickled is refused, and the code never runs.
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "x", "payload": _RunsCode(str(marker))}, evil)
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(evil)
    assert not marker.exists()
    with pytest.raises(FileNotFoundError, match="train stage"):
        load_checkpoint(tmp_path / "missing.pt")


def test_artifacts_are_written_whole_or_not_at_all(tmp_path):
    target = write_text("first", tmp_path / "a.txt")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary left behind
    assert target.stat().st_mode & 0o044  # readable by others, like any file open() makes
