"""TuneSearchCV as a scikit-learn estimator, and nested cross-validation."""

# ruff: noqa: N803, N806  (X: the scikit-learn naming of data matrices)

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier
from sklearn.datasets import load_iris
from sklearn.exceptions import FitFailedWarning, NotFittedError
from sklearn.model_selection import KFold, PredefinedSplit, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

import tunecraft as tc
from tunecraft.integrations.sklearn import NestedCVResult, TuneSearchCV, nested_cv

SPACE = {"n_neighbors": tc.integer(1, 25), "weights": tc.choice(["uniform", "distance"])}
BUDGET = 45  # fold fits


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread: the estimators here are tiny, and threads only contend."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _search(**kwargs: Any) -> TuneSearchCV:
    kwargs.setdefault("budget", BUDGET)
    kwargs.setdefault("cv", 3)
    kwargs.setdefault("seed", 0)
    return TuneSearchCV(KNeighborsClassifier(), SPACE, **kwargs)


@pytest.fixture(scope="module")
def fitted(iris: Any) -> TuneSearchCV:
    return _search().fit(*iris)


class IdSpy(ClassifierMixin, BaseEstimator):
    """Column 0 holds row ids; records which rows each fit and predict saw."""

    log: ClassVar[list[tuple[str, frozenset[int]]]] = []

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def fit(self, X: np.ndarray, y: np.ndarray) -> IdSpy:
        IdSpy.log.append(("fit", frozenset(X[:, 0].astype(int).tolist())))
        self.classes_ = np.unique(y)
        self.mean_ = np.array([X[y == c, 1:].mean(axis=0) for c in self.classes_])
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        IdSpy.log.append(("predict", frozenset(X[:, 0].astype(int).tolist())))
        d = ((X[:, None, 1:] - self.mean_[None]) ** 2).sum(-1) + self.shift * np.arange(
            len(self.classes_)
        )
        return self.classes_[np.argmin(d, axis=1)]


def _with_ids(X: np.ndarray) -> np.ndarray:
    return np.column_stack([np.arange(len(X)), X])


