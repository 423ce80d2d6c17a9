"""Branch and bound in a circuit's angle space.

A circuit's logits depend on the input only through its encoding angles a = A x + c, an affine
image of the input (the PCA and its scaling, or a trainable affine encoding). The ε-ball
∩ [0, 1] maps to a polytope of angles; its interval hull is the first box. Each box is first shrunk
to the polytope: every side moved to the least or greatest value of its angle over the inputs
of the ball whose angles lie in the box (two linear programs per angle, one HiGHS model kept
warm across boxes); a box that meets no such input is closed. A box is also closed when the
margin's lower bound over it is positive (the corner bound of the margins' trigonometric
expansion; where that does not apply the interval certificate's: a Taylor bound for a <Z>
readout, else the circuit's Lipschitz interval). Otherwise the same program, steered along the
margin's gradient, gives an input of the ball in the box: if the model misclassifies it, that
input is a counterexample. Its optimum also closes the box when, added to the flat bound
(``flat_bound``: the margins less their first-order part, bounded at the corners), it is
positive: a bound over the part of the box the ball reaches. Otherwise the box is split in two
along its side that the margin moves most on. The search is complete in the limit (every box
shrinks to a point, where the bound is the margin itself); a budget of boxes ends it with
``unknown``: a count of work, so the verdict does not depend on the machine's speed or load.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize._highspy import _core

from .bounds import AFFINE, MARGIN

# Boxes bounded together (one batched call of the bound).
BATCH = 64
# The most angles whose margin is expanded in full (3**n coefficients per class).
MAX_FOURIER_ANGLES = 10
# Widening of a contracted side (radians) past the solver's optimum: its tolerances (1e-7 on
# each constraint) times the rows' norms stay far below it.
CONTRACT_SLACK = 1e-5
# Samples of each angle that determine a degree-1 trigonometric polynomial, and the inverse of
# the basis (1, cos a, sin a) at them.
NODES = (0.0, np.pi / 2, np.pi)
INVERSE = np.linalg.inv(np.array([[1.0, np.cos(a), np.sin(a)] for a in NODES]))


def fourier_coefficients(margins_at, n_angles: int) -> torch.Tensor:
    """The margins as trigonometric polynomials of degree 1 in every angle: coefficients
    (classes, 3, ..., 3) of the products of (1, cos a_q, sin a_q), from the margins at the
    3**n points of {0, pi/2, pi}**n. Exact when every angle enters the circuit through one Pauli
    rotation (RX, RY, RZ): the state's amplitudes are then products of cos(a/2) and sin(a/2),
    and a measured value is a quadratic form in them."""
    grid = torch.cartesian_prod(*[torch.tensor(NODES, dtype=torch.float64)] * n_angles).reshape(-1, n_angles)
    values = margins_at(grid).T.reshape(-1, *(3,) * n_angles)          # (classes, 3, ..., 3)
    inverse = torch.as_tensor(INVERSE)
    for axis in range(1, n_angles + 1):
        values = torch.movedim(torch.tensordot(values, inverse, dims=([axis], [1])), -1, axis)
    return values


def fourier_applies(circuit, after, n_angles: int) -> bool:
    """Whether the margins are degree-1 trigonometric polynomials of few enough angles for the
    full expansion (``fourier_coefficients``): every angle enters once, the logits
    are linear in the measured values and only affine ops follow the circuit."""
    return (circuit.repeats == 1 and circuit.readout.linear and n_angles <= MAX_FOURIER_ANGLES
            and all(isinstance(op, AFFINE) for op in after))


def fourier_margins(coefficients: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """The expanded margins (B, classes) at angles (B, n): the coefficients contracted with
    (1, cos a_q, sin a_q), one angle at a time (differentiable in the angles)."""
    basis = torch.stack([torch.ones_like(angles), torch.cos(angles), torch.sin(angles)], dim=-1)  # (B, n, 3)
    values = coefficients[None].expand(len(angles), *coefficients.shape)
    for q in range(angles.shape[1]):  # the leading angle axis is always the next one
        values = torch.einsum("bcj...,bj->bc...", values, basis[:, q])
    return values


def arc_vertices(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """(B, n, 3, 3): for every angle interval the (1, cos, sin) of the three corners of a
    triangle that contains its arc of the unit circle: the arc's ends and the meeting point of
    their tangents, or, for an arc wider than 2 pi / 3, a triangle around the whole circle."""
    width, middle = high - low, (high + low) / 2
    narrow = width <= 2 * np.pi / 3
    reach = torch.where(narrow, 1 / torch.cos(width.clamp(max=2 * np.pi / 3) / 2), torch.full_like(width, 2.0))
    angles = torch.where(narrow[..., None], torch.stack([low, high, middle], dim=-1),
                         middle[..., None] + torch.tensor([0.0, 2 * np.pi / 3, 4 * np.pi / 3], dtype=low.dtype))
    radius = torch.where(narrow[..., None], torch.stack([torch.ones_like(reach), torch.ones_like(reach), reach], -1),
                         torch.full_like(angles, 2.0))
    return torch.stack([torch.ones_like(angles), radius * torch.cos(angles), radius * torch.sin(angles)], dim=-1)


def vertex_bound(coefficients: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Lower bounds (B,) on the smallest margin over angle boxes (B, n): the margins are
    multilinear in the points (cos a_q, sin a_q), so over the product of triangles that contain
    the arcs their minimum lies at a product of corners; every corner combination is evaluated,
    one angle contracted at a time (the leading basis axis becomes a trailing corner axis).
    ``coefficients``: (classes, 3, ..., 3) for every box, or (B, classes, 3, ..., 3) one per box."""
    corners = arc_vertices(low.double(), high.double())                 # (B, n, 3 corners, 3 basis)
    n = low.shape[1]
    values = coefficients.reshape(-1, coefficients.shape[-n - 1], 3 ** n).expand(len(low), -1, -1)
    for q in range(n):  # angle q's basis axis leads; its corner axis goes last
        values = torch.einsum("bcjr,bkj->bcrk", values.reshape(len(low), values.shape[1], 3, -1), corners[:, q])
    return values.reshape(len(low), -1).min(dim=1).values


