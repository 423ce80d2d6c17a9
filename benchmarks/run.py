"""`make bench`: how fast each simulation path of the quantum model is, against PennyLane.

Writes to ``--out`` (default ``results/bench/``):

- ``quantum_paths.csv``: for every qubit count n and layer count L, the time of one
  forward+backward pass per batch on each path, measured in a fresh subprocess (so its peak
  memory is its own), the speed-up over ``qml.qnn.TorchLayer`` on ``default.qubit``
  (``pennylane``) measured in the same run, and the largest difference of the logits and
  the gradients from that reference. Two workloads: ``eval`` (frozen weights, gradient of the
  loss with respect to a batch of 360 images: what attacks and attributions do) on the
  pennylane, lightning (``lightning.qubit``, adjoint) and unitary paths; ``train`` (gradient
  with respect to the weights, batch 32) on the pennylane, lightning and statevector paths.
- ``training_epoch.csv``: one epoch of the default model (8 qubits, 4 layers) on the digits
  training split per simulator, with the loss it reaches.
- ``certificates.csv``: the time per input of every L∞ certificate on the default study's
  run-0 models (``results/default``, when it has been run) at a few budgets, with the share
  of the first 64 test points it certifies and the worst-case attacked accuracy there.
- ``stages.csv``: the wall time of each pipeline stage of every executed experiment under
  ``results/`` (from papermill's notebook metadata).
- ``bench.md``: the four as Markdown tables.

Run ``python benchmarks/run.py --help`` for the grid options.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Which model simulator and mode each path is.
PATHS = {
    "eval": {"pennylane": "pennylane", "lightning": "lightning", "unitary": "fast"},
    "train": {"pennylane": "pennylane", "lightning": "lightning", "statevector": "fast"},
}
BATCH = {"eval": 360, "train": 32}
N_CLASSES = 4
REFERENCE = "pennylane"


def _median_time(step, min_seconds: float = 1.0, min_reps: int = 3, max_reps: int = 20) -> tuple[float, int]:
    step()  # warm-up: builds caches, plans, kernels
    times = []
    while len(times) < min_reps or (sum(times) < min_seconds and len(times) < max_reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2], len(times)


def measure(n_qubits: int, n_layers: int, workload: str, path: str, seed: int = 0, min_seconds: float = 1.0) -> dict:
    """Time one forward+backward of ``workload`` on ``path``; return the time, the number of
    repetitions, the logits and the gradient (inputs for eval, weights for train)."""
    import torch
    import torch.nn.functional as F

    from helpers.models import build_model

    torch.manual_seed(seed)
    model = build_model({"type": "vqc", "n_qubits": n_qubits, "n_layers": n_layers,
                         "simulator": PATHS[workload][path]}, (1, 8, 8), N_CLASSES)
    with torch.no_grad():
        model.quantum.weights.uniform_(-math.pi, math.pi)
    model.fit_preprocessing(torch.rand(200, 1, 8, 8))
    model.train(workload == "train")
    x = torch.rand(BATCH[workload], 1, 8, 8)
    y = torch.randint(0, N_CLASSES, (BATCH[workload],))
    result = {}

    def step():
        model.zero_grad()
        inputs = x.clone().requires_grad_(workload == "eval")
        logits = model(inputs)
        F.cross_entropy(logits, y).backward()
        result["logits"] = logits.detach()
        result["gradient"] = (inputs.grad if workload == "eval" else model.quantum.weights.grad).detach().clone()

    assert model.path == path, (model.path, path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, reps = _median_time(step, min_seconds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "reps": reps, "peak_mib": (peak - before) / 1024, **result}


def _measure_in_subprocess(n_qubits, n_layers, workload, path, min_seconds) -> dict:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.pt"
        subprocess.run([sys.executable, __file__, "--min-seconds", str(min_seconds),
                        "--measure", str(n_qubits), str(n_layers), workload, path, str(out)], check=True, cwd=ROOT)
        return torch.load(out, weights_only=True)


def quantum_paths(qubits, layers, workloads, min_seconds: float = 1.0, log=print):
    """The rows of ``quantum_paths.csv``."""
    rows = []
    for workload in workloads:
        for n in qubits:
            for L in layers:
                measured = {p: _measure_in_subprocess(n, L, workload, p, min_seconds) for p in PATHS[workload]}
                ref = measured[REFERENCE]
                for path, m in measured.items():
                    rows.append({
                        "workload": workload, "batch": BATCH[workload], "n_qubits": n, "n_layers": L, "path": path,
                        "ms_per_batch": 1e3 * m["seconds"], "reps": m["reps"],
                        "speedup_vs_pennylane": ref["seconds"] / m["seconds"],
                        "max_logit_difference": float((m["logits"] - ref["logits"]).abs().max()),
                        "max_gradient_difference": float((m["gradient"] - ref["gradient"]).abs().max()),
                        "peak_mib": m["peak_mib"],
                    })
                    log(f"{workload:5} n={n:2} L={L} {path:11} {1e3 * m['seconds']:9.2f} ms  "
                        f"x{ref['seconds'] / m['seconds']:6.1f}  Δ={rows[-1]['max_logit_difference']:.1e}")
    return rows


def training_epoch(n_qubits: int = 8, n_layers: int = 4, simulators=("pennylane", "lightning", "fast"), log=print):
    """One epoch of Adam on the digits 0-3 training split per simulator, from the same weights."""
    import torch

    from helpers.data import load_dataset, split_indices
    from helpers.models import build_model
    from helpers.training import train_model

    data = load_dataset("digits", [0, 1, 2, 3])
    train, test = split_indices(data.y, 0.25, seed=0)
    x, y = torch.as_tensor(data.X), torch.as_tensor(data.y)
    x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
    rows, initial = [], None
    for simulator in simulators:
        torch.manual_seed(0)
        model = build_model({"type": "vqc", "n_qubits": n_qubits, "n_layers": n_layers, "simulator": simulator},
                            data.input_shape, data.n_classes)
        if initial is None:  # a copy: state_dict() shares storage with the model being trained
            initial = {key: value.clone() for key, value in model.state_dict().items()}
        model.load_state_dict(initial)
        start = time.perf_counter()
        history = train_model(model, x_train, y_train, x_test, y_test, epochs=1, batch_size=32,
                              learning_rate=0.01, seed=0)
        rows.append({"simulator": simulator, "n_qubits": n_qubits, "n_layers": n_layers,
                     "train_images": len(x_train), "seconds": time.perf_counter() - start,
                     "train_loss": history[-1]["train_loss"], "test_accuracy": history[-1]["test_accuracy"]})
    ref = rows[0]
    for row in rows:
        row["speedup_vs_pennylane"] = ref["seconds"] / row["seconds"]
        row["loss_difference"] = abs(row["train_loss"] - ref["train_loss"])
        log(f"epoch {row['simulator']:10} {row['seconds']:7.2f} s  x{row['speedup_vs_pennylane']:5.1f}  "
            f"loss {row['train_loss']:.6f}")
    return rows


def certificate_costs(models: dict, x, y, epsilons=(0.01, 0.02, 0.05), log=print) -> list[dict]:
    """Milliseconds per input and share certified for every L∞ certificate that applies to
    each of ``models`` on inputs ``x`` (labels ``y``) at each ε."""
    from helpers.registry import CERTIFICATES

    rows = []
    for name, model in models.items():
        for certificate in CERTIFICATES.names():
            entry = CERTIFICATES[certificate]()
            if "linf" not in entry.norms or not entry.applies(model)[0]:
                continue
            for epsilon in epsilons:
                start = time.perf_counter()
                certified = entry.certify(model, x, y, epsilon)
                seconds = time.perf_counter() - start
                rows.append({"model": name, "certificate": certificate, "epsilon": epsilon, "inputs": len(x),
                             "ms_per_input": 1000 * seconds / len(x), "certified": float(certified.mean())})
                log(f"certify {name:12} {certificate:10} ε={epsilon:<5} {rows[-1]['ms_per_input']:8.2f} ms/input "
                    f"{rows[-1]['certified']:.3f} certified")
    return rows


def default_study_models(results: Path, n_inputs: int = 64):
    """The default study's run-0 models and the first ``n_inputs`` points of its test split,
    or None when the study has not been run."""
    from helpers.config import load_config
    from helpers.stages.inputs import load_models, load_test_split

    cfg = load_config(ROOT / "configs" / "default.yaml", results_root=results)
    if not (results / "default" / "models" / "run00").is_dir():
        return None
    x, y = load_test_split(cfg, 0, "cpu")
    return {name: loaded.model for name, loaded in load_models(cfg, 0, "cpu").items()}, x[:n_inputs], y[:n_inputs]


def stage_times(results: Path) -> list[dict]:
    """Wall time of every executed stage notebook under ``results/<experiment>/``."""
    rows = []
    for notebook in sorted(results.glob("*/0*_*.ipynb")):
        if notebook.stem.count(".") or notebook.parent.name == "bench":
            continue  # .running / .failed copies
        meta = json.loads(notebook.read_text()).get("metadata", {}).get("papermill", {})
        if meta.get("duration") is not None:
            rows.append({"experiment": notebook.parent.name, "stage": notebook.stem,
                         "seconds": round(meta["duration"], 1), "finished": meta.get("end_time")})
    return rows


def markdown(frames: dict) -> str:
    lines = []
    titles = {"quantum_paths": "Forward+backward per batch (ms), speed-up over TorchLayer/default.qubit, "
                               "largest logit difference, peak extra memory",
              "training_epoch": "One training epoch of the default model (8 qubits, 4 layers)",
              "certificates": "Certificates on the default study's run-0 models: ms per input, share certified",
              "stages": "Wall time of each pipeline stage"}
    for key, frame in frames.items():
        if frame.empty:
            continue
        table = frame.copy()
        for column in table.columns:
            if table[column].dtype.kind == "f":
                table[column] = table[column].map(lambda v: f"{v:.3g}" if abs(v) < 1e-3 else f"{v:,.2f}")
        header = "| " + " | ".join(table.columns) + " |"
        rule = "|" + "---|" * len(table.columns)
        body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
        lines += [f"### {titles[key]}", "", header, rule, *body, ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    parser.add_argument("--qubits", type=int, nargs="+", default=[4, 6, 8, 10])
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 4, 6])
    parser.add_argument("--workloads", nargs="+", default=["eval", "train"], choices=list(PATHS))
    parser.add_argument("--no-epoch", action="store_true", help="skip the training-epoch benchmark")
    parser.add_argument("--no-certificates", action="store_true", help="skip the certificate timings")
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="repeat each measurement (at least 3 times) until this much time is spent")
    parser.add_argument("--measure", nargs=5, metavar=("N", "L", "WORKLOAD", "PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # child process: one measurement
        import torch

        n, L, workload, path, out = args.measure
        torch.save(measure(int(n), int(L), workload, path, min_seconds=args.min_seconds), out)
        return

    import pandas as pd

    from helpers.store.files import write_csv, write_text

    frames = {"quantum_paths": pd.DataFrame(quantum_paths(args.qubits, args.layers, args.workloads, args.min_seconds)),
              "training_epoch": pd.DataFrame([] if args.no_epoch else training_epoch()),
              "certificates": pd.DataFrame([]),
              "stages": pd.DataFrame(stage_times(ROOT / "results"))}
    study = None if args.no_certificates else default_study_models(ROOT / "results")
    if study is not None:
        frames["certificates"] = pd.DataFrame(certificate_costs(*study))
    for key, frame in frames.items():
        write_csv(frame, args.out / f"{key}.csv")
    write_text(markdown(frames), args.out / "bench.md")
    print(f"wrote {args.out}/bench.md")


if __name__ == "__main__":
    main()
