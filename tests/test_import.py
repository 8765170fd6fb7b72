"""``import tunecraft`` stays light: no heavy or optional library, and well under 0.3 s."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

HEAVY = ("torch", "pandas", "sqlalchemy", "scipy", "sklearn", "rich", "yaml")
BUDGET_SECONDS = 0.3

_PROBE = f"""
import json, sys, time
start = time.perf_counter()
import tunecraft
elapsed = time.perf_counter() - start
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"seconds": elapsed, "heavy": heavy}}))
"""


def _probe() -> tuple[float, list[str]]:
    """Import tunecraft in a fresh interpreter: (seconds it took, heavy modules loaded)."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    data = json.loads(result.stdout)
    return float(data["seconds"]), list(data["heavy"])


def test_import_pulls_in_no_heavy_library() -> None:
    assert _probe()[1] == []


def test_import_time_is_under_budget() -> None:
    _probe()  # warm the file cache and the bytecode
    times = [_probe()[0] for _ in range(5)]
    median = statistics.median(times)
    assert median < BUDGET_SECONDS, (
        f"import tunecraft took {median:.3f} s (median of {times}); budget {BUDGET_SECONDS} s. "
        "Find the slow import with: python -X importtime -c 'import tunecraft'"
    )


def test_cli_module_imports_its_dependencies_lazily() -> None:
    code = (
        "import sys, tunecraft.cli; print(sorted(m for m in ('rich', 'yaml') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_tune_is_reachable_lazily() -> None:
    code = (
        "import sys, tunecraft; before = 'tunecraft.strategy' in sys.modules; "
        "from tunecraft.strategy import tune; print(before, tunecraft.tune is tune)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "True"]
