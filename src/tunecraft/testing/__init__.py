"""Public test helpers: conformance suites other projects can run on their own components."""

try:  # pytest rewrites the asserts of the suites, so a failure shows the values compared
    import pytest

    pytest.register_assert_rewrite("tunecraft.testing.samplers", "tunecraft.testing.storages")
except ImportError:  # pragma: no cover - the suites need pytest; plain imports still work
    pass
