"""``TuneSearchCV`` against scikit-learn's and Optuna's usual searches, at equal fold fits.

Tasks (each repetition draws a new train/test split; the test part is never seen by a method):

* ``digits-svc``: ``StandardScaler + SVC`` on 600 digits (C, gamma, kernel).
* ``cancer-logreg``: ``StandardScaler + LogisticRegression`` on 300 breast-cancer rows
  (C, class_weight, fit_intercept).
* ``synth-hgb``: ``HistGradientBoostingClassifier(max_iter=40)`` on 800 rows of a noisy
  ``make_classification`` task (learning_rate, max_leaf_nodes, min_samples_leaf,
  l2_regularization).

Methods, 5-fold CV, budget ``B`` full cross-validations (``5 B`` fold fits):

* ``tunecraft``: ``TuneSearchCV(budget=f"{B} trials", holdout=0.2)``; claims ``holdout_score_``.
* ``random``: ``RandomizedSearchCV(n_iter=B)``; claims ``best_score_``.
* ``random-matched``: ``RandomizedSearchCV`` with as many fits as tunecraft actually ran.
* ``optuna-median``: Optuna TPE with ``MedianPruner``, reporting the running fold mean
  (folds as fidelity, like tunecraft), until ``5 B`` fold fits; claims the best trial's value.

Truth: the chosen configuration refitted on the whole training part, error on the test part.
Reported per task and method, median over repetitions: true test error (%), claimed error (%),
the gap claimed - true (negative: optimistic), its absolute value, and the fits actually run
(fold fits + holdout fits; the final refit is not counted for anyone).

Run::

    python benchmarks/sklearn_search.py --reps 10 --budget 20
"""

# ruff: noqa: N803, N806  (X, Xt: the scikit-learn naming of data matrices)

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import loguniform, randint
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RandomizedSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

import tunecraft as tc
from tunecraft.integrations.sklearn import TuneSearchCV


@dataclass
class Task:
    name: str
    data: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    estimator: Any
    space: dict[str, Any]  # tunecraft
    dists: dict[str, Any]  # scipy, for RandomizedSearchCV
    optuna: Callable[[Any], dict[str, Any]]


def _split(data: Any, n_train: int, rep: int) -> Any:
    X, y = data
    return train_test_split(X, y, train_size=n_train, stratify=y, random_state=rep)


def _digits(rep: int) -> Any:
    return _split(load_digits(return_X_y=True), 600, rep)


def _cancer(rep: int) -> Any:
    return _split(load_breast_cancer(return_X_y=True), 300, rep)


def _synth(rep: int) -> Any:
    X, y = make_classification(
        2000, n_features=20, n_informative=6, flip_y=0.08, class_sep=0.8, random_state=0
    )
    return _split((X, y), 800, rep)


TASKS = {
    "digits-svc": Task(
        "digits-svc",
        _digits,
        make_pipeline(StandardScaler(), SVC()),
        {
            "svc__C": tc.loguniform(1e-2, 1e3),
            "svc__gamma": tc.loguniform(1e-5, 1e-1),
            "svc__kernel": tc.choice(["rbf", "sigmoid"]),
        },
        {
            "svc__C": loguniform(1e-2, 1e3),
            "svc__gamma": loguniform(1e-5, 1e-1),
            "svc__kernel": ["rbf", "sigmoid"],
        },
        lambda t: {
            "svc__C": t.suggest_float("svc__C", 1e-2, 1e3, log=True),
            "svc__gamma": t.suggest_float("svc__gamma", 1e-5, 1e-1, log=True),
            "svc__kernel": t.suggest_categorical("svc__kernel", ["rbf", "sigmoid"]),
        },
    ),
    "cancer-logreg": Task(
        "cancer-logreg",
        _cancer,
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        {
            "logisticregression__C": tc.loguniform(1e-4, 1e2),
            "logisticregression__class_weight": tc.choice(["balanced", None]),
            "logisticregression__fit_intercept": tc.choice([True, False]),
        },
        {
            "logisticregression__C": loguniform(1e-4, 1e2),
            "logisticregression__class_weight": ["balanced", None],
            "logisticregression__fit_intercept": [True, False],
        },
        lambda t: {
            "logisticregression__C": t.suggest_float("logisticregression__C", 1e-4, 1e2, log=True),
            "logisticregression__class_weight": t.suggest_categorical(
                "logisticregression__class_weight", ["balanced", None]
            ),
            "logisticregression__fit_intercept": t.suggest_categorical(
                "logisticregression__fit_intercept", [True, False]
            ),
        },
    ),
    "synth-hgb": Task(
        "synth-hgb",
        _synth,
        HistGradientBoostingClassifier(max_iter=40, early_stopping=False),
        {
            "learning_rate": tc.loguniform(1e-2, 1.0),
            "max_leaf_nodes": tc.integer(4, 64, log=True),
            "min_samples_leaf": tc.integer(2, 100, log=True),
            "l2_regularization": tc.loguniform(1e-4, 10),
        },
        {
            "learning_rate": loguniform(1e-2, 1.0),
            "max_leaf_nodes": randint(4, 65),
            "min_samples_leaf": randint(2, 101),
            "l2_regularization": loguniform(1e-4, 10),
        },
        lambda t: {
            "learning_rate": t.suggest_float("learning_rate", 1e-2, 1.0, log=True),
            "max_leaf_nodes": t.suggest_int("max_leaf_nodes", 4, 64, log=True),
            "min_samples_leaf": t.suggest_int("min_samples_leaf", 2, 100, log=True),
            "l2_regularization": t.suggest_float("l2_regularization", 1e-4, 10, log=True),
        },
    ),
}


