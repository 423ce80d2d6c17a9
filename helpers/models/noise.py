"""Noise channels and finite shots for the variational circuit (``vqc``'s ``noise`` and ``shots``).

Channels, in PennyLane's conventions (its own Kraus matrices are used):

- per gate, on every wire a gate acts on, right after it, in this order: ``depolarizing``
  (``qml.DepolarizingChannel(p)``: ρ → (1 − p)ρ + p/3 (XρX + YρY + ZρZ)), ``amplitude_damping``
  (``qml.AmplitudeDamping(γ)``), ``phase_damping`` (``qml.PhaseDamping(λ)``). The gates are
  those of the circuit's PennyLane decomposition: the encoding's RX on every wire (each time
  it is encoded), the ansatz's rotations and its CNOTs; amplitude encoding's state
  preparation is taken as ideal. Any of them makes the circuit a density-matrix simulation.
- before measurement, in closed form on the distribution of the measured wires' outcomes (so
  circuits with only these keep the statevector and unitary paths): ``global_depolarizing``
  (ρ → (1 − p)ρ + p I/2**n: the distribution mixes with the uniform one, every <Z_i> scales
  by 1 − p), then ``readout_flip`` (``qml.BitFlip(q)`` on every measured wire: each measured
  bit flips with probability q, every <Z_i> scales by 1 − 2q).

Shots: the readout is estimated from ``shots`` outcomes of the measured wires, drawn jointly
(a multinomial on their exact distribution, noise included), so the estimates of the <Z_i>
are correlated as a device's are.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import pennylane as qml
import torch

from ..params import ConfigError, Integer, ListOf, Number, Optional, Params, Text, param
from .devices import check_device

# Above this many qubits a density matrix (4**n complex128 per sample) does not fit a batch.
MAX_DENSITY_QUBITS = 10

# The per-gate channels in the order they follow a gate, with PennyLane's class of each.
GATE_CHANNELS = (("depolarizing", qml.DepolarizingChannel), ("amplitude_damping", qml.AmplitudeDamping),
                 ("phase_damping", qml.PhaseDamping))


# Every channel of a given strength: the per-gate ones, then those before measurement.
CHANNELS = tuple(name for name, _ in GATE_CHANNELS) + ("global_depolarizing", "readout_flip")


@dataclass(frozen=True)
class Noise(Params):
    """The strengths of the channels (0: off)."""

    depolarizing: float = param(0.0, Number(0, 1), "single-qubit depolarising probability p after every gate, "
                                "on each wire it acts on (qml.DepolarizingChannel)")
    amplitude_damping: float = param(0.0, Number(0, 1), "amplitude damping γ after every gate, on each wire "
                                     "(qml.AmplitudeDamping)")
    phase_damping: float = param(0.0, Number(0, 1), "phase damping λ after every gate, on each wire "
                                 "(qml.PhaseDamping)")
    global_depolarizing: float = param(0.0, Number(0, 1), "global depolarising p just before measurement: "
                                       "ρ → (1 − p)ρ + p I/2**n")
    readout_flip: float = param(0.0, Number(0, 1), "probability q that each measured bit is flipped "
                                "(qml.BitFlip before measurement)")
    device: str | None = param(None, Optional(Text()), "a device snapshot of qiskit-ibm-runtime (fake_manila, "
                               "fake_sherbrooke, ...): the trained circuit transpiled onto it and run with its "
                               "calibrated gate errors, relaxation and read-out (device_noise.py); training "
                               "stays noise-free (null: no device)", quiet=True)
    qubits: tuple | None = param(None, Optional(ListOf(Integer(0), nonempty=True)), "the device's physical qubits, "
                                 "one per wire (null: the best-calibrated chain)", quiet=True)
    transpiler_seed: int = param(0, Integer(0), "seed of Qiskit's transpiler (layout and routing)", quiet=True)

    @property
    def per_gate(self) -> bool:
        """Whether any channel follows every gate (then the circuit is a density-matrix simulation)."""
        return any(getattr(self, name) > 0 for name, _ in GATE_CHANNELS)

    @property
    def active(self) -> bool:
        return self.device is not None or any(getattr(self, name) > 0 for name in CHANNELS)


def check_noise(noise: Noise, shots: int | None, simulator: str, n_qubits: int, where: str,
                encoding: str = "angle") -> None:
    """Raise ``ConfigError`` if the circuit cannot run with ``noise`` and ``shots``."""
    if (noise.active or shots is not None) and simulator != "fast":
        raise ConfigError(f"{where}: noise and shots are simulated by simulator 'fast' only (density matrices, "
                          f"closed forms and sampling of its outcomes); got simulator {simulator!r}")
    if noise.device is None and noise.qubits is not None:
        raise ConfigError(f"{where}: noise.qubits {list(noise.qubits)} names physical qubits of a device: set noise.device")
    if noise.device is not None:
        others = [name for name in CHANNELS if getattr(noise, name) > 0]
        if others:
            raise ConfigError(f"{where}: noise.device brings the device's own calibrated noise; drop {others}")
        if n_qubits > MAX_DENSITY_QUBITS:
            raise ConfigError(f"{where}: a device's noise is simulated on density matrices: at most "
                              f"{MAX_DENSITY_QUBITS} qubits, got {n_qubits}")
        check_device(noise.device, noise.qubits, n_qubits, encoding, f"{where}.noise")
    if noise.per_gate and n_qubits > MAX_DENSITY_QUBITS:
        raise ConfigError(f"{where}: per-gate noise needs a density matrix of 4**n_qubits entries per sample: at most "
                          f"{MAX_DENSITY_QUBITS} qubits, got {n_qubits}; use global_depolarizing and readout_flip "
                          "(closed forms) or fewer qubits")


def density_bytes(n_qubits: int, n_parametrised: int, batch: int) -> int:
    """Rough memory of a differentiable density-matrix simulation: ``batch`` complex128
    matrices of 4**n entries, one kept for the backward pass per parametrised gate (plus a
    few). Measured: 2.2 GiB at 8 qubits, 4 layers, batch 64, where this says 2.3 GiB."""
    return batch * 4 ** n_qubits * 16 * (n_parametrised + 4)


# Superoperators: a channel on k wires as a tensor (2,)*4k indexed (out rows, out columns,
# in rows, in columns), each k bits in the order of the wires: out[a, b] = S[a, b, c, d] in[c, d].

def gate_channel(noise: Noise) -> torch.Tensor | None:
    """The superoperator (2, 2, 2, 2) complex128 of the per-gate channels on one wire, in
    ``GATE_CHANNELS`` order (None: no per-gate channel)."""
    total = None
    for name, channel in GATE_CHANNELS:
        strength = getattr(noise, name)
        if strength == 0:
            continue
        kraus = torch.as_tensor(np.stack(channel.compute_kraus_matrices(strength)), dtype=torch.complex128)
        step = torch.einsum("kac,kbd->abcd", kraus, kraus.conj())
        total = step if total is None else torch.einsum("abef,efcd->abcd", step, total)
    return total


def unitary_superoperator(unitary: torch.Tensor, wires: int) -> torch.Tensor:
    """U ρ U† as a superoperator: (…, 2**k, 2**k) unitaries on k = ``wires`` wires (a leading
    batch dimension allowed) -> (…, *(2,)*4k)."""
    batch = unitary.shape[:-2]
    u = unitary.reshape(*batch, *(2,) * (2 * wires))
    k = wires
    b = list(range(len(batch)))
    out_rows, in_rows = [len(b) + i for i in range(k)], [len(b) + k + i for i in range(k)]
    out_cols, in_cols = [len(b) + 2 * k + i for i in range(k)], [len(b) + 3 * k + i for i in range(k)]
    return torch.einsum(u, b + out_rows + in_rows, u.conj(), b + out_cols + in_cols,
                        b + out_rows + out_cols + in_rows + in_cols)


def followed_by_channel(superoperator: torch.Tensor, channel: torch.Tensor, wires: int) -> torch.Tensor:
    """A gate's superoperator (…, *(2,)*4k) followed by the one-wire ``channel`` on each of its k wires."""
    k = wires
    lead = superoperator.dim() - 4 * k
    b = list(range(lead))
    mid_rows, mid_cols = [lead + i for i in range(k)], [lead + k + i for i in range(k)]
    rest = [lead + 2 * k + i for i in range(2 * k)]                      # in rows, in cols
    out_rows, out_cols = [lead + 4 * k + i for i in range(k)], [lead + 5 * k + i for i in range(k)]
    operands = [superoperator, b + mid_rows + mid_cols + rest]
    for i in range(k):
        operands += [channel, [out_rows[i], out_cols[i], mid_rows[i], mid_cols[i]]]
    return torch.einsum(*operands, b + out_rows + out_cols + rest)


