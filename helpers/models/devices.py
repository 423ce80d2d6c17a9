"""The device snapshots a circuit can run on (``vqc``'s ``noise.device``): the calibration
snapshots that ship with ``qiskit-ibm-runtime`` (its fake backends, offline), which of a
device's qubits a circuit uses (``best_chain``, or the ones named), the checks of a setting
before any work, Qiskit's transpilation onto those qubits, and the calibrated errors
(``gate_errors``: Qiskit Aer's per gate; ``readout_confusion``: per qubit, asymmetric).
``device_noise`` simulates a circuit with them."""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import torch

from ..params import ConfigError
from ..registry import ENCODINGS
from .encodings import Angle

# Instructions of a transpiled circuit that are not gates on the state.
NOT_GATES = ("barrier", "measure", "delay", "reset", "if_else", "for_loop", "switch_case", "while_loop")


@lru_cache(maxsize=None)
def _fake_backends() -> dict:
    """Every fake backend (V2) of ``qiskit-ibm-runtime`` by its name ("fake_manila", ...)."""
    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # some snapshots warn that they are not typical
        return {b.name: b for b in FakeProviderForBackendV2().backends()}


def fake_backend(name: str, where: str = "noise.device"):
    """The calibration snapshot called ``name``; ``ConfigError`` naming the known ones if none is."""
    backends = _fake_backends()
    if name not in backends:
        raise ConfigError(f"{where} {name!r} is not a device snapshot of qiskit-ibm-runtime; known: {sorted(backends)}")
    return backends[name]


@lru_cache(maxsize=None)
def two_qubit_edges(backend) -> dict[tuple[int, int], float]:
    """Directed coupling edges of the device's two-qubit gate with their calibrated errors."""
    target = backend.target
    edges = {}
    for name in target.operation_names:
        for qargs, props in (target[name] or {}).items():
            if qargs is not None and len(qargs) == 2:
                edges[tuple(qargs)] = (props.error if props is not None and props.error is not None else 1.0)
    return edges


def qubit_cost(backend, qubit: int) -> float:
    """A qubit's calibrated error: its ``sx`` error plus its read-out error."""
    target = backend.target
    sx = target["sx"].get((qubit,)) if "sx" in target.operation_names else None
    measure = target["measure"].get((qubit,))
    return sum(p.error for p in (sx, measure) if p is not None and p.error is not None)


@lru_cache(maxsize=None)
def best_chain(backend, n: int) -> tuple[int, ...]:
    """The chain of ``n`` physical qubits (a path in the coupling map) with the smallest total
    calibrated error (two-qubit gate errors along it plus every qubit's ``sx`` and read-out
    error); ties broken by the smallest qubit numbers. Exhaustive over simple paths."""
    edges = two_qubit_edges(backend)
    cost = {}
    for (a, b), e in edges.items():
        cost[(a, b)] = cost[(b, a)] = min(e, cost.get((a, b), np.inf))
    neighbours: dict[int, list[int]] = {}
    for a, b in cost:
        neighbours.setdefault(a, []).append(b)
    qubit = {q: qubit_cost(backend, q) for q in range(backend.num_qubits)}
    best: tuple[float, tuple[int, ...]] | None = None

    def extend(path, total):
        nonlocal best
        if len(path) == n:
            key = (round(total, 12), min(path, path[::-1]))
            if best is None or key < best:
                best = key
            return
        for q in sorted(neighbours.get(path[-1], ())):
            if q not in path:
                extend(path + (q,), total + cost[(path[-1], q)] + qubit[q])

    for start in range(backend.num_qubits):
        extend((start,), qubit[start])
    if best is None:
        raise ConfigError(f"device {backend.name} has no chain of {n} connected qubits: name the qubits "
                          "(noise.qubits, a connected set)")
    return best[1]


def _one_rx(encoding) -> bool:
    """Whether an encoding entry is one RX per wire, entered once (what ``device_circuit`` transpiles)."""
    return issubclass(encoding, Angle) and encoding.embed.__func__ is Angle.embed.__func__ and not encoding.repeats


