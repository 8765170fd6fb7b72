"""Objectives for scikit-learn estimators: k-fold CV with folds as fidelity, and iterations.

Both read the trial protocol of :class:`tunecraft.Trial` and of the budgeted pipeline
(``tunecraft.strategy``): ``trial.config``, ``trial.report``/``trial.should_stop``, and where
present ``trial.budget`` (how much to train), ``trial.seed``, ``trial.phase`` and
``trial.split`` (``"validation"`` while searching, ``"holdout"`` in the final validation).
"""

# ruff: noqa: N803, N806  (X, X_train...: the scikit-learn naming of data matrices)

from __future__ import annotations

import inspect
import logging
import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv, train_test_split
from sklearn.utils import _safe_indexing

from tunecraft._validation import check_int
from tunecraft.exceptions import InvalidParameterError, TrialPruned

__all__ = [
    "CVObjective",
    "EvalRecord",
    "IterativeObjective",
    "cv_objective",
    "iterative_objective",
]

_log = logging.getLogger("tunecraft.integrations.sklearn")
_DIRECTIONS = ("maximize", "minimize")

#: The user attribute where an evaluation keeps its scores (greater is better: one per fold
#: for cross-validation, the holdout score for the holdout split) and its seconds:
#: ``{"scores": [...], "fit_time": s, "score_time": s}``.
SCORES_ATTR = "sklearn.scores"


@dataclass
class EvalRecord:
    """One call of an objective, as the objective saw it (for ``cv_results_``).

    Attributes:
        number: The trial's number (``-1`` when the trial has none).
        config: The hyperparameters evaluated.
        phase: ``trial.phase`` (``None`` outside the budgeted pipeline).
        split: ``"validation"`` (cross-validation / validation set) or ``"holdout"``.
        seed: ``trial.seed`` (``None`` when the trial has none).
        scores: Scores in evaluation order, greater is better: one per fold for CV, one per
            reported step for iterations, the holdout score for the holdout split.
        steps: The step each score was reported at.
        stopped: Whether the scheduler stopped (or paused) the evaluation early.
        fit_time: Seconds spent fitting.
        score_time: Seconds spent scoring.
    """

    number: int
    config: dict[str, Any]
    phase: str | None
    split: str
    seed: int | None
    scores: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    stopped: bool = False
    fit_time: float = 0.0
    score_time: float = 0.0

    @property
    def mean(self) -> float:
        """The mean score (``nan`` when nothing was scored)."""
        return float(np.mean(self.scores)) if self.scores else math.nan


# -- shared helpers ------------------------------------------------------------------------------
def _check_estimator(estimator: Any, owner: str) -> None:
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise TypeError(
            f"The 'estimator' parameter of {owner} must be a scikit-learn estimator "
            f"(with fit and get_params), got {estimator!r}."
        )


def _check_scoring(estimator: Any, scoring: Any, owner: str) -> Any:
    if scoring is not None and not isinstance(scoring, str) and not callable(scoring):
        raise InvalidParameterError(
            f"The 'scoring' parameter of {owner} must be None, a scorer name or a callable "
            f"scorer(estimator, X, y), got {scoring!r}."
        )
    try:
        return check_scoring(estimator, scoring=scoring)
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(
            f"The 'scoring' parameter of {owner} is invalid: {exc}"
        ) from None


def _check_direction(direction: str, owner: str) -> str:
    if direction not in _DIRECTIONS:
        raise InvalidParameterError(
            f"The 'direction' parameter of {owner} must be one of 'maximize', 'minimize', "
            f"got {direction!r}."
        )
    return direction


def _n_samples(X: Any) -> int:
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _check_xy(X: Any, y: Any, owner: str, what: str = "X") -> None:
    if X is None:
        raise InvalidParameterError(f"The '{what}' parameter of {owner} must not be None.")
    if y is not None and _n_samples(X) != _n_samples(y):
        raise InvalidParameterError(
            f"The '{what}' and 'y' parameters of {owner} must have the same number of samples, "
            f"got {_n_samples(X)} and {_n_samples(y)}."
        )


