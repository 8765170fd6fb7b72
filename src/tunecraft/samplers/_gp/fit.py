"""Fitting the GP: output warping, MAP kernel hyperparameters and the posterior.

The marginal likelihood is maximized together with log-normal priors on every hyperparameter
(maximum a posteriori), with analytic gradients and L-BFGS-B from a few starts. The length-scale
prior is ``log l ~ N(0, 1)`` on the unit cube: centred on a length scale of the whole range and
tight enough that a parameter with a small effect is not declared irrelevant after a few
trials (a wide prior let the fit stretch such a length scale to the bound, and the search then
never moved that parameter again: a local optimum on Hartmann-3 and Hartmann-6). The noise
prior, ``log noise ~ N(log 1e-3, 1.5)`` in standardized units, lets a truly noisy objective
fit its noise within a few dozen trials, but keeps a deterministic objective with plateaus and
jumps (a decision tree's depth and leaf sizes) from being explained as noise: with a wider
prior the fit called half the variance noise and the search kept resampling one plateau.
"""

from __future__ import annotations

import math

import numpy as np

from tunecraft.samplers._gp.kernel import Hyper, cross_kernel, matern52_dr2

__all__ = ["GPModel", "fit_gp", "neg_log_posterior", "warp_outputs"]

_JITTER = 1e-8
_LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(0.5))
_LOG_SIGNAL_BOUNDS = (math.log(0.05), math.log(20.0))
_LOG_LS_BOUNDS = (math.log(5e-3), math.log(50.0))
_LOG_W_BOUNDS = (math.log(1e-3), math.log(20.0))


def _yeojohnson_lambda(z: np.ndarray) -> float:
    """The Yeo-Johnson exponent in ``[-2, 2]`` that maximizes the normal log-likelihood of
    ``z``, by a vectorized grid search refined once (a few hundred microseconds, where a
    scalar optimizer took milliseconds; the likelihood is smooth, so a 0.005 grid suffices)."""
    a = np.log1p(np.abs(z))
    pos = z >= 0
    total = float((np.sign(z) * a).sum())

    def llf(lams: np.ndarray) -> np.ndarray:
        lam = lams[:, None]
        lp = np.where(np.abs(lam) < 1e-8, 1.0, lam)
        ln = np.where(np.abs(2.0 - lam) < 1e-8, 1.0, 2.0 - lam)
        with np.errstate(over="ignore", invalid="ignore"):
            up = np.where(np.abs(lam) < 1e-8, a, np.expm1(lam * a) / lp)
            down = np.where(np.abs(2.0 - lam) < 1e-8, -a, -np.expm1((2.0 - lam) * a) / ln)
            psi = np.where(pos, up, down)
            var = psi.var(axis=1)
        out = -0.5 * len(z) * np.log(np.maximum(var, 1e-300)) + (lams - 1.0) * total
        return np.where(np.isfinite(out), out, -np.inf)

    coarse = np.linspace(-2.0, 2.0, 41)
    lam0 = float(coarse[int(np.argmax(llf(coarse)))])
    fine = np.clip(lam0 + np.linspace(-0.1, 0.1, 41), -2.0, 2.0)
    return float(fine[int(np.argmax(llf(fine)))])


def _yeojohnson(z: np.ndarray, lam: float) -> np.ndarray:
    a = np.log1p(np.abs(z))
    up = a if abs(lam) < 1e-8 else np.expm1(lam * a) / lam
    down = -a if abs(2.0 - lam) < 1e-8 else -np.expm1((2.0 - lam) * a) / (2.0 - lam)
    return np.asarray(np.where(z >= 0, up, down), dtype=float)


