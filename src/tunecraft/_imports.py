"""Lazy imports of optional dependencies, with an error that names the fix."""

from __future__ import annotations

import importlib
from types import ModuleType

from tunecraft.exceptions import MissingDependencyError


def require(module: str, extra: str, *, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise an error naming the ``pip install`` that provides it.

    Args:
        module: The dotted module name to import.
        extra: The tunecraft extra that installs it (``"torch"``, ``"postgres"``...).
        purpose: What needs it, for the message.

    Raises:
        MissingDependencyError: The module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"'{module}' is needed{what} but cannot be imported ({exc}); "
            f'install it with: pip install "tunecraft[{extra}]"'
        ) from exc
