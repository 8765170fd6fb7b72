"""TuneSearchCV and nested cross-validation on top of the budgeted pipeline."""

# ruff: noqa: N803, N806  (X: the scikit-learn naming of data matrices)

from __future__ import annotations

import math
import numbers
import pickle
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import PredefinedSplit, check_cv, train_test_split
from sklearn.utils import _safe_indexing, indexable
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from tunecraft._validation import check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.integrations._sklearn_objectives import (
    SCORES_ATTR,
    CVObjective,
    EvalRecord,
    _check_folds,
    _check_scoring,
    _configure,
    _FoldIndexError,
    _n_samples,
    check_config,
    split_params,
)
from tunecraft.space import Space

__all__ = ["NestedCVResult", "TuneSearchCV", "nested_cv"]

_OWNER = "TuneSearchCV"

#: What ``fit`` may set: it clears them all first, so no attribute outlives the fit that set it.
_FITTED_ATTRS = (
    "best_estimator_",
    "best_index_",
    "best_params_",
    "best_score_",
    "cv_results_",
    "feature_names_in_",
    "holdout_results_",
    "holdout_score_",
    "n_features_in_",
    "n_splits_",
    "refit_time_",
    "scorer_",
    "search_result_",
)


# -- the search backend --------------------------------------------------------------------------
@dataclass
class _Outcome:
    best_config: dict[str, Any]
    holdout_score: float | None
    result: Any
    records: list[EvalRecord]


def _run_search(
    objective: CVObjective,
    space: Space,
    *,
    budget: Any,
    seed: int,
    storage: Any,
    name: str | None,
    options: Mapping[str, Any],
) -> _Outcome:
    """Run the budgeted pipeline with ``objective`` (folds as fidelity, scores maximized)."""
    from tunecraft.storage import get_storage
    from tunecraft.strategy import tune

    storage = get_storage(storage)  # kept, to read every trial back (a resumed run's too)
    options = dict(options)
    if objective.holdout is not None:  # a holdout run is one fit on the search data, not k
        options.setdefault("validation_cost", 1)
    result = tune(
        objective,
        space,
        budget=budget,
        direction="maximize",
        max_fidelity=objective.n_splits,
        storage=storage,
        name=name,
        seed=seed,
        **{"unit": "folds", **options},
    )
    score = None if result.score is None else float(result.score)
    records = _stored_records(storage, list(result.studies.values()))
    return _Outcome(dict(result.best_config), score, result, records)


def _stored_records(storage: Any, study_names: Sequence[str]) -> list[EvalRecord]:
    """The evaluations the pipeline's studies hold, as :class:`EvalRecord` (phase order)."""
    from tunecraft.exceptions import StudyNotFoundError
    from tunecraft.strategy._pipeline import WARM_ATTR
    from tunecraft.trial import TrialState

    out: list[EvalRecord] = []
    for study_name in study_names:
        try:
            info = storage.get_study(study_name)
        except StudyNotFoundError:  # a phase that had nothing to run
            continue
        for t in storage.get_trials(info.study_id):
            if t.state in (TrialState.WAITING, TrialState.RUNNING) or WARM_ATTR in t.user_attrs:
                continue  # not run, or a copy of an earlier phase's trial (a warm start)
            kept = t.user_attrs.get(SCORES_ATTR) or {}
            scores = [float(v) for v in kept.get("scores", [])]
            out.append(
                EvalRecord(
                    number=t.number,
                    config=t.run_config,
                    phase=t.phase,
                    split=t.split,
                    seed=t.seed,
                    scores=scores,
                    steps=[0] if t.split == "holdout" else list(range(1, len(scores) + 1)),
                    stopped=t.state in (TrialState.PRUNED, TrialState.PAUSED),
                    fit_time=float(kept.get("fit_time", 0.0)),
                    score_time=float(kept.get("score_time", 0.0)),
                )
            )
    return out


def _resolve_space(space: Any, estimator: Any, owner: str) -> Space:
    if isinstance(space, Space):
        resolved = space
    elif isinstance(space, Mapping):
        try:
            resolved = Space(space)
        except (ValueError, TypeError) as exc:
            raise InvalidParameterError(
                f"The 'space' parameter of {owner} is invalid: {exc}"
            ) from None
    else:
        raise TypeError(
            f"The 'space' parameter of {owner} must be a dict of parameter name -> domain "
            f"(tc.loguniform(1e-3, 10) or 'log-uniform(1e-3, 10)'), got {type(space).__name__}."
        )
    check_config(estimator, {n: None for n in resolved.names}, owner)
    return resolved


