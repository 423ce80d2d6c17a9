"""Complete verification: for each point and ε a proof, a counterexample, or ``unknown``.

The incomplete certificates prove some points and leave the rest undecided; the attacks
break some and leave the rest undecided. ``exact`` decides every point it has the time for:

1. the float64 model misclassifies the clean point: ``not_robust`` (the point itself);
2. the interval and CROWN bounds prove it: ``robust``;
3. PGD on the margin with restarts finds an input of the ball ∩ [0, 1] that the float64 model
   misclassifies: ``not_robust``, with that input;
4. otherwise the exact search of the model's family: a ReLU network (linear layers,
   convolutions, ReLU, max pooling) by its full-CROWN margins (``network_bounds``), then as a
   mixed-integer program (``milp``), a circuit by branch and bound over its encoding angles
   (``angle_search``). Its minimiser or counterexample is re-checked by the float64 model
   before it counts; a search that runs out of time, binaries or boxes leaves ``unknown``,
   counted and reported, never taken for either side.

``robust`` is a proof (up to the solver's tolerances, covered by the margin ``MARGIN`` a
proof must clear); ``not_robust`` is an input, re-checked. Tanh, sigmoid and amplitude
encoding have no exact treatment here: the entry does not apply to them (the reason says so).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..params import Integer, ListOf, Number, Optional, Params, param
from ..attacks.base import margin
from ..attacks.pgd import pgd
from ..registry import CERTIFICATES
from ..models.ops import Circuit
from .angle_search import fourier_applies, fourier_coefficients, fourier_margins, flat_bound, search, \
    vertex_bound
from .base import Certificate
from .bounds import AFFINE, MARGIN, bounds_apply, circuit_margin_bound, crown_margin_lower_bound, input_box, \
    interval_step, interval_trace, margin_lower_bound
from .bisection import bisect, first_at
from .milp import decide_margins
from .network_bounds import LINEAR, SHAPE_ONLY, affine64, crown_margins, encodable, layer_bounds, op_inputs

VERDICTS = ("robust", "not_robust", "unknown")
ATTACK_GRID = 8  # budgets the attack radius scans before it bisects (robust_radii)


def margins64(model64, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The smallest margin logit_y − logit_j (j != y) of the float64 model at inputs x."""
    with torch.no_grad():
        logits = model64(x.double())
    return margin_lower_bound(logits, logits, y).numpy()


