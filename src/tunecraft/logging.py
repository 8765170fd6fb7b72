"""The library logger. tunecraft never prints outside the CLI and the progress display."""

from __future__ import annotations

import logging

_LOGGER_NAME = "tunecraft"


def get_logger(name: str | None = None) -> logging.Logger:
    """Return the ``tunecraft`` logger, or a child of it."""
    if name is None or name == _LOGGER_NAME:
        return logging.getLogger(_LOGGER_NAME)
    if name.startswith(_LOGGER_NAME + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{_LOGGER_NAME}.{name}")


logging.getLogger(_LOGGER_NAME).addHandler(logging.NullHandler())