class SeedSpy(ClassifierMixin, BaseEstimator):
    """A nearest-centroid classifier that records the (shift, random_state) of each fit."""

    log: ClassVar[list[tuple[float, Any]]] = []

    def __init__(self, shift: float = 0.0, random_state: Any = None) -> None:
        self.shift = shift
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> SeedSpy:
        SeedSpy.log.append((self.shift, self.random_state))
        if self.shift > 0.5:
            raise ValueError("shift too large")
        self.classes_ = np.unique(y)
        self.mean_ = np.array([X[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        d = ((X[:, None] - self.mean_[None]) ** 2).sum(-1) + self.shift * np.arange(
            len(self.classes_)
        )
        return self.classes_[np.argmin(d, axis=1)]


# -- the estimator -------------------------------------------------------------------------------
def test_fit_predict_score_and_attributes(fitted: TuneSearchCV, iris: Any) -> None:
    X, y = iris
    s = fitted
    assert set(s.best_params_) == set(SPACE)
    assert 1 <= s.best_params_["n_neighbors"] <= 25
    assert s.best_estimator_.get_params()["n_neighbors"] == s.best_params_["n_neighbors"]
    assert s.predict(X).shape == (150,)
    np.testing.assert_allclose(s.predict_proba(X), s.best_estimator_.predict_proba(X))
    assert s.score(X, y) == pytest.approx(s.best_estimator_.score(X, y))
    np.testing.assert_array_equal(s.classes_, [0, 1, 2])
    assert s.n_splits_ == 3 and s.refit_time_ >= 0 and s.n_features_in_ == 4
    assert 0.8 < s.holdout_score_ <= 1.0
    assert s.holdout_score_ == pytest.approx(s.search_result_.score)
    assert s.search_result_.best_config == s.best_params_
    assert set(s.holdout_results_["phase"]) == {"validate"}
    best = [
        v
        for p, v in zip(
            s.holdout_results_["params"], s.holdout_results_["holdout_score"], strict=True
        )
        if p == s.best_params_
    ]
    assert s.holdout_score_ == pytest.approx(np.mean(best))  # the mean over the seeds
    assert is_classifier(s)


def test_a_holdout_fit_costs_one_fold_and_does_not_choose(fitted: TuneSearchCV) -> None:
    result = fitted.search_result_
    plan = result.plan
    assert plan.validation_run_cost == 1  # one fit on the search data, not 3 fold fits
    n_held = len(fitted.holdout_results_["holdout_score"])
    assert result.spent["validate"].units == pytest.approx(n_held * 1)
    # The fold fits of the search plus one per holdout fit stay within the budget.
    search_fits = int(np.nansum(fitted.cv_results_["n_folds"]))
    assert search_fits + n_held <= BUDGET
    assert sum(sp.units for sp in result.spent.values()) <= BUDGET
    # The holdout only scores the choice (its runs report no cross-validation metric).
    assert result.selected_by == "search" and not result.optimistic


def test_cv_results_are_consistent(fitted: TuneSearchCV) -> None:
    r = fitted.cv_results_
    n = len(r["params"])
    assert n >= 3
    for key in (
        "mean_test_score",
        "std_test_score",
        "rank_test_score",
        "param_n_neighbors",
        "param_weights",
        "split0_test_score",
        "split2_test_score",
        "n_folds",
        "phase",
        "mean_fit_time",
    ):
        assert len(r[key]) == n, key
    folds = np.column_stack([r[f"split{k}_test_score"] for k in range(3)])
    np.testing.assert_allclose(np.nanmean(folds, axis=1), r["mean_test_score"])
    np.testing.assert_array_equal((~np.isnan(folds)).sum(axis=1), r["n_folds"])
    assert [p["n_neighbors"] for p in r["params"]] == list(r["param_n_neighbors"])
    assert r["rank_test_score"].min() == 1
    best = fitted.best_index_
    assert r["params"][best] == fitted.best_params_
    assert fitted.best_score_ == r["mean_test_score"][best]
    full = r["n_folds"] == 3  # rows cross-validated on every fold rank first
    group = full if full.any() else np.ones(n, dtype=bool)
    top = r["mean_test_score"][group].max()
    assert set(r["rank_test_score"][group & (r["mean_test_score"] == top)]) == {1}
    if full.any() and not full.all():
        assert r["rank_test_score"][full].max() < r["rank_test_score"][~full].min()
    spent = int(r["n_folds"].sum())
    assert spent <= BUDGET  # fold fits of the search stay in the budget


def test_space_in_notation_and_pipeline_parameters(iris: Any) -> None:
    X, y = iris
    pipe = make_pipeline(StandardScaler(), KNeighborsClassifier())
    s = TuneSearchCV(
        pipe, {"kneighborsclassifier__n_neighbors": "int(1, 20)"}, budget=30, cv=3, seed=0
    ).fit(X, y)
    assert 1 <= s.best_params_["kneighborsclassifier__n_neighbors"] <= 20
    assert s.score(X, y) > 0.8


def test_same_seed_same_search(iris: Any, fitted: TuneSearchCV) -> None:
    again = _search().fit(*iris)
    assert again.best_params_ == fitted.best_params_
    assert again.cv_results_["params"] == fitted.cv_results_["params"]
    np.testing.assert_array_equal(
        again.cv_results_["mean_test_score"], fitted.cv_results_["mean_test_score"]
    )


def test_the_holdout_never_reaches_the_search(iris: Any) -> None:
    X, y = iris
    IdSpy.log.clear()
    s = TuneSearchCV(
        IdSpy(), {"shift": tc.uniform(0, 1)}, budget=30, cv=3, holdout=0.2, seed=0
    ).fit(_with_ids(X), y)
    refit = IdSpy.log.pop(-1)
    assert refit == ("fit", frozenset(range(150)))
    fits = [ids for kind, ids in IdSpy.log if kind == "fit"]
    search_rows = frozenset().union(*fits)
    held_rows = frozenset(range(150)) - search_rows
    assert len(held_rows) == 30
    predicted_held = [ids for kind, ids in IdSpy.log if kind == "predict" and ids == held_rows]
    assert predicted_held  # the final validation scored on the holdout...
    assert all(not (ids & held_rows) for ids in fits)  # ...which no fit ever saw
    assert len(s.holdout_results_["holdout_score"]) == len(predicted_held)


def _iris_folds(y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(StratifiedKFold(3, shuffle=True, random_state=0).split(np.zeros(len(y)), y))


@pytest.mark.parametrize("kind", ["pairs", "predefined"])
@pytest.mark.parametrize("holdout", [0.2, None])
def test_fixed_folds_index_the_data_given_to_fit(iris: Any, kind: str, holdout: Any) -> None:
    X, y = iris
    folds = _iris_folds(y)
    test_fold = np.empty(150, dtype=int)
    for k, (_, test) in enumerate(folds):
        test_fold[test] = k
    cv = folds if kind == "pairs" else PredefinedSplit(test_fold)
    IdSpy.log.clear()
    s = TuneSearchCV(
        IdSpy(), {"shift": tc.uniform(0, 1)}, budget=20, cv=cv, holdout=holdout, seed=0
    ).fit(_with_ids(X), y)
    assert s.n_splits_ == 3
    everything = frozenset(range(150))
    assert IdSpy.log.pop(-1) == ("fit", everything)  # the refit
    fits = {ids for kind_, ids in IdSpy.log if kind_ == "fit"}
    held = everything - frozenset().union(*fits)
    assert len(held) == (30 if holdout else 0)
    # Each fold fit the user's training rows, and scored the user's test rows, less the holdout.
    trains = {frozenset(tr.tolist()) - held for tr, _ in folds}
    tests = {frozenset(te.tolist()) - held for _, te in folds}
    assert fits - {everything - held} == trains  # (the holdout phase fits all search rows)
    predicted = {ids for kind_, ids in IdSpy.log if kind_ == "predict"}
    assert predicted - {held} == tests


def test_fixed_folds_that_the_holdout_empties_are_an_error(iris: Any) -> None:
    X, y = iris
    IdSpy.log.clear()
    probe = TuneSearchCV(IdSpy(), {"shift": tc.uniform(0, 1)}, budget=20, cv=3, seed=0)
    probe.fit(_with_ids(X), y)
    fits = [ids for kind, ids in IdSpy.log[:-1] if kind == "fit"]
    held = np.array(sorted(frozenset(range(150)) - frozenset().union(*fits)))
    rest = np.setdiff1d(np.arange(150), held)
    folds = [(rest, held), (held, rest)]  # the same seed holds out the same rows
    s = TuneSearchCV(IdSpy(), {"shift": tc.uniform(0, 1)}, budget=20, cv=folds, seed=0)
    with pytest.raises(
        ValueError, match="'cv' parameter of TuneSearchCV gives fold 0 no test"
    ) as e:
        s.fit(_with_ids(X), y)
    assert "holdout=None" in str(e.value) and "\n" not in str(e.value)
    assert s.set_params(holdout=None).fit(_with_ids(X), y).n_splits_ == 2


def test_a_splitter_with_folds_beyond_the_search_rows_is_an_error(iris: Any) -> None:
    class Fixed:
        def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
            yield np.arange(75, 150), np.arange(75)  # all of the caller's 150 rows
            yield np.arange(75), np.arange(75, 150)

        def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
            return 2

    s = _search(cv=Fixed(), budget=12)
    with pytest.raises(ValueError, match="'cv' parameter of TuneSearchCV must give") as e:
        s.fit(*iris)
    assert "pass holdout=None" in str(e.value) and "\n" not in str(e.value)
    assert s.set_params(holdout=None).fit(*iris).n_splits_ == 2


def test_a_new_fit_leaves_nothing_of_the_previous_one(iris: Any) -> None:
    pd = pytest.importorskip("pandas")
    X, y = iris
    s = _search(budget=20).fit(pd.DataFrame(X, columns=["a", "b", "c", "d"]), y)
    assert hasattr(s, "feature_names_in_")
    s.fit(X[:, :3], y)
    assert not hasattr(s, "feature_names_in_") and s.n_features_in_ == 3
    s.set_params(refit=False).fit(X, y)
    assert s.best_params_
    for attr in ("best_estimator_", "refit_time_", "n_features_in_"):
        assert not hasattr(s, attr), attr
    assert not hasattr(s, "predict")
    with pytest.raises(AttributeError, match="refit=False"):
        s.score(X, y)


def test_the_refit_uses_the_seed_its_row_was_evaluated_with(iris: Any) -> None:
    X, y = iris
    SeedSpy.log.clear()
    space = {"shift": tc.uniform(0, 0.5)}
    s = TuneSearchCV(SeedSpy(random_state=42), space, budget=20, cv=3, seed=0).fit(X, y)
    refit = SeedSpy.log.pop(-1)
    assert {rs for _, rs in SeedSpy.log} <= set(s.cv_results_["seed"]) | set(
        s.holdout_results_["seed"]
    )
    assert 42 not in {rs for _, rs in SeedSpy.log}  # every evaluation ran a trial's seed...
    seed = s.cv_results_["seed"][s.best_index_]
    assert refit == (s.best_params_["shift"], seed)  # ...and so does the refit: its own
    assert s.best_estimator_.random_state == seed and refit in SeedSpy.log
    # A random_state in the space is the config's, so the search and the refit all use it.
    SeedSpy.log.clear()
    fixed = {**space, "random_state": tc.choice([42])}
    s = TuneSearchCV(SeedSpy(), fixed, budget=20, cv=3, seed=0).fit(X, y)
    assert {rs for _, rs in SeedSpy.log} == {42} and s.best_estimator_.random_state == 42


def test_failed_fits_issue_one_fit_failed_warning(iris: Any) -> None:
    X, y = iris
    s = TuneSearchCV(SeedSpy(), {"shift": tc.uniform(0, 1)}, budget=24, cv=3, seed=0)
    with pytest.warns(FitFailedWarning, match="ValueError: shift too large") as record:
        s.fit(X, y)
    caught = [w for w in record if issubclass(w.category, FitFailedWarning)]
    assert len(caught) == 1 and caught[0].filename == __file__  # once, at the caller's fit
    n_nan = int(np.isnan(s.cv_results_["mean_test_score"]).sum())
    n_nan += int(np.isnan(s.holdout_results_["holdout_score"]).sum())
    assert n_nan > 0 and str(caught[0].message).startswith(f"{n_nan} of the ")
    assert s.best_params_["shift"] <= 0.5 and s.score(X, y) > 0.8
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitFailedWarning)  # nothing failed: no warning
        TuneSearchCV(SeedSpy(), {"shift": tc.uniform(0, 0.5)}, budget=12, cv=3).fit(X, y)
        # every fit failed: the estimator's own error, not a warning
        bad = TuneSearchCV(SeedSpy(), {"shift": tc.uniform(0.6, 1)}, budget=12, cv=3)
        with pytest.raises(ValueError, match="shift too large"):
            bad.fit(X, y)


# -- scikit-learn conventions --------------------------------------------------------------------
def test_clone_get_params_set_params_round_trip() -> None:
    s = _search(holdout=0.3, n_seeds=2)
    params = s.get_params(deep=False)
    c = clone(s)
    assert c.get_params(deep=False).keys() == params.keys()
    assert c.space == SPACE and c.holdout == 0.3 and c.n_seeds == 2
    assert c.set_params(budget=10, estimator__n_neighbors=3) is c
    assert c.budget == 10 and c.estimator.n_neighbors == 3
    assert s.budget == BUDGET and s.estimator.n_neighbors == 5
    assert "estimator__n_neighbors" in s.get_params(deep=True)


def test_no_work_and_no_validation_in_init() -> None:
    s = TuneSearchCV(KNeighborsClassifier(), {"nope": tc.uniform(0, 1)}, holdout=2.0)
    assert s.holdout == 2.0  # accepted as given; fit validates
    assert not [k for k in vars(s) if k.endswith("_")]


def test_not_fitted_errors(iris: Any) -> None:
    s = _search()
    for call in (lambda: s.predict(iris[0]), lambda: s.score(*iris), lambda: s.classes_):
        with pytest.raises(NotFittedError):
            call()


def test_in_a_pipeline_and_in_cross_val_score(iris: Any) -> None:
    X, y = iris
    pipe = make_pipeline(StandardScaler(), _search(budget=30)).fit(X, y)
    assert pipe.score(X, y) > 0.8
    scores = cross_val_score(_search(budget=30), X, y, cv=KFold(2, shuffle=True, random_state=0))
    assert scores.shape == (2,) and np.all(scores > 0.8)


def test_refit_false_keeps_no_estimator(iris: Any) -> None:
    s = _search(refit=False, budget=30).fit(*iris)
    assert s.best_params_ and not hasattr(s, "best_estimator_")
    assert not hasattr(s, "predict")


def test_pickle_round_trip(fitted: TuneSearchCV, iris: Any) -> None:
    back = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(back.predict(iris[0]), fitted.predict(iris[0]))


@parametrize_with_checks(
    [TuneSearchCV(KNeighborsClassifier(), {"n_neighbors": tc.integer(1, 3)}, budget=12, cv=2)]
)
def test_scikit_learn_estimator_checks(estimator: Any, check: Any) -> None:
    """Every check of scikit-learn's ``check_estimator`` (errors come from the estimator)."""
    check(estimator)


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"holdout": 1.5}, "'holdout' parameter of TuneSearchCV"),
        ({"holdout": True}, "'holdout' parameter of TuneSearchCV"),
        ({"budget": -1}, "budget"),
        ({"space": {"nope": tc.uniform(0, 1)}}, "'nope' is not a parameter"),
        ({"space": ["n_neighbors"]}, "'space' parameter of TuneSearchCV"),
        ({"space": {"n_neighbors": "int(5, 1)"}}, "'space' parameter of TuneSearchCV"),
        ({"scoring": "no-such-metric"}, "'scoring' parameter of TuneSearchCV"),
        ({"refit": "yes"}, "'refit' parameter of TuneSearchCV"),
        ({"seed": -1}, "'seed' parameter of TuneSearchCV"),
        ({"n_seeds": 0}, "'n_seeds' parameter of TuneSearchCV"),
        ({"tune_options": {"budget": 3}}, "'tune_options' parameter of TuneSearchCV"),
        ({"tune_options": [1]}, "'tune_options' parameter of TuneSearchCV"),
        ({"cv": 1}, "'cv' parameter of TuneSearchCV"),
        ({"n_jobs": 0}, "'n_jobs' parameter of TuneSearchCV"),
        ({"budget": [3]}, "'budget' parameter of TuneSearchCV"),
        ({"budget": "3 parsecs"}, "'budget' parameter"),
    ],
)
def test_bad_input_is_one_line_naming_the_parameter(
    iris: Any, kwargs: dict[str, Any], match: str
) -> None:
    space = kwargs.pop("space", SPACE)
    s = TuneSearchCV(KNeighborsClassifier(), space, **{"budget": 12, "cv": 3, **kwargs})
    with pytest.raises((ValueError, TypeError), match=match) as info:
        s.fit(*iris)
    assert "\n" not in str(info.value)