def check_device(name: str, qubits, n_qubits: int, encoding: str, where: str) -> None:
    """Raise ``ConfigError`` if the device is unknown, has too few qubits, ``qubits`` is not
    ``n_qubits`` distinct qubits of it that its coupling map connects (or, with none named, it
    has no chain of ``n_qubits``), or the encoding is not one RX per wire, once."""
    if not _one_rx(ENCODINGS.lookup(encoding, f"{where} encoding")):
        supported = [e.name for e in ENCODINGS.entries() if _one_rx(e)]
        raise ConfigError(f"{where}.device runs encodings of one RX per wire, once ({supported}); got {encoding!r}")
    backend = fake_backend(name, f"{where}.device")
    if n_qubits > backend.num_qubits:
        raise ConfigError(f"{where}.device {name!r} has {backend.num_qubits} qubits; the circuit needs {n_qubits}")
    if qubits is None:
        try:
            best_chain(backend, n_qubits)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        return
    if len(qubits) != n_qubits or len(set(qubits)) != len(qubits):
        raise ConfigError(f"{where}.qubits must be {n_qubits} distinct physical qubits (one per wire), got {list(qubits)}")
    outside = [q for q in qubits if not 0 <= q < backend.num_qubits]
    if outside:
        raise ConfigError(f"{where}.qubits {outside} are not qubits of {name!r} (0..{backend.num_qubits - 1})")
    chosen, reached, frontier = set(qubits), {qubits[0]}, [qubits[0]]
    links = {frozenset(e) for e in two_qubit_edges(backend)}
    while frontier:
        q = frontier.pop()
        for r in chosen - reached:
            if frozenset((q, r)) in links:
                reached.add(r)
                frontier.append(r)
    if reached != chosen:
        raise ConfigError(f"{where}.qubits {list(qubits)} are not connected on {name!r}'s coupling map: the routing "
                          f"could not stay on them (unreached: {sorted(chosen - reached)})")


def transpile_on(backend, qubits: tuple[int, ...], circuit, seed: int):
    """``circuit`` transpiled onto ``qubits`` of ``backend``: positions 0..n-1 stand for those
    qubits (logical wire p starts on position p), routed on their coupling map (directed as
    the device's two-qubit gate is), in the device's basis gates, optimisation level 1."""
    from qiskit import transpile
    from qiskit.transpiler import CouplingMap
    index = {q: p for p, q in enumerate(qubits)}
    edges = [[index[a], index[b]] for a, b in two_qubit_edges(backend) if a in index and b in index]
    basis = [g for g in backend.target.operation_names if g not in NOT_GATES]
    return transpile(circuit, basis_gates=basis, coupling_map=CouplingMap(edges), initial_layout=list(range(len(qubits))),
                     seed_transpiler=seed, optimization_level=1)


@lru_cache(maxsize=None)
def gate_errors(device: str) -> dict:
    """Aer's calibrated error of every gate of ``device`` by (gate name, physical qubits)."""
    from qiskit_aer.noise.device import basic_device_gate_errors
    return {(name, tuple(qargs)): error
            for name, qargs, error in basic_device_gate_errors(target=fake_backend(device).target)}


def readout_confusion(device: str, qubits: tuple[int, ...]) -> torch.Tensor:
    """(n, 2, 2) float64: each qubit's read-out confusion [read, prepared] from the snapshot's
    calibrated ``prob_meas1_prep0`` and ``prob_meas0_prep1`` (columns sum to 1)."""
    properties = fake_backend(device).properties()
    confusion = torch.zeros(len(qubits), 2, 2, dtype=torch.float64)
    for p, q in enumerate(qubits):
        flip01 = properties.qubit_property(q, "prob_meas1_prep0")[0]
        flip10 = properties.qubit_property(q, "prob_meas0_prep1")[0]
        confusion[p] = torch.tensor([[1 - flip01, flip10], [flip01, 1 - flip10]], dtype=torch.float64)
    return confusion
