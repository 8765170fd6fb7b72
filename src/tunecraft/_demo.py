"""The demo study: a support-vector classifier on scikit-learn's digits, tuned for CV error.

``tunecraft demo`` (and ``make demo``) runs it; ``examples/svm_digits.yaml`` runs the same
objective through ``tunecraft run``. The objective lives here, in an importable module, so that
worker processes (``--n-jobs``) and YAML configs can reach it as
``tunecraft._demo:svm_objective``.

Example:
    >>> from tunecraft._demo import demo_space
    >>> demo_space().to_dict()["degree"]
    {'distribution': 'int(2, 5)', 'when': {'kernel': ['poly']}}
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from tunecraft.space import Space, choice, integer, loguniform

if TYPE_CHECKING:
    import numpy as np

    from tunecraft.trial import Trial

__all__ = [
    "DEMO_N_TRIALS",
    "DEMO_STORAGE",
    "DEMO_STUDY",
    "N_FOLDS",
    "demo_space",
    "load_data",
    "svm_objective",
]

#: The study the demo writes, and where.
DEMO_STUDY = "svm-digits"
DEMO_STORAGE = "sqlite:///tunecraft.db"
#: How many finished trials the demo study should hold.
DEMO_N_TRIALS = 30
#: Folds of the cross-validation that scores a configuration.
N_FOLDS = 3


def demo_space() -> Space:
    """The SVM's search space: ``C`` and ``gamma`` on log scales, the kernel, and the
    polynomial ``degree``, which exists only when the kernel is ``poly``."""
    return Space(
        {
            "C": loguniform(1e-2, 1e3),
            "gamma": loguniform(1e-4, 1e1),
            "kernel": choice(["rbf", "poly", "sigmoid"]),
            "degree": integer(2, 5).when(kernel="poly"),
        }
    )


@functools.lru_cache(maxsize=1)
def load_data() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 images of scikit-learn's bundled ``digits`` set, pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x / 16.0, y


def svm_objective(trial: Trial) -> float:
    """Cross-validated error (1 - mean accuracy over :data:`N_FOLDS` folds) of an SVC.

    The mean accuracy is kept as the trial's ``accuracy`` user attribute.
    """
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    config: dict[str, Any] = trial.config
    x, y = load_data()
    model = SVC(
        C=config["C"],
        gamma=config["gamma"],
        kernel=config["kernel"],
        degree=config.get("degree", 3),
    )
    scores = cross_val_score(model, x, y, cv=N_FOLDS)
    trial.set_user_attr("accuracy", round(float(scores.mean()), 6))
    return 1.0 - float(scores.mean())