def _check_holdout(holdout: Any, owner: str) -> tuple[Any, Any] | None:
    if holdout is None:
        return None
    if not isinstance(holdout, (tuple, list)) or len(holdout) != 2:
        raise InvalidParameterError(
            f"The 'holdout' parameter of {owner} must be None or a pair (X_holdout, y_holdout), "
            f"got {type(holdout).__name__}."
        )
    _check_xy(holdout[0], holdout[1], owner, "holdout")
    return holdout[0], holdout[1]


def check_config(estimator: Any, config: Mapping[str, Any], owner: str) -> None:
    """Raise when a config key is not a parameter of ``estimator`` (``step__param`` allowed)."""
    valid = estimator.get_params(deep=True)
    for key in config:
        if key not in valid:
            raise InvalidParameterError(
                f"{owner}: '{key}' is not a parameter of {type(estimator).__name__}; "
                f"valid: {', '.join(sorted(valid))}."
            )


class _FoldIndexError(InvalidParameterError):
    """A ``cv`` gave (train, test) indices outside the rows it was asked to split."""


def _check_folds(folds: list[tuple[np.ndarray, np.ndarray]], n: int, owner: str) -> None:
    """Raise when a fold's integer indices fall outside ``range(n)``."""
    for k, fold in enumerate(folds):
        for part in fold:
            if part.dtype.kind not in "iu" or not part.size:
                continue  # a boolean mask, or an empty part: indexing checks them
            bad = part[(part < 0) | (part >= n)]
            if bad.size:
                raise _FoldIndexError(
                    f"The 'cv' parameter of {owner} must give (train, test) indices of the {n} "
                    f"rows of X, got {int(bad[0])} in fold {k}."
                )


def _configure(estimator: Any, config: Mapping[str, Any], seed: int | None) -> Any:
    """A fresh clone with ``config`` set and every ``random_state`` set to ``seed`` if given."""
    est = clone(estimator)
    params = dict(config)
    if seed is not None:
        for key in est.get_params(deep=True):
            if (key == "random_state" or key.endswith("__random_state")) and key not in params:
                params[key] = int(seed)
    if params:
        est.set_params(**params)
    return est


def _sample_aligned(value: Any, n: int) -> bool:
    """Whether a fit parameter has one entry per sample (``sample_weight``...)."""
    return (
        value is not None
        and hasattr(value, "__len__")
        and not isinstance(value, str)
        and len(value) == n
    )


def split_params(fit_params: Mapping[str, Any], n: int, idx: np.ndarray) -> dict[str, Any]:
    """Index the sample-aligned fit parameters (``sample_weight``...) by ``idx``."""
    out: dict[str, Any] = {}
    for k, v in fit_params.items():
        if _sample_aligned(v, n):
            out[k] = _safe_indexing(v, idx)
        else:
            out[k] = v
    return out


def _trial_info(trial: Any) -> tuple[str, int | None, str | None, int | None]:
    split = getattr(trial, "split", None) or "validation"
    seed = getattr(trial, "seed", None)
    phase = getattr(trial, "phase", None)
    budget = getattr(trial, "budget", None)
    return str(split), seed, phase, budget


def _trial_direction(trial: Any) -> str:
    direction = getattr(trial, "direction", None)
    if direction is None:
        study = getattr(trial, "study", None)
        direction = getattr(study, "direction", None)
    return direction if direction in _DIRECTIONS else "maximize"


def _keep(trial: Any, rec: EvalRecord) -> None:
    """Store the evaluation's scores and times with the trial (where the trial takes them)."""
    setter = getattr(trial, "set_user_attr", None)
    if setter is not None:
        value = {
            "scores": list(rec.scores),
            "fit_time": rec.fit_time,
            "score_time": rec.score_time,
        }
        setter(SCORES_ATTR, value)


