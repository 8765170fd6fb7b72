"""Scheduler test helpers: hand-written scenarios and a conformance suite for every scheduler.

:class:`Scenario` replays a hand-written sequence of reports, finishes and asks against a
scheduler, on a real :class:`~tunecraft.storage.MemoryStorage`, and checks the expected
decision at each step; the scheduler's answers are applied as a study would apply them (stop:
pruned, pause: paused, a resume order: running again). :class:`SchedulerConformance` holds the
contract every scheduler meets as pytest tests; a subclass provides a ``scheduler`` fixture.

Example:
    >>> from tunecraft.schedulers import ASHAScheduler
    >>> sc = Scenario(ASHAScheduler(min_resource=1, reduction_factor=2))
    >>> _ = sc.report(0, step=1, value=0.5, expect="continue")  # alone at rung 1
    >>> _ = sc.report(1, step=1, value=0.9, expect="stop")      # worse than trial 0
    >>> _ = sc.report(2, step=1, value=0.1, expect="continue")  # top 1 of 3

Example (in a test module of your project)::

    import pytest
    from tunecraft.testing.schedulers import SchedulerConformance

    class TestMyScheduler(SchedulerConformance):
        @pytest.fixture
        def scheduler(self):
            return MyScheduler(...)
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tunecraft.samplers._base import History
from tunecraft.schedulers import Decision, Resume, Scheduler
from tunecraft.space import Space, integer, uniform
from tunecraft.storage import MemoryStorage
from tunecraft.trial import FrozenTrial, TrialState

__all__ = ["Scenario", "SchedulerConformance"]

_SPACE = Space({"x": uniform(0.0, 1.0), "n": integer(1, 8)})


class Scenario:
    """A scheduler driven by hand: each call states what happens and what must be decided.

    Args:
        scheduler: The scheduler under test.
        direction: ``"minimize"`` or ``"maximize"``.
        space: The space given to :meth:`Scheduler.on_ask` (a small default one).

    Trials are numbered in the order they first appear; a number must be the next one free.
    Every method returns the scenario, so calls chain. A mismatch raises ``AssertionError``
    naming the event.
    """

    def __init__(
        self, scheduler: Scheduler, *, direction: str = "minimize", space: Space | None = None
    ) -> None:
        self.scheduler = scheduler
        self.direction = direction
        self.space = space or _SPACE
        self.storage = MemoryStorage()
        self.study_id = self.storage.create_study(
            "scenario", direction, self.space.to_dict()
        ).study_id
        self._ids: dict[int, int] = {}
        self.decisions: list[Decision] = []
        self._event = 0

    # -- reading -----------------------------------------------------------------------------
    def history(self) -> History:
        """The trials as the scheduler sees them."""
        return History(lambda: self.storage.get_trials(self.study_id), self.direction)

    def trial(self, number: int) -> FrozenTrial:
        """The stored record of trial ``number``."""
        return self.storage.get_trial(self._ids[number])

    def state(self, number: int) -> TrialState:
        """The state of trial ``number``."""
        return self.trial(number).state

    # -- events ------------------------------------------------------------------------------
    def start(self, number: int, config: Mapping[str, Any] | None = None) -> Scenario:
        """Start trial ``number`` (the next free one)."""
        self._event += 1
        if number != len(self._ids):
            raise AssertionError(f"event {self._event}: trial {number} is not the next number")
        cfg = dict(config) if config is not None else {"x": 0.5, "n": 1}
        t = self.storage.create_trial(self.study_id, config=cfg, worker="scenario:0")
        self._ids[number] = t.trial_id
        return self

    def report(
        self, number: int, *, step: int, value: float, expect: Decision | str | None = None
    ) -> Scenario:
        """Trial ``number`` reports ``value`` at ``step``; check the decision against ``expect``.

        A trial not seen yet is started first. A stop prunes the trial and a pause pauses it,
        as :meth:`tunecraft.Study.tell` would.
        """
        if number not in self._ids:
            self.start(number)
        self._event += 1
        tid = self._ids[number]
        self.storage.report(tid, step, value)
        record = self.storage.get_trial(tid)
        decision = Decision(self.scheduler.on_report(record, self.history()))
        self.decisions.append(decision)
        if expect is not None and decision != Decision(expect):
            raise AssertionError(
                f"event {self._event}: trial {number} at step {step} (value {value}): "
                f"expected {Decision(expect).value}, got {decision.value}"
            )
        if decision is Decision.STOP:
            self.storage.set_state(tid, TrialState.PRUNED, value=value)
        elif decision is Decision.PAUSE:
            self.storage.set_state(tid, TrialState.PAUSED, value=value)
        return self

    def reports(
        self, number: int, values: Sequence[float], expect: Sequence[Decision | str | None]
    ) -> Scenario:
        """Trial ``number`` reports ``values[i]`` at steps 1, 2, ... with ``expect[i]``."""
        if len(values) != len(expect):
            raise ValueError("values and expect must have the same length")
        start = (self.trial(number).last_step or 0) + 1 if number in self._ids else 1
        for i, (v, e) in enumerate(zip(values, expect, strict=True)):
            self.report(number, step=start + i, value=v, expect=e)
        return self

    def finish(
        self, number: int, value: float | None = None, *, state: str = "complete"
    ) -> Scenario:
        """Trial ``number`` ends (``value``: its last reported one when ``None``)."""
        self._event += 1
        record = self.trial(number)
        if value is None and record.intermediate:
            value = record.intermediate[max(record.intermediate)]
        target = TrialState.parse(state)
        self.storage.set_state(
            record.trial_id, target, value=None if target is TrialState.FAILED else value
        )
        return self

    def ask(self, expect: Resume | int | None) -> Scenario:
        """The study asks for work: prune what :meth:`Scheduler.to_stop` gives up, then check
        :meth:`Scheduler.on_ask` against ``expect`` (a :class:`Resume`, just its trial number,
        or ``None``) and apply it."""
        self._event += 1
        history = self.history()
        for number in self.scheduler.to_stop(history):
            t = self.trial(number)
            if t.state is not TrialState.PAUSED:
                raise AssertionError(
                    f"event {self._event}: to_stop named trial {number}, which is {t.state.value}"
                )
            self.storage.set_state(t.trial_id, TrialState.PRUNED, value=t.value)
        order = self.scheduler.on_ask(self.space, self.history())
        got = order.number if (isinstance(expect, int) and order is not None) else order
        if got != expect:
            raise AssertionError(
                f"event {self._event}: on_ask: expected {expect!r}, got {order!r}"
            )
        if order is not None:
            t = self.trial(order.number)
            resumed = self.storage.resume_trial(t.trial_id, "scenario:1")
            if order.config is not None:
                self.storage.set_trial_config(resumed.trial_id, dict(order.config))
        return self

    def expect_states(self, states: Mapping[int, TrialState | str]) -> Scenario:
        """Check the states of the given trials."""
        for number, state in states.items():
            got = self.state(number)
            if got is not TrialState.parse(state):
                raise AssertionError(f"trial {number}: expected {state}, got {got.value}")
        return self


def _random_run(scheduler: Scheduler, direction: str, seed: int) -> list[str]:
    """A reproducible run of 12 trials of 9 steps; values mirrored for maximization."""
    rng = np.random.default_rng(seed)
    sign = 1.0 if direction == "minimize" else -1.0
    sc = Scenario(scheduler, direction=direction)
    trace: list[str] = []
    finals = rng.uniform(0, 1, size=12)
    for n in range(12):
        sc.ask(_any)  # whatever it is, apply it
        sc.start(n)
        for step in range(1, 10):
            value = sign * float(finals[n] + 1.0 / step)
            sc.report(n, step=step, value=value)
            trace.append(f"{n}:{step}:{sc.decisions[-1].value}")
            if sc.decisions[-1] is not Decision.CONTINUE:
                break
        else:
            sc.finish(n)
    return trace


class _Any:
    """Matches whatever ``on_ask`` returns (used by the generic runs)."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:  # pragma: no cover - never hashed
        return 0

    def __repr__(self) -> str:
        return "<any>"


