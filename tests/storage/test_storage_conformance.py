"""The storage conformance suite against every backend: memory, SQLite, PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tunecraft.storage import MemoryStorage, Storage, get_storage
from tunecraft.testing.storages import (
    ConcurrentStorageConformance,
    StorageConformance,
    postgres_url,
)
from tunecraft.trial import FrozenTrial, TrialState


class TestMemoryStorage(StorageConformance):
    @pytest.fixture
    def storage(self) -> Storage:
        return MemoryStorage()

    def test_a_snapshot_keeps_every_field(self) -> None:
        """The snapshot is built field by field (for speed): a field added to FrozenTrial
        and not copied there fails here."""
        from tunecraft.storage._memory import _snapshot

        values: dict[str, Any] = {
            "number": 3,
            "state": TrialState.FAILED,
            "config": {"x": 0.5, "nested": {"a": [1, {"b": 2}]}},
            "value": 1.5,
            "intermediate": {1: 2.0},
            "user_attrs": {"tc.config": {"lr": 0.1}, "k": [1, [2]]},
            "datetime_start": datetime(2026, 1, 1, tzinfo=timezone.utc),
            "datetime_complete": datetime(2026, 1, 2, tzinfo=timezone.utc),
            "error": "boom",
            "trial_id": 9,
            "worker": "host:1",
        }
        assert set(values) == {f.name for f in fields(FrozenTrial)}
        record = FrozenTrial(**values)
        copy = _snapshot(record)
        assert copy == record
        assert copy.config["nested"]["a"] is not record.config["nested"]["a"]
        assert copy.user_attrs["k"][1] is not record.user_attrs["k"][1]


class TestBaseDefaults(StorageConformance):
    """A storage that keeps the defaults of Storage's optional methods meets the contract."""

    class Plain(MemoryStorage):
        set_trial_config_and_read = Storage.set_trial_config_and_read

    @pytest.fixture
    def storage(self) -> Storage:
        return self.Plain()


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


@pytest.mark.parametrize("url", [None, "sqlite://"], ids=["memory", "sqlite"])
def test_a_value_that_is_not_json_names_its_key_in_a_short_error(url: str | None) -> None:
    """The error named neither the attribute nor the config, and printed the whole value."""
    from tunecraft.exceptions import InvalidParameterError

    storage = get_storage(url)
    sid = storage.create_study("json", "minimize", {}).study_id
    t = storage.create_trial(sid)
    for bad in ([0.5] * 10_000 + [float("nan")], {"a": object()}):
        with pytest.raises(InvalidParameterError) as excinfo:
            storage.set_user_attr(t.trial_id, "curve", bad)
        text = str(excinfo.value)
        assert "set_user_attr" in text and "'curve'" in text and len(text) < 300, text
        assert "\n" not in text
    with pytest.raises(InvalidParameterError, match="config"):
        storage.set_trial_config(t.trial_id, {"x": float("inf")})
    assert storage.get_trial(t.trial_id).user_attrs == {}
