"""Where studies and trials live: in memory, or in SQL (SQLite embedded, PostgreSQL shared)."""

from __future__ import annotations

from typing import Any

from tunecraft.exceptions import InvalidParameterError
from tunecraft.storage._base import Storage, StudyInfo
from tunecraft.storage._memory import MemoryStorage

__all__ = ["MemoryStorage", "SQLStorage", "Storage", "StudyInfo", "get_storage"]


def get_storage(storage: Storage | str | None) -> Storage:
    """Open a storage from a URL, or pass an instance through.

    Args:
        storage: ``None`` (a new in-memory storage), ``"sqlite:///path.db"``,
            ``"postgresql://user@host:5432/db"`` (a driver may be named, as in
            ``"postgresql+psycopg://..."``), or a :class:`Storage`.

    Raises:
        InvalidParameterError: The URL has no known scheme.
        StorageError: The database cannot be opened.
    """
    if storage is None:
        return MemoryStorage()
    if isinstance(storage, Storage):
        return storage
    if isinstance(storage, str):
        from tunecraft.storage._sql import _KNOWN_SCHEMES, SQLStorage, _redact, _scheme

        if _scheme(storage) in _KNOWN_SCHEMES:
            return SQLStorage(storage)
        raise InvalidParameterError(
            f"The 'storage' parameter must be None, a Storage or a URL such as "
            f"'sqlite:///tunecraft.db' or 'postgresql://user@host/db', got {_redact(storage)!r}."
        )
    raise TypeError(
        f"The 'storage' parameter must be None, a Storage or a URL string, "
        f"got {type(storage).__name__}."
    )


def __getattr__(name: str) -> Any:
    if name == "SQLStorage":  # imported on demand: keeps SQLAlchemy out of `import tunecraft`
        from tunecraft.storage._sql import SQLStorage

        return SQLStorage
    raise AttributeError(f"module 'tunecraft.storage' has no attribute {name!r}")
