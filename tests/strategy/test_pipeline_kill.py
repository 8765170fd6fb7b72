"""A pipeline process killed with SIGKILL in the middle of a phase continues in that phase."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tunecraft as tc
from tunecraft.strategy import BudgetedSearch
from tunecraft.trial import TrialState

SCRIPT = """
import os, signal, sys
import tunecraft as tc
from tunecraft.strategy import tune

def objective(trial):
    c = trial.config
    if os.environ.get("KILL_AT") == trial.phase and trial.number == int(os.environ["KILL_N"]):
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception: the process is gone
    value = (c["x"] - 0.3) ** 2
    for epoch in range(1, int(trial.budget) + 1):
        value = (c["x"] - 0.3) ** 2 + c["y"] / 10 + 1 / epoch
        trial.report(value, step=epoch)
        if trial.should_stop():
            break
    return value + (0.02 if trial.split == "holdout" else 0)

SPACE = {"x": tc.uniform(0, 1), "y": tc.uniform(0, 1)}
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_refine_continues_in_refine(tmp_path: Path) -> None:
    module = tmp_path / "killme.py"
    module.write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    call = (
        "import killme; from tunecraft.strategy import tune; "
        f"tune(killme.objective, killme.SPACE, budget='12 trials', max_fidelity=6, "
        f"storage={url!r}, name='k', seed=0, n_seeds=1)"
    )
    env = {**os.environ, "KILL_AT": "refine", "KILL_N": "12", "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", call], env=env, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL
    sys.path.insert(0, str(tmp_path))
    try:
        import killme  # type: ignore[import-not-found]

        search = BudgetedSearch(
            killme.objective,
            killme.SPACE,
            budget="12 trials",
            max_fidelity=6,
            storage=url,
            name="k",
            seed=0,
            n_seeds=1,
        )
        assert search.done == ["explore"] and search.next_phase == "refine"
        refine = search.study("refine").trials
        assert refine[-1].state is TrialState.RUNNING  # left running by the dead process
        explore = len(search.study("explore").trials)
        result = search.run()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("killme", None)
    stale = next(t for t in search.study("refine").trials if t.number == refine[-1].number)
    assert stale.state is TrialState.FAILED and "stale" in (stale.error or "")
    assert len(search.study("explore").trials) == explore  # explore was not run again
    assert result.score is not None and result.validation
    assert tc.load_study("k.validate", storage=url).trials
