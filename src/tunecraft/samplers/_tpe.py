"""Multivariate tree-structured Parzen estimator (TPE) in numpy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tunecraft._validation import check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers._base import History, Sampler
from tunecraft.samplers._encoding import Encoder
from tunecraft.samplers._gp.sampler import finished_values
from tunecraft.samplers._sobol import SobolSampler
from tunecraft.space import Space

__all__ = ["TPESampler"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class _Parzen:
    """A mixture over the unit cube: one product kernel per observation plus a uniform prior.

    Numeric coordinates get a Gaussian truncated to ``[0, 1]``; categoricals keep the observed
    option with probability ``1 - eps`` and take a uniform one otherwise. A parameter the
    observation leaves inactive is uniform in its kernel, so conditional parameters are
    modelled jointly with their parents: a component for "booster=gbtree" proposes and scores
    the tree parameters from the trials where they were active.
    """

    def __init__(
        self,
        enc: Encoder,
        obs: np.ndarray,
        weights: np.ndarray,
        prior_weight: float,
        bandwidth: float,
        eps: float,
    ) -> None:
        self.enc, self.obs = enc, obs
        k = len(obs)
        w = np.concatenate([weights, [prior_weight]])
        self.log_w = np.log(w / w.sum())
        self.w = w / w.sum()
        d_eff = max(1, enc.d)
        sigma = bandwidth * max(k, 1) ** (-1.0 / (d_eff + 4))
        self.sigma = np.full(enc.d, sigma)
        # at least half a bin for ints, so a kernel reaches the neighbouring values
        for i, p in enc._ints:
            if not p.log:
                self.sigma[i] = max(sigma, 0.5 / p.n_values)
        self.eps = eps
        self.n_opt = np.where(enc.is_cat, enc.n_options, 1)
        self.codes = np.where(
            enc.is_cat & ~np.isnan(obs),
            np.floor(np.nan_to_num(obs, nan=0.0) * self.n_opt),
            -1,
        )
        self.codes = np.minimum(self.codes, self.n_opt - 1)

    def sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """``(m, d)`` points (no nan)."""
        from scipy.special import ndtr, ndtri

        k, d = len(self.obs), self.enc.d
        comp = rng.choice(k + 1, size=m, p=self.w)
        out = rng.random((m, d))  # the uniform prior, and the fallback for inactive coords
        is_obs = comp < k
        if not is_obs.any():
            return out
        idx = comp[is_obs]
        mu = self.obs[idx]  # (m', d) with nan
        have = ~np.isnan(mu)
        sig = self.sigma[None, :]
        mu0 = np.nan_to_num(mu, nan=0.5)
        lo, hi = ndtr((0.0 - mu0) / sig), ndtr((1.0 - mu0) / sig)
        r = rng.random(mu.shape)
        num = np.clip(mu0 + sig * ndtri(np.clip(lo + r * (hi - lo), 1e-12, 1 - 1e-12)), 0, 1)
        keep = rng.random(mu.shape) >= self.eps
        cat = (np.nan_to_num(self.codes[idx], nan=0.0) + 0.5) / self.n_opt[None, :]
        new = np.where(self.enc.is_cat[None, :], np.where(keep, cat, out[is_obs]), num)
        out[is_obs] = np.where(have, new, out[is_obs])
        return out

    def log_pdf(self, x: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Log density of snapped points ``x`` over their active coordinates."""
        from scipy.special import logsumexp, ndtr

        obs = self.obs[None, :, :]  # (1, k, d)
        have = ~np.isnan(obs)
        mu = np.nan_to_num(obs, nan=0.5)
        sig = self.sigma[None, None, :]
        xx = x[:, None, :]
        z = (xx - mu) / sig
        norm = np.log(np.maximum(ndtr((1.0 - mu) / sig) - ndtr(-mu / sig), 1e-300))
        log_num = -0.5 * z * z - _LOG_SQRT_2PI - np.log(sig) - norm
        xcode = np.minimum(np.floor(x * self.n_opt), self.n_opt - 1)[:, None, :]
        match = xcode == self.codes[None, :, :]
        log_unif_cat = -np.log(self.n_opt)[None, None, :]
        log_cat = np.where(
            match, np.log(1 - self.eps + self.eps / self.n_opt), np.log(self.eps / self.n_opt)
        )
        per = np.where(self.enc.is_cat[None, None, :], log_cat, log_num)
        per = np.where(have, per, np.where(self.enc.is_cat, log_unif_cat, 0.0))
        per = np.where(active[:, None, :], per, 0.0)
        comp = per.sum(-1)  # (m, k)
        prior = np.where(active & self.enc.is_cat, -np.log(self.n_opt), 0.0).sum(-1)
        allc = np.concatenate([comp, prior[:, None]], axis=1)
        return np.asarray(logsumexp(allc + self.log_w[None, :], axis=1))


