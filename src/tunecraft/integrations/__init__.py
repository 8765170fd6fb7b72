"""Bridges to the ecosystem; each submodule imports its library only when imported itself.

* :mod:`tunecraft.integrations.sklearn`: ``TuneSearchCV``, ``nested_cv``, ``cv_objective``,
  ``iterative_objective``.
* :mod:`tunecraft.integrations.lightning`: ``TunecraftLightningCallback``.
* :mod:`tunecraft.integrations.transformers`: ``TunecraftTrainerCallback``.
"""

from __future__ import annotations

__all__: list[str] = []