def warp_outputs(y: np.ndarray) -> np.ndarray:
    """Standardize values to minimize, with a Yeo-Johnson power transform in between that
    shrinks heavy tails (large losses) so that they do not dominate the fit.

    The map is increasing, so the order of the values (and so the incumbent) is kept. Values
    are first scaled by a power of two (exact) into ``[-1, 1]``, so that huge values (a
    diverged loss of ``1e200``, whose square overflows) or tiny ones (whose variance
    underflows) are standardized like any others instead of becoming nan.
    """
    y = np.asarray(y, dtype=float)
    if len(y) < 2 or not y.max() > y.min():
        return np.zeros_like(y)
    _, exponent = np.frexp(np.abs(y).max())
    y = np.ldexp(y, -int(exponent))
    z = (y - y.mean()) / y.std()
    if len(y) >= 5:
        with np.errstate(all="ignore"):
            w = _yeojohnson(z, _yeojohnson_lambda(z))
        if np.all(np.isfinite(w)) and np.ptp(w) > 0:
            z = w
    return (z - z.mean()) / z.std()


def _prior(n_cont: int, n_cat: int) -> tuple[np.ndarray, np.ndarray]:
    """Means and standard deviations of the log-normal priors, in ``theta`` order."""
    mu_ls = 0.0
    mean = np.concatenate(
        [np.full(n_cont, mu_ls), np.full(n_cat, math.log(0.5)), [0.0, math.log(1e-3)]]
    )
    std = np.concatenate([np.full(n_cont, 1.0), np.full(n_cat, 1.5), [1.0, 1.5]])
    return mean, std


def _bounds(n_cont: int, n_cat: int) -> list[tuple[float, float]]:
    return (
        [_LOG_LS_BOUNDS] * n_cont
        + [_LOG_W_BOUNDS] * n_cat
        + [_LOG_SIGNAL_BOUNDS, _LOG_NOISE_BOUNDS]
    )


def _onehots(cat: np.ndarray) -> list[np.ndarray]:
    """One-hot matrices of each categorical feature (codes shifted so ``-1`` is a value)."""
    out = []
    for c in range(cat.shape[1]):
        codes = cat[:, c] + 1
        onehot = np.zeros((cat.shape[0], int(codes.max()) + 1))
        onehot[np.arange(cat.shape[0]), codes] = 1.0
        out.append(onehot)
    return out