def _check_budget(budget: Any, owner: str) -> None:
    from tunecraft.strategy import Budget

    if budget is None or isinstance(budget, (str, Budget)):
        return
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise TypeError(
            f"The 'budget' parameter of {owner} must be None, a number of fold fits > 0, or a "
            f"string such as '30 trials' or '2 min', got {budget!r}."
        )
    if not math.isfinite(float(budget)) or budget <= 0:
        raise InvalidParameterError(
            f"The 'budget' parameter of {owner} must be None, a number of fold fits > 0, or a "
            f"string such as '30 trials' or '2 min', got {budget!r}."
        )


def _check_options(options: Any, owner: str) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(
            f"The 'tune_options' parameter of {owner} must be None or a dict of options for "
            f"tunecraft.strategy.tune, got {type(options).__name__}."
        )
    reserved = {"objective", "space", "budget", "direction", "max_fidelity", "storage", "name",
                "seed"}  # fmt: skip
    clash = sorted(reserved & set(options))
    if clash:
        raise InvalidParameterError(
            f"The 'tune_options' parameter of {owner} must not set {', '.join(clash)}; "
            f"they are {owner}'s own parameters."
        )
    return dict(options)


def _fixed_splits(cv: Any) -> bool:
    """Whether ``cv`` fixes its folds by row index: (train, test) pairs, a ``PredefinedSplit``.

    Such folds refer to the rows of the data given to ``fit``, whereas a splitter such as
    ``KFold`` or ``GroupKFold`` splits whatever data it is given.
    """
    if isinstance(cv, PredefinedSplit):
        return True
    if cv is None or isinstance(cv, (numbers.Integral, str)) or hasattr(cv, "split"):
        return False
    return isinstance(cv, Iterable)


