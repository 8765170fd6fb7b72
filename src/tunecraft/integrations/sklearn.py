"""scikit-learn integration: CV objectives, nested cross-validation and ``TuneSearchCV``.

* :func:`cv_objective`: k-fold cross-validation as an objective, folds as the fidelity.
* :func:`iterative_objective`: ``partial_fit`` / ``warm_start`` iterations as the fidelity.
* :class:`TuneSearchCV`: a scikit-learn search estimator running the budgeted pipeline.
* :func:`nested_cv`: an unbiased estimate of the whole tuning procedure.

Example:
    >>> import tunecraft as tc
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from tunecraft.integrations.sklearn import cv_objective
    >>> X, y = load_iris(return_X_y=True)
    >>> study = tc.Study({"n_neighbors": "int(1, 30)"}, direction="maximize", seed=0)
    >>> study.optimize(cv_objective(KNeighborsClassifier(), X, y, cv=3), n_trials=2)
    >>> sorted(study.trials[0].intermediate)  # the running mean after folds 1, 2, 3
    [1, 2, 3]
"""

from __future__ import annotations

from tunecraft.integrations._sklearn_objectives import (
    CVObjective,
    EvalRecord,
    IterativeObjective,
    cv_objective,
    iterative_objective,
)
from tunecraft.integrations._sklearn_search import NestedCVResult, TuneSearchCV, nested_cv

__all__ = [
    "CVObjective",
    "EvalRecord",
    "IterativeObjective",
    "NestedCVResult",
    "TuneSearchCV",
    "cv_objective",
    "iterative_objective",
    "nested_cv",
]
