"""tunecraft: budget-aware hyperparameter optimization and fine-tuning.

Example:
    >>> import tunecraft as tc
    >>> study = tc.Study({"x": tc.uniform(-5, 5)}, seed=0)
    >>> study.optimize(lambda trial: (trial.config["x"] - 1) ** 2, n_trials=20)
    >>> round(study.best_value, 2) < 1
    True
"""

from __future__ import annotations

from tunecraft import exceptions, samplers, schedulers, space, storage
from tunecraft.exceptions import TrialPruned, TunecraftError
from tunecraft.samplers import Sampler, make_sampler
from tunecraft.schedulers import Scheduler
from tunecraft.space import Space, choice, integer, loguniform, uniform
from tunecraft.study import Study, delete_study, list_studies, load_study
from tunecraft.trial import FrozenTrial, Trial, TrialState

__version__ = "0.1.0"


#: Subpackages imported on first access (``tc.strategy.BudgetedSearch``), as they pull in
#: scikit-learn or torch, which ``import tunecraft`` leaves out.
_LAZY = ("analysis", "execution", "finetune", "integrations", "strategy", "testing", "train")


def __getattr__(name: str) -> object:
    # ``tc.tune`` without importing the pipeline (and scikit-learn) on ``import tunecraft``.
    if name == "tune":
        from tunecraft.strategy import tune

        return tune
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"tunecraft.{name}")
    raise AttributeError(f"module 'tunecraft' has no attribute {name!r}")


__all__ = [
    "FrozenTrial",
    "Sampler",
    "Scheduler",
    "Space",
    "Study",
    "Trial",
    "TrialPruned",
    "TrialState",
    "TunecraftError",
    "__version__",
    "choice",
    "delete_study",
    "exceptions",
    "integer",
    "list_studies",
    "load_study",
    "loguniform",
    "make_sampler",
    "tune",
    "samplers",
    "schedulers",
    "space",
    "storage",
    "uniform",
]
