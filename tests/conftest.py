"""Shared test settings: hypothesis without per-example deadlines (CI machines vary), and a
storage URL that processes can share.

``HYPOTHESIS_PROFILE=thorough pytest tests/space`` runs the property tests much longer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tunecraft.testing.storages import postgres_url

settings.register_profile("tunecraft", deadline=None, max_examples=150)
settings.register_profile("thorough", deadline=None, max_examples=3000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tunecraft"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database several processes open by URL: a SQLite file, then the local PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        yield postgres_url()
