"""The true boundary of a generated data set, used as a classifier: its exact robust accuracy
on the study's own points under the study's threat model.

A generated data set knows the process that drew it, and so the classifier its generator
implies (the Bayes rule where it has a closed form). Its robust accuracy is a reference a
model can be held against beside the data's ceiling (``analysis.ceiling``): the ceiling is
what any classifier could reach on these points, the true boundary what the "right answer"
reaches. Each entry of ``TRUE_BOUNDARIES`` (by data set name) returns, for points ``x`` in
[0, 1] with labels ``y`` relabelled as the config's classes, whether each point is classified
correctly at every input of its ε-ball inside [0, 1], exactly, or None where that cannot be
computed exactly (an L2 ball against a curved boundary):

- ``plus_minus``: the nearest of the two noise-free templates (the Bayes rule for Gaussian
  pixel noise before clipping), a linear rule: its worst case over an L∞ ball ∩ box moves each
  pixel to the end of its interval, over an L2 ball ∩ box it is ``clip(x - τ w)`` with τ found
  by bisection (the minimiser of a linear function over that set);
- ``circles``: the circle between the two rings where the two classes' radial densities meet
  (a Gaussian ring's radius follows a Rice distribution), in the unit-square coordinates the
  data set uses (an axis-aligned ellipse there); over an L∞ ball ∩ box the squared radius is
  a separable convex function, so its maximum lies at a corner and its minimum at the clamped
  centre (L∞ only).

``moons`` has no entry: the Bayes boundary of two noisy half-circles has no closed form.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import i0e
from sklearn.datasets import make_circles

from ..data import plus_minus


def _box(x: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """The L∞ ball of radius ε around each row of ``x`` (n, D), intersected with [0, 1]."""
    return np.clip(x - epsilon, 0.0, 1.0), np.clip(x + epsilon, 0.0, 1.0)


def _linear_extreme(w: np.ndarray, x: np.ndarray, epsilon: float, norm: str, sign: float) -> np.ndarray:
    """min (sign -1) or max (sign +1) of w·x' over the ε-ball ∩ [0, 1] around each row of x."""
    direction = sign * w
    if norm == "linf":
        low, high = _box(x, epsilon)
        return (np.where(direction > 0, high, low) * w).sum(axis=1)
    if norm != "l2":
        raise ValueError(f"norm {norm!r}: the linear rule's worst case is written for linf and l2")
    values = np.empty(len(x))
    for i, point in enumerate(x):  # the step along ±w, clipped to the box, until its length is ε
        moved = lambda tau, p=point: np.clip(p + tau * direction, 0.0, 1.0)  # noqa: E731
        far = np.linalg.norm(moved(1e6) - point)
        if far <= epsilon:
            values[i] = w @ moved(1e6)
            continue
        low, high = 0.0, 1e6
        for _ in range(200):
            mid = 0.5 * (low + high)
            low, high = (mid, high) if np.linalg.norm(moved(mid) - point) < epsilon else (low, mid)
        values[i] = w @ moved(high)
    return values


def plus_minus_robust(options, classes, x: np.ndarray, y: np.ndarray, epsilon: float, norm: str) -> np.ndarray:
    """The nearest noise-free template as a classifier: robust and correct per point (n,)."""
    templates, labels = plus_minus(n_per_class=1, size=options.size, noise=0.0)
    plus, minus = (templates[labels == k].reshape(-1).astype(np.float64) for k in (0, 1))
    w, threshold = plus - minus, (plus @ plus - minus @ minus) / 2   # w·x > threshold: plus (label 0)
    flat = x.reshape(len(x), -1).astype(np.float64)
    is_plus = np.asarray(classes)[y] == 0
    lowest = _linear_extreme(w, flat, epsilon, norm, -1.0)
    highest = _linear_extreme(w, flat, epsilon, norm, +1.0)
    return np.where(is_plus, lowest > threshold, highest <= threshold)


def bayes_radius(factor: float, noise: float) -> float | None:
    """The radius at which the outer ring's (radius 1) and inner ring's (``factor``) radial
    densities under isotropic Gaussian noise ``noise`` are equal (equal priors); None when
    they do not cross between the rings (noise so large that one class wins everywhere there)."""
    if noise == 0:
        return (1 + factor) / 2
    s2 = noise ** 2

    def log_ratio(r):  # log p(r | outer) - log p(r | inner), Rice densities without the shared factor
        return (factor ** 2 - 1) / (2 * s2) + np.log(i0e(r / s2)) + r / s2 - np.log(i0e(r * factor / s2)) - r * factor / s2

    if np.sign(log_ratio(factor)) == np.sign(log_ratio(1.0)):
        return None
    return float(brentq(log_ratio, factor, 1.0))


def circles_robust(options, classes, x: np.ndarray, y: np.ndarray, epsilon: float, norm: str) -> np.ndarray | None:
    """The Bayes circle as a classifier (inside: the inner ring, label 1), L∞ only."""
    radius = bayes_radius(options.factor, options.noise)
    if norm != "linf" or radius is None:
        return None
    generated, _ = make_circles(n_samples=options.n_samples, noise=options.noise, factor=options.factor,
                                random_state=options.seed)
    low, span = generated.min(axis=0), np.ptp(generated, axis=0)   # the data set's unit-square map
    radius2 = radius ** 2
    box_low, box_high = _box(x.reshape(len(x), -1).astype(np.float64), epsilon)
    a, b = box_low * span + low, box_high * span + low               # the box in the generator's coordinates
    largest = np.maximum(a ** 2, b ** 2).sum(axis=1)
    smallest = (np.clip(0.0, a, b) ** 2).sum(axis=1)
    inner = np.asarray(classes)[y] == 1
    return np.where(inner, largest < radius2, smallest >= radius2)


TRUE_BOUNDARIES = {"plus_minus": plus_minus_robust, "circles": circles_robust}


def true_boundary_accuracy(section, x: np.ndarray, y: np.ndarray, epsilon: float, norm: str) -> float | None:
    """The exact robust accuracy of the data set's true boundary (``section``: the config's
    ``dataset``) on the points ``x``, ``y`` at ``epsilon`` in ``norm``; None where the data set
    has no true boundary here or it is not computable in that norm."""
    rule = TRUE_BOUNDARIES.get(section.name)
    robust = None if rule is None else rule(section.options, section.classes, np.asarray(x), np.asarray(y), epsilon, norm)
    return None if robust is None else float(np.mean(robust))
