"""The GP kernel: Matérn-5/2 with one length scale per numeric dimension (ARD), multiplied by
an overlap (Hamming) kernel with one weight per categorical feature.

``k(x, x') = s2 * matern52(r) * exp(-sum_c w_c [x_c != x'_c])`` with
``r^2 = sum_d (x_d - x'_d)^2 / l_d^2``. Inactive conditional parameters enter as a category of
their own (categoricals) or as an imputed 0.5 plus an "active" indicator (numerics, see
:mod:`tunecraft.samplers._encoding`), so points on different branches of a condition are
correlated less than points on the same branch.

Hyperparameters travel as one vector ``theta`` of logs: ``[log l (n_cont), log w (n_cat),
log s2, log noise]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Hyper", "cross_kernel", "matern52", "matern52_dr2", "sq_dists"]

_SQRT5 = float(np.sqrt(5.0))


@dataclass(frozen=True)
class Hyper:
    """Kernel hyperparameters (natural scale)."""

    lengthscales: np.ndarray
    weights: np.ndarray
    signal: float
    noise: float

    @classmethod
    def from_theta(cls, theta: np.ndarray, n_cont: int, n_cat: int) -> Hyper:
        """Unpack the log vector used by the optimizer."""
        e = np.exp(theta)
        return cls(
            lengthscales=e[:n_cont],
            weights=e[n_cont : n_cont + n_cat],
            signal=float(e[n_cont + n_cat]),
            noise=float(e[n_cont + n_cat + 1]),
        )


def matern52(r2: np.ndarray) -> np.ndarray:
    """Matérn-5/2 correlation as a function of the squared scaled distance."""
    r = np.sqrt(np.maximum(r2, 0.0))
    r *= _SQRT5
    out = np.exp(-r)
    r += 1.0
    r += (5.0 / 3.0) * r2
    out *= r
    return out


def matern52_dr2(r2: np.ndarray) -> np.ndarray:
    """Derivative of :func:`matern52` with respect to ``r2`` (finite at 0)."""
    r = np.sqrt(np.maximum(r2, 0.0))
    return -(5.0 / 6.0) * (1.0 + _SQRT5 * r) * np.exp(-_SQRT5 * r)


def sq_dists(a: np.ndarray, b: np.ndarray, lengthscales: np.ndarray) -> np.ndarray:
    """``(m, n)`` squared distances between rows of ``a`` and ``b`` scaled by length scales."""
    if a.shape[1] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    sa, sb = a / lengthscales, b / lengthscales
    d2 = (sa * sa).sum(1)[:, None] + (sb * sb).sum(1)[None, :] - 2.0 * sa @ sb.T
    return np.maximum(d2, 0.0)


def overlap(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(m, n)`` factor ``exp(-sum_c w_c [a_c != b_c])`` of the categorical features."""
    if a.shape[1] == 0:
        return np.ones((a.shape[0], b.shape[0]))
    mismatch = (a[:, None, :] != b[None, :, :]).astype(float)
    return np.exp(-(mismatch @ weights))


def cross_kernel(
    cont_a: np.ndarray,
    cat_a: np.ndarray,
    cont_b: np.ndarray,
    cat_b: np.ndarray,
    hyper: Hyper,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel between two sets of points, without noise.

    Returns:
        ``(K, r2, C)``: the kernel matrix, the squared scaled distances and the categorical
        factor (the last two feed gradients).
    """
    r2 = sq_dists(cont_a, cont_b, hyper.lengthscales)
    c = overlap(cat_a, cat_b, hyper.weights)
    return hyper.signal * matern52(r2) * c, r2, c
