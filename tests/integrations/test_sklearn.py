"""scikit-learn objectives: folds and iterations as fidelity, the holdout split, seeding."""

# ruff: noqa: N803, N806  (X: the scikit-learn naming of data matrices)

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import tunecraft as tc
from tunecraft.integrations.sklearn import cv_objective, iterative_objective
from tunecraft.schedulers import ASHAScheduler, MedianScheduler


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread: the estimators here are tiny, and threads only contend."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:300]
    return StandardScaler().fit_transform(X[idx]), y[idx]


class Spy(ClassifierMixin, BaseEstimator):
    """Predicts the majority class of its training data; records what it was given."""

    log: ClassVar[list[tuple[str, int, Any]]] = []

    def __init__(self, bias: float = 0.0, random_state: int | None = None) -> None:
        self.bias = bias
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> Spy:
        Spy.log.append(("fit", len(X), self.random_state))
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        Spy.log.append(("predict", len(X), self.random_state))
        return np.full(len(X), self.majority_)


class _Trial:
    """A trial of the budgeted pipeline as the objective sees it (its protocol, nothing more)."""

    def __init__(self, config: dict[str, Any], *, split: str, seed: int | None = None) -> None:
        self.config, self.split, self.seed = config, split, seed
        self.phase, self.number, self.budget = "validate", 0, None
        self.reports: list[tuple[float, int]] = []
        self.train: list[float] = []

    def report(self, value: float, step: int, *, train: float | None = None) -> None:
        self.reports.append((value, step))
        if train is not None:
            self.train.append(train)

    def should_stop(self) -> bool:
        return False


# -- cv_objective --------------------------------------------------------------------------------
def test_median_scheduler_stops_bad_configs_after_few_folds(cancer: Any) -> None:
    X, y = cancer
    objective = cv_objective(LogisticRegression(), X, y, cv=5)
    study = tc.Study(
        {"C": tc.loguniform(1e-6, 10)},
        direction="maximize",
        scheduler=MedianScheduler(n_startup_trials=3),
    )
    good, bad = [0.3, 1.0, 3.0, 0.5], [1e-6, 3e-6, 1e-5]
    for c in good[:3] + bad + good[3:]:
        study.enqueue({"C": c})
    study.optimize(objective, n_trials=len(good) + len(bad))
    folds = {rec.config["C"]: len(rec.scores) for rec in objective.records}
    assert all(folds[c] == 5 for c in good)
    assert all(folds[c] < 5 for c in bad)
    states = {t.config["C"]: t.state for t in study.trials}
    assert all(states[c] is tc.TrialState.PRUNED for c in bad)
    assert all(states[c] is tc.TrialState.COMPLETE for c in good)
    full = study.trials[0]
    assert sorted(full.intermediate) == [1, 2, 3, 4, 5]
    assert full.value == pytest.approx(objective.records[0].mean)
    assert full.user_attrs["sklearn.scores"]["scores"] == objective.records[0].scores


def test_paused_cv_trials_resume_at_the_next_fold(cancer: Any) -> None:
    X, y = cancer
    objective = cv_objective(KNeighborsClassifier(), X, y, cv=4)
    study = tc.Study(
        {"n_neighbors": tc.integer(1, 150)},
        direction="maximize",
        scheduler=ASHAScheduler(max_resource=4, reduction_factor=2, variant="promotion"),
        sampler=tc.make_sampler("random", seed=1),
    )
    study.optimize(objective, n_trials=14)
    by_number: dict[int, list[Any]] = {}
    for r in objective.records:
        by_number.setdefault(r.number, []).append(r)
    resumed = {n: runs for n, runs in by_number.items() if len(runs) > 1}
    assert resumed, "promotion ASHA resumed nothing"
    for runs in resumed.values():
        for before, after in itertools.pairwise(runs):
            assert after.scores[: len(before.scores)] == before.scores  # carried over
            assert len(after.scores) > len(before.scores)  # and went on with the next folds
    for t in study.trials:
        last = by_number[t.number][-1]
        assert sorted(t.intermediate) == list(range(1, len(last.scores) + 1))
        if t.state is tc.TrialState.COMPLETE:
            assert t.value == pytest.approx(np.mean(last.scores)) and len(last.scores) == 4


