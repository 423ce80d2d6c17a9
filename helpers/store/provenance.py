"""What produced an experiment folder, and the guard that keeps a stage from reading stale
results of the stages before it.

``results/<experiment>/provenance.json`` records the resolved config, the git commit (and
whether the tree was dirty), package versions, the device and the seeds, and for every stage
that ran: the hash of the config sections its results depend on, the hash of the source of
the code it runs (``store.graph``), the commit, and its start and finish times.

Within a stage, units of work are reused only while their own keys match (``store.units``);
between stages, ``begin_stage`` refuses to start when a stage before it has not finished
with the current config and code (run ``make`` to bring it up to date). Nothing is deleted.
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from ..data.splits import run_seeds
from ..registry import source_hash
from . import graph
from .files import project_root, write_text
from .layout import Layout

PACKAGES = ("torch", "pennylane", "numpy", "scipy", "scikit-learn", "pandas", "captum",
            "adversarial-robustness-toolbox", "matplotlib", "papermill")


class StaleResultsError(RuntimeError):
    """A stage's inputs were produced by a different config or code than the current one."""


def _sha(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def section_hashes(cfg, stage: str = "report") -> dict[str, str]:
    """SHA-256 (16 hex digits) of each config section ``stage`` depends on, as canonical JSON."""
    return {key: _sha(cfg.section(key)) for key in graph.sections(stage)}


def config_hash(cfg, stage: str = "report") -> str:
    """One hash of the config sections ``stage`` depends on (for ``report``, the default:
    every section but ``workers``, which does not change the numbers)."""
    return _sha(section_hashes(cfg, stage))


def code_hash(stage: str) -> str:
    """Hash of the source of the code ``stage`` runs, the stages before it included."""
    return source_hash(graph.code_files(stage))


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


def device_description(cfg) -> str:
    import torch

    from ..device import resolve_device

    device = resolve_device(cfg)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def read_provenance(results_dir) -> dict | None:
    path = Layout(results_dir).provenance
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise StaleResultsError(f"{path} is not valid JSON ({err}): the folder's origin is unknown; "
                                "run `make clean` or use a new experiment name") from None


def require_current(cfg, stage: str) -> None:
    """Raise ``StaleResultsError`` unless ``stage`` finished with the current config sections
    and code, naming what differs and what to run."""
    record = (read_provenance(cfg.results_dir) or {}).get("stages", {}).get(stage)
    command = f"make {stage} CONFIG=configs/{cfg.experiment}.yaml"
    if record is None or record.get("finished") is None:
        raise StaleResultsError(f"{cfg.results_dir} has no finished {stage} stage: run `{command}` first")
    sections = [key for key, value in section_hashes(cfg, stage).items() if record.get("sections", {}).get(key) != value]
    differs = ([f"config (changed: {', '.join(sections)})"] if sections else []) + (
        ["code"] if record.get("code_hash") != code_hash(stage) else [])
    if differs:
        raise StaleResultsError(f"{cfg.results_dir} holds {stage} results of another {' and '.join(differs)} "
                                f"(commit {record.get('commit')}): run `{command}` to bring them up to date")


def begin_stage(cfg, stage: str) -> dict:
    """Check that every stage before ``stage`` is up to date (``require_current``), then
    record the start of ``stage``. Returns the updated provenance record."""
    for before in graph.upstream(stage):
        require_current(cfg, before)
    record = read_provenance(cfg.results_dir) or {}
    stages = {k: v for k, v in record.get("stages", {}).items() if k in graph.STAGES}
    git = git_state()
    stages[stage] = {"config_hash": config_hash(cfg, stage), "sections": section_hashes(cfg, stage),
                     "code_hash": code_hash(stage), "commit": git["commit"], "dirty": git["dirty"],
                     "started": _now(), "finished": None}
    record = {
        "experiment": cfg.experiment,
        "config_hash": config_hash(cfg),
        "config": cfg.to_dict(),
        "git": git,
        "packages": package_versions(),
        "platform": platform.platform(),
        "device": device_description(cfg),
        "seed": cfg.seed,
        "run_seeds": run_seeds(cfg.seed, cfg.n_runs),
        "stages": stages,
    }
    _write(cfg.results_dir, record)
    return record


def finish_stage(cfg, stage: str) -> None:
    """Mark ``stage`` finished in the provenance record."""
    record = read_provenance(cfg.results_dir)
    record["stages"][stage]["finished"] = _now()
    _write(cfg.results_dir, record)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _write(results_dir, record: dict) -> None:
    write_text(json.dumps(record, indent=2, default=str) + "\n", Layout(results_dir).provenance)
