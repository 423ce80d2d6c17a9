"""Branch and bound in a circuit's angle space.

A circuit's logits depend on the input only through its encoding angles a = A x + c, an
affine image of the input (the PCA and its scaling, or a trainable affine encoding). The
ε-ball ∩ [0, 1] maps to a polytope of angles; its interval hull is the first box. A box is
closed when the margin's lower bound over it (the interval certificate's: a Taylor bound for
a <Z> readout, else the circuit's Lipschitz interval) is positive, or when it does not meet
the polytope (a linear program over x finds no input of the ball whose angles lie in the
box). Otherwise the same program, steered along the margin's gradient, gives an input of the
ball in the box: if the model misclassifies it, that input is a counterexample; if not, the
box is split in two along its side that the margin moves most on. The search is complete in
the limit (every box shrinks to a point, where the bound is the margin itself); a budget of
boxes and seconds ends it with ``unknown``.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from scipy.optimize import linprog

from .bounds import MARGIN

# Boxes bounded together (one batched call of the bound).
BATCH = 64
# The most angles whose margin is expanded in full (3**n coefficients per class).
MAX_FOURIER_ANGLES = 10
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
    one angle contracted at a time."""
    corners = arc_vertices(low.double(), high.double())                 # (B, n, 3 corners, 3 basis)
    values = coefficients[None]                                         # (1, classes, 3, ..., 3)
    values = values.expand(len(low), *values.shape[1:])
    for q in range(low.shape[1]):  # angle q's basis axis becomes its corner axis
        moved = values.movedim(2 + q, -1)
        values = torch.einsum("b...j,bkj->b...k", moved, corners[:, q]).movedim(-1, 2 + q)
    return values.reshape(len(low), -1).min(dim=1).values


def box_inputs(angle_map: tuple[np.ndarray, np.ndarray], x_low: np.ndarray, x_high: np.ndarray,
               low: np.ndarray, high: np.ndarray, direction: np.ndarray) -> np.ndarray | None:
    """An input x in [x_low, x_high] whose angles A x + c lie in [low, high], the one that
    lowers ``direction`` · x most (a linear program); None when there is none."""
    weight, offset = angle_map
    result = linprog(direction, A_ub=np.vstack([weight, -weight]),
                     b_ub=np.concatenate([high - offset, offset - low]),
                     bounds=np.stack([x_low, x_high], axis=1), method="highs")
    return result.x if result.status == 0 else None


def search(bound, margin_at, gradient_at, angle_map, x_low: np.ndarray, x_high: np.ndarray, low: np.ndarray,
           high: np.ndarray, boxes: int, seconds: float):
    """Branch and bound for one point. ``bound(lo, hi)`` gives margin lower bounds (B,) over
    angle boxes (B, n); ``margin_at(x)`` the model's smallest margin at inputs x (B, D)
    (float64, the model itself); ``gradient_at(a)`` that margin's gradient with respect to the
    angles a (n,). Returns (verdict, counterexample (D,) or None, boxes used)."""
    deadline = time.monotonic() + seconds
    weight = angle_map[0]
    queue, used = [(low, high)], 0
    while queue:
        if used >= boxes or time.monotonic() > deadline:
            return "unknown", None, used
        batch, queue = queue[:BATCH], queue[BATCH:]
        used += len(batch)
        lo = torch.as_tensor(np.stack([b[0] for b in batch]))
        hi = torch.as_tensor(np.stack([b[1] for b in batch]))
        for (box_lo, box_hi), value in zip(batch, bound(lo, hi).double().numpy()):
            if value > MARGIN:
                continue
            gradient = gradient_at((box_lo + box_hi) / 2)
            x = box_inputs(angle_map, x_low, x_high, box_lo, box_hi, weight.T @ gradient)
            if x is None:
                continue  # no input of the ball has angles in this box
            if margin_at(x[None])[0] <= 0:
                return "not_robust", x, used
            moves = (box_hi - box_lo) * np.abs(gradient)
            side = int(np.argmax(moves if moves.max() > 0 else box_hi - box_lo))
            middle = (box_lo[side] + box_hi[side]) / 2
            left_hi, right_lo = box_hi.copy(), box_lo.copy()
            left_hi[side], right_lo[side] = middle, middle
            queue += [(box_lo, left_hi), (right_lo, box_hi)]
    return "robust", None, used