def test_cv_objective_matches_cross_val_score_and_pipeline_params(cancer: Any) -> None:
    from sklearn.model_selection import cross_val_score

    X, y = cancer
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    objective = cv_objective(pipe, X, y, cv=4, scoring="roc_auc")
    study = tc.Study({"logisticregression__C": tc.loguniform(1e-3, 1)}, direction="maximize")
    study.enqueue({"logisticregression__C": 0.05})
    study.optimize(objective, n_trials=1)
    expected = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression(C=0.05)), X, y, cv=4, scoring="roc_auc"
    )
    assert study.trials[0].value == pytest.approx(expected.mean())
    assert objective.records[0].scores == pytest.approx(list(expected))
    assert pipe.get_params()["logisticregression__C"] == 1.0  # the given estimator is untouched


def test_direction_follows_the_study(cancer: Any) -> None:
    X, y = cancer
    objective = cv_objective(LogisticRegression(), X, y, cv=3, scoring="neg_log_loss")
    maximize = tc.Study({"C": tc.loguniform(0.1, 1)}, direction="maximize")
    minimize = tc.Study({"C": tc.loguniform(0.1, 1)}, direction="minimize")
    for study in (maximize, minimize):
        study.enqueue({"C": 0.5})
        study.optimize(objective, n_trials=1)
    assert maximize.best_value < 0 < minimize.best_value  # neg log loss; log loss
    assert minimize.best_value == pytest.approx(-maximize.best_value)
    assert all(v > 0 for v in minimize.trials[0].intermediate.values())


def test_budget_caps_the_folds(cancer: Any) -> None:
    X, y = cancer
    objective = cv_objective(LogisticRegression(), X, y, cv=5)
    trial = _Trial({"C": 1.0}, split="validation", seed=3)
    trial.budget = 2
    value = objective(trial)
    assert [step for _, step in trial.reports] == [1, 2]
    assert value == pytest.approx(np.mean(objective.records[0].scores))
    assert objective.records[0].seed == 3


def test_holdout_split_fits_all_data_with_the_seed_and_scores_the_holdout() -> None:
    X, y = np.arange(60.0).reshape(30, 2), np.array([0, 1, 1] * 10)
    X_h, y_h = np.zeros((7, 2)), np.ones(7, dtype=int)
    Spy.log.clear()
    objective = cv_objective(Spy(), X, y, cv=3, holdout=(X_h, y_h))
    value = objective(_Trial({"bias": 0.5}, split="holdout", seed=11))
    assert Spy.log == [("fit", 30, 11), ("predict", 7, 11)]
    assert value == 1.0  # majority class 1 on an all-ones holdout
    assert objective.records[-1].split == "holdout"
    Spy.log.clear()
    objective(_Trial({"bias": 0.5, "random_state": 4}, split="holdout", seed=11))
    assert Spy.log[0] == ("fit", 30, 4)  # the config wins over the seed


def test_holdout_split_without_holdout_data_falls_back_to_cv(caplog: Any) -> None:
    X, y = np.arange(60.0).reshape(30, 2), np.array([0, 1, 1] * 10)
    Spy.log.clear()
    objective = cv_objective(Spy(), X, y, cv=3)
    with caplog.at_level("WARNING", logger="tunecraft"):
        objective(_Trial({}, split="holdout", seed=1))
    assert [e[1] for e in Spy.log if e[0] == "fit"] == [20, 20, 20]
    assert "optimistic" in caplog.text


