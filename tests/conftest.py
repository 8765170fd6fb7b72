"""Shared test settings: hypothesis without per-example deadlines (CI machines vary).

``HYPOTHESIS_PROFILE=thorough pytest tests/space`` runs the property tests much longer.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("tunecraft", deadline=None, max_examples=150)
settings.register_profile("thorough", deadline=None, max_examples=3000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tunecraft"))
