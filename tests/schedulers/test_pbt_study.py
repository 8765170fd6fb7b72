"""PBT driven by a study: the exploited state is the donor's at the same step, whatever order
the objective saves and reports in, and a resumed trial that replays steps is not judged twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import tunecraft as tc
from tunecraft.schedulers import PBTScheduler
from tunecraft.trial import Trial

EPOCHS = 12


def _study(tmp_path: Path, **kwargs: Any) -> tc.Study:
    return tc.Study(
        {"lr": tc.uniform(0.1, 1.0)},
        direction="maximize",
        scheduler=PBTScheduler(perturbation_interval=3, min_population=3, seed=0),
        sampler=tc.make_sampler("random", seed=0),
        artifact_dir=tmp_path / "artifacts",
        **kwargs,
    )


@pytest.mark.parametrize("save_first", [True, False])
def test_exploit_copies_the_donors_state_at_the_exploit_step(
    tmp_path: Path, save_first: bool
) -> None:
    def objective(trial: Trial) -> float:
        state = trial.load_checkpoint() if trial.resumed else None
        if trial.resumed and state is not None:
            trial.set_user_attr("loaded_epoch", state["epoch"])
            assert state["epoch"] == trial.last_step  # never more training than its steps
        w = state["w"] if state else 0.0
        start = (trial.last_step or 0) + 1 if trial.resumed else 1
        for epoch in range(start, EPOCHS + 1):
            w += trial.config["lr"]  # one epoch of training
            if save_first:
                trial.save_checkpoint({"w": w, "epoch": epoch})
            trial.report(w, step=epoch)
            if not save_first:
                trial.save_checkpoint({"w": w, "epoch": epoch})
            if trial.should_stop():
                break
        return w

    study = _study(tmp_path)
    study.optimize(objective, n_trials=12)
    exploited = [t for t in study.trials if "pbt_parent" in t.user_attrs]
    assert len(exploited) >= 2
    for t in exploited:
        assert t.user_attrs["loaded_epoch"] == t.user_attrs["pbt_step"]
        assert t.user_attrs["pbt_history"][0]["until_step"] == t.user_attrs["pbt_step"]
    # No run trains more than EPOCHS epochs at lr <= 1, however often it was exploited.
    assert study.best_value <= EPOCHS * 1.0
    kept = study.trials[exploited[0].user_attrs["pbt_parent"]].user_attrs["tc.checkpoint_steps"]
    assert kept and set(kept) <= {3, 6, 9, 12}


def test_a_resumed_trial_that_retrains_from_scratch_is_not_judged_again(tmp_path: Path) -> None:
    runs: Counter[int] = Counter()

    def objective(trial: Trial) -> float:  # no checkpoint: replays every step on resume
        runs[trial.number] += 1
        w = 0.0
        for epoch in range(1, EPOCHS + 1):
            w += trial.config["lr"]
            trial.report(w, step=epoch)
            if trial.should_stop():
                break
        return w

    study = _study(tmp_path)
    study.optimize(objective, n_trials=30)
    # Each resume moves a trial on by an interval: pauses at 3, 6, 9 and 12 at most (PBT does
    # not know the last step), so at most 5 runs per trial. It was 38 runs of one trial when
    # the replayed step 1 was judged as step 3, again and again.
    assert max(runs.values()) <= EPOCHS // 3 + 1
    assert len(study.trials) >= 30 // (EPOCHS // 3 + 1)