def neg_log_posterior(
    theta: np.ndarray,
    cont: np.ndarray,
    cat: np.ndarray,
    y: np.ndarray,
    onehots: list[np.ndarray] | None = None,
) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood plus negative log prior, and its gradient in ``theta``.

    Args:
        theta: ``[log l, log w, log s2, log noise]``.
        cont: ``(n, n_cont)`` numeric features.
        cat: ``(n, n_cat)`` categorical codes.
        y: ``(n,)`` warped outputs.
        onehots: Cached :func:`_onehots` of ``cat``.
    """
    from scipy.linalg import cho_solve, cholesky
    from scipy.linalg.lapack import dpotri

    n, n_cont = cont.shape
    n_cat = cat.shape[1]
    hyper = Hyper.from_theta(theta, n_cont, n_cat)
    kf, r2, c = cross_kernel(cont, cat, cont, cat, hyper)
    k = kf + (hyper.noise + _JITTER) * np.eye(n)
    mean, std = _prior(n_cont, n_cat)
    zp = (theta - mean) / std
    prior_val = 0.5 * float(zp @ zp)
    prior_grad = zp / std
    try:
        chol = cholesky(k, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return 1e10, prior_grad
    alpha = cho_solve((chol, True), y, check_finite=False)
    nll = (
        0.5 * float(y @ alpha) + float(np.log(np.diag(chol)).sum()) + 0.5 * n * math.log(2 * np.pi)
    )
    kinv, info = dpotri(chol, lower=1)  # K^-1 from the factor: half the work of a solve
    if info != 0:
        return 1e10, prior_grad
    kinv = np.tril(kinv) + np.tril(kinv, -1).T
    w = kinv - np.outer(alpha, alpha)  # d nll / d theta = 0.5 tr(W dK/dtheta)
    grad = np.empty_like(theta)
    if n_cont:
        a = w * (hyper.signal * c * matern52_dr2(r2))
        rows = a.sum(1)
        ax = a @ cont
        quad = (cont * cont).T @ rows - (cont * ax).sum(0)  # 0.5 * sum_ij A_ij (x_i - x_j)^2
        # d r2 / d log l_d = -2 (x_i - x_j)^2 / l_d^2
        grad[:n_cont] = 0.5 * (-2.0 / hyper.lengthscales**2) * 2.0 * quad
    if n_cat:
        wk = w * kf
        total = float(wk.sum())
        for j, onehot in enumerate(onehots if onehots is not None else _onehots(cat)):
            same = float(np.einsum("iv,ij,jv->", onehot, wk, onehot))
            grad[n_cont + j] = -0.5 * hyper.weights[j] * (total - same)
    grad[n_cont + n_cat] = 0.5 * float((w * kf).sum())
    grad[n_cont + n_cat + 1] = 0.5 * hyper.noise * float(np.trace(w))
    return nll + prior_val, grad + prior_grad


def fit_gp(
    cont: np.ndarray,
    cat: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    n_restarts: int | None = None,
    max_iter: int = 200,
    noise: float | None = None,
) -> np.ndarray:
    """MAP hyperparameters ``theta`` by L-BFGS-B from the prior mode and ``n_restarts - 1``
    draws from the prior.

    Args:
        n_restarts: Starts of the optimizer (default 2 below 50 points, where the posterior
            can be multimodal, else 1).
        noise: Fix the noise variance (standardized units) instead of fitting it.
    """
    from scipy.optimize import minimize

    n_cont, n_cat = cont.shape[1], cat.shape[1]
    mean, std = _prior(n_cont, n_cat)
    bounds = _bounds(n_cont, n_cat)
    if noise is not None:
        log_noise = math.log(max(noise, 1e-12))
        bounds[-1] = (log_noise, log_noise)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    onehots = _onehots(cat)
    if n_restarts is None:
        n_restarts = 2 if len(y) < 50 else 1
    starts = [np.clip(mean, lo, hi)]
    for _ in range(max(0, n_restarts - 1)):
        starts.append(np.clip(mean + 0.5 * std * rng.standard_normal(len(mean)), lo, hi))
    best_theta, best_val = starts[0], math.inf
    for x0 in starts:
        res = minimize(
            neg_log_posterior,
            x0,
            args=(cont, cat, y, onehots),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iter, "ftol": 1e-7},
        )
        if np.isfinite(res.fun) and res.fun < best_val:
            best_theta, best_val = np.asarray(res.x, dtype=float), float(res.fun)
    # BLAS results can differ in the last bits between processes (memory alignment picks
    # the SIMD path), and the optimizer carries that to ~1e-10 in theta; rounded to 1e-6 (in
    # log units, far below what matters to the model), the same data give the same theta
    # in any process, and so the same suggestion.
    return np.round(best_theta, 6)


class GPModel:
    """The posterior of a GP with fixed hyperparameters; the Cholesky factor is computed once
    and extended (not recomputed) when fantasy points are added.

    Args:
        cont: ``(n, n_cont)`` numeric features of the observations.
        cat: ``(n, n_cat)`` categorical codes.
        y: ``(n,)`` warped outputs.
        theta: Hyperparameters from :func:`fit_gp`.
    """

    def __init__(self, cont: np.ndarray, cat: np.ndarray, y: np.ndarray, theta: np.ndarray):
        from scipy.linalg import cho_solve, cholesky

        self.cont, self.cat, self.y = cont, cat, np.asarray(y, dtype=float)
        self.theta = theta
        self.hyper = Hyper.from_theta(theta, cont.shape[1], cat.shape[1])
        k, _, _ = cross_kernel(cont, cat, cont, cat, self.hyper)
        k[np.diag_indices_from(k)] += self.hyper.noise + _JITTER
        self.chol = cholesky(k, lower=True, check_finite=False)
        self.alpha = cho_solve((self.chol, True), self.y, check_finite=False)

    @property
    def n(self) -> int:
        """Number of points conditioned on (observations and fantasies)."""
        return len(self.y)

    def with_fantasies(self, cont: np.ndarray, cat: np.ndarray) -> GPModel:
        """The model after observing its own posterior mean at new points (kriging believer):
        the mean is unchanged, the variance shrinks around the points, so a batch spreads out.
        The Cholesky factor is extended blockwise."""
        from scipy.linalg import cho_solve, cholesky, solve_triangular

        if len(cont) == 0:
            return self
        mu, _ = self.predict(cont, cat)
        kxp, _, _ = cross_kernel(self.cont, self.cat, cont, cat, self.hyper)
        kpp, _, _ = cross_kernel(cont, cat, cont, cat, self.hyper)
        kpp[np.diag_indices_from(kpp)] += self.hyper.noise + _JITTER
        b = solve_triangular(self.chol, kxp, lower=True, check_finite=False)
        s = kpp - b.T @ b
        s[np.diag_indices_from(s)] += 1e-10
        l22 = cholesky(s, lower=True, check_finite=False)
        new = object.__new__(GPModel)
        new.cont = np.vstack([self.cont, cont])
        new.cat = np.vstack([self.cat, cat])
        new.y = np.concatenate([self.y, mu])
        new.theta, new.hyper = self.theta, self.hyper
        n, p = self.n, len(cont)
        chol = np.zeros((n + p, n + p))
        chol[:n, :n] = self.chol
        chol[n:, :n] = b.T
        chol[n:, n:] = l22
        new.chol = chol
        new.alpha = cho_solve((chol, True), new.y, check_finite=False)
        return new

    def predict(self, cont: np.ndarray, cat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function (no noise) at ``m`` points."""
        from scipy.linalg import solve_triangular

        ks, _, _ = cross_kernel(cont, cat, self.cont, self.cat, self.hyper)
        mu = ks @ self.alpha
        v = solve_triangular(self.chol, ks.T, lower=True, check_finite=False)
        var = self.hyper.signal - (v * v).sum(0)
        return mu, np.maximum(var, 1e-12 * self.hyper.signal)

    def predict_with_grad(
        self, cont: np.ndarray, cat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, variance and their gradients ``(m, n_cont)`` in the numeric features."""
        from scipy.linalg import cho_solve

        ks, r2, c = cross_kernel(cont, cat, self.cont, self.cat, self.hyper)
        mu = ks @ self.alpha
        beta = cho_solve((self.chol, True), ks.T, check_finite=False)  # (n, m)
        var = self.hyper.signal - (ks * beta.T).sum(1)
        floor = 1e-12 * self.hyper.signal
        # d k(x, x_i) / d x_d = s2 * C * M'(r2) * 2 (x_d - x_id) / l_d^2
        g = self.hyper.signal * c * matern52_dr2(r2)  # (m, n)
        inv_l2 = 2.0 / self.hyper.lengthscales**2
        ga = g * self.alpha[None, :]
        dmu = (ga.sum(1)[:, None] * cont - ga @ self.cont) * inv_l2
        gb = g * beta.T
        dvar = -2.0 * (gb.sum(1)[:, None] * cont - gb @ self.cont) * inv_l2
        dvar = np.where((var > floor)[:, None], dvar, 0.0)
        return mu, np.maximum(var, floor), dmu, dvar

    def incumbent(self) -> float:
        """The best (lowest) posterior mean at the observed points: the incumbent judged by the
        model, which for noisy objectives is less optimistic than the best raw value."""
        # (K + s I) alpha = y, so the mean at the data is y - s alpha: no kernel to evaluate
        mu = self.y - (self.hyper.noise + _JITTER) * self.alpha
        return float(mu.min())