class _Objective:
    """What both objectives share: the estimator, scoring, holdout and the record of calls."""

    _owner = "objective"

    def __init__(
        self,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        scoring: Any,
        holdout: Any,
        fit_params: Mapping[str, Any] | None,
        direction: str | None,
    ) -> None:
        owner = self._owner
        _check_estimator(estimator, owner)
        _check_xy(X, y, owner)
        if fit_params is not None and not isinstance(fit_params, Mapping):
            raise InvalidParameterError(
                f"The 'fit_params' parameter of {owner} must be None or a dict, got "
                f"{type(fit_params).__name__}."
            )
        if direction is not None:
            _check_direction(direction, owner)
        self.estimator = estimator
        self.X = X
        self.y = y
        self.scoring = scoring
        self.scorer = _check_scoring(estimator, scoring, owner)
        self.holdout = _check_holdout(holdout, owner)
        self.fit_params = dict(fit_params or {})
        self._direction = direction
        self.records: list[EvalRecord] = []
        #: The first exception the estimator or scorer raised (its trial failed), or ``None``.
        self.first_error: Exception | None = None
        #: The number of calls that raised (their trials failed).
        self.n_failed = 0
        self._warned_no_holdout = False

    def __call__(self, trial: Any) -> float:
        """Evaluate ``trial.config`` (the objective's value, in the study's direction)."""
        try:
            return self._evaluate(trial)
        except TrialPruned:
            raise
        except Exception as exc:
            self.n_failed += 1
            if self.first_error is None:
                self.first_error = exc
            raise

    def _evaluate(self, trial: Any) -> float:
        raise NotImplementedError

    @property
    def direction(self) -> str:
        """The direction of the values the objective returns in a study of unknown direction.

        Scikit-learn scores are greater-is-better, so this is ``"maximize"`` unless
        ``direction="minimize"`` was given (the objective then reports ``-score``).
        """
        return self._direction or "maximize"

    def _sign(self, trial: Any) -> float:
        direction = self._direction or _trial_direction(trial)
        return -1.0 if direction == "minimize" else 1.0

    def _record(self, trial: Any, config: Mapping[str, Any]) -> EvalRecord:
        split, seed, phase, _ = _trial_info(trial)
        number = getattr(trial, "number", -1)
        rec = EvalRecord(int(number), dict(config), phase, split, seed)
        self.records.append(rec)
        return rec

    def _holdout_score(self, trial: Any, fit: Any) -> float:
        """Fit on all the search data with the trial's seed, score on the holdout."""
        assert self.holdout is not None
        config = trial.config
        _, seed, _, _ = _trial_info(trial)
        rec = self._record(trial, config)
        t0 = time.perf_counter()
        est = fit(config, seed)
        t1 = time.perf_counter()
        score = float(self.scorer(est, self.holdout[0], self.holdout[1]))
        rec.fit_time, rec.score_time = t1 - t0, time.perf_counter() - t1
        rec.scores.append(score)
        rec.steps.append(0)
        _keep(trial, rec)
        return self._sign(trial) * score


