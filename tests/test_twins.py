"""Workers that ask at the same moment do not run one config twice (Sampler.avoids_twins)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tunecraft as tc
from tunecraft.exceptions import SamplerExhaustedError
from tunecraft.samplers import History, Sampler
from tunecraft.space import Space
from tunecraft.trial import TrialState

POINTS = [{"k": k} for k in range(1, 6)]


class FirstFree(Sampler):
    """The first point no trial shown has; ``meanwhile`` runs inside the first suggestion,
    as another worker's ask would between this one's history read and its stored config."""

    def __init__(self, meanwhile: Callable[[], None] | None, *, twins: bool = True) -> None:
        super().__init__(seed=0)
        self.avoids_twins = twins
        self.meanwhile = meanwhile
        self.calls = 0

    def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
        self.calls += 1
        used = [t.config for t in history.trials]  # read now: the other worker comes after
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        for point in POINTS:
            if point not in used:
                return dict(point)
        raise SamplerExhaustedError("no point left")


def other_worker(study: tc.Study, config: dict[str, Any] | None) -> Callable[[], None]:
    """Another worker's trial, started while this one's sampler is proposing."""

    def start() -> None:
        record = study.storage.create_trial(study.study_id, state=TrialState.RUNNING)
        if config is not None:
            study.storage.set_trial_config(record.trial_id, config)

    return start


def test_a_twin_started_meanwhile_makes_the_sampler_propose_again() -> None:
    study = tc.Study({"k": tc.integer(1, 5)}, sampler="random")
    sampler = FirstFree(other_worker(study, {"k": 1}))
    study.sampler = sampler
    trial = study.ask()
    assert trial.config == {"k": 2}
    assert study.storage.get_trial(trial.trial_id).config == {"k": 2}
    assert [t.config for t in study.trials] == [{"k": 2}, {"k": 1}]  # numbers 0 and 1
    assert sampler.calls == 2


def test_a_twin_whose_config_came_after_the_history_was_read_is_found() -> None:
    """The other trial was in the history, but still without its config."""
    study = tc.Study({"k": tc.integer(1, 5)}, sampler="random")
    other = study.storage.create_trial(study.study_id, state=TrialState.RUNNING)

    def its_config_arrives() -> None:
        study.storage.set_trial_config(other.trial_id, {"k": 1})

    study.sampler = FirstFree(its_config_arrives)
    assert study.ask().config == {"k": 2}


def test_a_twin_that_changed_its_config_after_the_history_was_read_is_found() -> None:
    """The other trial was in the history with another config, and asked again meanwhile
    for a twin of its own."""
    study = tc.Study({"k": tc.integer(1, 5)}, sampler="random")
    other = study.storage.create_trial(study.study_id, state=TrialState.RUNNING)
    study.storage.set_trial_config(other.trial_id, {"k": 3})
    for _ in range(3):  # older trials, finished: the check need not read them
        study.enqueue({"k": 5})
    older = study.ask(3)
    for trial in older:
        study.tell(trial, 1.0)

    def it_asks_again() -> None:
        study.storage.set_trial_config(other.trial_id, {"k": 1})

    study.sampler = FirstFree(it_asks_again)
    assert study.ask().config == {"k": 2}


def test_a_finished_twin_is_found_too() -> None:
    study = tc.Study({"k": tc.integer(1, 5)}, sampler="random")

    def fast_twin() -> None:
        other_worker(study, {"k": 1})()
        study.tell(study.trials[-1].number, 0.5)

    study.sampler = FirstFree(fast_twin)
    assert study.ask().config == {"k": 2}


def test_samplers_that_do_not_ask_for_it_keep_their_proposal() -> None:
    study = tc.Study({"k": tc.integer(1, 5)}, sampler="random")
    sampler = FirstFree(other_worker(study, {"k": 1}), twins=False)
    study.sampler = sampler
    assert study.ask().config == {"k": 1}
    assert sampler.calls == 1


def test_a_sampler_with_nothing_left_keeps_the_twin() -> None:
    study = tc.Study({"k": tc.integer(1, 5)}, sampler="random")
    for point in POINTS[1:]:
        study.enqueue(point)
        study.tell(study.ask(), 1.0)
    study.sampler = FirstFree(other_worker(study, {"k": 1}))
    trial = study.ask()
    assert trial.config == {"k": 1}
    assert study.storage.get_trial(trial.trial_id).state is TrialState.RUNNING


def test_a_sampler_error_on_asking_again_fails_the_trial() -> None:
    class Broken(FirstFree):
        def suggest(self, space: Space, history: History, number: int) -> dict[str, Any]:
            if self.calls == 1:
                raise ValueError("no model")
            return super().suggest(space, history, number)

    study = tc.Study({"k": tc.integer(1, 5)}, sampler="random")
    study.sampler = Broken(other_worker(study, {"k": 1}))
    with pytest.raises(ValueError, match="no model"):
        study.ask()
    mine = study.trials[0]  # the other worker's is 1
    assert mine.state is TrialState.FAILED and str(mine.error).startswith("sampler:")


def test_the_study_samplers_that_can_twin_ask_for_it() -> None:
    assert tc.make_sampler("gp").avoids_twins
    assert tc.make_sampler("auto").avoids_twins
    assert tc.make_sampler("grid").avoids_twins
    assert not tc.make_sampler("random").avoids_twins


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["grid", "gp"])
def test_two_workers_run_no_config_twice(tmp_path: Path, sampler: str) -> None:
    """Before: 1, 11 and 5 repeated grid points in three runs of this; 1-2 for the GP. (The
    grid's last point may still run twice: see Study._untwin.)"""

    def objective(trial: tc.Trial) -> float:
        time.sleep(0.01)
        return -trial.config["x"] + 0.1 * trial.config["k"]

    for seed in range(2):
        study = tc.Study(
            {"x": tc.uniform(0.0, 1.0), "k": tc.integer(1, 5)},
            storage=f"sqlite:///{tmp_path / f'{sampler}{seed}.db'}",
            sampler=sampler,
            seed=seed,
        )
        study.optimize(objective, n_trials=20 if sampler == "grid" else 30, n_jobs=2)
        configs = [(t.config["x"], t.config["k"]) for t in study.trials]
        assert len(set(configs)) == len(configs)
