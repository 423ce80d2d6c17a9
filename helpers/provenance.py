"""What produced an experiment folder, and the guard that keeps two configs' results apart.

``results/<experiment>/provenance.json`` records the resolved config, its hash, the git
commit (and whether the tree was dirty), package versions, the device and the seeds, and
for every stage that ran: its own config hash, commit and start/finish times.

A stage's hash covers only the config sections its results depend on (``STAGE_SECTIONS``),
so editing the report section never invalidates the trained models. ``begin_stage`` refuses
to run a stage whose recorded hash (or that of a stage before it) differs from the current
config while that stage's artifacts exist: results of two configs never mix, and nothing
already saved is deleted.
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import torch

from .artifacts import project_root, write_text
from .config import resolve_device
from .data import run_seeds

# The config sections each stage's results depend on (each includes the stages before it).
# ``workers`` is left out: the number of processes does not change the results.
STAGE_SECTIONS = {
    "train": ("dataset", "n_runs", "seed", "device", "training", "models"),
    "attack": ("dataset", "n_runs", "seed", "device", "training", "models", "attack"),
    "interpret": ("dataset", "n_runs", "seed", "device", "training", "models", "attack", "interpret"),
    "report": ("dataset", "n_runs", "seed", "device", "training", "models", "attack", "interpret", "report"),
}
UPSTREAM = {"train": (), "attack": ("train",), "interpret": ("train",), "report": ("train", "attack", "interpret")}
PACKAGES = ("torch", "pennylane", "numpy", "scipy", "scikit-learn", "pandas", "captum",
            "adversarial-robustness-toolbox", "matplotlib", "papermill")
FILENAME = "provenance.json"


class ProvenanceError(RuntimeError):
    """An experiment folder holds results of a different config than the current one."""


def _sha(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def section_hashes(cfg: dict, stage: str = "report") -> dict[str, str]:
    """SHA-256 (first 16 hex digits) of each config section ``stage`` depends on, as canonical JSON."""
    return {key: _sha(cfg[key]) for key in STAGE_SECTIONS[stage]}


def config_hash(cfg: dict, stage: str = "report") -> str:
    """One hash of the resolved config's sections that ``stage`` depends on (for ``report``, the
    default: every section but ``workers``)."""
    return _sha(section_hashes(cfg, stage))


def git_state(root: Path | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}``; ``results/`` does not count as dirty
    (the study writes its own tracked summaries there)."""
    root = root or project_root()

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--", ".", ":(exclude)results")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(cfg: dict) -> str:
    device = resolve_device(cfg)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def read_provenance(results_dir: str | Path) -> dict | None:
    path = Path(results_dir) / FILENAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ProvenanceError(f"{path} is not valid JSON ({err}): the folder's origin is unknown; "
                              "run `make clean` or use a new experiment name") from None


def stage_artifacts(results_dir: str | Path, stage: str) -> list[Path]:
    """The files a stage has produced so far (its reusable cells and tables)."""
    out = Path(results_dir)
    patterns = {
        "train": ["models/run*/*.pt", "train_history.csv", "models.csv"],
        "attack": ["cells/attack/**/*.npz", "robustness.csv"],
        "interpret": ["cells/interpret/**/*.csv", "attribution_stability.csv"],
        "report": [],  # the report rewrites every output from the tables each time: nothing to mix
    }[stage]
    return [p for pattern in patterns for p in out.glob(pattern)]


def begin_stage(cfg: dict, stage: str) -> dict:
    """Check that ``results_dir`` holds nothing of a different config, then record the stage.

    Raises ``ProvenanceError`` (naming the sections that changed and what to do) when the
    recorded hash of ``stage`` or of a stage before it differs from the current config's and
    that stage's artifacts exist; deletes nothing. Returns the updated provenance record.
    """
    out = Path(cfg["results_dir"])
    record = read_provenance(out) or {}
    recorded = record.get("stages", {})
    for name in (*UPSTREAM[stage], stage):
        old = recorded.get(name, {}).get("config_hash")
        if old is None or old == config_hash(cfg, name) or not stage_artifacts(out, name):
            continue
        old_sections = recorded[name].get("sections", {})
        changed = [key for key, value in section_hashes(cfg, name).items() if old_sections.get(key) != value]
        raise ProvenanceError(
            f"{out} holds {name} results of a different config (hash {old}, now {config_hash(cfg, name)}; "
            f"changed: {', '.join(changed) or 'unknown'}). Refusing to mix them: run `make clean "
            f"CONFIG=configs/{cfg['experiment']}.yaml` to start over, or save the changed config under "
            "a new name (a new experiment folder)."
        )
    stages = {k: v for k, v in recorded.items() if k in STAGE_SECTIONS}
    git = git_state()
    stages[stage] = {"config_hash": config_hash(cfg, stage), "sections": section_hashes(cfg, stage), "commit": git["commit"], "dirty": git["dirty"],
                     "started": _now(), "finished": None}
    record = {
        "experiment": cfg["experiment"],
        "config_hash": config_hash(cfg),
        "config": {k: v for k, v in cfg.items() if k not in ("experiment", "results_dir")},
        "git": git,
        "packages": package_versions(),
        "platform": platform.platform(),
        "device": device_description(cfg),
        "seed": cfg["seed"],
        "run_seeds": run_seeds(cfg["seed"], cfg["n_runs"]),
        "stages": stages,
    }
    _write(out, record)
    return record


def finish_stage(cfg: dict, stage: str) -> None:
    """Mark ``stage`` finished in the provenance record."""
    record = read_provenance(cfg["results_dir"])
    record["stages"][stage]["finished"] = _now()
    _write(Path(cfg["results_dir"]), record)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _write(out: Path, record: dict) -> None:
    write_text(json.dumps(record, indent=2, default=str) + "\n", out / FILENAME)