@CERTIFICATES.register
class Exact(Certificate):
    """Complete verification: every point ``robust`` (proved), ``not_robust`` (an input of the
    ball ∩ [0, 1] that the float64 model misclassifies) or ``unknown`` (its budget spent:
    ``seconds`` of MILP on a program of at most ``binaries`` binaries, ``boxes`` of angle search),
    after the bounds and a PGD search: a ReLU network (max pooling included) as a mixed-integer
    program, a circuit by branch and bound over its angles with the margins expanded exactly as
    trigonometric polynomials (docs/verification.md). ``certify`` is True for the ``robust``
    points; ``verify`` gives all three verdicts and the counterexamples."""

    name, label = "exact", "complete verification (MILP or angle-space branch and bound)"
    tags = frozenset({"complete"})  # decides a point rather than bounding it (tests/test_exact.py)
    # helpers/attacks/base.py (the margin) stays out: it is every stage's shared code (tests/test_defences.py)
    uses = ("helpers.certificates.bounds", "helpers.certificates.network_bounds", "helpers.certificates.milp",
            "helpers.certificates.angle_search", "helpers.certificates.bisection", "helpers.attacks.pgd")

    @dataclass(frozen=True)
    class Params(Params):
        seconds: float | None = param(10.0, Optional(Number(0, open="low")),
                                      "time of the mixed-integer program per point and ε (ReLU networks; past it: "
                                      "unknown; null: no limit)")
        binaries: int | None = param(None, Optional(Integer(0)),
                                     "largest mixed-integer program it solves, in binary variables (ReLU networks; "
                                     "a larger one is not solved: the point is unknown unless its bounds or the "
                                     "attack decide it; a count of work, like boxes; null: any)")
        boxes: int = param(4000, Integer(1), "angle boxes per point and ε (circuits; past it: unknown): a count of "
                                             "work, not of time, so a circuit's verdicts do not depend on the "
                                             "machine or its load")
        steps: int = param(50, Integer(1), "PGD steps per restart of the counterexample search before the exact one")
        restarts: int = param(3, Integer(1), "PGD restarts of that search")
        epsilons: tuple[float, ...] = param([], ListOf(Number(0, 1, open="low"), unique=True),
                                            "budgets at which it runs in a study (empty: every budget of "
                                            "attack.epsilons)", quiet=True)
        points: int | None = param(None, Optional(Integer(1)), "test points per run it verifies in a study, drawn "
                                                              "by the run's seed, the same for every model (null: all)",
                                   quiet=True)
        radius_points: int = param(0, Integer(0), "points per run (the first of those verified) whose robust radius "
                                                  "is bisected (radii.csv; 0: none)", quiet=True)
        radius_high: float = param(0.3, Number(0, 1, open="low"), "largest radius the bisection tries", quiet=True)
        radius_tolerance: float = param(1 / 128, Number(0, open="low"), "the bisection stops this close", quiet=True)

    @classmethod
    def applies(cls, model):
        applies, reason = bounds_apply(model)
        if not applies:
            return applies, reason
        ops = model.bound_ops()
        circuits = [i for i, op in enumerate(ops) if isinstance(op, Circuit)]
        if len(circuits) > 1:
            return False, "more than one circuit"
        if circuits:
            if not all(isinstance(op, (*LINEAR, *SHAPE_ONLY)) for op in ops[:circuits[0]]):
                return False, "the circuit's angles are not an affine image of the input"
            return True, ""
        return encodable(ops)

    def runs_at(self, epsilon: float) -> bool:
        return not self.params.epsilons or any(abs(epsilon - e) < 1e-12 for e in self.params.epsilons)

    def chosen(self, n: int) -> np.ndarray:
        """The indices of the points verified out of ``n``, in the order the seed draws them
        (``points`` of them; all when ``points`` is null): the same for every model of a run, and
        the first ``radius_points`` of them get their radius bisected."""
        order = np.random.default_rng(self.seed).permutation(n)
        return order if self.params.points is None else order[:self.params.points]

    def certify(self, model, x, y, epsilon):
        """True where proved robust; the points left out by ``points`` are ``skipped`` in
        ``verdicts`` (neither proved nor refuted)."""
        chosen = self.chosen(len(x))
        found = self.verify(model, x[chosen], y[chosen], epsilon)
        verdict = np.full(len(x), "skipped", dtype=object)
        verdict[chosen] = found["verdict"]
        self.verdicts = {"verdict": verdict.astype(str)}
        return self.verdicts["verdict"] == "robust"

    def verify(self, model, x: torch.Tensor, y: torch.Tensor, epsilon) -> dict[str, np.ndarray]:
        """At budget ``epsilon`` (a float, or one per point (B,)): ``verdict`` (B,) one of
        ``VERDICTS``, ``counterexample`` (B, ...) float64 (NaN where none), ``seconds`` (B,) each
        point's time (its own exact search plus its share of the batched bounds and attack),
        ``stage`` (B,) what decided: clean, bounds, attack, search."""
        applies, reason = self.applies(model)
        if not applies:
            raise ValueError(f"certificate exact does not apply: {reason}")
        start = time.monotonic()
        model64 = copy.deepcopy(model).double().eval()
        x, y = x.detach().cpu(), y.detach().cpu()
        n = len(x)
        budgets = np.broadcast_to(np.asarray(epsilon, dtype=float), (n,)).copy()
        verdict = np.full(n, "unknown", dtype=object)
        stage = np.full(n, "search", dtype=object)
        counterexample = np.full((n, *x.shape[1:]), np.nan)
        seconds = np.zeros(n)
        wrong = margins64(model64, x, y) <= 0
        verdict[wrong], stage[wrong], counterexample[wrong] = "not_robust", "clean", x[wrong].double().numpy()
        trivial = (budgets == 0) & ~wrong
        verdict[trivial], stage[trivial] = "robust", "clean"
        open_ = np.flatnonzero(verdict == "unknown")
        ops = model.bound_ops()
        with torch.no_grad():
            n_classes = int(model64(x[:1].double()).shape[1])
            if len(open_):
                bound = self._bounds(ops, x[open_], y[open_], per_point(budgets[open_], x), n_classes)
                proved = (bound > MARGIN).numpy()
                verdict[open_[proved]], stage[open_[proved]] = "robust", "bounds"
        open_ = np.flatnonzero(verdict == "unknown")
        if len(open_):
            x_adv, broken = self.counterexamples(model, model64, x[open_], y[open_], budgets[open_])
            verdict[open_[broken]], stage[open_[broken]] = "not_robust", "attack"
            counterexample[open_[broken]] = x_adv[broken].double().numpy()
        seconds += (time.monotonic() - start) / max(n, 1)
        matrices = {}  # a network's affine ops as dense matrices, built for its first point searched
        for i in np.flatnonzero(verdict == "unknown"):
            begun = time.monotonic()
            verdict[i], found = self._search(ops, model64, x[i:i + 1], y[i:i + 1], float(budgets[i]), n_classes,
                                             matrices)
            seconds[i] += time.monotonic() - begun
            if found is not None:
                counterexample[i] = found.reshape(x.shape[1:])
        return {"verdict": verdict.astype(str), "counterexample": counterexample, "seconds": seconds,
                "stage": stage.astype(str)}

    def counterexamples(self, model, model64, x: torch.Tensor, y: torch.Tensor,
                        budgets: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """PGD from ``restarts`` random starts of ``steps`` steps (a quarter of ε each) at each
        point's own budget (``budgets`` (B,)) on the margin, not the cross-entropy, which
        saturates on confidently classified points (its gradient rounds to zero) and then misses
        counterexamples that the search finds. Returns its inputs and which of them (B,) lie in
        ball and box and are misclassified by the float64 model ``model64``."""
        x_adv = pgd(model, x, y, per_point(budgets, x), steps=self.params.steps, step_ratio=0.25, random_start=True,
                    seed=self.seed, restarts=self.params.restarts, loss=lambda logits, labels: -margin(logits, labels))
        return x_adv, in_ball(x_adv, x, budgets) & (margins64(model64, x_adv, y) <= 0)

    @staticmethod
    def _bounds(ops, x, y, epsilon, n_classes: int) -> torch.Tensor:
        """The best of the interval and CROWN margin bounds (B,) (``epsilon`` a float or (B, 1, ...))."""
        low, high = input_box(x, epsilon)
        interval = margin_lower_bound(*interval_trace(ops, low, high)[-1], y)
        return torch.maximum(interval, crown_margin_lower_bound(ops, low, high, y, n_classes))

    def _search(self, ops, model64, x, y, epsilon, n_classes: int, matrices: dict) -> tuple[str, np.ndarray | None]:
        """The exact search for one point: (verdict, counterexample or None); ``matrices`` as
        ``network_bounds.layer_bounds`` keeps them between the points of one model."""
        low, high = (t[0].double().numpy().ravel() for t in input_box(x, epsilon))
        circuits = [i for i, op in enumerate(ops) if isinstance(op, Circuit)]
        label = int(y[0])
        if not circuits:
            logits = model64(x.double())[0]
            order = [j for j in torch.argsort(logits, descending=True).tolist() if j != label]
            bounds = layer_bounds(ops, x, epsilon, matrices)  # the big-M of the program and its CROWN margins
            margins = crown_margins(ops, x, label, epsilon, order, bounds, matrices)
            order = [j for j, bound in zip(order, margins) if bound <= MARGIN]
            def is_counterexample(flat):
                candidate = torch.as_tensor(np.clip(flat, low, high)).reshape(x.shape)
                return bool(margins64(model64, candidate, y)[0] <= 0)

            found = decide_margins(ops, x, label, epsilon, order, self.params.seconds, is_counterexample, bounds,
                                   self.params.binaries, matrices)
            for j, proved, witness in found:
                if witness is not None:
                    return "not_robust", np.clip(witness, low, high)
                if not proved:
                    return "unknown", None
            return ("robust", None) if len(found) == len(order) else ("unknown", None)
        return self._circuit_search(ops, circuits[0], model64, x, y, epsilon, low, high, n_classes)

    def _circuit_search(self, ops, k, model64, x, y, epsilon, low, high, n_classes) -> tuple[str, np.ndarray | None]:
        """Branch and bound over the angles a = A x + c of the circuit ``ops[k]``."""
        shapes = op_inputs(ops, x)
        weight, offset = np.eye(low.size), np.zeros(low.size)
        for op, shape in zip(ops[:k], shapes):
            if not isinstance(op, SHAPE_ONLY):
                w, b = affine64(op, shape)
                weight, offset = w @ weight, w @ offset + b
        a_low = offset + np.clip(weight, 0, None) @ low + np.clip(weight, None, 0) @ high
        a_high = offset + np.clip(weight, 0, None) @ high + np.clip(weight, None, 0) @ low
        circuit, after = ops[k], ops[k + 1:]
        others = torch.tensor([j for j in range(n_classes) if j != int(y[0])])

        def margins_at(angles):  # (N, n) float64 -> (N, classes - 1): logit_y − logit_j
            out = angles
            for op in ops[k:]:
                out = out if isinstance(op, SHAPE_ONLY) else op(out)
            out = out.double()
            return out[:, int(y[0]), None] - out[:, others]

        if fourier_applies(circuit, after, weight.shape[0]):
            with torch.no_grad():
                coefficients = fourier_coefficients(margins_at, weight.shape[0])
            bound, flat = partial(vertex_bound, coefficients), partial(flat_bound, coefficients)
            evaluate = partial(fourier_margins, coefficients)  # the same margins, far cheaper to evaluate
        else:
            flat, evaluate = None, margins_at
            taylor = circuit.readout.name == "expval" and all(isinstance(op, AFFINE) for op in after)

            def bound(lo, hi):
                owner = y.repeat(len(lo))
                if taylor:
                    return circuit_margin_bound(circuit, after, lo, hi, owner, n_classes)
                for op in ops[k:]:
                    lo, hi = interval_step(op, lo, hi)
                return margin_lower_bound(lo.double(), hi.double(), owner)

        def gradient_at(angles):  # (B, n) -> (B, n): of each row's smallest margin
            a = torch.as_tensor(angles, dtype=torch.float64).requires_grad_(True)
            return torch.autograd.grad(evaluate(a).min(dim=1).values.sum(), a)[0].numpy()

        def margin_at(inputs):
            return margins64(model64, torch.as_tensor(inputs).reshape(len(inputs), *x.shape[1:]), y.repeat(len(inputs)))

        verdict, found, _ = search(bound, margin_at, gradient_at, (weight, offset), low, high, a_low, a_high,
                                   self.params.boxes, flat)
        return verdict, found


def per_point(budgets: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """One budget per input (B,) shaped (B, 1, ...) to broadcast against ``x``."""
    return torch.as_tensor(budgets, dtype=x.dtype).reshape(len(budgets), *([1] * (x.dim() - 1)))


def in_ball(x_adv: torch.Tensor, x: torch.Tensor, epsilon) -> np.ndarray:
    """Which inputs (B,) lie in the L∞ ball of radius ``epsilon`` (a float or one per input) around
    ``x`` and in [0, 1]."""
    flat = (x_adv - x).reshape(len(x), -1).abs().amax(dim=1)
    inside = (x_adv >= 0).reshape(len(x), -1).all(dim=1) & (x_adv <= 1).reshape(len(x), -1).all(dim=1)
    bound = torch.as_tensor(np.asarray(epsilon, dtype=float), dtype=flat.dtype) * (1 + 1e-6)
    return ((flat <= bound) & inside).numpy()


def robust_radii(verifier: Exact, model, x: torch.Tensor, y: torch.Tensor, high: float = 0.5,
                 tolerance: float = 1 / 256) -> dict[str, np.ndarray]:
    """Each point's robust radius bracketed by bisection on ε, per point (B,): ``certified``
    the largest ε at which ``verifier`` proved it robust, ``refuted`` the smallest at which it
    found a counterexample (inf if none up to ``high``): the true radius lies between, and
    ``decided`` where the two lie within ``tolerance`` (an ``unknown`` verdict makes the
    bisection search below it, so the certified radius stays a proof); ``attacked`` the
    smallest ε at which the verifier's PGD alone found one (the attack radius, an upper bound;
    inf if none up to ``high``); ``seconds`` each point's share of the time and
    ``verifications`` the verifier calls it took. Every point bisects at once: each step is one
    batched call at every open point's own ε. A misclassified point has every radius 0."""
    start = time.monotonic()
    x, y = x.detach().cpu(), y.detach().cpu()
    model64 = copy.deepcopy(model).double().eval()
    seconds, verifications = np.zeros(len(x)), np.zeros(len(x), dtype=int)

    def verdicts(index, budgets):
        found = verifier.verify(model, x[index], y[index], budgets)
        seconds[index] += found["seconds"]
        verifications[index] += 1
        return found["verdict"]

    def broken(index, budgets):
        fooled = verifier.counterexamples(model, model64, x[index], y[index], budgets)[1]
        return np.where(fooled, "not_robust", "robust")

    wrong = margins64(model64, x, y) <= 0
    certified, refuted = bisect(verdicts, *first_at(verdicts, ~wrong, [high]), tolerance)
    # PGD is not monotone in ε (a large step can overshoot what a small one finds), so the
    # attack first scans a grid of budgets and bisects below the smallest one it breaks.
    grid = high * np.arange(1, ATTACK_GRID + 1) / ATTACK_GRID
    attacked = bisect(broken, *first_at(broken, ~wrong, grid), tolerance)[1]
    attack_seconds = time.monotonic() - start - seconds.sum()
    return {"certified": certified, "refuted": refuted, "attacked": attacked,
            "decided": refuted - certified <= tolerance, "seconds": seconds + attack_seconds / max(len(x), 1),
            "verifications": verifications}