def apply_superoperator(rho: torch.Tensor, superoperator: torch.Tensor, wires) -> torch.Tensor:
    """Apply a superoperator on ``wires`` to density matrices ``rho`` (B, *(2,)*2n) (rows, then
    columns, wire 0 first); ``superoperator`` (*(2,)*4k) or one per sample (B, *(2,)*4k)."""
    n, k = (rho.dim() - 1) // 2, len(wires)
    batched = superoperator.dim() == 4 * k + 1
    index = list(range(2 * n + 1))
    out_rows, out_cols = [2 * n + 1 + i for i in range(k)], [2 * n + 1 + k + i for i in range(k)]
    in_rows, in_cols = [1 + w for w in wires], [1 + n + w for w in wires]
    result = list(index)
    for i, w in enumerate(wires):
        result[1 + w], result[1 + n + w] = out_rows[i], out_cols[i]
    return torch.einsum(superoperator, ([0] if batched else []) + out_rows + out_cols + in_rows + in_cols,
                        rho, index, result)


def outcome_matrix(n_qubits: int, n_wires: int) -> torch.Tensor:
    """(2**n, 2**n_wires) float64 indicator of each basis state's outcome on the first
    ``n_wires`` wires: basis probabilities @ it = the measured wires' joint distribution."""
    outcome = torch.arange(2 ** n_qubits) >> (n_qubits - n_wires)
    return torch.nn.functional.one_hot(outcome, 2 ** n_wires).double()