def test_fit_params_are_split_with_the_folds() -> None:
    X, y = np.arange(40.0).reshape(20, 2), np.array([0, 1] * 10)
    seen: list[int] = []

    class Weighted(LogisticRegression):
        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
            seen.append(len(sample_weight))
            return super().fit(X, y, sample_weight=sample_weight)

    objective = cv_objective(
        Weighted(), X, y, cv=KFold(4), fit_params={"sample_weight": np.ones(20)}
    )
    objective(_Trial({}, split="validation"))
    assert seen == [15, 15, 15, 15]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cv": 1}, "'cv' parameter of cv_objective"),
        ({"scoring": "no-such-metric"}, "'scoring' parameter of cv_objective"),
        ({"scoring": 3}, "'scoring' parameter of cv_objective"),
        ({"holdout": np.zeros(3)}, "'holdout' parameter of cv_objective"),
        ({"direction": "up"}, "'direction' parameter of cv_objective"),
        ({"n_jobs": 0}, "'n_jobs' parameter of cv_objective"),
        ({"fit_params": [1]}, "'fit_params' parameter of cv_objective"),
        ({"cv": [(np.arange(100), np.arange(100, 160))]}, "indices of the 150 rows of X"),
        ({"groups": np.arange(10)}, "'groups' parameter of cv_objective .* got 10"),
    ],
)
def test_cv_objective_bad_input(kwargs: dict[str, Any], match: str) -> None:
    X, y = load_iris(return_X_y=True)
    with pytest.raises((ValueError, TypeError), match=match) as info:
        cv_objective(LogisticRegression(), X, y, **kwargs)
    assert "\n" not in str(info.value)


