"""Acquisition functions for minimization: log expected improvement, a confidence bound and
log probability of improvement, each with its gradient in the numeric features.

Log EI is computed as ``log(sigma) + log(h(z))`` with ``h(z) = phi(z) + z Phi(z)`` and
``z = (best - mu) / sigma``. ``h`` underflows to 0 in double precision near ``z = -38``; its log
does not: for ``z < -1`` we write ``h(z) = phi(z) * (1 - |z| sqrt(pi/2) erfcx(|z| / sqrt(2)))``,
and beyond ``|z| > 1e4`` use the asymptotic series ``h(z) ~ phi(z) / z^2 (1 - 3 / z^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers._gp.fit import GPModel

__all__ = ["ACQUISITIONS", "Acquisition", "check_acquisition", "log_ei", "log_h"]

ACQUISITIONS = ("log_ei", "ucb", "pi")
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_SQRT_HALF_PI = math.sqrt(math.pi / 2)


def log_h(z: np.ndarray) -> np.ndarray:
    """``log(phi(z) + z * Phi(z))``, accurate for every finite ``z``."""
    from scipy.special import erfcx, log_ndtr

    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    hi = z > -1.0
    if hi.any():
        zh = z[hi]
        # phi(z) + z Phi(z), both terms in log space to stay accurate for large positive z
        phi = np.exp(-0.5 * zh * zh - _LOG_SQRT_2PI)
        out[hi] = np.log(phi + zh * np.exp(log_ndtr(zh)))
    mid = (~hi) & (z > -1e4)
    if mid.any():
        a = -z[mid]
        t = a * _SQRT_HALF_PI * erfcx(a / math.sqrt(2.0))
        out[mid] = -0.5 * a * a - _LOG_SQRT_2PI + np.log1p(-t)
    far = z <= -1e4
    if far.any():
        a = -z[far]
        out[far] = -0.5 * a * a - _LOG_SQRT_2PI - 2.0 * np.log(a) + np.log1p(-3.0 / (a * a))
    return out


def log_ei(mu: np.ndarray, sigma: np.ndarray, best: float) -> np.ndarray:
    """Log expected improvement below ``best`` of a normal ``N(mu, sigma^2)``."""
    sigma = np.asarray(sigma, dtype=float)
    return np.log(sigma) + log_h((best - np.asarray(mu, dtype=float)) / sigma)


def check_acquisition(kind: str, kwargs: Mapping[str, Any] | None) -> tuple[float, float]:
    """Validate an acquisition name and its options; return ``(beta, xi)``.

    GPSampler calls it at construction so a bad option fails there, not at the first
    model-based suggestion.
    """
    if kind not in ACQUISITIONS:
        raise InvalidParameterError(
            f"The 'acquisition' parameter of GPSampler must be one of {ACQUISITIONS}, "
            f"got {kind!r}."
        )
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(
            f"The 'acquisition_kwargs' parameter of GPSampler must be a dict, got {kwargs!r}."
        )
    options = dict(kwargs or {})
    allowed = {"ucb": {"beta"}, "log_ei": {"xi"}, "pi": {"xi"}}[kind]
    unknown = set(options) - allowed
    if unknown:
        raise InvalidParameterError(
            f"The 'acquisition_kwargs' parameter of GPSampler takes {sorted(allowed)} for "
            f"{kind!r}, got {sorted(unknown)}."
        )
    values = {"beta": options.get("beta", 2.0), "xi": options.get("xi", 0.0)}
    for key, value in values.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise InvalidParameterError(
                f"acquisition_kwargs[{key!r}] of GPSampler must be a finite number >= 0, "
                f"got {value!r}."
            )
    return float(values["beta"]), float(values["xi"])


class Acquisition:
    """An acquisition function of a fitted :class:`GPModel` (higher is better).

    Args:
        model: The posterior (with fantasies for running trials).
        best: The incumbent in the model's (warped) units.
        kind: ``"log_ei"`` (default of the sampler), ``"ucb"`` or ``"pi"``.
        kwargs: ``{"beta": 2.0}`` for ``"ucb"`` (``-mu + sqrt(beta) * sigma``);
            ``{"xi": 0.0}`` for ``"log_ei"``/``"pi"``: the improvement asked for, in standard
            deviations of the warped outputs.
    """

    def __init__(
        self,
        model: GPModel,
        best: float,
        kind: str = "log_ei",
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.beta, self.xi = check_acquisition(kind, kwargs)
        self.model, self.best, self.kind = model, float(best), kind

    def __call__(self, cont: np.ndarray, cat: np.ndarray) -> np.ndarray:
        """Values at ``m`` points, vectorized."""
        mu, var = self.model.predict(cont, cat)
        sigma = np.sqrt(var)
        if self.kind == "ucb":
            return -mu + math.sqrt(self.beta) * sigma
        if self.kind == "pi":
            from scipy.special import log_ndtr

            return np.asarray(log_ndtr((self.best - self.xi - mu) / sigma))
        return log_ei(mu, sigma, self.best - self.xi)

    def value_and_grad(self, cont: np.ndarray, cat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values ``(m,)`` and gradients ``(m, n_cont)`` in the numeric features."""
        from scipy.special import log_ndtr

        mu, var, dmu, dvar = self.model.predict_with_grad(cont, cat)
        sigma = np.sqrt(var)
        dsigma = dvar / (2.0 * sigma[:, None])
        if self.kind == "ucb":
            rb = math.sqrt(self.beta)
            return -mu + rb * sigma, -dmu + rb * dsigma
        z = (self.best - self.xi - mu) / sigma
        dz = -(dmu + z[:, None] * dsigma) / sigma[:, None]
        if self.kind == "pi":
            lp = log_ndtr(z)
            dlp = np.exp(-0.5 * z * z - _LOG_SQRT_2PI - lp)
            return lp, dlp[:, None] * dz
        lh = log_h(z)
        dlh = np.exp(log_ndtr(z) - lh)  # h'(z) = Phi(z)
        value = np.log(sigma) + lh
        grad = dsigma / sigma[:, None] + dlh[:, None] * dz
        return value, grad