# -- cross-validation ----------------------------------------------------------------------------
class CVObjective(_Objective):
    """K-fold cross-validation as an objective, with folds as the fidelity.

    Built by :func:`cv_objective`; see there. :attr:`records` keeps every evaluation.
    """

    _owner = "cv_objective"

    def __init__(
        self,
        estimator: Any,
        X: Any,
        y: Any = None,
        *,
        cv: Any = 5,
        scoring: Any = None,
        direction: str | None = None,
        holdout: tuple[Any, Any] | None = None,
        fit_params: Mapping[str, Any] | None = None,
        n_jobs: int | None = None,
        groups: Any = None,
    ) -> None:
        super().__init__(
            estimator,
            X,
            y,
            scoring=scoring,
            holdout=holdout,
            fit_params=fit_params,
            direction=direction,
        )
        if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
            check_int(cv, "cv", self._owner, low=2)
        try:
            self.cv = check_cv(cv, y, classifier=is_classifier(estimator))
        except (ValueError, TypeError) as exc:
            raise InvalidParameterError(
                f"The 'cv' parameter of {self._owner} must be an int >= 2, a splitter or an "
                f"iterable of (train, test) index pairs: {exc}"
            ) from None
        check_int(n_jobs, "n_jobs", self._owner, low=-1, allow_none=True)
        if n_jobs == 0:
            raise InvalidParameterError(
                f"The 'n_jobs' parameter of {self._owner} must be None, -1 or an int >= 1, got 0."
            )
        self.n_jobs = n_jobs
        if groups is not None and _n_samples(groups) != _n_samples(X):
            raise InvalidParameterError(
                f"The 'groups' parameter of {self._owner} must have one label per row of X "
                f"({_n_samples(X)}), got {_n_samples(groups)}."
            )
        self.folds: list[tuple[np.ndarray, np.ndarray]] = [
            (np.asarray(tr), np.asarray(te)) for tr, te in self.cv.split(X, y, groups)
        ]
        _check_folds(self.folds, _n_samples(X), self._owner)

    @property
    def n_splits(self) -> int:
        """The number of folds: the full fidelity."""
        return len(self.folds)

    def _fit(self, config: Mapping[str, Any], seed: int | None, idx: np.ndarray | None) -> Any:
        est = _configure(self.estimator, config, seed)
        n = _n_samples(self.X)
        if idx is None:
            est.fit(self.X, self.y, **self.fit_params)
            return est
        Xs = _safe_indexing(self.X, idx)
        ys = None if self.y is None else _safe_indexing(self.y, idx)
        est.fit(Xs, ys, **split_params(self.fit_params, n, idx))
        return est

    def _fold(
        self, config: Mapping[str, Any], seed: int | None, k: int
    ) -> tuple[float, float, float]:
        train, test = self.folds[k]
        t0 = time.perf_counter()
        est = self._fit(config, seed, train)
        t1 = time.perf_counter()
        Xt = _safe_indexing(self.X, test)
        yt = None if self.y is None else _safe_indexing(self.y, test)
        score = float(self.scorer(est, Xt, yt))
        return score, t1 - t0, time.perf_counter() - t1

    def _evaluate(self, trial: Any) -> float:
        """Evaluate ``trial.config``: fold by fold, or on the holdout for the holdout split."""
        config = trial.config
        split, seed, _, budget = _trial_info(trial)
        if split == "holdout":
            if self.holdout is not None:
                return self._holdout_score(trial, lambda c, s: self._fit(c, s, None))
            if not self._warned_no_holdout:
                _log.warning(
                    "cv_objective has no 'holdout' data: the holdout phase scores by "
                    "cross-validation on the search data, which is optimistic."
                )
                self._warned_no_holdout = True
            budget = None
        sign = self._sign(trial)
        rec = self._record(trial, config)
        done: list[float] = []
        if getattr(trial, "resumed", False):
            kept = getattr(trial, "user_attrs", {}).get(SCORES_ATTR) or {}
            done = [float(v) for v in kept.get("scores", [])]
            rec.fit_time = float(kept.get("fit_time", 0.0))
            rec.score_time = float(kept.get("score_time", 0.0))
        rec.scores.extend(done)
        rec.steps.extend(range(1, len(done) + 1))
        n_folds = self.n_splits if budget is None else max(1, min(self.n_splits, int(budget)))
        chunk = 1 if self.n_jobs in (None, 1) else (self.n_jobs if self.n_jobs > 0 else n_folds)
        k = len(done)
        while k < n_folds:
            ks = list(range(k, min(k + chunk, n_folds)))
            if len(ks) == 1:
                results = [self._fold(config, seed, ks[0])]
            else:
                from joblib import Parallel, delayed

                results = Parallel(n_jobs=len(ks))(
                    delayed(self._fold)(config, seed, i) for i in ks
                )
            for score, fit_t, score_t in results:
                k += 1
                rec.scores.append(score)
                rec.steps.append(k)
                rec.fit_time += fit_t
                rec.score_time += score_t
                _keep(trial, rec)
                trial.report(sign * rec.mean, step=k)
                if trial.should_stop():
                    rec.stopped = k < self.n_splits
                    return sign * rec.mean
        return sign * rec.mean