def test_cv_objective_rejects_non_estimators_and_mismatched_data() -> None:
    X, y = load_iris(return_X_y=True)
    with pytest.raises(TypeError, match="'estimator' parameter of cv_objective"):
        cv_objective(object(), X, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same number of samples"):
        cv_objective(LogisticRegression(), X, y[:-1])


def test_parallel_folds_give_the_same_scores(cancer: Any) -> None:
    X, y = cancer
    serial = cv_objective(LogisticRegression(), X, y, cv=4)
    parallel = cv_objective(LogisticRegression(), X, y, cv=4, n_jobs=2)
    a = serial(_Trial({"C": 0.3}, split="validation"))
    with joblib.parallel_config(backend="threading"):  # no process start-up in a unit test
        b = parallel(_Trial({"C": 0.3}, split="validation"))
    assert a == pytest.approx(b)
    assert parallel.records[0].steps == [1, 2, 3, 4]


# -- iterative_objective -------------------------------------------------------------------------
def test_partial_fit_iterations_are_the_fidelity(cancer: Any) -> None:
    X, y = cancer
    objective = iterative_objective(SGDClassifier(), X, y, max_iter=6)
    study = tc.Study(
        {"alpha": tc.loguniform(1e-5, 10)},
        direction="maximize",
        scheduler=ASHAScheduler(max_resource=6, reduction_factor=2),
    )
    for a in [1e-4, 3e-4, 10.0, 5.0, 1e-3]:
        study.enqueue({"alpha": a})
    study.optimize(objective, n_trials=5)
    steps = {t.config["alpha"]: t.last_step for t in study.trials}
    assert steps[1e-4] == 6
    assert steps[10.0] < 6 and steps[5.0] < 6  # heavily regularized: stopped early
    trial = _Trial({"alpha": 1e-3}, split="validation", seed=0)
    trial.budget = 3
    objective(trial)
    assert [s for _, s in trial.reports] == [1, 2, 3]


def test_warm_start_grows_the_ensemble_and_seeds_it(cancer: Any) -> None:
    X, y = cancer
    objective = iterative_objective(
        GradientBoostingClassifier(max_depth=1), X, y, max_iter=3, step_size=5
    )
    trial = _Trial({"learning_rate": 0.5}, split="validation", seed=2)
    objective(trial)
    assert [s for _, s in trial.reports] == [1, 2, 3]
    assert objective.resource == "n_estimators"
    est = objective._train({"learning_rate": 0.5}, 2, 3, objective.X_train, objective.y_train)
    assert est.n_estimators == 15 and len(est.estimators_) == 15 and est.random_state == 2
    scores = objective.records[0].scores
    assert scores[-1] == pytest.approx(est.score(objective.X_val, objective.y_val))


def test_iterative_holdout_trains_on_train_plus_validation(cancer: Any) -> None:
    X, y = cancer
    Xh, yh = X[:50], y[:50]
    objective = iterative_objective(SGDClassifier(), X, y, max_iter=4, holdout=(Xh, yh))
    trial = _Trial({"alpha": 1e-3}, split="holdout", seed=5)
    value = objective(trial)
    reference = SGDClassifier(alpha=1e-3, random_state=5)
    for _ in range(4):
        reference.partial_fit(_all(objective), _all_y(objective), classes=[0, 1])
    assert value == pytest.approx(reference.score(Xh, yh))
    assert [s for _, s in trial.reports] == [1, 2, 3, 4]  # the holdout learning curve...
    assert trial.train[-1] == pytest.approx(reference.score(_all(objective), _all_y(objective)))


def _all(objective: Any) -> np.ndarray:
    return np.concatenate([objective.X_train, objective.X_val])


def _all_y(objective: Any) -> np.ndarray:
    return np.concatenate([objective.y_train, objective.y_val])


def test_paused_trials_resume_from_their_checkpoint(cancer: Any, tmp_path: Any) -> None:
    X, y = cancer
    objective = iterative_objective(SGDClassifier(random_state=0), X, y, max_iter=4)
    study = tc.Study(
        {"alpha": tc.loguniform(1e-5, 1)},
        direction="maximize",
        scheduler=ASHAScheduler(max_resource=4, reduction_factor=2, variant="promotion"),
        sampler=tc.make_sampler("random", seed=0),
        artifact_dir=tmp_path,
    )
    study.optimize(objective, n_trials=12)
    resumed = [r for r in objective.records if r.steps and r.steps[0] > 1]
    assert resumed, "promotion ASHA resumed nothing"
    for r in resumed:  # a resumed run goes on where the paused one stopped
        earlier = [e for e in objective.records if e.number == r.number and e is not r]
        assert max(earlier[-1].steps) + 1 == r.steps[0]


@pytest.mark.parametrize("resource", ["partial_fit", "n_estimators"])
def test_iterative_sample_weights_follow_their_rows(resource: str) -> None:
    # Row i has x = i and weight i + 1: every fit must get the weights of its own rows.
    X, y = np.arange(40.0).reshape(-1, 1), np.array([0, 1] * 20)
    fits: list[int] = []

    class Weighted(ClassifierMixin, BaseEstimator):
        def __init__(self, n_estimators: int = 1, warm_start: bool = False) -> None:
            self.n_estimators, self.warm_start = n_estimators, warm_start

        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
            np.testing.assert_array_equal(sample_weight, X[:, 0] + 1)
            fits.append(len(X))
            self.classes_ = np.array([0, 1])
            return self

        def partial_fit(
            self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
        ) -> Any:
            return self.fit(X, y, sample_weight)

        def predict(self, X: Any) -> np.ndarray:
            return np.zeros(len(X), dtype=int)

    if resource == "n_estimators":
        del Weighted.partial_fit
    objective = iterative_objective(
        Weighted(),
        X,
        y,
        max_iter=2,
        resource=resource,
        holdout=(X[:4], y[:4]),
        fit_params={"sample_weight": np.arange(1.0, 41.0)},
    )
    objective(_Trial({}, split="validation"))
    objective(_Trial({}, split="holdout"))
    assert fits == [32, 32, 40, 40]  # 80 % of the rows, then all of them


def test_iterative_sample_weights_with_a_validation_pair_and_a_holdout() -> None:
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="'fit_params' parameter of iterative_objective"):
        iterative_objective(
            SGDClassifier(),
            X,
            y,
            max_iter=2,
            validation=(X[:10], y[:10]),
            holdout=(X[:10], y[:10]),
            fit_params={"sample_weight": np.ones(len(y))},
        )