def flat_bound(coefficients: torch.Tensor, low: np.ndarray, high: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Per box (B, n) with centre c and the margin's gradient g there (B, n): a lower bound (B,)
    on every margin minus g · sin(a − c) over the box. sin(a_q − c_q) is linear in
    (cos a_q, sin a_q), so the difference is again a trigonometric polynomial of degree 1, one
    per box, bounded by ``vertex_bound``; it is flat at c, so that bound loses only second-order
    terms. Returned less the most g · (sin(a − c) − (a − c)) can take (|g_q| |a_q − c_q|³ / 6 per
    angle): adding the least g · (a − c) over the box's preimage (a linear program) bounds the
    margins where the box meets the image of the ball, not over the whole box."""
    n, classes = low.shape[1], len(coefficients)
    centre, half = (low + high) / 2, (high - low) / 2
    g, c = torch.as_tensor(gradients), torch.as_tensor(centre)
    shifted = coefficients.reshape(1, classes, 3 ** n).repeat(len(low), 1, 1)
    for q in range(n):  # − g_q sin(a_q − c_q) = g_q sin c_q · cos a_q − g_q cos c_q · sin a_q
        stride = 3 ** (n - 1 - q)  # the index of cos a_q alone (2 * stride: sin a_q alone)
        shifted[:, :, stride] += (g[:, q] * torch.sin(c[:, q]))[:, None]
        shifted[:, :, 2 * stride] -= (g[:, q] * torch.cos(c[:, q]))[:, None]
    bound = vertex_bound(shifted.reshape(len(low), *coefficients.shape), torch.as_tensor(low), torch.as_tensor(high))
    return bound.numpy() - (np.abs(gradients) * half ** 3 / 6).sum(axis=1)


class AnglePolytope:
    """The inputs x in [x_low, x_high] (D,) whose angles A x + c lie in a box: one linear program
    over (x, a) with rows A x − a = −c, kept by HiGHS across boxes (each box changes only the
    bounds of a and the objective, so every solve starts from the last basis)."""

    def __init__(self, angle_map: tuple[np.ndarray, np.ndarray], x_low: np.ndarray, x_high: np.ndarray):
        weight, offset = angle_map
        (m, d), self.d = weight.shape, len(x_low)
        # scipy's own binding of HiGHS (what linprog and milp call): one model, solved many times
        self.highs = _core._Highs()
        self.highs.setOptionValue("output_flag", False)
        unbounded = np.full(m, _core.kHighsInf)
        self.highs.addVars(d + m, np.r_[x_low, -unbounded], np.r_[x_high, unbounded])
        rows = np.hstack([weight, -np.eye(m)])
        self.highs.addRows(m, -offset, -offset, rows.size, np.arange(0, rows.size, d + m, dtype=np.int32),
                           np.tile(np.arange(d + m, dtype=np.int32), m), rows.ravel())
        self.angles, self.columns = np.arange(d, d + m, dtype=np.int32), np.arange(d + m, dtype=np.int32)

    def point(self, low: np.ndarray, high: np.ndarray, direction: np.ndarray) -> np.ndarray | None:
        """The input of the box's preimage that lowers ``direction`` · x most; None when the
        box's preimage is empty (HiGHS proves the program infeasible). Any other outcome (a
        numerical failure) also gives None but is no proof: ``empty`` tells the two apart."""
        self.highs.changeColsBounds(len(low), self.angles, low, high)
        self.highs.changeColsCost(len(self.columns), self.columns, np.r_[direction, np.zeros(len(low))])
        self.highs.run()
        self.status = self.highs.getModelStatus()
        if self.status == _core.HighsModelStatus.kOptimal:
            return np.asarray(self.highs.getSolution().col_value)[:self.d]
        return None

    def contract(self, low: np.ndarray, high: np.ndarray, known: np.ndarray | None = None):
        """The box shrunk to its intersection with the image of the input box: each angle's
        least and greatest value over the preimage (two programs per angle, widened by
        ``CONTRACT_SLACK``). ``known`` (2n, n): the angles at which a larger box containing this
        one (its parent) reached each side's extreme (rows 2q and 2q + 1: least and greatest
        angle q; NaN where none): one that lies in this box still does, so its program is
        skipped. Returns (low, high, the extremes of this box), or None when the preimage is
        proved empty. A program that fails otherwise leaves its side as it was."""
        m, d = len(low), self.d
        low, high = low.copy(), high.copy()
        extremes = np.full((2 * m, m), np.nan)
        if known is not None:
            inside = ((known >= low - 1e-12) & (known <= high + 1e-12)).all(axis=1)  # NaN rows: not inside
            extremes[inside] = known[inside]
        self.highs.changeColsBounds(m, self.angles, low, high)
        self.highs.changeColsCost(len(self.columns), self.columns, np.zeros(len(self.columns)))
        for row in np.flatnonzero(np.isnan(extremes[:, 0])):
            q, sign = row // 2, 1.0 if row % 2 == 0 else -1.0
            self.highs.changeColCost(d + q, sign)
            self.highs.run()
            status = self.highs.getModelStatus()
            self.highs.changeColCost(d + q, 0.0)
            if status == _core.HighsModelStatus.kInfeasible:
                return None
            if status == _core.HighsModelStatus.kOptimal:
                extremes[row] = np.asarray(self.highs.getSolution().col_value)[d:]
                if sign > 0:
                    low[q] = max(low[q], extremes[row, q] - CONTRACT_SLACK)
                else:
                    high[q] = min(high[q], extremes[row, q] + CONTRACT_SLACK)
        return low, np.maximum(high, low), extremes

    def empty(self) -> bool:
        """Whether the last box's preimage was proved empty."""
        return self.status == _core.HighsModelStatus.kInfeasible