def cv_objective(
    estimator: BaseEstimator,
    X: Any,
    y: Any = None,
    *,
    cv: Any = 5,
    scoring: Any = None,
    direction: str | None = None,
    holdout: tuple[Any, Any] | None = None,
    fit_params: Mapping[str, Any] | None = None,
    n_jobs: int | None = None,
    groups: Any = None,
) -> CVObjective:
    """An objective that cross-validates ``estimator`` with ``trial.config`` as its parameters.

    Each call clones the estimator and sets ``trial.config`` on it (keys are parameter names,
    ``step__param`` inside a ``Pipeline``). Folds act as the fidelity: after fold ``k`` (from
    1) the running mean score is reported with ``trial.report(mean, step=k)``, and when the
    scheduler says so (``trial.should_stop()``) the remaining folds are skipped, so a clearly
    worse configuration costs a few fits instead of all of them. ``trial.budget``, when set,
    caps the folds evaluated (the full fidelity is the number of folds). A trial resumed after a
    pause continues with the next fold; the fold scores are kept in the user attribute
    ``"sklearn.scores"``.

    When ``trial.split == "holdout"`` (the final validation of :func:`tunecraft.strategy.tune`),
    the estimator is fitted on all of ``X, y`` and scored on ``holdout``. Wherever ``trial.seed``
    is set, it becomes the ``random_state`` of the estimator (and of every pipeline step with
    one) unless the config sets it.

    Args:
        estimator: A scikit-learn estimator or pipeline (never modified; cloned per fit).
        X: Training data.
        y: Targets (``None`` for unsupervised estimators).
        cv: Folds: an int >= 2 (stratified for classifiers, not shuffled), a splitter such as
            ``KFold(5, shuffle=True, random_state=0)``, or an iterable of (train, test) indices.
            The folds are fixed once, so every configuration sees the same ones.
        scoring: A scorer name (``"accuracy"``, ``"neg_log_loss"``...), a callable
            ``scorer(estimator, X, y)``, or ``None`` for the estimator's ``score``.
            Scores are greater-is-better.
        direction: ``None`` (default): follow the study's direction, returning ``score`` in a
            study that maximizes and ``-score`` in one that minimizes. ``"maximize"`` or
            ``"minimize"`` fix it.
        holdout: ``(X_holdout, y_holdout)`` for the holdout split. Without it, the holdout
            split runs the full cross-validation (and logs a warning: that estimate is
            optimistic).
        fit_params: Passed to ``fit``; arrays with one entry per sample (``sample_weight``) are
            split with the folds.
        n_jobs: Folds fitted in parallel (``None``: one at a time; ``-1``: all at once). Folds
            in parallel are reported together, so the scheduler decides less often.
        groups: Group labels for a group-aware ``cv`` (``GroupKFold``...).

    Returns:
        A :class:`CVObjective`: call it with a trial; its ``records`` list every evaluation.

    Example:
        >>> import tunecraft as tc
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.neighbors import KNeighborsClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> objective = cv_objective(KNeighborsClassifier(), X, y, cv=3)
        >>> study = tc.Study({"n_neighbors": tc.integer(1, 30)}, direction="maximize", seed=0)
        >>> study.optimize(objective, n_trials=3)
        >>> study.best_value > 0.9
        True
    """
    return CVObjective(
        estimator,
        X,
        y,
        cv=cv,
        scoring=scoring,
        direction=direction,
        holdout=holdout,
        fit_params=fit_params,
        n_jobs=n_jobs,
        groups=groups,
    )