_any: Any = _Any()


class SchedulerConformance:
    """The contract of :class:`~tunecraft.schedulers.Scheduler` as pytest tests.

    Subclasses provide a ``scheduler`` fixture returning a fresh instance.
    """

    def test_first_report_of_a_lone_trial_continues(self, scheduler: Scheduler) -> None:
        sc = Scenario(scheduler)
        sc.report(0, step=0, value=1.0, expect=Decision.CONTINUE)

    def test_nothing_to_resume_or_stop_in_an_empty_study(self, scheduler: Scheduler) -> None:
        history = History([], "minimize")
        assert scheduler.on_ask(_SPACE, history) is None
        assert list(scheduler.to_stop(history)) == []

    def test_answers_are_decisions(self, scheduler: Scheduler) -> None:
        trace = _random_run(scheduler, "minimize", 0)
        assert trace and all(t.rsplit(":", 1)[1] in {"continue", "stop", "pause"} for t in trace)

    def test_deterministic_and_stateless(self, scheduler: Scheduler) -> None:
        """Same history, same answers: from this instance twice and from a pickled copy (what
        a worker process gets), so decisions hold across workers and restarts."""
        first = _random_run(scheduler, "minimize", 1)
        again = _random_run(scheduler, "minimize", 1)
        copy = _random_run(pickle.loads(pickle.dumps(scheduler)), "minimize", 1)
        assert first == again == copy

    def test_maximize_mirrors_minimize(self, scheduler: Scheduler) -> None:
        assert _random_run(scheduler, "minimize", 2) == _random_run(scheduler, "maximize", 2)

    def test_stops_or_pauses_something_bad(self, scheduler: Scheduler) -> None:
        """Given a clearly bad trial among good ones, every scheduler acts on it eventually."""
        trace = _random_run(scheduler, "minimize", 3)
        assert any(not t.endswith("continue") for t in trace), trace

    def test_does_not_change_the_records_it_reads(self, scheduler: Scheduler) -> None:
        sc = Scenario(scheduler)
        for n in range(6):
            sc.start(n)
            for step in (1, 2, 3, 4):
                sc.storage.report(sc.trial(n).trial_id, step, 0.1 * n / step)
            if n % 2:
                sc.finish(n)
        before = sc.storage.get_trials(sc.study_id)
        history = History(before, "minimize")
        scheduler.on_report(before[0], history)
        scheduler.on_ask(_SPACE, history)
        scheduler.to_stop(history)
        assert sc.storage.get_trials(sc.study_id) == before