def search(bound, margin_at, gradient_at, angle_map, x_low: np.ndarray, x_high: np.ndarray, low: np.ndarray,
           high: np.ndarray, boxes: int, flat=None):
    """Branch and bound for one point. ``bound(lo, hi)`` gives margin lower bounds (B,) over
    angle boxes (B, n); ``margin_at(x)`` the model's smallest margins at inputs x (B, D)
    (float64, the model itself); ``gradient_at(a)`` that margin's gradients with respect to the
    angles a (B, n); ``flat(lo, hi, g)`` (optional) ``flat_bound`` for gradients g at the
    boxes' centres. Boxes go ``BATCH`` at a time: each shrunk to the image of the input box
    (``AnglePolytope.contract``, told where its parent's sides were reached; an empty one is
    closed), bounded, then each open one's preimage asked for its input lowering the margin
    along the gradient, all those inputs checked by one call of the model; with ``flat``, that
    input's descent added to the flat bound closes the box where the sum is positive.
    Returns (verdict, counterexample (D,) or None, boxes used)."""
    weight, offset = angle_map
    polytope = AnglePolytope(angle_map, x_low, x_high)
    queue, used = [(low, high, None)], 0
    while queue:
        if used >= boxes:
            return "unknown", None, used
        batch, queue = queue[:BATCH], queue[BATCH:]
        used += len(batch)
        batch = [box for box in (polytope.contract(*box) for box in batch) if box is not None]
        if not batch:
            continue
        lo, hi, extremes = (np.stack([b[k] for b in batch]) for k in range(3))
        open_ = np.flatnonzero(bound(torch.as_tensor(lo), torch.as_tensor(hi)).double().numpy() <= MARGIN)
        if not len(open_):
            continue
        centres = (lo[open_] + hi[open_]) / 2
        gradients = gradient_at(centres)
        kept, inputs, descent = [], [], []
        for i, gradient, centre in zip(open_, gradients, centres):
            x = polytope.point(lo[i], hi[i], weight.T @ gradient)
            if x is None and polytope.empty():
                continue  # no input of the ball has angles in this box
            kept.append((i, gradient))
            descent.append(-np.inf if x is None else gradient @ (weight @ x + offset - centre))
            if x is not None:  # inside the ball to the solver's tolerance: clipped onto it
                inputs.append(np.clip(x, x_low, x_high))
        if inputs:
            margins = margin_at(np.stack(inputs))
            broken = np.flatnonzero(margins <= 0)
            if len(broken):
                return "not_robust", inputs[broken[0]], used
        if flat is not None and kept:  # the margins where each box meets the image, to first order
            rows = np.array([i for i, _ in kept])
            closed = flat(lo[rows], hi[rows], np.stack([g for _, g in kept])) + np.array(descent) > MARGIN
            kept = [k for k, done in zip(kept, closed) if not done]
        for i, gradient in kept:  # split along the side the margin moves most on
            moves = (hi[i] - lo[i]) * np.abs(gradient)
            side = int(np.argmax(moves if moves.max() > 0 else hi[i] - lo[i]))
            middle = (lo[i, side] + hi[i, side]) / 2
            left_hi, right_lo = hi[i].copy(), lo[i].copy()
            left_hi[side], right_lo[side] = middle, middle
            queue += [(lo[i], left_hi, extremes[i]), (right_lo, hi[i], extremes[i])]
    return "robust", None, used
