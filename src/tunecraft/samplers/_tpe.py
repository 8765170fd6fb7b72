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
from tunecraft.trial import TrialState

__all__ = ["TPESampler"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_CAT_EPS = 0.2  # a categorical kernel's mass spread over the other options
_WIDTH_FLOOR = 0.15  # with categoricals, widths are at least this times k ** (-1 / (d + 4))


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
        bandwidth: float | None,
        eps: float,
    ) -> None:
        self.enc, self.obs = enc, obs
        k = len(obs)
        w = np.concatenate([weights, [prior_weight]])
        self.log_w = np.log(w / w.sum())
        self.w = w / w.sum()
        d_eff = max(1, enc.d)
        if bandwidth is not None:
            sigma = bandwidth * max(k, 1) ** (-1.0 / (d_eff + 4))
            self.sigma = np.full((max(k, 1), enc.d), sigma)
        else:
            # With categoricals, keep numeric kernels from getting so narrow that their
            # density ratio drowns the categorical one: a first-found option then wins every
            # comparison and the others are never tried again.
            floor = _WIDTH_FLOOR * max(k, 1) ** (-1.0 / (d_eff + 4)) if enc.is_cat.any() else 0.0
            self.sigma = np.maximum(_neighbour_bandwidths(obs), floor)
        # at least half a bin for ints, so a kernel reaches the neighbouring values
        for i, p in enc._ints:
            if not p.log:
                self.sigma[:, i] = np.maximum(self.sigma[:, i], 0.5 / p.n_values)
        self.eps = eps
        self._log_const: np.ndarray | None = None
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
        sig = self.sigma[idx]
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
        from scipy.special import ndtr

        if self._log_const is None:  # the truncated normals' constants, once per mixture
            mu = np.nan_to_num(self.obs, nan=0.5)
            sig = self.sigma[: len(self.obs)]
            mass = ndtr((1.0 - mu) / sig) - ndtr(-mu / sig)
            self._log_const = -_LOG_SQRT_2PI - np.log(sig) - np.log(np.maximum(mass, 1e-300))
        have = ~np.isnan(self.obs)[None, :, :]
        z = (x[:, None, :] - np.nan_to_num(self.obs, nan=0.5)[None]) / self.sigma[
            None, : len(self.obs)
        ]
        log_num = -0.5 * z * z + self._log_const[None]
        per = log_num
        is_cat = self.enc.is_cat
        if is_cat.any():
            xcode = np.minimum(np.floor(x * self.n_opt), self.n_opt - 1)[:, None, :]
            match = xcode == self.codes[None, :, :]
            log_cat = np.where(
                match,
                np.log(1 - self.eps + self.eps / self.n_opt),
                np.log(self.eps / self.n_opt),
            )
            per = np.where(is_cat[None, None, :], log_cat, per)
        if not have.all():  # an observation's inactive parameter: uniform in its kernel
            per = np.where(have, per, np.where(is_cat, -np.log(self.n_opt), 0.0))
        if not active.all():
            per = np.where(active[:, None, :], per, 0.0)
        comp = per.sum(-1) + self.log_w[None, :-1]  # (m, k)
        prior = np.where(active & is_cat, -np.log(self.n_opt), 0.0).sum(-1) + self.log_w[-1]
        allc = np.concatenate([comp, prior[:, None]], axis=1)
        top = allc.max(axis=1, keepdims=True)
        return np.asarray(top[:, 0] + np.log(np.exp(allc - top).sum(axis=1)))