# -- nested cross-validation ---------------------------------------------------------------------
def test_nested_cv_keeps_outer_test_data_out_of_the_inner_search(iris: Any) -> None:
    X, y = iris
    IdSpy.log.clear()
    result = nested_cv(
        IdSpy(),
        {"shift": tc.uniform(0, 1)},
        _with_ids(X),
        y,
        outer_cv=KFold(3, shuffle=True, random_state=0),
        inner_cv=2,
        budget=20,
    )
    assert isinstance(result, NestedCVResult) and len(result.scores) == 3
    log = list(IdSpy.log)
    for train, test in result.splits:
        train_ids, test_ids = frozenset(train.tolist()), frozenset(test.tolist())
        end = log.index(("fit", train_ids))  # the refit on the outer training part ends it
        inner, log = log[:end], log[end + 1 :]
        assert inner and all(ids <= train_ids for _, ids in inner)
        assert log[0] == ("predict", test_ids)  # then, and only then, the outer test part
        log = log[1:]
    assert log == []


def test_nested_cv_is_deterministic_for_a_seed(iris: Any) -> None:
    X, y = iris
    kwargs: dict[str, Any] = {"outer_cv": 3, "inner_cv": 2, "budget": 20, "seed": 1}
    a = nested_cv(KNeighborsClassifier(), SPACE, X, y, **kwargs)
    b = nested_cv(KNeighborsClassifier(), SPACE, X, y, **kwargs)
    assert a.scores == b.scores and a.configs == b.configs
    assert a.mean == pytest.approx(np.mean(a.scores)) and a.std == pytest.approx(np.std(a.scores))
    assert 0.8 < a.mean <= 1.0
    assert len(a.configs) == 3 and all(set(c) == set(SPACE) for c in a.configs)
    assert "fold 2" in str(a)


