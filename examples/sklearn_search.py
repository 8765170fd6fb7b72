"""Tune a scikit-learn pipeline with a compute budget, the scikit-learn way.

``TuneSearchCV`` is a drop-in for ``GridSearchCV`` / ``RandomizedSearchCV`` that spends its
budget like an expert: a quick exploration, a narrowed refinement in which a configuration that
is clearly worse after a fold or two is not fitted on the remaining folds, and a final
validation of the best few configurations (raced: one run each, then more seeds for the best
of them) on a holdout that the search never saw. Run it (about half a minute)::

    python examples/sklearn_search.py
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import tunecraft as tc
from tunecraft.integrations.sklearn import TuneSearchCV, nested_cv

# Data: 800 digits to tune on, the rest kept for a final test that nothing below touches.
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, train_size=800, stratify=y, random_state=0
)

# The model and its search space. Keys are the pipeline's parameter names; domains are
# tunecraft's, or the same in the notation ("log-uniform(1e-2, 1e3)").
model = make_pipeline(StandardScaler(), SVC())
space = {
    "svc__C": tc.loguniform(1e-2, 1e3),
    "svc__gamma": "log-uniform(1e-5, 1e-1)",
    "svc__kernel": tc.choice(["rbf", "sigmoid"]),
}

# The budget counts fold fits: "25 trials" is 25 full 5-fold cross-validations' worth.
search = TuneSearchCV(model, space, budget="25 trials", cv=5, holdout=0.2, seed=0)
search.fit(X_train, y_train)

print(search.search_result_.plan.table())  # what the budget bought, decided up front
print()
print("chosen:          ", search.best_params_)
print(f"cv score:         {search.best_score_:.3f}  (the search's own view: optimistic)")
print(f"holdout estimate: {search.holdout_score_:.3f}  (the final validation's)")
print(f"test accuracy:    {search.score(X_test, y_test):.3f}  (data nobody saw)")

results = search.cv_results_
short = results["phase"] == "explore"  # exploration runs are one fold by design
print(
    f"\n{len(results['params'])} cross-validations: {int(short.sum())} one-fold explorations, "
    f"{int(results['stopped'].sum())} stopped early by the scheduler, "
    f"{int(results['n_folds'].sum())} fold fits in all"
)

# How good is "tune, then refit" itself? Nested cross-validation answers without bias:
# each outer fold runs the whole search on its training part only.
nested = nested_cv(
    model, space, X_train, y_train, outer_cv=3, inner_cv=3, budget="10 trials", seed=0
)
print()
print(nested)
kernels = {c["svc__kernel"] for c in nested.configs}
print(f"kernels chosen across the outer folds: {sorted(kernels)}")
print(f"spread of the outer scores: {np.ptp(nested.scores):.3f}")