def _neighbour_bandwidths(obs: np.ndarray) -> np.ndarray:
    """``(k, d)`` kernel widths: in each dimension, the larger gap from an observation to its
    sorted neighbours (the cube's ends count as neighbours), clipped to
    ``[1 / min(100, k + 2), 1]`` so that widths shrink as data accumulates but never collapse."""
    k, d = obs.shape
    out = np.full((max(k, 1), d), 1.0)
    if k == 0:
        return out
    lo = 1.0 / min(100.0, k + 2.0)
    for j in range(d):
        col = obs[:, j]
        have = np.flatnonzero(~np.isnan(col))
        if not len(have):
            continue
        order = have[np.argsort(col[have], kind="stable")]
        pts = np.concatenate([[0.0], col[order], [1.0]])
        gaps = np.diff(pts)
        width = np.maximum(gaps[:-1], gaps[1:])
        if len(order) >= 2:  # the outermost kernels look inwards, not at the cube's end
            width[0], width[-1] = gaps[1], gaps[-2]
        out[order, j] = width
    return np.clip(out, lo, 1.0)


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
    group, so parallel workers are steered away from work in flight (paused trials do not:
    a scheduler paused them knowing their intermediate values; they are only never proposed
    again). Each group becomes a
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
        bandwidth: ``None`` (default): each kernel's width in each dimension is the larger
            gap to its neighbouring observations, clipped to ``[1 / min(100, k + 2), 1]``
            for ``k`` observations, so widths follow the data's density and shrink as it
            accumulates (in spaces with categoricals, at least ``0.15 * k ** (-1 / (d + 4))``,
            so the categoricals stay explored). A number: one width for all,
            ``bandwidth * k ** (-1 / (d + 4))`` (Scott's rule in ``d`` dimensions).
        consider_pending: Count running (not paused) trials as bad.

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
        bandwidth: float | None = None,
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
        self.bandwidth = None if bandwidth is None else _positive(bandwidth, "bandwidth")
        self.consider_pending = bool(consider_pending)
        self._startup = SobolSampler(seed=self._entropy)
        self._encoders: dict[Space, Encoder] = {}

    def _encoder(self, space: Space) -> Encoder:
        enc = self._encoders.get(space)
        if enc is None:
            enc = Encoder(space)
            self._encoders = {space: enc}
        return enc

    def warm_up(self, space: Space, history: History) -> None:
        self._startup.warm_up(space, history)
        import scipy.special  # noqa: F401

    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        trials, values = finished_values(history)
        n = len(trials)
        if n < self.n_startup_trials:
            return self._startup.suggest(space, history, number)
        enc = self._encoder(space)
        u = enc.encode_trials(trials)
        order = np.argsort(values, kind="stable")
        # failed trials come last, valued as the worst: never in the good group
        n_complete = sum(t.state is TrialState.COMPLETE for t in trials)
        n_good = min(max(1, math.ceil(self.gamma * n)), 25, n_complete)
        good, bad = u[order[:n_good]], u[order[n_good:]]
        bad_w = np.ones(len(bad))
        pending = [t.config for t in history.pending if t.number != number and t.config]
        running = [t.config for t in history.running if t.number != number and t.config]
        if self.consider_pending and running:
            bad = np.vstack([bad, enc.encode_configs(running)])
            bad_w = np.concatenate([bad_w, np.ones(len(running))])
        lx = _Parzen(enc, good, np.ones(len(good)), self.prior_weight, self.bandwidth, _CAT_EPS)
        gx = _Parzen(enc, bad, bad_w, self.prior_weight, self.bandwidth, _CAT_EPS)
        rng = self.rng(number)
        cand = enc.snap(lx.sample(rng, self.n_candidates))
        active = enc.active(cand)
        score = lx.log_pdf(cand, active) - gx.log_pdf(cand, active)
        taken_f = enc.features(np.vstack([u, enc.encode_configs(pending)]) if pending else u)
        tc_round = np.round(taken_f.cont, 9)
        taken = {tc_round[i].tobytes() + taken_f.cat[i].tobytes() for i in range(len(tc_round))}
        cf = enc.features(cand, active)
        cc_round = np.round(cf.cont, 9)
        for i in np.argsort(-score, kind="stable"):
            if cc_round[i].tobytes() + cf.cat[i].tobytes() not in taken:
                return enc.decode(cand[i])
        return space.sample(rng)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_encoders"] = {}
        return state