def _split_fixed(
    cv: Any, X: Any, y: Any, groups: Any, estimator: Any, param: str, owner: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of a :func:`_fixed_splits` ``cv`` over all of ``X``, indices checked."""

    def indices(part: Any) -> np.ndarray:
        part = np.asarray(part)
        return np.flatnonzero(part) if part.dtype == bool else part  # a mask, as indices

    try:
        splitter = check_cv(cv, y, classifier=is_classifier(estimator))
        folds = [(indices(tr), indices(te)) for tr, te in splitter.split(X, y, groups)]
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(
            f"The '{param}' parameter of {owner} must be an int >= 2, a splitter or an "
            f"iterable of (train, test) index pairs: {exc}"
        ) from None
    try:
        _check_folds(folds, _n_samples(X), owner)
    except _FoldIndexError as exc:
        raise InvalidParameterError(str(exc).replace("'cv'", f"'{param}'", 1)) from None
    return folds


def _remap_folds(
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    keep: np.ndarray,
    n: int,
    *,
    param: str,
    owner: str,
    where: str,
    remedy: str,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds over ``n`` rows as folds over the rows ``keep``: the others are dropped from each
    train and test part, and the rest renumbered to their positions in ``keep``."""
    position = np.full(n, -1, dtype=np.intp)
    position[keep] = np.arange(len(keep))
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for k, (train, test) in enumerate(folds):
        parts = []
        for part, what in ((train, "train"), (test, "test")):
            mapped = position[part.astype(np.intp, copy=False)]
            mapped = mapped[mapped >= 0]
            if not mapped.size:
                raise InvalidParameterError(
                    f"The '{param}' parameter of {owner} gives fold {k} no {what} rows {where}; "
                    f"{remedy}."
                )
            parts.append(mapped)
        out.append((parts[0], parts[1]))
    return out


def _delegates(method: str) -> Any:
    """``available_if`` check: the refitted (or, before fit, the given) estimator has it."""

    def check(self: TuneSearchCV) -> bool:
        if hasattr(self, "best_estimator_"):
            getattr(self.best_estimator_, method)
            return True
        if not self.refit:
            raise AttributeError(
                f"TuneSearchCV has no {method}: refit=False keeps no best_estimator_."
            )
        getattr(self.estimator, method)
        return True

    return check


class TuneSearchCV(MetaEstimatorMixin, BaseEstimator):
    """A scikit-learn search estimator that spends a budget with tunecraft's pipeline.

    Like ``GridSearchCV``, but the configurations come from :func:`tunecraft.strategy.tune`:
    a quick exploration, a narrowed refinement and a final validation of the best few
    configurations with several seeds on a holdout that the search never saw. Folds act as the
    fidelity, so a configuration that is clearly worse after a fold or two is not fitted on the
    rest (see :func:`~tunecraft.integrations.sklearn.cv_objective`).

    Seeds: each evaluation sets the ``random_state`` of the estimator (and of every pipeline
    step with one) to its trial's seed, a ``random_state`` given on ``estimator`` included,
    so that the final validation can compare seeds. The refit follows the same rule: it uses
    the seed of the row :attr:`best_score_` comes from (``cv_results_["seed"][best_index_]``),
    so :attr:`best_estimator_` is the evaluated configuration, random state included, fitted on
    all the data. To fix ``random_state`` everywhere instead, put it in ``space``
    (``{"random_state": tc.choice([42])}``).

    A configuration whose fit or scoring raises scores ``nan`` and the fit issues a
    :class:`~sklearn.exceptions.FitFailedWarning` (with the first error); when every
    evaluation fails, the estimator's own error is raised.

    Args:
        estimator: The estimator or pipeline to tune (cloned, never modified).
        space: ``{parameter: domain}``: tunecraft domains (``tc.loguniform(1e-3, 10)``) or the
            notation (``"log-uniform(1e-3, 10)"``); keys are parameters of ``estimator``
            (``step__param`` inside a pipeline).
        budget: Total compute in fold fits (an int >= 1; one configuration fully
            cross-validated costs ``n_splits``; one final-validation fit on the holdout costs
            one). ``None``: 30 full cross-validations.
        cv: Folds, as in :func:`~sklearn.model_selection.check_cv` (an int is stratified for
            classifiers). A splitter (``KFold``, ``GroupKFold``...) splits the rows left to
            the search once the holdout is removed. Fixed folds, an iterable of (train, test)
            index pairs or a ``PredefinedSplit``, index the rows of the ``X`` given to ``fit``:
            the holdout rows are dropped from each fold (a fold left with no train or no test
            row is an error).
        scoring: A scorer name, a callable ``scorer(estimator, X, y)``, or ``None`` (the
            estimator's ``score``). Greater is better, so the search maximizes it.
        refit: Fit the best configuration on all of ``X, y`` as :attr:`best_estimator_`
            (with the seed it was evaluated with, see above).
        holdout: Fraction of ``X, y`` (in (0, 1)) kept out of the search for the final
            validation (stratified for classifiers), or ``None`` to validate by
            cross-validation instead (optimistic).
        seed: Seeds the holdout split and the pipeline (``None``: 0).
        storage: Where the pipeline keeps its trials (``None``: in memory), such as
            ``"sqlite:///runs.db"``.
        name: The pipeline's name in ``storage`` (``None``: a fresh name each fit). A ``fit``
            with the name of a stored pipeline continues it where it stopped (after a crash,
            say) or, when it is finished, reads its result back; :attr:`cv_results_` is
            always built from the stored trials.
        n_seeds: Seeds of the chosen finalist in the final validation (every finalist's, with
            ``tune_options={"race": False}``; ``None``: the pipeline's default).
        n_finalists: Configurations in the final validation (``None``: the pipeline's default).
        shares: Budget shares of the phases (``None``: the pipeline's default).
        n_jobs: Folds fitted in parallel (``None``: one at a time).
        tune_options: More options for :func:`tunecraft.strategy.tune`, as a dict.

    Attributes:
        best_params_: The chosen configuration (by the final validation).
        best_estimator_: The estimator refitted with it on all the data (``refit=True``), its
            ``random_state`` set to ``cv_results_["seed"][best_index_]`` where it has one.
        best_score_: The mean cross-validated score of the chosen configuration (optimistic,
            like ``GridSearchCV``'s).
        best_index_: Its row in :attr:`cv_results_`.
        holdout_score_: The chosen configuration's mean score over its seeds on the holdout,
            fitted on the search data only (``None`` when ``holdout=None``). By default the
            search's values choose among the finalists and the holdout only scores the
            choice; where the holdout chose (``search_result_.optimistic``, as with
            ``tune_options={"select": "holdout"}``) it is biased upwards. Either way it scores
            one chosen configuration on one split, not the procedure: for an unbiased
            estimate of "tune, then refit", use :func:`nested_cv`.
        cv_results_: One row per cross-validation run: ``params``, ``param_<name>``,
            ``split<k>_test_score`` (``nan`` for folds skipped), ``mean_test_score``,
            ``std_test_score``, ``rank_test_score``, ``n_folds``, ``stopped``, ``phase``,
            ``trial_number`` (within its phase), ``seed``, ``mean_fit_time``,
            ``mean_score_time``. Ranks put configurations evaluated on every fold first.
            Unlike ``GridSearchCV``, most rows are partial (explored or stopped on fewer
            folds), and a one-fold mean can top the full ones: pick rows by
            ``rank_test_score`` (or ``best_index_``), not by ``mean_test_score.argmax()``.
        holdout_results_: One row per holdout evaluation: ``params``, ``seed``, ``phase``,
            ``holdout_score``.
        n_splits_: The number of folds.
        refit_time_: Seconds to refit the best configuration.
        scorer_: The scorer used.
        search_result_: The pipeline's result (plan, importance, validation, spent); ``None``
            after unpickling when it cannot be pickled.
        classes_: The classes, for a classifier.

    Example:
        >>> import tunecraft as tc
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.neighbors import KNeighborsClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> search = TuneSearchCV(KNeighborsClassifier(), {"n_neighbors": "int(1, 30)"},
        ...                       budget="15 trials", cv=3, seed=0)
        >>> search.fit(X, y).score(X, y) > 0.9
        True
        >>> sorted(search.best_params_)
        ['n_neighbors']
    """

    def __init__(
        self,
        estimator: Any,
        space: Mapping[str, Any] | Space,
        *,
        budget: float | str | None = None,
        cv: Any = 5,
        scoring: Any = None,
        refit: bool = True,
        holdout: float | None = 0.2,
        seed: int | None = None,
        storage: Any = None,
        name: str | None = None,
        n_seeds: int | None = None,
        n_finalists: int | None = None,
        shares: Sequence[float] | None = None,
        n_jobs: int | None = None,
        tune_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.estimator = estimator
        self.space = space
        self.budget = budget
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.holdout = holdout
        self.seed = seed
        self.storage = storage
        self.name = name
        self.n_seeds = n_seeds
        self.n_finalists = n_finalists
        self.shares = shares
        self.n_jobs = n_jobs
        self.tune_options = tune_options

    # -- tags ------------------------------------------------------------------------------------
    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import get_tags

        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = deepcopy(inner.classifier_tags)
        tags.regressor_tags = deepcopy(inner.regressor_tags)
        tags.transformer_tags = deepcopy(inner.transformer_tags)
        tags.input_tags.pairwise = inner.input_tags.pairwise
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.target_tags.required = inner.target_tags.required
        return tags

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        if "search_result_" in state:  # the pipeline's result may hold a storage connection
            try:
                pickle.dumps(state["search_result_"])
            except Exception:
                state["search_result_"] = None
        return state

    # -- fit -------------------------------------------------------------------------------------
    def _validate(self) -> tuple[Space, int, dict[str, Any]]:
        from tunecraft.integrations._sklearn_objectives import _check_estimator

        _check_estimator(self.estimator, _OWNER)
        space = _resolve_space(self.space, self.estimator, _OWNER)
        check_int(self.seed, "seed", _OWNER, low=0, allow_none=True)
        _check_budget(self.budget, _OWNER)
        if not isinstance(self.refit, bool):
            raise TypeError(
                f"The 'refit' parameter of {_OWNER} must be a bool, got {self.refit!r}."
            )
        if self.holdout is not None and (
            isinstance(self.holdout, bool)
            or not isinstance(self.holdout, numbers.Real)
            or not 0 < float(self.holdout) < 1
        ):
            raise InvalidParameterError(
                f"The 'holdout' parameter of {_OWNER} must be None or a fraction in (0, 1), "
                f"got {self.holdout!r}."
            )
        check_int(self.n_seeds, "n_seeds", _OWNER, low=1, allow_none=True)
        check_int(self.n_finalists, "n_finalists", _OWNER, low=1, allow_none=True)
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise InvalidParameterError(
                f"The 'name' parameter of {_OWNER} must be None or a non-empty str, "
                f"got {self.name!r}."
            )
        options = _check_options(self.tune_options, _OWNER)
        for key in ("n_seeds", "n_finalists", "shares"):
            value = getattr(self, key)
            if value is not None:
                options[key] = value
        return space, 0 if self.seed is None else int(self.seed), options

    def fit(self, X: Any, y: Any = None, *, groups: Any = None, **fit_params: Any) -> TuneSearchCV:
        """Search with the budgeted pipeline, then refit the chosen configuration on ``X, y``.

        Args:
            X: Training data.
            y: Targets.
            groups: Group labels: the holdout then takes whole groups, and a group-aware
                ``cv`` (``GroupKFold``...) receives them.
            **fit_params: Passed to the estimator's ``fit`` (per-sample arrays are split with
                the folds and the holdout).

        Returns:
            self
        """
        for attr in _FITTED_ATTRS:
            self.__dict__.pop(attr, None)
        space, seed, options = self._validate()
        X, y, groups = indexable(X, y, groups)
        n = _n_samples(X)  # indexable checked that y and groups have as many rows
        self.scorer_ = _check_scoring(self.estimator, self.scoring, _OWNER)
        idx = np.arange(n)
        holdout_pair = None
        search_idx = idx
        if self.holdout is not None:
            if groups is not None:
                from sklearn.model_selection import GroupShuffleSplit

                splitter = GroupShuffleSplit(1, test_size=float(self.holdout), random_state=seed)
                search_idx, hold_idx = next(splitter.split(idx, groups=groups))
            else:
                stratify = y if _stratifiable(self.estimator, y) else None
                search_idx, hold_idx = train_test_split(
                    idx, test_size=float(self.holdout), random_state=seed, stratify=stratify
                )
            search_idx, hold_idx = np.sort(search_idx), np.sort(hold_idx)
            holdout_pair = (_take(X, hold_idx), _take(y, hold_idx))
        cv = self.cv
        if self.holdout is not None and _fixed_splits(cv):  # its indices refer to all of X
            cv = _remap_folds(
                _split_fixed(cv, X, y, groups, self.estimator, "cv", _OWNER),
                search_idx,
                n,
                param="cv",
                owner=_OWNER,
                where=f"once the holdout ({len(hold_idx)} rows) is removed",
                remedy="give larger folds, or pass holdout=None",
            )
        try:
            objective = CVObjective(
                self.estimator,
                _take(X, search_idx),
                _take(y, search_idx),
                cv=cv,
                scoring=self.scoring,
                direction="maximize",
                holdout=holdout_pair,
                fit_params=split_params(fit_params, n, search_idx),
                n_jobs=self.n_jobs,
                groups=_take(groups, search_idx),
            )
        except (ValueError, TypeError) as exc:  # name the class the user called
            message = str(exc).replace("of cv_objective", f"of {_OWNER}")
            if isinstance(exc, _FoldIndexError):
                if self.holdout is not None:  # a splitter whose folds ignore the data given
                    message += (
                        f" With a holdout, the splitter splits the {len(search_idx)} rows left "
                        "to the search: give its folds as a list of (train, test) pairs, or "
                        "pass holdout=None."
                    )
                raise InvalidParameterError(message) from None
            raise type(exc)(message) from None
        self.n_splits_ = objective.n_splits
        budget = self.budget if self.budget is not None else "30 trials"
        try:
            outcome = _run_search(
                objective,
                space,
                budget=budget,
                seed=seed,
                storage=self.storage,
                name=self.name,
                options=options,
            )
        except Exception as exc:
            error = objective.first_error
            if error is not None and not any(r.scores for r in objective.records):
                raise error from exc  # every fit failed: raise the estimator's own error
            raise
        if objective.n_failed:
            error = objective.first_error
            warnings.warn(
                f"{objective.n_failed} of the {len(objective.records)} evaluations of "
                f"{_OWNER} failed; their scores are nan in cv_results_. The first error: "
                f"{type(error).__name__}: {error}",
                FitFailedWarning,
                stacklevel=2,
            )
        self.search_result_ = outcome.result
        self.best_params_ = dict(outcome.best_config)
        self.holdout_score_ = outcome.holdout_score if self.holdout is not None else None
        self.cv_results_, self.holdout_results_ = _results(
            outcome.records, objective.n_splits, space
        )
        self.best_index_ = _best_index(self.cv_results_, self.best_params_)
        self.best_score_ = (
            float(self.cv_results_["mean_test_score"][self.best_index_])
            if self.best_index_ is not None
            else float("nan")
        )
        if self.refit:  # with the random_state of the row best_score_ comes from
            est = _configure(self.estimator, self.best_params_, self._refit_seed(seed))
            start = time.perf_counter()
            est.fit(X, y, **fit_params)
            self.refit_time_ = time.perf_counter() - start
            self.best_estimator_ = est
            if hasattr(est, "n_features_in_"):
                self.n_features_in_ = est.n_features_in_
            if hasattr(est, "feature_names_in_"):
                self.feature_names_in_ = est.feature_names_in_
        return self

    def _refit_seed(self, seed: int) -> int:
        """The seed of the chosen configuration's row in ``cv_results_`` (else of its first
        holdout evaluation, else ``seed``): the search ran it with this ``random_state``."""
        seeds = []
        if self.best_index_ is not None:
            seeds.append(self.cv_results_["seed"][self.best_index_])
        held = self.holdout_results_
        seeds += [
            s
            for p, s in zip(held["params"], held["seed"], strict=True)
            if _same(p, self.best_params_)
        ]
        return next((int(s) for s in seeds if s is not None), seed)

    # -- delegation ------------------------------------------------------------------------------
    def _fitted(self, method: str) -> Any:
        check_is_fitted(self, "best_params_")
        if not self.refit:
            raise AttributeError(f"TuneSearchCV has no {method}: refit=False.")
        return self.best_estimator_

    @available_if(_delegates("predict"))
    def predict(self, X: Any) -> Any:
        """``predict`` of :attr:`best_estimator_`."""
        return self._fitted("predict").predict(X)

    @available_if(_delegates("predict_proba"))
    def predict_proba(self, X: Any) -> Any:
        """``predict_proba`` of :attr:`best_estimator_`."""
        return self._fitted("predict_proba").predict_proba(X)

    @available_if(_delegates("predict_log_proba"))
    def predict_log_proba(self, X: Any) -> Any:
        """``predict_log_proba`` of :attr:`best_estimator_`."""
        return self._fitted("predict_log_proba").predict_log_proba(X)

    @available_if(_delegates("decision_function"))
    def decision_function(self, X: Any) -> Any:
        """``decision_function`` of :attr:`best_estimator_`."""
        return self._fitted("decision_function").decision_function(X)

    @available_if(_delegates("score_samples"))
    def score_samples(self, X: Any) -> Any:
        """``score_samples`` of :attr:`best_estimator_`."""
        return self._fitted("score_samples").score_samples(X)

    @available_if(_delegates("transform"))
    def transform(self, X: Any) -> Any:
        """``transform`` of :attr:`best_estimator_`."""
        return self._fitted("transform").transform(X)

    @available_if(_delegates("inverse_transform"))
    def inverse_transform(self, X: Any) -> Any:
        """``inverse_transform`` of :attr:`best_estimator_`."""
        return self._fitted("inverse_transform").inverse_transform(X)

    def score(self, X: Any, y: Any = None) -> float:
        """The search's scorer applied to :attr:`best_estimator_` on ``X, y``."""
        est = self._fitted("score")
        return float(self.scorer_(est, X, y))

    @property
    def classes_(self) -> Any:
        """The classes of :attr:`best_estimator_`."""
        return self._fitted("classes_").classes_


# -- results -------------------------------------------------------------------------------------
def _take(data: Any, idx: np.ndarray) -> Any:
    return None if data is None else _safe_indexing(data, idx)


def _stratifiable(estimator: Any, y: Any) -> bool:
    """Whether a holdout can be stratified on ``y`` (a classifier, each class twice or more)."""
    if y is None or not is_classifier(estimator):
        return False
    from sklearn.utils.multiclass import type_of_target

    if type_of_target(y) not in ("binary", "multiclass"):
        return False
    _, counts = np.unique(np.asarray(y), return_counts=True)
    return bool(counts.min() >= 2)


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return set(a) == set(b) and all(a[k] == b[k] for k in a)


def _results(
    records: Sequence[EvalRecord], k: int, space: Space
) -> tuple[dict[str, Any], dict[str, Any]]:
    rows = [r for r in records if r.split != "holdout"]
    held = [r for r in records if r.split == "holdout"]
    res: dict[str, Any] = {}
    res["params"] = [dict(r.config) for r in rows]
    for name in space.names:
        col = np.ma.MaskedArray(np.empty(len(rows), dtype=object), mask=True)
        for i, r in enumerate(rows):
            if name in r.config:
                col[i] = r.config[name]
        res[f"param_{name}"] = col
    folds = np.full((len(rows), k), np.nan)
    for i, r in enumerate(rows):
        for step, s in zip(r.steps, r.scores, strict=True):
            if 1 <= step <= k:
                folds[i, step - 1] = s
    for j in range(k):
        res[f"split{j}_test_score"] = folds[:, j]
    mean = np.array([r.mean for r in rows], dtype=float)
    std = np.array([np.std(r.scores) if r.scores else np.nan for r in rows], dtype=float)
    n_folds = np.array([len(r.scores) for r in rows], dtype=int)
    res["mean_test_score"] = mean
    res["std_test_score"] = std
    res["rank_test_score"] = _rank(mean, n_folds == k)
    res["n_folds"] = n_folds
    res["stopped"] = np.array([r.stopped for r in rows], dtype=bool)
    res["phase"] = np.array([r.phase for r in rows], dtype=object)
    res["seed"] = np.array([r.seed for r in rows], dtype=object)
    res["trial_number"] = np.array([r.number for r in rows], dtype=int)
    res["mean_fit_time"] = np.array([r.fit_time / max(1, len(r.scores)) for r in rows])
    res["mean_score_time"] = np.array([r.score_time / max(1, len(r.scores)) for r in rows])
    hold = {
        "params": [dict(r.config) for r in held],
        "seed": np.array([r.seed for r in held], dtype=object),
        "phase": np.array([r.phase for r in held], dtype=object),
        "holdout_score": np.array([r.mean for r in held], dtype=float),
    }
    return res, hold


def _rank(mean: np.ndarray, full: np.ndarray) -> np.ndarray:
    """Ranks from 1: rows with every fold first, each group by mean score (ties share)."""
    key = np.where(np.isnan(mean), -np.inf, mean)
    order = sorted(range(len(mean)), key=lambda i: (not full[i], -key[i]))
    ranks = np.empty(len(mean), dtype=np.int32)
    prev: tuple[bool, float] | None = None
    for pos, i in enumerate(order):
        cur = (bool(full[i]), float(key[i]))
        ranks[i] = pos + 1 if cur != prev else ranks[order[pos - 1]]
        prev = cur
    return ranks


def _best_index(results: Mapping[str, Any], best: Mapping[str, Any]) -> int | None:
    matches = [i for i, p in enumerate(results["params"]) if _same(p, best)]
    if not matches:
        return None
    return min(matches, key=lambda i: int(results["rank_test_score"][i]))


# -- nested cross-validation ---------------------------------------------------------------------
@dataclass
class NestedCVResult:
    """The outcome of :func:`nested_cv`.

    Attributes:
        scores: The outer test score of each outer fold (greater is better).
        configs: The configuration the inner search chose in each outer fold.
        inner_scores: The inner cross-validated score of each chosen configuration.
        holdout_scores: The inner holdout estimate of each (``None`` without a holdout).
        splits: The outer (train, test) indices.
        searches: The fitted :class:`TuneSearchCV` of each outer fold.
        seconds: Wall-clock seconds of each outer fold.
    """

    scores: list[float]
    configs: list[dict[str, Any]]
    inner_scores: list[float]
    holdout_scores: list[float | None]
    splits: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)
    searches: list[TuneSearchCV] = field(repr=False)
    seconds: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        """The mean outer score: the unbiased estimate of the whole tuning procedure."""
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        """The standard deviation of the outer scores."""
        return float(np.std(self.scores))

    def __str__(self) -> str:
        lines = [f"nested CV: {self.mean:.4f} +- {self.std:.4f} over {len(self.scores)} folds"]
        for i, (s, c) in enumerate(zip(self.scores, self.configs, strict=True)):
            lines.append(f"  fold {i}: {s:.4f}  {c}")
        return "\n".join(lines)


def nested_cv(
    estimator: Any,
    space: Mapping[str, Any] | Space,
    X: Any,
    y: Any = None,
    *,
    outer_cv: Any = 5,
    inner_cv: Any = 3,
    budget: float | str | None = None,
    scoring: Any = None,
    seed: int = 0,
    holdout: float | None = 0.2,
    n_seeds: int | None = None,
    n_finalists: int | None = None,
    shares: Sequence[float] | None = None,
    n_jobs: int | None = None,
    tune_options: Mapping[str, Any] | None = None,
    groups: Any = None,
) -> NestedCVResult:
    """Estimate how well the whole tuning procedure generalizes, by nested cross-validation.

    For each outer fold, a :class:`TuneSearchCV` (the budgeted pipeline over ``inner_cv``
    folds, with its own holdout carved from the outer training part) is fitted on the outer
    training part only, refitted there, and scored on the outer test part, which no part of
    the search ever sees. The mean of the outer scores is an unbiased estimate of the score of
    "tune, then refit"; the spread of the chosen configurations shows how stable the tuning is.

    Args:
        estimator: The estimator or pipeline to tune.
        space: As in :class:`TuneSearchCV`.
        X: Data.
        y: Targets.
        outer_cv: Outer folds (an int is stratified for classifiers, not shuffled).
        inner_cv: Inner folds, for each search: an int, a splitter (it splits each outer
            training part), or fixed folds (an iterable of (train, test) index pairs or a
            ``PredefinedSplit``) that index the rows of ``X``: each search keeps the rows of
            its outer training part, renumbered (a fold left with no train or no test row is
            an error).
        budget: Fold fits per inner search (see :class:`TuneSearchCV`).
        scoring: The scorer, for the inner searches and the outer scores.
        seed: Outer fold ``i`` runs its search with seed ``seed + i`` (an int >= 0).
        holdout: The inner searches' holdout fraction (``None``: none).
        n_seeds: Seeds of the chosen finalist in each inner final validation.
        n_finalists: Finalists of each inner final validation.
        shares: Phase shares of each inner pipeline.
        n_jobs: Inner folds fitted in parallel.
        tune_options: More options for :func:`tunecraft.strategy.tune`.
        groups: Group labels, passed to a group-aware ``outer_cv`` and to each inner search.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> from sklearn.neighbors import KNeighborsClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> result = nested_cv(KNeighborsClassifier(), {"n_neighbors": "int(1, 30)"}, X, y,
        ...                    outer_cv=3, inner_cv=3, budget="10 trials")
        >>> 0.8 < result.mean <= 1.0, len(result.configs)
        (True, 3)
    """
    owner = "nested_cv"
    check_int(seed, "seed", owner, low=0)
    if isinstance(outer_cv, numbers.Integral) and not isinstance(outer_cv, bool):
        check_int(outer_cv, "outer_cv", owner, low=2)
    if isinstance(inner_cv, numbers.Integral) and not isinstance(inner_cv, bool):
        check_int(inner_cv, "inner_cv", owner, low=2)
    fixed = _fixed_splits(inner_cv)
    template = TuneSearchCV(
        estimator,
        space,
        budget=budget,
        cv=None if fixed else inner_cv,  # fixed folds: each outer fold's own, below
        scoring=scoring,
        holdout=holdout,
        seed=seed,
        n_seeds=n_seeds,
        n_finalists=n_finalists,
        shares=shares,
        n_jobs=n_jobs,
        tune_options=tune_options,
    )
    try:
        template._validate()
    except (ValueError, TypeError) as exc:
        raise type(exc)(str(exc).replace(_OWNER, owner, 1)) from None
    try:
        outer = check_cv(outer_cv, y, classifier=is_classifier(estimator))
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(
            f"The 'outer_cv' parameter of {owner} must be an int >= 2 or a splitter: {exc}"
        ) from None
    X, y, groups = indexable(X, y, groups)
    n = _n_samples(X)
    inner_folds = (
        _split_fixed(inner_cv, X, y, groups, estimator, "inner_cv", owner) if fixed else None
    )
    splits = [(np.asarray(tr), np.asarray(te)) for tr, te in outer.split(X, y, groups)]
    result = NestedCVResult([], [], [], [], splits, [])
    for i, (train, test) in enumerate(splits):
        start = time.perf_counter()
        search = clone(template).set_params(seed=seed + i)
        if inner_folds is not None:
            search.set_params(
                cv=_remap_folds(
                    inner_folds,
                    train,
                    n,
                    param="inner_cv",
                    owner=owner,
                    where=f"in the training part of outer fold {i}",
                    remedy="give an int or a splitter, which split each outer training part",
                )
            )
        try:
            search.fit(_take(X, train), _take(y, train), groups=_take(groups, train))
        except InvalidParameterError as exc:  # the inner folds, as the user named them
            if f"'cv' parameter of {_OWNER}" not in str(exc):
                raise
            message = str(exc).replace(
                f"'cv' parameter of {_OWNER}", f"'inner_cv' parameter of {owner}"
            )
            raise InvalidParameterError(message) from None
        result.scores.append(float(search.score(_take(X, test), _take(y, test))))
        result.configs.append(dict(search.best_params_))
        result.inner_scores.append(float(search.best_score_))
        result.holdout_scores.append(search.holdout_score_)
        result.searches.append(search)
        result.seconds.append(time.perf_counter() - start)
    return result
