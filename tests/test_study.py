"""The Study: ask/tell, optimize, failures, enqueue, best trial, dataframes, loading."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tunecraft as tc
from tunecraft.exceptions import (
    DuplicatedStudyError,
    InvalidParameterError,
    StudyNotFoundError,
    TrialPruned,
    TrialStateError,
)
from tunecraft.schedulers import Decision
from tunecraft.storage import MemoryStorage
from tunecraft.trial import FrozenTrial, Trial, TrialState

SPACE = {
    "x": tc.uniform(-5.0, 5.0),
    "opt": tc.choice(["sgd", "adam"]),
    "momentum": tc.uniform(0.5, 0.99).when(opt="sgd"),
    "layers": tc.integer(1, 4),
}


def _study(**kwargs: Any) -> tc.Study:
    kwargs.setdefault("sampler", tc.make_sampler("random", seed=0))
    return tc.Study(SPACE, **kwargs)


# -- ask and tell ---------------------------------------------------------------------------------
def test_ask_starts_a_running_trial_with_a_config_of_the_space() -> None:
    study = _study()
    trial = study.ask()
    assert isinstance(trial, Trial) and trial.number == 0
    assert study.space.contains(trial.config)
    (record,) = study.trials
    assert record.state is TrialState.RUNNING and record.config == trial.config
    assert record.datetime_start is not None and record.datetime_complete is None
    assert study.ask().number == 1


def test_tell_completes_the_trial_with_its_value() -> None:
    study = _study()
    trial = study.ask()
    record = study.tell(trial, 0.25)
    assert record.state is TrialState.COMPLETE and record.value == 0.25
    assert record.datetime_complete is not None and record.duration is not None
    assert study.trials[0].value == 0.25
    assert study.best_value == 0.25


def test_tell_twice_raises_trial_state_error() -> None:
    study = _study()
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(TrialStateError, match=r"already complete; it cannot be told twice"):
        study.tell(trial, 2.0)
    with pytest.raises(TrialStateError):
        study.tell(0, 2.0)  # by number too
    with pytest.raises(TrialStateError):
        study.tell(trial, state="failed")
    assert study.trials[0].value == 1.0 and study.trials[0].state is TrialState.COMPLETE


def test_tell_failed_records_the_state_and_error() -> None:
    study = _study()
    trial = study.ask()
    record = study.tell(trial, state="failed", error="out of memory")
    assert record.state is TrialState.FAILED and record.value is None
    assert record.error == "out of memory"
    with pytest.raises(ValueError, match=r"no complete trial"):
        _ = study.best_trial


def test_tell_by_number_and_other_states() -> None:
    study = _study()
    a, b = study.ask(), study.ask()
    study.tell(b.number, 3.0)
    a.report(0.7, step=0)
    pruned = study.tell(a, state=TrialState.PRUNED)
    assert pruned.state is TrialState.PRUNED and pruned.value == 0.7  # last reported value
    with pytest.raises(InvalidParameterError, match=r"'state' parameter of Study.tell"):
        study.tell(study.ask(), state="running")
    with pytest.raises(InvalidParameterError, match=r"'state' parameter of Study.tell"):
        study.tell(study.ask(), state="bogus")
    with pytest.raises(InvalidParameterError, match=r"no trial number 99"):
        study.tell(99, 1.0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [(math.nan, "returned nan"), (math.inf, "returned inf"), (None, "returned None")],
)
def test_tell_with_an_invalid_value_fails_the_trial(value: Any, reason: str) -> None:
    study = _study()
    record = study.tell(study.ask(), value)
    assert record.state is TrialState.FAILED and reason in (record.error or "")


def test_trial_from_another_study_is_rejected() -> None:
    a, b = _study(), _study()
    with pytest.raises(InvalidParameterError, match=r"belongs to study"):
        b.tell(a.ask(), 1.0)


# -- optimize and failures ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (ValueError("diverged"), "ValueError: diverged"),
        (float("nan"), "returned nan"),
        (float("-inf"), "returned -inf"),
        (None, "returned None"),
        ("0.5", "returned str '0.5'"),
        ("oops", "returned str 'oops'"),
        (True, "returned bool True"),
        ([1.0], "returned list"),
    ],
)
def test_bad_objective_fails_the_trial_and_the_study_goes_on(result: Any, reason: str) -> None:
    def objective(trial: Trial) -> Any:
        if trial.number == 1:
            if isinstance(result, BaseException):
                raise result
            return result
        return float(trial.number)

    study = _study()
    study.optimize(objective, n_trials=4)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAILED] + [TrialState.COMPLETE] * 2
    failed = study.trials[1]
    assert failed.value is None and reason in (failed.error or "")
    assert study.best_trial.number == 0


def test_numpy_scalars_are_valid_values() -> None:
    np = pytest.importorskip("numpy")
    study = _study()
    study.optimize(lambda t: np.float32(1.5), n_trials=1)
    assert study.best_value == 1.5 and type(study.best_value) is float


def test_catch_narrowing_reraises_other_exceptions_after_failing_the_trial() -> None:
    def objective(trial: Trial) -> float:
        if trial.number == 0:
            raise ValueError("expected")
        raise KeyError("unexpected")

    study = _study()
    with pytest.raises(KeyError, match=r"unexpected"):
        study.optimize(objective, n_trials=5, catch=(ValueError,))
    assert [t.state for t in study.trials] == [TrialState.FAILED, TrialState.FAILED]
    assert "ValueError: expected" in (study.trials[0].error or "")
    assert "KeyError" in (study.trials[1].error or "")


def test_catch_accepts_a_single_exception_class() -> None:
    study = _study()
    with pytest.raises(ZeroDivisionError):
        study.optimize(lambda t: 1 / 0, n_trials=2, catch=KeyError)
    assert len(study.trials) == 1 and study.trials[0].state is TrialState.FAILED


def test_keyboard_interrupt_fails_the_trial_propagates_and_leaves_the_study_resumable() -> None:
    def objective(trial: Trial) -> float:
        if trial.number == 1:
            raise KeyboardInterrupt
        return 1.0

    study = _study()
    with pytest.raises(KeyboardInterrupt):
        study.optimize(objective, n_trials=5)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAILED]
    assert study.trials[1].error == "interrupted"
    study.optimize(lambda t: 2.0, n_trials=2)  # resumes
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert not study.get_trials([TrialState.RUNNING])


def test_trial_pruned_ends_the_trial_as_pruned() -> None:
    def objective(trial: Trial) -> float:
        trial.report(4.0, step=0)
        raise TrialPruned

    study = _study()
    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert study.trials[0].value == 4.0


def test_optimize_runs_n_trials_and_calls_callbacks_with_each_record() -> None:
    seen: list[tuple[str, int, TrialState]] = []
    study = _study()
    study.optimize(
        lambda t: t.config["x"] ** 2,
        n_trials=5,
        callbacks=[lambda s, r: seen.append((s.name, r.number, r.state))],
    )
    assert len(study.trials) == 5
    assert seen == [(study.name, n, TrialState.COMPLETE) for n in range(5)]
    study.optimize(lambda t: 0.0, n_trials=2)  # adds to the study
    assert len(study.trials) == 7


def test_optimize_stops_at_the_timeout() -> None:
    study = _study()
    start = time.monotonic()
    study.optimize(lambda t: time.sleep(0.05) or 1.0, timeout=0.3)
    elapsed = time.monotonic() - start
    assert 1 <= len(study.trials) <= 8
    assert elapsed < 1.5


def test_same_seed_gives_the_same_trials() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        study = tc.Study(SPACE, seed=seed)
        study.optimize(lambda t: t.config["x"], n_trials=6)
        return [t.config for t in study.trials]

    assert run(3) == run(3)
    assert run(3) != run(4)


# -- enqueue --------------------------------------------------------------------------------------
def test_enqueued_configs_run_first_in_order() -> None:
    study = _study()
    full = {"x": 1.0, "opt": "sgd", "momentum": 0.9, "layers": 2}
    study.enqueue(full)
    study.enqueue({"x": -1.0, "opt": "adam", "layers": 4})
    waiting = study.get_trials(["waiting"])
    assert [t.number for t in waiting] == [0, 1]
    assert study.ask().config == full
    assert study.ask().config == {"x": -1.0, "opt": "adam", "layers": 4}
    third = study.ask()
    assert third.number == 2 and study.space.contains(third.config)


def test_partial_enqueue_is_completed_by_the_sampler() -> None:
    study = _study()
    study.enqueue({"opt": "sgd"})
    study.enqueue({"x": 0.5})
    first, second = study.ask(), study.ask()
    assert first.config["opt"] == "sgd" and "momentum" in first.config
    assert study.space.contains(first.config)
    assert second.config["x"] == 0.5 and study.space.contains(second.config)
    assert study.trials[0].config == first.config  # the storage has the completed config


def test_optimize_evaluates_enqueued_configs() -> None:
    study = _study()
    study.enqueue({"x": 0.0, "opt": "adam", "layers": 1})
    study.optimize(lambda t: t.config["x"] ** 2, n_trials=3)
    assert study.trials[0].config == {"x": 0.0, "opt": "adam", "layers": 1}
    assert study.best_config == {"x": 0.0, "opt": "adam", "layers": 1}


@pytest.mark.parametrize(
    ("config", "exc", "pattern"),
    [
        ({"y": 1.0}, InvalidParameterError, "unknown parameter 'y'"),
        ({"x": 10.0}, InvalidParameterError, r"'x'=10.0 is outside uniform\(-5, 5\)"),
        ({"layers": 2.5}, InvalidParameterError, r"'layers'=2.5 is outside int\(1, 4\)"),
        ({"opt": "rmsprop"}, InvalidParameterError, "'opt'='rmsprop' is outside"),
        ({"opt": "adam", "momentum": 0.9}, InvalidParameterError, "'momentum' is inactive"),
        ([("x", 1.0)], TypeError, "'config' parameter of Study.enqueue must be a dict"),
    ],
)
def test_bad_enqueue_is_rejected(config: Any, exc: type[Exception], pattern: str) -> None:
    study = _study()
    with pytest.raises(exc, match=pattern):
        study.enqueue(config)
    assert study.trials == []


# -- best trial -----------------------------------------------------------------------------------
def test_best_trial_minimize_and_maximize() -> None:
    values = [3.0, -1.0, 7.0, -1.0, 2.0]
    for direction, best_number, best_value in (("minimize", 1, -1.0), ("maximize", 2, 7.0)):
        study = _study(direction=direction)
        for v in values:
            study.tell(study.ask(), v)
        study.tell(study.ask(), state="failed")
        assert study.best_trial.number == best_number  # ties: the lowest number
        assert study.best_value == best_value
        assert study.best_config == study.trials[best_number].config


def test_best_trial_without_complete_trials_is_a_value_error() -> None:
    study = _study()
    for prop in ("best_trial", "best_value", "best_config"):
        with pytest.raises(ValueError, match=r"has no complete trial"):
            getattr(study, prop)
    study.ask()  # running only
    with pytest.raises(ValueError):
        _ = study.best_value


# -- to_dataframe ---------------------------------------------------------------------------------
def test_to_dataframe_one_row_a_trial_with_inactive_params_missing() -> None:
    pd = pytest.importorskip("pandas")
    study = _study()
    study.enqueue({"x": 1.0, "opt": "adam", "layers": 2})
    study.enqueue({"x": 2.0, "opt": "sgd", "momentum": 0.6, "layers": 3})

    def objective(trial: Trial) -> float:
        trial.set_user_attr("seen", trial.number)
        trial.report(1.0, step=0)
        trial.report(0.5, step=3)
        if trial.number == 2:
            raise RuntimeError("boom")
        return trial.config["x"]

    study.optimize(objective, n_trials=3)
    df = study.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert list(df["number"]) == [0, 1, 2]
    assert list(df["state"]) == ["complete", "complete", "failed"]
    assert df["value"].iloc[0] == 1.0 and pd.isna(df["value"].iloc[2])
    assert {"config_x", "config_opt", "config_momentum", "config_layers"} <= set(df.columns)
    assert pd.isna(df["config_momentum"].iloc[0])
    assert df["config_momentum"].iloc[1] == 0.6
    assert list(df["user_seen"]) == [0, 1, 2]
    assert list(df["last_step"]) == [3, 3, 3]
    assert "RuntimeError: boom" in df["error"].iloc[2] and pd.isna(df["error"].iloc[0])
    assert (df["duration"].iloc[:2] >= 0).all()


def test_to_dataframe_of_an_empty_study_has_the_columns() -> None:
    pytest.importorskip("pandas")
    df = _study().to_dataframe()
    assert len(df) == 0 and "config_x" in df.columns and "value" in df.columns


# -- storage, names, loading ----------------------------------------------------------------------
def test_load_if_exists_continues_a_study_with_the_same_space() -> None:
    storage = MemoryStorage()
    first = tc.Study(SPACE, name="s", storage=storage)
    first.optimize(lambda t: 1.0, n_trials=2)
    with pytest.raises(DuplicatedStudyError, match=r"already exists; pass load_if_exists=True"):
        tc.Study(SPACE, name="s", storage=storage)
    assert issubclass(DuplicatedStudyError, ValueError)
    again = tc.Study(dict(SPACE), name="s", storage=storage, load_if_exists=True)
    assert len(again.trials) == 2 and again.study_id == first.study_id
    again.optimize(lambda t: 0.5, n_trials=1)
    assert len(first.trials) == 3


def test_load_if_exists_with_another_space_or_direction_is_rejected() -> None:
    storage = MemoryStorage()
    tc.Study(SPACE, name="s", storage=storage)
    other = {**SPACE, "x": tc.uniform(-5.0, 6.0)}
    with pytest.raises(InvalidParameterError, match=r"exists with another space"):
        tc.Study(other, name="s", storage=storage, load_if_exists=True)
    with pytest.raises(InvalidParameterError, match=r"exists with direction 'minimize'"):
        tc.Study(SPACE, name="s", storage=storage, load_if_exists=True, direction="maximize")


def test_load_delete_and_list_studies_in_memory() -> None:
    storage = MemoryStorage()
    a = tc.Study(SPACE, name="a", storage=storage, direction="maximize")
    a.optimize(lambda t: t.config["x"], n_trials=3)
    tc.Study({"y": tc.integer(1, 3)}, name="b", storage=storage)
    assert [(s.name, s.n_trials) for s in tc.list_studies(storage)] == [("a", 3), ("b", 0)]
    loaded = tc.load_study("a", storage=storage)
    assert loaded.direction == "maximize" and loaded.space == a.space
    assert loaded.best_trial == a.best_trial
    by_name = tc.Study(None, name="a", storage=storage)
    assert len(by_name.trials) == 3
    tc.delete_study("a", storage=storage)
    assert [s.name for s in tc.list_studies(storage)] == ["b"]
    with pytest.raises(StudyNotFoundError, match=r"No study named 'a'"):
        tc.load_study("a", storage=storage)
    with pytest.raises(StudyNotFoundError):
        tc.delete_study("a", storage=storage)
    with pytest.raises(InvalidParameterError, match=r"'name' parameter of load_study"):
        tc.load_study("", storage=storage)


def test_a_study_without_name_gets_a_unique_one() -> None:
    storage = MemoryStorage()
    a, b = tc.Study(SPACE, storage=storage), tc.Study(SPACE, storage=storage)
    assert a.name != b.name and len(tc.list_studies(storage)) == 2


# -- report, should_stop, schedulers ------------------------------------------------------------
class _Fixed(tc.Scheduler):
    """Answers ``decision`` once a trial has reported ``after`` values."""

    def __init__(self, decision: Decision, after: int = 2) -> None:
        self.decision, self.after = decision, after
        self.seen: list[tuple[int, dict[int, float]]] = []

    def on_report(self, trial: FrozenTrial, history: Any) -> Decision:
        self.seen.append((trial.number, dict(trial.intermediate)))
        return self.decision if len(trial.intermediate) >= self.after else Decision.CONTINUE


def _reporting(trial: Trial) -> float:
    value = 10.0
    for step in range(5):
        value = 10.0 - step
        trial.report(value, step=step)
        if trial.should_stop():
            break
    return value


def test_should_stop_is_false_without_a_scheduler() -> None:
    study = _study()
    trial = study.ask()
    for step in range(3):
        trial.report(1.0 / (step + 1), step=step)
        assert not trial.should_stop() and trial.decision == "continue"
    assert study.trials[0].intermediate == {0: 1.0, 1: 0.5, 2: pytest.approx(1 / 3)}
    assert study.tell(trial, 0.1).state is TrialState.COMPLETE


def test_a_scheduler_that_stops_prunes_the_trial() -> None:
    scheduler = _Fixed(Decision.STOP)
    study = _study(scheduler=scheduler)
    study.optimize(_reporting, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert study.trials[0].intermediate == {0: 10.0, 1: 9.0}  # stopped after the 2nd report
    assert study.trials[0].value == 9.0
    assert scheduler.seen[:2] == [(0, {0: 10.0}), (0, {0: 10.0, 1: 9.0})]
    with pytest.raises(ValueError):
        _ = study.best_trial  # pruned trials are not complete


def test_a_scheduler_that_pauses_leaves_the_trial_paused() -> None:
    study = _study(scheduler=_Fixed(Decision.PAUSE, after=3))
    trial = study.ask()
    assert _reporting(trial) == 8.0 and trial.should_stop() and trial.decision == "pause"
    record = study.tell(trial, 8.0)
    assert record.state is TrialState.PAUSED and not record.state.is_finished
    study.optimize(_reporting, n_trials=1)
    assert study.trials[1].state is TrialState.PAUSED


def test_a_scheduler_that_continues_lets_the_trial_complete() -> None:
    study = _study(scheduler=_Fixed(Decision.CONTINUE))
    study.optimize(_reporting, n_trials=1)
    assert study.trials[0].state is TrialState.COMPLETE and study.best_value == 6.0


def test_report_after_the_trial_finished_is_a_state_error() -> None:
    study = _study()
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(TrialStateError, match=r"trial 0 is complete, not running"):
        trial.report(1.0, step=0)


# -- argument validation --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"direction": "min"}, InvalidParameterError, "'direction' parameter of Study"),
        ({"direction": None}, InvalidParameterError, "'direction' parameter of Study"),
        ({"seed": -1}, InvalidParameterError, "'seed' parameter of Study must be an int >= 0"),
        ({"seed": 1.5}, TypeError, "'seed' parameter of Study must be an int"),
        ({"name": ""}, InvalidParameterError, "'name' parameter of Study"),
        ({"name": 3}, InvalidParameterError, "'name' parameter of Study"),
        ({"sampler": "nope"}, InvalidParameterError, "'sampler' parameter of Study .* 'tpe'"),
        ({"sampler": 3}, TypeError, "'sampler' parameter of Study"),
        ({"scheduler": 3}, TypeError, "'scheduler' parameter of Study"),
        ({"scheduler": "nope"}, InvalidParameterError, "'scheduler' parameter"),
        ({"storage": "ftp://x"}, InvalidParameterError, "'storage' parameter"),
        ({"storage": 3}, TypeError, "'storage' parameter"),
        (
            {"sampler": tc.make_sampler("random", seed=0), "seed": 1},
            InvalidParameterError,
            "a Sampler instance carries its own seed",
        ),
    ],
)
def test_bad_study_arguments(kwargs: dict[str, Any], exc: type[Exception], pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        tc.Study(SPACE, **kwargs)


def test_seed_seeds_a_scheduler_by_name_next_to_a_sampler_instance() -> None:
    study = tc.Study(SPACE, sampler=tc.make_sampler("random", seed=0), scheduler="pbt", seed=7)
    assert study.scheduler is not None and study.scheduler.seed == 7  # type: ignore[attr-defined]


def test_study_needs_a_space_or_a_name() -> None:
    with pytest.raises(InvalidParameterError, match=r"give a 'space'"):
        tc.Study(None)
    with pytest.raises(StudyNotFoundError):
        tc.Study(None, name="missing")


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"n_trials": 0}, InvalidParameterError, "'n_trials' parameter of Study.optimize"),
        ({"n_trials": -3}, InvalidParameterError, "'n_trials' parameter of Study.optimize"),
        ({"n_trials": 2.0}, TypeError, "'n_trials' parameter of Study.optimize"),
        ({"n_jobs": 0}, InvalidParameterError, "'n_jobs' parameter of Study.optimize"),
        ({"n_jobs": -2}, InvalidParameterError, "'n_jobs' parameter of Study.optimize"),
        ({"timeout": 0}, InvalidParameterError, "'timeout' parameter of Study.optimize"),
        ({"timeout": -1.0}, InvalidParameterError, "'timeout' parameter of Study.optimize"),
        ({"timeout": math.nan}, InvalidParameterError, "'timeout' parameter of Study.optimize"),
        ({"timeout": "10"}, TypeError, "'timeout' parameter of Study.optimize"),
        ({"catch": (ValueError, 3)}, TypeError, "'catch' parameter of Study.optimize"),
        ({"catch": "ValueError"}, TypeError, "'catch' parameter of Study.optimize"),
        ({"callbacks": [3]}, TypeError, "'callbacks' parameter of Study.optimize"),
    ],
)
def test_bad_optimize_arguments(
    kwargs: dict[str, Any], exc: type[Exception], pattern: str
) -> None:
    study = _study()
    with pytest.raises(exc, match=pattern):
        study.optimize(lambda t: 1.0, **kwargs)
    assert study.trials == []  # nothing ran


def test_non_callable_objective_is_a_type_error() -> None:
    study = _study()
    with pytest.raises(
        TypeError, match=r"'objective' parameter of Study.optimize must be callable"
    ):
        study.optimize(3.0, n_trials=1)  # type: ignore[arg-type]


# -- add_trial and enqueue with attributes -----------------------------------------------------
def test_add_trial_records_a_finished_trial_the_sampler_learns_from() -> None:
    study = tc.Study({"x": tc.uniform(0, 1)}, seed=0)
    record = study.add_trial(
        {"x": 0.25}, 0.5, intermediate={1: 0.9, 2: 0.5}, user_attrs={"source": "old"}
    )
    assert (record.number, record.state, record.value) == (0, TrialState.COMPLETE, 0.5)
    assert record.intermediate == {1: 0.9, 2: 0.5} and record.user_attrs == {"source": "old"}
    assert study.best_config == {"x": 0.25}
    pruned = study.add_trial({"x": 0.75}, intermediate={1: 2.0}, state="pruned")
    assert pruned.state is TrialState.PRUNED and pruned.value == 2.0
    failed = study.add_trial({"x": 0.5}, state="failed")
    assert failed.state is TrialState.FAILED and failed.value is None
    assert len(study.history().complete) == 1
    trial = study.ask()  # the next trial numbers on
    assert trial.number == 3


def test_add_trial_survives_a_reload(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    study = tc.Study({"x": tc.uniform(0, 1)}, storage=url, name="a")
    study.add_trial({"x": 0.1}, 1.0, intermediate={3: 1.5}, user_attrs={"tc.seed": 4})
    again = tc.load_study("a", storage=url)
    assert again.trials[0].intermediate == {3: 1.5} and again.trials[0].seed == 4


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "pattern"),
    [
        (({"x": 2.0}, 1.0), {}, ValueError, "outside|x"),
        (({"x": 0.5}, None), {}, ValueError, "None"),
        (({"x": 0.5}, float("nan")), {}, ValueError, "nan"),
        (({"x": 0.5}, 1.0), {"state": "running"}, ValueError, "'state' parameter"),
        (({"x": 0.5}, 1.0), {"state": "failed"}, ValueError, "None for a failed trial"),
        (({"x": 0.5}, 1.0), {"intermediate": {-1: 0.3}}, ValueError, "intermediate"),
        (({"x": 0.5}, 1.0), {"user_attrs": {"": 1}}, TypeError, "user_attrs"),
        (("x=0.5", 1.0), {}, TypeError, "config"),
    ],
)
def test_bad_add_trial_is_rejected(
    args: tuple[Any, ...], kwargs: dict[str, Any], exc: type[Exception], pattern: str
) -> None:
    study = tc.Study({"x": tc.uniform(0, 1)})
    with pytest.raises(exc, match=pattern):
        study.add_trial(*args, **kwargs)
    assert study.trials == []


def test_numpy_integers_are_accepted_as_steps_and_values() -> None:
    study = tc.Study({"n": tc.choice([1, 2, 3]), "x": tc.uniform(0, 1)})
    study.add_trial({"n": 1, "x": 0.5}, 0.5, intermediate={np.int64(1): 0.7, np.int32(2): 0.5})
    assert study.trials[0].intermediate == {1: 0.7, 2: 0.5}
    study.enqueue({"n": np.int64(3), "x": np.float64(0.25)})
    trial = study.ask()
    assert trial.config == {"n": 3, "x": 0.25} and type(trial.config["n"]) is int


def test_enqueue_with_user_attrs_sets_seed_budget_phase_and_split() -> None:
    study = tc.Study({"x": tc.uniform(0, 1)})
    study.enqueue(
        {"x": 0.5},
        user_attrs={"tc.seed": 7, "tc.budget": 12, "tc.phase": "validate", "tc.split": "holdout"},
    )
    trial = study.ask()
    assert (trial.seed, trial.budget, trial.phase, trial.split) == (7, 12, "validate", "holdout")
    fresh = study.ask()  # nothing set: the defaults
    assert (fresh.seed, fresh.budget, fresh.phase, fresh.split) == (None, None, None, "validation")


def test_trial_defaults_and_derived_config_apply_to_new_trials_only_once() -> None:
    study = tc.Study({"x": tc.uniform(0, 1)}, seed=0)
    study._trial_attrs = {"tc.budget": 3, "tc.seed": 0}
    study._derive = lambda c: {**c, "y": 2 * c["x"]}
    study.enqueue({"x": 0.5}, user_attrs={"tc.seed": 9})
    queued, new = study.ask(), study.ask()
    assert (queued.seed, queued.budget) == (9, 3)  # the enqueued seed wins
    assert queued.config == {"x": 0.5, "y": 1.0} and queued.sampled_config == {"x": 0.5}
    assert new.config["y"] == 2 * new.sampled_config["x"]
    study.tell(queued, 1.0)
    assert study.trials[0].run_config == {"x": 0.5, "y": 1.0}
