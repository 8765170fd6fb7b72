"""Trial records, states, the value check, and the live Trial handle."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import tunecraft as tc
from tunecraft.exceptions import InvalidParameterError, TrialStateError
from tunecraft.storage import MemoryStorage
from tunecraft.trial import TRAIN_ATTR, FrozenTrial, TrialState, check_value


def test_trial_states_and_which_are_finished() -> None:
    assert [s.value for s in TrialState] == [
        "waiting",
        "running",
        "complete",
        "pruned",
        "paused",
        "failed",
    ]
    finished = {s for s in TrialState if s.is_finished}
    assert finished == {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED}
    assert str(TrialState.PAUSED) == "paused"


def test_state_parse_accepts_names_and_rejects_others() -> None:
    assert TrialState.parse("Complete") is TrialState.COMPLETE
    assert TrialState.parse(TrialState.FAILED) is TrialState.FAILED
    with pytest.raises(InvalidParameterError, match=r"'state' parameter of X must be one of"):
        TrialState.parse("done", "X")


def test_frozen_trial_duration_and_last_step() -> None:
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    t = FrozenTrial(
        number=0,
        state=TrialState.COMPLETE,
        config={"x": 1},
        value=0.5,
        intermediate={0: 3.0, 7: 1.0, 2: 2.0},
        datetime_start=start,
        datetime_complete=start + timedelta(seconds=2.5),
    )
    assert t.duration == 2.5 and t.last_step == 7
    empty = FrozenTrial(number=1, state=TrialState.WAITING, config={})
    assert empty.duration is None and empty.last_step is None
    with pytest.raises(AttributeError):
        t.value = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("value", [0, -3, 2.5, 1e300])
def test_check_value_accepts_finite_numbers(value: float) -> None:
    result = check_value(value, "f")
    assert type(result) is float and result == value


def test_check_value_accepts_objects_convertible_to_float() -> None:
    np = pytest.importorskip("numpy")
    assert check_value(np.float64(0.25), "f") == 0.25
    assert check_value(np.array(1.5), "f") == 1.5
    assert check_value(np.int32(3), "f") == 3.0


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (None, "f returned None"),
        (math.nan, "f returned nan"),
        (-math.inf, "f returned -inf"),
        ("1.0", "f returned str '1.0'"),
        (b"1", "f returned bytes"),
        (True, "f returned bool True"),
        ([1.0], "f returned list"),
        (object(), "f returned object"),
    ],
)
def test_check_value_rejects_what_is_not_a_finite_number(value: Any, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        check_value(value, "f")


@pytest.fixture
def study() -> tc.Study:
    return tc.Study({"x": tc.uniform(0, 1)}, seed=0)


def test_trial_handle_exposes_a_copy_of_its_config(study: tc.Study) -> None:
    trial = study.ask()
    config = trial.config
    config["x"] = 99.0
    assert trial.config["x"] != 99.0 and trial.params == trial.config
    assert trial.study is study and trial.trial_id == study.trials[0].trial_id
    assert repr(trial).startswith("Trial(number=0, config={'x': ")


def test_report_records_intermediate_values(study: tc.Study) -> None:
    trial = study.ask()
    trial.report(0.5, step=0)
    trial.report(0.25, step=1)
    trial.report(0.2, step=1)  # a step reported again is overwritten
    assert trial.intermediate == {0: 0.5, 1: 0.2}
    assert study.trials[0].intermediate == {0: 0.5, 1: 0.2}


@pytest.mark.parametrize(
    ("value", "step", "pattern"),
    [
        (0.5, -1, "'step' parameter of Trial.report must be an int >= 0, got -1"),
        (0.5, 1.0, "'step' parameter of Trial.report"),
        (0.5, True, "'step' parameter of Trial.report"),
        (math.nan, 0, r"Trial.report\(value=...\) got nan; pass a finite number"),
        (None, 0, r"Trial.report\(value=...\) got None"),
    ],
)
def test_report_rejects_bad_values_and_steps(
    study: tc.Study, value: Any, step: Any, pattern: str
) -> None:
    trial = study.ask()
    with pytest.raises(InvalidParameterError, match=pattern):
        trial.report(value, step=step)
    assert study.trials[0].intermediate == {}


def test_user_attrs_are_stored(study: tc.Study) -> None:
    trial = study.ask()
    trial.set_user_attr("note", {"a": [1, 2]})
    assert trial.user_attrs == {"note": {"a": [1, 2]}}
    study.tell(trial, 0.1)
    assert study.trials[0].user_attrs == {"note": {"a": [1, 2]}}
    with pytest.raises(InvalidParameterError, match=r"'key' parameter of Trial.set_user_attr"):
        trial.set_user_attr("", 1)
    with pytest.raises(TrialStateError):
        trial.set_user_attr("late", 1)  # the trial is finished


def test_report_with_a_training_value_keeps_the_training_curve() -> None:
    study = tc.Study({"x": tc.uniform(0, 1)})
    trial = study.ask()
    trial.report(0.9, step=1, train=0.8)
    trial.report(0.7, step=2)
    trial.report(0.6, step=3, train=0.4)
    study.tell(trial, 0.6)
    record = study.trials[0]
    assert record.intermediate == {1: 0.9, 2: 0.7, 3: 0.6}
    assert record.train_intermediate == {1: 0.8, 3: 0.4}
    with pytest.raises(InvalidParameterError, match="train"):
        study.ask().report(0.5, step=1, train=float("nan"))


def test_a_long_training_curve_is_written_in_batches_and_whole_at_the_end() -> None:
    """The curve is one attribute: rewriting it at every report was quadratic in its length
    (3000 steps: 45 s on SQLite). It is written as it grows by a quarter, and when told."""
    storage = MemoryStorage()
    writes: list[int] = []
    real = storage.set_user_attr

    def counting(trial_id: int, key: str, value: Any) -> None:
        if key == TRAIN_ATTR:
            writes.append(len(value))
        real(trial_id, key, value)

    storage.set_user_attr = counting  # type: ignore[method-assign]
    study = tc.Study({"x": tc.uniform(0, 1)}, storage=storage)
    trial = study.ask()
    for step in range(1, 1001):
        trial.report(1.0 / step, step=step, train=0.5 / step)
    assert 1 < len(writes) < 60  # was 1000 writes of up to 1000 pairs each
    assert sum(writes) < 6 * 1000  # linear, not quadratic, in the curve's length
    assert writes[:4] == [1, 2, 3, 4]  # a short curve is always up to date
    study.tell(trial.number, 0.001)  # by number: the study finds the handle's unwritten tail
    curve = study.trials[0].train_intermediate
    assert len(curve) == 1000 and curve[1000] == 0.5 / 1000


def test_a_paused_trial_keeps_its_whole_training_curve_for_the_resumed_run() -> None:
    study = tc.Study({"x": tc.uniform(0, 1)})
    trial = study.ask()
    for step in range(1, 40):
        trial.report(1.0, step=step, train=float(step))
    study.tell(trial, state="paused")
    assert study.trials[0].train_intermediate == {s: float(s) for s in range(1, 40)}


def test_user_attrs_read_back_as_the_storage_keeps_them() -> None:
    """A tuple is a list in storage, and the caller's list may change after the call."""
    study = tc.Study({"x": tc.uniform(0, 1)})
    trial = study.ask()
    mine = [1, 2]
    trial.set_user_attr("t", (1, 2))
    trial.set_user_attr("l", mine)
    mine.append(3)
    assert trial.user_attrs == {"t": [1, 2], "l": [1, 2]}