def _required(value: int | None) -> int:
    assert value is not None
    return value


def _positive(value: Any, name: str) -> float:
    checked = check_float(value, name, "TPESampler", low=0.0, low_inclusive=False)
    assert checked is not None
    return float(checked)


class TPESampler(Sampler):
    """Multivariate tree-structured Parzen estimator.

    After ``n_startup_trials`` Sobol trials, the finished trials are split into the best
    ``min(ceil(gamma * n), 25)`` ("good") and the rest ("bad"); running trials join the bad
    group, so parallel workers are steered away from work in flight. Each group becomes a
    Parzen mixture over the whole unit cube (one product kernel a trial, so dependencies between
    parameters are kept); ``n_candidates`` points are drawn from the good mixture and the one
    with the highest ratio good / bad density is proposed. Log parameters live on a log scale,
    ints are rounded to their values, categoricals use a keep-or-resample kernel, and
    conditional parameters are modelled with their parents (not sampled independently).

    Args:
        seed: Seeds the sampler.
        n_startup_trials: Sobol trials before the model takes over.
        n_candidates: Candidates drawn from the good mixture per suggestion.
        gamma: Share of finished trials that count as good.
        prior_weight: Weight of the uniform component in each mixture (1 = one trial).
        bandwidth: Kernel width scale in the unit cube (shrinks as ``n ** (-1 / (d + 4))``).
        consider_pending: Count running trials as bad.

    Example:
        >>> import tunecraft as tc
        >>> study = tc.Study({"x": tc.uniform(-2, 2)}, sampler=tc.make_sampler("tpe", seed=0))
        >>> study.optimize(lambda t: (t.config["x"] - 1) ** 2, n_trials=30)
        >>> abs(study.best_config["x"] - 1) < 0.3
        True
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int = 10,
        n_candidates: int = 24,
        gamma: float = 0.15,
        prior_weight: float = 1.0,
        bandwidth: float = 0.3,
        consider_pending: bool = True,
    ) -> None:
        super().__init__(seed=seed)
        name = "TPESampler"
        self.n_startup_trials = _required(
            check_int(n_startup_trials, "n_startup_trials", name, low=1)
        )
        self.n_candidates = _required(check_int(n_candidates, "n_candidates", name, low=1))
        self.gamma = _positive(gamma, "gamma")
        if self.gamma > 1:
            raise InvalidParameterError(
                f"The 'gamma' parameter of TPESampler must be in (0, 1], got {gamma!r}."
            )
        self.prior_weight = _positive(prior_weight, "prior_weight")
        self.bandwidth = _positive(bandwidth, "bandwidth")
        self.consider_pending = bool(consider_pending)
        self._startup = SobolSampler(seed=self._entropy)
        self._encoders: dict[Space, Encoder] = {}

    def _encoder(self, space: Space) -> Encoder:
        enc = self._encoders.get(space)
        if enc is None:
            enc = Encoder(space)
            self._encoders = {space: enc}
        return enc

    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        trials, values = finished_values(history)
        n = len(trials)
        if n < self.n_startup_trials:
            return self._startup.suggest(space, history, number)
        enc = self._encoder(space)
        u = enc.encode_trials(trials)
        order = np.argsort(values, kind="stable")
        n_good = min(max(1, math.ceil(self.gamma * n)), 25)
        good, bad = u[order[:n_good]], u[order[n_good:]]
        bad_w = np.ones(len(bad))
        pending = [t.config for t in history.pending if t.number != number and t.config]
        if self.consider_pending and pending:
            bad = np.vstack([bad, enc.encode_configs(pending)])
            bad_w = np.concatenate([bad_w, np.ones(len(pending))])
        eps = 0.2
        lx = _Parzen(enc, good, np.ones(len(good)), self.prior_weight, self.bandwidth, eps)
        gx = _Parzen(enc, bad, bad_w, self.prior_weight, self.bandwidth, eps)
        rng = self.rng(number)
        cand = enc.snap(lx.sample(rng, self.n_candidates))
        active = enc.active(cand)
        score = lx.log_pdf(cand, active) - gx.log_pdf(cand, active)
        taken_f = enc.features(np.vstack([u, enc.encode_configs(pending)]) if pending else u)
        taken = {
            np.round(taken_f.cont[i], 9).tobytes() + taken_f.cat[i].tobytes()
            for i in range(len(taken_f.cont))
        }
        cf = enc.features(cand, active)
        for i in np.argsort(-score, kind="stable"):
            key = np.round(cf.cont[i], 9).tobytes() + cf.cat[i].tobytes()
            if key not in taken:
                return enc.decode(cand[i])
        return space.sample(rng)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_encoders"] = {}
        return state
