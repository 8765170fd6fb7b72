"""The Gaussian-process Bayesian-optimization sampler."""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from tunecraft._validation import check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.samplers._base import History, Sampler
from tunecraft.samplers._encoding import Encoder
from tunecraft.samplers._gp.acquisition import Acquisition, check_acquisition
from tunecraft.samplers._gp.fit import GPModel, fit_gp, warp_outputs
from tunecraft.samplers._gp.optimize import _key, maximize_acquisition
from tunecraft.samplers._sobol import SobolSampler
from tunecraft.space import Space
from tunecraft.trial import FrozenTrial, TrialState

__all__ = ["GPSampler", "finished_values", "refit_point"]

_OPTIMIZER_KEYS = {"n_candidates", "n_local", "n_refine", "local_rounds"}
_FIT_KEYS = {"n_restarts", "max_iter", "noise", "refit_growth"}
# the least value of each int option
_OPTION_LOW = {
    "n_candidates": 1,
    "n_local": 0,
    "n_refine": 0,
    "local_rounds": 0,
    "n_restarts": 1,
    "max_iter": 1,
}
_MAX_PRUNED_FANTASIES = 256  # the most recent pruned trials fantasized per suggestion
_REFIT_FROM = 30  # below this many trials the hyperparameters are refitted every time