def test_nested_cv_maps_fixed_inner_folds_into_each_outer_training_part(iris: Any) -> None:
    X, y = iris
    inner = _iris_folds(y)
    outer = list(KFold(3, shuffle=True, random_state=1).split(X))
    IdSpy.log.clear()
    kwargs: dict[str, Any] = {"outer_cv": outer, "inner_cv": inner, "budget": 20}
    result = nested_cv(
        IdSpy(), {"shift": tc.uniform(0, 1)}, _with_ids(X), y, holdout=None, **kwargs
    )
    log = list(IdSpy.log)
    for train, _ in result.splits:
        train_ids = frozenset(train.tolist())
        end = log.index(("fit", train_ids))  # the refit ends the inner search
        fits = {ids for kind, ids in log[:end] if kind == "fit"}
        assert fits == {frozenset(tr.tolist()) & train_ids for tr, _ in inner}
        log = log[end + 2 :]  # the refit, and the outer test part's predict
    assert log == []


def test_nested_cv_fixed_inner_folds_that_an_outer_fold_empties_are_an_error(iris: Any) -> None:
    X, y = iris
    inner = [(np.arange(10, 150), np.arange(10)), (np.arange(10), np.arange(10, 150))]
    with pytest.raises(ValueError, match="'inner_cv' parameter of nested_cv gives fold 0 no test"):
        nested_cv(KNeighborsClassifier(), SPACE, X, y, outer_cv=KFold(3), inner_cv=inner)


