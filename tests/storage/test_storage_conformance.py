"""The storage conformance suite against every backend: memory, SQLite, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tunecraft.storage import MemoryStorage, Storage, get_storage
from tunecraft.testing.storages import (
    ConcurrentStorageConformance,
    StorageConformance,
    postgres_url,
)


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    def storage(self) -> Storage:
        return MemoryStorage()


class TestSQLiteStorage(StorageConformance, ConcurrentStorageConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        s = get_storage(f"sqlite:///{tmp_path / 'conformance.db'}")
        yield s
        s.close()


class TestSQLiteInMemoryStorage(StorageConformance):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        s = get_storage("sqlite:///:memory:")
        yield s
        s.close()


@pytest.mark.postgres
class TestPostgreSQLStorage(StorageConformance, ConcurrentStorageConformance):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        s = get_storage(postgres_url())
        yield s
        s.close()