_BLAS: list[Any] = []


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Run BLAS single-threaded: the GP's matrices (a few hundred rows) are far too small to
    gain from threads, and on a busy machine threaded BLAS made a suggestion 20x slower."""
    if not _BLAS:
        # The controller sees only the BLAS libraries loaded when it is built: load scipy's
        # own OpenBLAS (scipy.linalg, which the GP's solves use) first, or it stays threaded.
        import scipy.linalg  # noqa: F401

        try:
            from threadpoolctl import ThreadpoolController

            _BLAS.append(ThreadpoolController())
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            _BLAS.append(None)
    if _BLAS[0] is None:  # pragma: no cover
        return contextlib.nullcontext()
    return _BLAS[0].limit(limits=1, user_api="blas")


def finished_values(history: History) -> tuple[list[FrozenTrial], np.ndarray]:
    """Complete trials with a finite value, and their values oriented to minimize.

    Trials whose objective failed on their config (raised, or returned NaN) follow, valued
    as the worst complete value: a point that fails is a point not to propose again, nor its
    neighbourhood (left out, the unchanged model proposed the failing point again and again).
    Trials failed by a lost worker (``"stale: ..."``) or by the sampler say nothing of their
    config and are left out.
    """
    trials = [t for t in history.complete if t.value is not None and math.isfinite(float(t.value))]
    values = np.array([history.sign() * float(t.value or 0.0) for t in trials], dtype=float)
    failed = [t for t in history.with_state(TrialState.FAILED) if t.config and _config_failed(t)]
    if failed and len(values):
        trials = [*trials, *failed]
        values = np.concatenate([values, np.full(len(failed), values.max())])
    return trials, values


def _config_failed(trial: FrozenTrial) -> bool:
    """Whether the trial failed because of what its config did (not a crash or the sampler)."""
    error = trial.error or ""
    return not error.startswith(("stale:", "sampler:"))


def _check_options(
    options: Mapping[str, Any] | None, allowed: set[str], name: str
) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"The '{name}' parameter of GPSampler must be a dict, got {options!r}.")
    unknown = set(options) - allowed
    if unknown:
        raise InvalidParameterError(
            f"The '{name}' parameter of GPSampler takes keys {sorted(allowed)}, "
            f"got {sorted(unknown)}."
        )
    # checked here, not at the first model-based suggestion n_startup_trials later
    for key, value in options.items():
        what = f"{name}[{key!r}]"
        if key in _OPTION_LOW:
            check_int(
                value, what, "GPSampler", low=_OPTION_LOW[key], allow_none=key == "n_restarts"
            )
        elif key == "noise":
            check_float(value, what, "GPSampler", low=0.0, allow_none=True)
    return dict(options)


def refit_point(n: int, growth: float) -> int:
    """The size of the history prefix whose fit supplies the kernel hyperparameters at ``n``
    finished trials: ``n`` itself below 30 trials or when ``growth`` is 0, else the largest
    point ``<= n`` of the schedule ``30, m + max(1, floor(growth * m)), ...``.

    The point depends on ``n`` only, so hyperparameters are a function of the history (the
    first ``m`` finished trials), never of what a process happened to compute before.

    Example:
        >>> [refit_point(n, 0.1) for n in (12, 30, 32, 33, 200)]
        [12, 30, 30, 33, 196]
    """
    if growth <= 0 or n < _REFIT_FROM:
        return n
    m = _REFIT_FROM
    while True:
        nxt = m + max(1, int(growth * m))
        if nxt > n:
            return m
        m = nxt


class GPSampler(Sampler):
    """Gaussian-process Bayesian optimization in numpy and scipy.

    The first ``n_startup_trials`` configs come from a scrambled Sobol sequence. Then each
    suggestion fits a GP to the finished trials and maximizes an acquisition:

    * inputs are the space's unit-cube coordinates (log parameters on a log scale, ints
      relaxed and rounded); categoricals enter an overlap kernel multiplied with a Matérn-5/2
      ARD kernel over the numeric parameters; an inactive conditional parameter is its own
      category (categoricals) or is imputed 0.5 with an "active" indicator (numerics);
    * values are standardized with a Yeo-Johnson power transform against heavy tails;
    * kernel hyperparameters and the noise are fitted by maximum a posteriori (log-normal
      priors, analytic gradients, L-BFGS-B from a few starts); from 30 trials on they are
      refitted each time the history has grown by 10% and reused in between (the posterior
      itself is recomputed for every suggestion), which makes a suggestion several times
      cheaper at no measurable cost in quality; the reused values are a function of the
      history alone, so a fresh process proposes the same point;
    * a trial whose objective failed on its config counts as observed at the worst value
      seen, so the model moves away from where the objective fails;
    * the incumbent is the best posterior mean at the observed points (robust to noise);
    * running, paused and the 256 most recent pruned trials are fantasized at the posterior
      mean (kriging believer), which leaves the mean alone and shrinks the variance around
      them, and the believed values count for the incumbent too, so ``study.ask(n)`` and
      parallel workers get distinct, spread-out points, and a point proposed before is not
      proposed again while the model has not changed (under multi-fidelity scheduling every
      trial below the model's budget is pruned in its view);
    * the acquisition is maximized over quasi-random and local candidates, refined with
      L-BFGS-B, then improved by local moves over categoricals and integers.

    Args:
        seed: Seeds the sampler; the same seed and history give the same suggestion.
        n_startup_trials: Sobol trials before the GP takes over (default
            ``clip(2 * d, 5, 10)`` for ``d`` parameters).
        acquisition: ``"log_ei"`` (log expected improvement, numerically stable),
            ``"ucb"`` (confidence bound) or ``"pi"`` (log probability of improvement).
        acquisition_kwargs: ``{"beta": 2.0}`` for UCB, ``{"xi": 0.0}`` for log-EI and PI.
        optimizer_kwargs: ``n_candidates`` (1024), ``n_local`` (256), ``n_refine`` (5),
            ``local_rounds`` (3).
        fit_kwargs: ``n_restarts`` (2 below 50 trials, else 1), ``max_iter`` (200) of the
            hyperparameter fit; ``noise`` to fix the noise variance (in standardized units)
            instead of fitting it; ``refit_growth`` (0.1): from 30 trials on, the
            hyperparameters are refitted only when the history has grown by this share since
            the last refit point (see :func:`refit_point`), and reused (the posterior is
            still recomputed on every trial) in between; 0 refits at every suggestion.

    Example:
        >>> import tunecraft as tc
        >>> study = tc.Study({"x": tc.uniform(-2, 2)}, sampler=tc.make_sampler("gp", seed=0))
        >>> study.optimize(lambda t: (t.config["x"] - 1) ** 2, n_trials=12)
        >>> abs(study.best_config["x"] - 1) < 0.2
        True
    """

    avoids_twins = True  # its acquisition optimum is the same for two workers with one history

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int | None = None,
        acquisition: str = "log_ei",
        acquisition_kwargs: Mapping[str, Any] | None = None,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        fit_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.n_startup_trials = check_int(
            n_startup_trials, "n_startup_trials", "GPSampler", low=1, allow_none=True
        )
        check_acquisition(acquisition, acquisition_kwargs)
        self.acquisition = acquisition
        self.acquisition_kwargs = dict(acquisition_kwargs or {})
        self.optimizer_kwargs = _check_options(
            optimizer_kwargs, _OPTIMIZER_KEYS, "optimizer_kwargs"
        )
        self.fit_kwargs = _check_options(fit_kwargs, _FIT_KEYS, "fit_kwargs")
        growth = self.fit_kwargs.get("refit_growth", 0.1)
        ok = isinstance(growth, (int, float)) and not isinstance(growth, bool)
        if not ok or not 0 <= growth <= 1:
            raise InvalidParameterError(
                "fit_kwargs['refit_growth'] of GPSampler must be a number in [0, 1], "
                f"got {growth!r}."
            )
        self._refit_growth = float(growth)
        self._gp_fit_kwargs = {k: v for k, v in self.fit_kwargs.items() if k != "refit_growth"}
        self._startup = SobolSampler(seed=self._entropy)
        self._encoders: dict[Space, Encoder] = {}
        # hyperparameters fitted to history prefixes, keyed by a digest of the prefix
        self._thetas: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def n_startup(self, space: Space) -> int:
        """Number of Sobol trials for ``space``."""
        if self.n_startup_trials is not None:
            return self.n_startup_trials
        return int(min(10, max(5, 2 * len(space))))

    def encoder(self, space: Space) -> Encoder:
        """The (cached) encoder of ``space``."""
        enc = self._encoders.get(space)
        if enc is None or enc.space != space:
            enc = Encoder(space)
            self._encoders = {space: enc}
            self._thetas = OrderedDict()
        return enc

    def _theta(self, cont: np.ndarray, cat: np.ndarray, values: np.ndarray) -> np.ndarray:
        """MAP hyperparameters of the first ``refit_point(n)`` observations: fitted once per
        prefix and cached; a fresh process refits the same prefix with the same generator, so
        the result does not depend on the cache."""
        m = refit_point(len(values), self._refit_growth)
        pc, pk, pv = cont[:m], cat[:m], values[:m]
        digest = hashlib.sha1(usedforsecurity=False)
        for a in (np.array([m, pc.shape[1], pk.shape[1]]), pc, pk, pv):
            digest.update(np.ascontiguousarray(a).tobytes())
        key = digest.digest()
        theta = self._thetas.get(key)
        if theta is None:
            theta = fit_gp(pc, pk, warp_outputs(pv), self.rng(m, 7), **self._gp_fit_kwargs)
            self._thetas[key] = theta
            while len(self._thetas) > 8:
                self._thetas.popitem(last=False)
        return theta

    def fit(self, space: Space, history: History, number: int) -> tuple[GPModel, Encoder]:
        """The GP of the finished trials (no fantasies), for inspection and tests."""
        trials, values = finished_values(history)
        enc = self.encoder(space)
        f = enc.features(enc.encode_trials(trials))
        theta = self._theta(f.cont, f.cat, values)
        return GPModel(f.cont, f.cat, warp_outputs(values), theta), enc

    def warm_up(self, space: Space, history: History) -> None:
        self._startup.warm_up(space, history)
        # What the model's suggestions import, once: scipy.linalg, scipy.optimize and the
        # candidates' Sobol points (scipy.stats).
        import scipy.linalg
        import scipy.optimize  # noqa: F401
        from scipy.stats import qmc  # noqa: F401

    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        trials, values = finished_values(history)
        if len(trials) < self.n_startup(space) or not values.max() > values.min():
            return self._startup.suggest(space, history, number)
        with _one_blas_thread():
            return self._suggest(space, history, number, trials, values)

    def _suggest(
        self,
        space: Space,
        history: History,
        number: int,
        trials: list[FrozenTrial],
        values: np.ndarray,
    ) -> dict[str, Any]:
        model, enc = self.fit(space, history, number)
        best = model.incumbent()
        # without a value to learn from, but proposed: running, paused, and pruned trials
        # (under multi-fidelity scheduling every trial paused or stopped below the model's
        # budget); left out, the unchanged model proposed the same point again and again
        pending = [t.config for t in history.pending if t.number != number and t.config]
        pruned = [t.config for t in history.with_state(TrialState.PRUNED) if t.config]
        proposed_u = enc.encode_configs(pending + pruned)
        taken_u = np.vstack([enc.encode_trials(trials), proposed_u])
        taken_f = enc.features(taken_u)
        taken = {_key(taken_f, i) for i in range(len(taken_u))}
        # only the most recent pruned trials: they are the ones proposed since the model last
        # changed, and each fantasy adds a row to every posterior solve (1000 of them made a
        # suggestion ~18x slower than none, ~4x slower than 256: docs/benchmarks.md); older
        # ones still count as taken
        n_old = max(len(pruned) - _MAX_PRUNED_FANTASIES, 0)
        fantasies_u = np.vstack([proposed_u[: len(pending)], proposed_u[len(pending) + n_old :]])
        if len(fantasies_u):
            pf = enc.features(fantasies_u)
            model = model.with_fantasies(pf.cont, pf.cat)
            # a believed value is an observation, for the incumbent too: else a point whose
            # mean beats every observed one keeps its expected improvement however often it
            # is proposed, and a trial stopped below the model's level is never observed, so
            # the same point came back hundreds of times
            best = min(best, model.incumbent())
        acq = Acquisition(model, best, self.acquisition, self.acquisition_kwargs)
        order = np.argsort(values, kind="stable")[:5]
        anchors = taken_u[order]
        rng = self.rng(number)
        u = maximize_acquisition(
            acq,
            enc,
            rng,
            anchors=anchors,
            taken=taken,
            sampler=lambda r: r.random(enc.d),
            **self.optimizer_kwargs,
        )
        return enc.decode(u)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_encoders"] = {}
        state["_thetas"] = OrderedDict()
        return state