@dataclass
class Outcome:
    true_err: float
    claimed_err: float
    fits: int
    seconds: float


def run_tunecraft(
    task: Task,
    X: Any,
    y: Any,
    Xt: Any,
    yt: Any,
    budget: int,
    rep: int,
    n_finalists: int | None = None,
) -> Outcome:
    start = time.perf_counter()
    search = TuneSearchCV(
        clone(task.estimator),
        task.space,
        budget=f"{budget} trials",
        cv=5,
        holdout=0.2,
        seed=rep,
        n_finalists=n_finalists,
    )
    search.fit(X, y)
    assert search.holdout_score_ is not None  # holdout=0.2 above
    fits = int(search.cv_results_["n_folds"].sum()) + len(search.holdout_results_["params"])
    return Outcome(
        100 * (1 - search.score(Xt, yt)),
        100 * (1 - float(search.holdout_score_)),
        fits,
        time.perf_counter() - start,
    )


def run_random(task: Task, X: Any, y: Any, Xt: Any, yt: Any, n_iter: int, rep: int) -> Outcome:
    start = time.perf_counter()
    search = RandomizedSearchCV(
        clone(task.estimator), task.dists, n_iter=max(1, n_iter), cv=5, random_state=rep
    ).fit(X, y)
    return Outcome(
        100 * (1 - search.score(Xt, yt)),
        100 * (1 - search.best_score_),
        5 * max(1, n_iter),
        time.perf_counter() - start,
    )


def run_optuna(task: Task, X: Any, y: Any, Xt: Any, yt: Any, budget: int, rep: int) -> Outcome:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    folds = list(StratifiedKFold(5).split(X, y))
    fits = [0]

    def objective(trial: Any) -> float:
        est = clone(task.estimator).set_params(**task.optuna(trial))
        scores = []
        for k, (tr, te) in enumerate(folds):
            if fits[0] >= 5 * budget:
                raise optuna.TrialPruned()
            est.fit(X[tr], y[tr])
            fits[0] += 1
            scores.append(est.score(X[te], y[te]))
            trial.report(float(np.mean(scores)), k)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(scores))

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=rep),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5),
    )
    while fits[0] < 5 * budget:
        study.optimize(objective, n_trials=1)
    best = study.best_trial
    assert best.value is not None  # best_trial is a complete trial
    est = clone(task.estimator).set_params(**best.params).fit(X, y)
    return Outcome(
        100 * (1 - est.score(Xt, yt)),
        100 * (1 - best.value),
        fits[0],
        time.perf_counter() - start,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--budget", type=int, default=20, help="full 5-fold CVs")
    parser.add_argument(
        "--n-finalists", type=int, default=None, help="tunecraft's finalists (default: its own)"
    )
    parser.add_argument(
        "--tunecraft-only", action="store_true", help="run tunecraft alone (an ablation)"
    )
    args = parser.parse_args()
    logging.getLogger("tunecraft").setLevel(logging.ERROR)
    threadpool_limits(1)  # small models: threads only contend (the same for every method)
    warnings.filterwarnings("ignore")
    methods: tuple[str, ...] = ("tunecraft", "random", "random-matched", "optuna-median")
    if args.tunecraft_only:
        methods = ("tunecraft",)
    print(f"budget: {args.budget} full 5-fold CVs = {5 * args.budget} fold fits; reps {args.reps}")
    print()
    print(
        "| task | method | true test error % | claimed error % | gap (claimed - true) | "
        "abs gap | fits run | s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.tasks:
        task = TASKS[name]
        results: dict[str, list[Outcome]] = {m: [] for m in methods}
        for rep in range(args.reps):
            X, Xt, y, yt = task.data(rep)
            tc_out = run_tunecraft(task, X, y, Xt, yt, args.budget, rep, args.n_finalists)
            results["tunecraft"].append(tc_out)
            if args.tunecraft_only:
                continue
            results["random"].append(run_random(task, X, y, Xt, yt, args.budget, rep))
            matched = round(tc_out.fits / 5)
            results["random-matched"].append(run_random(task, X, y, Xt, yt, matched, rep))
            results["optuna-median"].append(run_optuna(task, X, y, Xt, yt, args.budget, rep))
        for m in methods:
            outs = results[m]
            med = statistics.median
            print(
                f"| {name} | {m} | {med(o.true_err for o in outs):.2f} | "
                f"{med(o.claimed_err for o in outs):.2f} | "
                f"{med(o.claimed_err - o.true_err for o in outs):+.2f} | "
                f"{med(abs(o.claimed_err - o.true_err) for o in outs):.2f} | "
                f"{med(o.fits for o in outs):.0f} | {med(o.seconds for o in outs):.1f} |"
            )


if __name__ == "__main__":
    main()
