"""The budgeted tuning pipeline: transfer, explore, refine, validate on a holdout.

Not imported by ``import tunecraft``; import it explicitly::

    from tunecraft.strategy import tune, BudgetedSearch
"""

from __future__ import annotations

from tunecraft.strategy._narrow import Narrowing, narrow_space
from tunecraft.strategy._pipeline import (
    BudgetedSearch,
    PhaseSpend,
    PipelineError,
    TuneResult,
    tune,
)
from tunecraft.strategy._plan import (
    DEFAULT_SHARES,
    PHASES,
    Budget,
    PhasePlan,
    Plan,
    plan,
    race_sizes,
)
from tunecraft.strategy._transfer import (
    PriorConfig,
    ProxyWarning,
    apply_lr_scaling,
    check_proxy,
    default_config,
    defaults_table,
    load_prior,
    map_config,
    narrow_lr,
    rank_correlation,
)
from tunecraft.strategy._validate import (
    FinalistResult,
    ProxyCheck,
    check_curve,
    summarize,
)

__all__ = [
    "DEFAULT_SHARES",
    "PHASES",
    "Budget",
    "BudgetedSearch",
    "FinalistResult",
    "Narrowing",
    "PhasePlan",
    "PhaseSpend",
    "PipelineError",
    "Plan",
    "PriorConfig",
    "ProxyCheck",
    "ProxyWarning",
    "TuneResult",
    "apply_lr_scaling",
    "check_curve",
    "check_proxy",
    "default_config",
    "defaults_table",
    "load_prior",
    "map_config",
    "narrow_lr",
    "narrow_space",
    "plan",
    "race_sizes",
    "rank_correlation",
    "summarize",
    "tune",
]