# -- iterations ----------------------------------------------------------------------------------
class IterativeObjective(_Objective):
    """Training iterations as the fidelity. Built by :func:`iterative_objective`; see there."""

    _owner = "iterative_objective"

    def __init__(
        self,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        max_iter: int,
        resource: str = "auto",
        step_size: int = 1,
        validation: float | tuple[Any, Any] = 0.2,
        scoring: Any = None,
        direction: str | None = None,
        holdout: tuple[Any, Any] | None = None,
        fit_params: Mapping[str, Any] | None = None,
        validation_seed: int = 0,
    ) -> None:
        super().__init__(
            estimator,
            X,
            y,
            scoring=scoring,
            holdout=holdout,
            fit_params=fit_params,
            direction=direction,
        )
        owner = self._owner
        check_int(max_iter, "max_iter", owner, low=1)
        check_int(step_size, "step_size", owner, low=1)
        check_int(validation_seed, "validation_seed", owner, low=0)
        self.max_iter = int(max_iter)
        self.step_size = int(step_size)
        self.resource = self._resolve_resource(estimator, resource)
        self.classes = np.unique(y) if is_classifier(estimator) and y is not None else None
        n = _n_samples(X)
        if isinstance(validation, (tuple, list)):
            pair = _check_holdout(validation, owner)
            assert pair is not None
            self.X_train, self.y_train = X, y
            self.X_val, self.y_val = pair
            aligned = sorted(k for k, v in self.fit_params.items() if _sample_aligned(v, n))
            if aligned and self.holdout is not None:
                raise InvalidParameterError(
                    f"The 'fit_params' parameter of {owner} has per-sample values ({aligned}) "
                    "for the rows of X only, but the holdout split trains on X and the "
                    "'validation' pair; give 'validation' as a fraction of X instead."
                )
            self.train_params = dict(self.fit_params)
            self.final_params = dict(self.fit_params)
        elif isinstance(validation, numbers.Real) and not isinstance(validation, bool):
            if not 0 < float(validation) < 1:
                raise InvalidParameterError(
                    f"The 'validation' parameter of {owner} must be a fraction in (0, 1) or a "
                    f"pair (X_val, y_val), got {validation!r}."
                )
            stratify = y if self.classes is not None else None
            train, val = train_test_split(
                np.arange(n),
                test_size=float(validation),
                random_state=validation_seed,
                stratify=stratify,
            )
            self.X_train, self.X_val = _safe_indexing(X, train), _safe_indexing(X, val)
            self.y_train = None if y is None else _safe_indexing(y, train)
            self.y_val = None if y is None else _safe_indexing(y, val)
            # Per-sample fit parameters (sample_weight) follow their rows.
            self.train_params = split_params(self.fit_params, n, train)
            self.final_params = split_params(self.fit_params, n, np.concatenate([train, val]))
        else:
            raise InvalidParameterError(
                f"The 'validation' parameter of {owner} must be a fraction in (0, 1) or a "
                f"pair (X_val, y_val), got {validation!r}."
            )

    def _resolve_resource(self, estimator: Any, resource: str) -> str:
        owner = self._owner
        params = estimator.get_params(deep=False)
        if resource == "auto":
            if hasattr(estimator, "partial_fit"):
                return "partial_fit"
            if "warm_start" in params and "n_estimators" in params:
                return "n_estimators"
            raise InvalidParameterError(
                f"The 'resource' parameter of {owner} is 'auto', but {type(estimator).__name__} "
                "has neither partial_fit nor warm_start with n_estimators; name the parameter "
                "that counts iterations in total (resource='max_iter' for HistGradientBoosting)."
            )
        if resource == "partial_fit":
            if not hasattr(estimator, "partial_fit"):
                raise InvalidParameterError(
                    f"The 'resource' parameter of {owner} is 'partial_fit', but "
                    f"{type(estimator).__name__} has no partial_fit method."
                )
            return resource
        if not isinstance(resource, str) or resource not in params:
            raise InvalidParameterError(
                f"The 'resource' parameter of {owner} must be 'auto', 'partial_fit' or a "
                f"parameter of {type(estimator).__name__} counting iterations, got {resource!r}."
            )
        if "warm_start" not in params:
            raise InvalidParameterError(
                f"The 'resource' parameter of {owner} is {resource!r}, which needs warm_start, "
                f"and {type(estimator).__name__} has no warm_start parameter."
            )
        return resource

    def _step(
        self, est: Any, X: Any, y: Any, params: Mapping[str, Any], units: int, first: bool
    ) -> Any:
        """Train ``est`` up to ``units`` fidelity units (one unit: ``step_size`` iterations)."""
        if self.resource == "partial_fit":
            for i in range(self.step_size):
                if first and i == 0 and self.classes is not None:
                    est.partial_fit(X, y, classes=self.classes, **params)
                else:
                    est.partial_fit(X, y, **params)
            return est
        est.set_params(**{self.resource: units * self.step_size, "warm_start": True})
        est.fit(X, y, **params)
        return est

    def _train(
        self, config: Mapping[str, Any], seed: int | None, units: int, X: Any, y: Any
    ) -> Any:
        """``config`` trained for ``units`` units on the search's training data ``X, y``."""
        est = _configure(self.estimator, config, seed)
        for u in range(1, units + 1):
            est = self._step(est, X, y, self.train_params, u, u == 1)
        return est

    def _evaluate(self, trial: Any) -> float:
        """Train ``trial.config`` for ``trial.budget`` units, reporting after each unit."""
        config = trial.config
        split, seed, _, budget = _trial_info(trial)
        units = self.max_iter if budget is None else max(1, min(self.max_iter, int(budget)))
        final = split == "holdout" and self.holdout is not None
        if final:  # train on everything the search had; score the holdout; keep both curves
            X_fit, y_fit = _concat(self.X_train, self.X_val), _concat(self.y_train, self.y_val)
            X_eval, y_eval = self.holdout  # type: ignore[misc]
            params = self.final_params
            _mark_holdout_curve(trial)
        else:
            X_fit, y_fit, X_eval, y_eval = self.X_train, self.y_train, self.X_val, self.y_val
            params = self.train_params
        sign = self._sign(trial)
        rec = self._record(trial, config)
        state = trial.load_checkpoint() if getattr(trial, "resumed", False) else None
        if state is not None:
            est, start = state["estimator"], int(state["units"]) + 1
        else:
            est, start = _configure(self.estimator, config, seed), 1
        score = math.nan
        for u in range(start, units + 1):
            t0 = time.perf_counter()
            est = self._step(est, X_fit, y_fit, params, u, u == 1)
            t1 = time.perf_counter()
            score = float(self.scorer(est, X_eval, y_eval))
            rec.fit_time += t1 - t0
            rec.score_time += time.perf_counter() - t1
            rec.scores.append(score)
            rec.steps.append(u)
            if final:
                train = sign * float(self.scorer(est, X_fit, y_fit))
                _report(trial, sign * score, u, train)
            else:
                trial.report(sign * score, step=u)
            if trial.should_stop():
                rec.stopped = u < units
                if getattr(trial, "decision", "stop") == "pause":
                    trial.save_checkpoint({"estimator": est, "units": u})
                break
        if math.isnan(score):  # resumed at or past the budget: score what exists
            score = float(self.scorer(est, X_eval, y_eval))
        return sign * score


