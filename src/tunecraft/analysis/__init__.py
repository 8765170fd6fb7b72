"""Analysis of finished studies: which hyperparameters mattered.

Not imported by ``import tunecraft``; import it explicitly (``from tunecraft.analysis import
importance``). scikit-learn is imported when an importance is computed.
"""

from tunecraft.analysis._importance import METHODS, Importance, importance

__all__ = ["METHODS", "Importance", "importance"]