def test_frozen_trial_reads_budget_seed_phase_split_from_attributes() -> None:
    attrs = {"tc.budget": 0.25, "tc.seed": 3, "tc.phase": "explore", "tc.split": "holdout"}
    t = FrozenTrial(number=0, state=TrialState.COMPLETE, config={"x": 1}, user_attrs=attrs)
    assert (t.budget, t.seed, t.phase, t.split) == (0.25, 3, "explore", "holdout")
    bare = FrozenTrial(number=0, state=TrialState.COMPLETE, config={"x": 1})
    assert (bare.budget, bare.seed, bare.phase, bare.split) == (None, None, None, "validation")
    assert bare.run_config == {"x": 1} and bare.train_intermediate == {}
    odd = FrozenTrial(
        number=0,
        state=TrialState.COMPLETE,
        config={},
        user_attrs={"tc.seed": True, "tc.budget": "9"},
    )
    assert (odd.seed, odd.budget) == (None, None)


def test_a_resumed_trial_budget_is_the_scheduler_target() -> None:
    from tunecraft.schedulers import ASHAScheduler

    study = tc.Study(
        {"x": tc.uniform(0, 1)},
        scheduler=ASHAScheduler(max_resource=4, reduction_factor=2, variant="promotion"),
    )
    study._trial_attrs = {"tc.budget": 4}
    a = study.ask()
    assert a.budget == 4  # what the study assigned
    a.report(0.5, step=1)
    study.tell(a, 0.5)
    b = study.ask()
    b.report(0.9, step=1)
    study.tell(b, 0.9)
    resumed = study.ask()
    assert resumed.resumed and resumed.budget == 2  # the scheduler's next rung