def _mark_holdout_curve(trial: Any) -> None:
    """Tell the pipeline that this run reports holdout values (it trains on the validation
    data too), so they do not choose among its finalists."""
    from tunecraft.strategy._pipeline import CURVE_SPLIT_ATTR

    set_attr = getattr(trial, "set_user_attr", None)
    if callable(set_attr):
        set_attr(CURVE_SPLIT_ATTR, "holdout")


def _report(trial: Any, value: float, step: int, train: float) -> None:
    """Report with the training metric where the trial takes one (the pipeline's does)."""
    try:
        takes_train = "train" in inspect.signature(trial.report).parameters
    except (TypeError, ValueError):  # no signature to read
        takes_train = False
    if takes_train:
        trial.report(value, step=step, train=train)
    else:
        trial.report(value, step=step)


def _concat(a: Any, b: Any) -> Any:
    if a is None:
        return None
    if hasattr(a, "iloc"):
        import pandas as pd

        return pd.concat([a, b])
    try:
        import scipy.sparse as sp

        if sp.issparse(a):
            return sp.vstack([a, b]).tocsr()
    except ImportError:  # pragma: no cover - scipy is a core dependency
        pass
    return np.concatenate([np.asarray(a), np.asarray(b)])


def iterative_objective(
    estimator: BaseEstimator,
    X: Any,
    y: Any,
    *,
    max_iter: int,
    resource: str = "auto",
    step_size: int = 1,
    validation: float | tuple[Any, Any] = 0.2,
    scoring: Any = None,
    direction: str | None = None,
    holdout: tuple[Any, Any] | None = None,
    fit_params: Mapping[str, Any] | None = None,
    validation_seed: int = 0,
) -> IterativeObjective:
    """An objective whose fidelity is training iterations of an incremental estimator.

    One fidelity unit is ``step_size`` iterations: ``partial_fit`` calls over the training data
    (``SGDClassifier``, ``MLPClassifier``...), or more trees/boosting stages through
    ``warm_start`` (``GradientBoosting*`` and forests: ``n_estimators``;
    ``HistGradientBoosting*``: ``resource="max_iter"``). A trial trains for ``trial.budget``
    units (``max_iter`` when unset), scoring the validation data and reporting after each unit
    (step = units done, from 1), and stops when the scheduler says so. A trial the scheduler
    pauses keeps its estimator in a checkpoint and resumes from it.

    For the holdout split, the estimator is trained on training plus validation data with
    ``trial.seed`` and scored on ``holdout`` (without ``holdout``, the validation data serve).

    Args:
        estimator: An estimator with ``partial_fit``, or with ``warm_start``.
        X: Training data (split into train and validation by ``validation``).
        y: Targets.
        max_iter: The full fidelity, in units (an int >= 1).
        resource: ``"auto"`` (``partial_fit`` when available, else ``n_estimators`` with
            ``warm_start``), ``"partial_fit"``, or the name of the parameter that counts the
            iterations in total under ``warm_start``.
        step_size: Iterations per unit (an int >= 1), e.g. 10 boosting stages.
        validation: A fraction of ``X, y`` held out for the reports (stratified for
            classifiers, fixed by ``validation_seed``), or ``(X_val, y_val)``.
        scoring: As in :func:`cv_objective`.
        direction: As in :func:`cv_objective`.
        holdout: ``(X_holdout, y_holdout)`` for the holdout split.
        fit_params: Passed to every ``fit``/``partial_fit`` call; arrays with one entry per
            row of ``X`` (``sample_weight``) follow their rows into the validation split.
            With a ``validation`` pair they weight ``X`` only, so they cannot go with a
            ``holdout`` (whose fit trains on the validation pair too).
        validation_seed: Seeds the validation split (an int >= 0).

    Example:
        >>> import tunecraft as tc
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.linear_model import SGDClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> objective = iterative_objective(SGDClassifier(random_state=0), X, y, max_iter=5)
        >>> study = tc.Study({"alpha": tc.loguniform(1e-5, 1e-1)}, direction="maximize", seed=0)
        >>> study.optimize(objective, n_trials=3)
        >>> len(study.trials[0].intermediate)
        5
    """
    return IterativeObjective(
        estimator,
        X,
        y,
        max_iter=max_iter,
        resource=resource,
        step_size=step_size,
        validation=validation,
        scoring=scoring,
        direction=direction,
        holdout=holdout,
        fit_params=fit_params,
        validation_seed=validation_seed,
    )