def test_nested_cv_bad_input(iris: Any) -> None:
    with pytest.raises(ValueError, match="'outer_cv' parameter of nested_cv"):
        nested_cv(KNeighborsClassifier(), SPACE, *iris, outer_cv=1)
    with pytest.raises(ValueError, match="'holdout' parameter of nested_cv"):
        nested_cv(KNeighborsClassifier(), SPACE, *iris, holdout=3.0)


# -- regressors, groups, data frames -------------------------------------------------------------
def test_a_regressor_with_a_loss_scorer() -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    s = TuneSearchCV(
        Ridge(),
        {"alpha": "log-uniform(1e-4, 100)"},
        budget=30,
        cv=3,
        scoring="neg_mean_squared_error",
        seed=0,
    ).fit(X, y)
    assert not is_classifier(s) and s.predict(X).shape == (len(y),)
    assert s.best_score_ < 0 and s.holdout_score_ < 0  # greater is better: negated MSE
    assert s.score(X, y) == pytest.approx(-np.mean((s.predict(X) - y) ** 2))
    mse_best = -s.best_score_
    assert mse_best < np.var(y)  # better than predicting the mean


def test_groups_keep_whole_groups_out_of_the_search(iris: Any) -> None:
    from sklearn.model_selection import GroupKFold

    X, y = iris
    groups = np.arange(150) // 10  # 15 groups of 10 rows
    IdSpy.log.clear()
    TuneSearchCV(IdSpy(), {"shift": tc.uniform(0, 1)}, budget=20, cv=GroupKFold(3), seed=0).fit(
        _with_ids(X), y, groups=groups
    )
    fits = [ids for kind, ids in IdSpy.log[:-1] if kind == "fit"]
    held = frozenset(range(150)) - frozenset().union(*fits)
    assert held and {i // 10 for i in held}.isdisjoint({i // 10 for f in fits for i in f})
    for ids in fits:  # every fit leaves whole groups out
        left_out = frozenset(range(150)) - held - ids
        assert {i // 10 for i in left_out}.isdisjoint({i // 10 for i in ids})


def test_data_frames_keep_their_column_names(iris: Any) -> None:
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    s = _search(budget=20).fit(frame, pd.Series(y))
    assert list(s.feature_names_in_) == ["a", "b", "c", "d"]
    assert s.predict(frame.iloc[:5]).shape == (5,)


def test_a_stored_pipeline_is_read_back_not_rerun(iris: Any, tmp_path: Any) -> None:
    X, y = iris
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    kwargs: dict[str, Any] = {"budget": 20, "cv": 3, "seed": 0, "storage": url, "name": "spy"}
    IdSpy.log.clear()
    first = TuneSearchCV(IdSpy(), {"shift": tc.uniform(0, 1)}, **kwargs).fit(_with_ids(X), y)
    n_first = sum(kind == "fit" for kind, _ in IdSpy.log)
    IdSpy.log.clear()
    again = TuneSearchCV(IdSpy(), {"shift": tc.uniform(0, 1)}, **kwargs).fit(_with_ids(X), y)
    assert [kind for kind, _ in IdSpy.log] == ["fit"] and n_first > 1  # only the refit ran
    assert again.best_params_ == first.best_params_
    assert again.cv_results_["params"] == first.cv_results_["params"]
    np.testing.assert_array_equal(
        again.cv_results_["mean_test_score"], first.cv_results_["mean_test_score"]
    )