def depolarize_globally(probabilities: torch.Tensor, p: float) -> torch.Tensor:
    """Outcome probabilities (B, 2**m) of m measured wires after ρ → (1 − p)ρ + p I/2**n: the
    uniform distribution's marginal is uniform, so they mix with 1/2**m."""
    return (1 - p) * probabilities + p / probabilities.shape[1]


def flip_readout(probabilities: torch.Tensor, q: float) -> torch.Tensor:
    """Outcome probabilities (B, 2**m) after each of the m measured bits flips with probability q
    (the stochastic matrix [[1 − q, q], [q, 1 − q]] on every wire's bit)."""
    m = probabilities.shape[1].bit_length() - 1
    bits = probabilities.reshape(len(probabilities), *(2,) * m)
    for axis in range(1, m + 1):
        bits = (1 - q) * bits + q * bits.flip(axis)
    return bits.reshape(len(probabilities), -1)


def before_measurement(probabilities: torch.Tensor, noise: Noise) -> torch.Tensor:
    """The closed-form channels (global depolarising, then read-out flips) on outcome probabilities."""
    if noise.global_depolarizing > 0:
        probabilities = depolarize_globally(probabilities, noise.global_depolarizing)
    if noise.readout_flip > 0:
        probabilities = flip_readout(probabilities, noise.readout_flip)
    return probabilities


def sample_frequencies(probabilities: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
    """Empirical frequencies (B, outcomes) of ``shots`` outcomes per row drawn from
    ``probabilities`` (B, outcomes) by ``generator`` (on the CPU, so a seed gives the same
    draws on any device); a multinomial, so each frequency is an unbiased estimate."""
    weights = probabilities.detach().to("cpu", torch.float64).clamp_min(0)
    draws = torch.multinomial(weights, shots, replacement=True, generator=generator)   # (B, shots)
    counts = torch.zeros_like(weights).scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float64))
    return (counts / shots).to(probabilities.device, probabilities.dtype)