@pytest.mark.parametrize(
    ("estimator", "kwargs", "match"),
    [
        (LogisticRegression(), {}, "'resource' parameter of iterative_objective"),
        (SGDClassifier(), {"resource": "n_estimators"}, "'resource' parameter"),
        (SGDClassifier(), {"validation": 1.5}, "'validation' parameter"),
        (SGDClassifier(), {"max_iter": 0}, "'max_iter' parameter"),
        (SGDClassifier(), {"step_size": 0}, "'step_size' parameter"),
    ],
)
def test_iterative_objective_bad_input(estimator: Any, kwargs: dict[str, Any], match: str) -> None:
    X, y = load_iris(return_X_y=True)
    kwargs.setdefault("max_iter", 3)
    with pytest.raises((ValueError, TypeError), match=match):
        iterative_objective(estimator, X, y, **kwargs)


# -- inside the budgeted pipeline ----------------------------------------------------------------
def test_iterations_in_the_pipeline_give_holdout_curves(cancer: Any) -> None:
    from tunecraft.strategy import tune

    X, y = cancer
    objective = iterative_objective(
        SGDClassifier(), X[:220], y[:220], max_iter=5, holdout=(X[220:], y[220:])
    )
    result = tune(
        objective,
        {"alpha": "log-uniform(1e-6, 1)"},
        budget="10 trials",
        max_fidelity=5,
        direction="maximize",
        seed=0,
    )
    held = [r for r in objective.records if r.split == "holdout"]
    assert held and all(r.phase == "validate" and r.steps == [1, 2, 3, 4, 5] for r in held)
    best = [r.scores[-1] for r in held if r.config == result.best_config]
    assert result.score == pytest.approx(np.mean(best))
    finalist = result.validation[0]
    assert all(len(curve) == 5 for curve in finalist.train_curves.values())
    # Its curves are holdout values (it trains on the validation data too): they do not
    # choose the finalist, the search values do, and the holdout score stays unbiased.
    assert finalist.validation_mean is None and finalist.curves
    assert result.selected_by == "search" and not result.optimistic


def test_the_holdout_data_never_changes_the_search(cancer: Any) -> None:
    from tunecraft.strategy import tune

    X, y = cancer
    runs = []
    for holdout in ((X[200:], y[200:]), (X[200:][::-1][:60], 1 - y[200:][::-1][:60])):
        objective = cv_objective(KNeighborsClassifier(), X[:200], y[:200], cv=3, holdout=holdout)
        tune(
            objective,
            {"n_neighbors": "int(1, 60)", "weights": "choice(uniform, distance)"},
            budget="10 trials",
            max_fidelity=3,
            direction="maximize",
            seed=0,
        )
        runs.append(objective.records)
    search = [[(r.config, r.scores) for r in recs if r.split != "holdout"] for recs in runs]
    held = [[r.scores for r in recs if r.split == "holdout"] for recs in runs]
    assert search[0] == search[1] and search[0]
    assert held[0] != held[1]


@pytest.mark.parametrize(
    ("estimator", "resource", "size"),
    [
        ("hgb", "max_iter", lambda est: est.n_iter_),
        ("forest", "auto", lambda est: len(est.estimators_)),
    ],
)
def test_warm_start_resources(cancer: Any, estimator: str, resource: str, size: Any) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    X, y = cancer
    est = (
        HistGradientBoostingClassifier(early_stopping=False, max_leaf_nodes=4)
        if estimator == "hgb"
        else RandomForestClassifier(max_depth=2)
    )
    objective = iterative_objective(est, X, y, max_iter=3, step_size=2, resource=resource)
    trial = _Trial({}, split="validation", seed=0)
    objective(trial)
    assert [s for _, s in trial.reports] == [1, 2, 3]
    grown = objective._train({}, 0, 3, objective.X_train, objective.y_train)
    assert size(grown) == 6
