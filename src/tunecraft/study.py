"""The Study: asks samplers, tells storage, consults schedulers, runs objectives."""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import pickle
import re
import tempfile
import time
import traceback
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from tunecraft._heartbeat import Heartbeat
from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import (
    DuplicatedStudyError,
    InvalidParameterError,
    SamplerExhaustedError,
    TrialPruned,
    TrialStateError,
)
from tunecraft.logging import get_logger
from tunecraft.samplers import History, Sampler, available_samplers, make_sampler
from tunecraft.schedulers import Decision, Scheduler, make_scheduler
from tunecraft.space import Param, Space
from tunecraft.space._params import _plain
from tunecraft.storage import Storage, StudyInfo, get_storage
from tunecraft.storage._base import current_worker
from tunecraft.trial import (
    CHECKPOINT_ATTR,
    CONFIG_ATTR,
    SNAPSHOTS_ATTR,
    FrozenTrial,
    Trial,
    TrialState,
    check_value,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Study", "delete_study", "list_studies", "load_study"]

_TWIN_RETRIES = 10  # at least; each follows a real collision; past them the twin runs
_MAX_LISTED = 1000  # running trials named one by one to the twin check (psycopg takes 65535)

_log = get_logger("study")
_DIRECTIONS = ("minimize", "maximize")
Objective = Callable[[Trial], Any]
StudyCallback = Callable[["Study", FrozenTrial], None]


class Study:
    """A hyperparameter search: a space, a direction, and the trials run so far.

    Args:
        space: ``{name: domain}`` or a :class:`~tunecraft.space.Space`; may be ``None`` when
            loading an existing study, whose space the storage holds.
        direction: ``"minimize"`` or ``"maximize"``.
        sampler: A sampler name (``"auto"``, ``"random"``, ``"sobol"``, ``"grid"``...) or a
            :class:`~tunecraft.samplers.Sampler`.
        scheduler: ``None``, a scheduler name or a :class:`~tunecraft.schedulers.Scheduler`.
        storage: ``None`` (in memory), a URL (``"sqlite:///runs.db"``,
            ``"postgresql://..."``) or a :class:`~tunecraft.storage.Storage`.
        name: The study's name in the storage (a random one when ``None``).
        seed: Seeds a sampler or scheduler given by name.
        load_if_exists: Continue a study of that name instead of raising.
        artifact_dir: Where trials keep checkpoints (``trial.save_checkpoint``):
            ``<artifact_dir>/trial-<number>/``. Default:
            ``./tunecraft-artifacts/<name>-<created>``, the study's creation time (UTC,
            ``YYYYMMDD-HHMMSS.ffffff``) telling apart studies of one name in two storages, or
            one deleted and created again. Paths are recorded in the storage, so a reopened study
            finds them.
        heartbeat_interval: Seconds between heartbeats of each trial this process runs (from
            ``ask`` to ``tell``), recorded in the storage by a background thread. ``None``
            (default): none. With heartbeats, a running trial whose last one is older than
            ``grace_period`` is marked failed (``"stale: ..."``) when any process of the
            study starts a trial, on whatever host its worker was: this is how a study shared
            by several machines learns that one of them died. (Without heartbeats, only a
            worker on the same host is detected, by its process id.) The storage's clock
            measures the age (the database server's for SQL), so the hosts' clocks need not
            agree. Give every process of the study the same settings; trials of a process
            without heartbeats are never judged by them.
        grace_period: Seconds without a heartbeat after which a running trial is stale; more
            than ``heartbeat_interval``. Default: twice ``heartbeat_interval``.

    Example:
        >>> import tunecraft as tc
        >>> study = tc.Study({"x": tc.uniform(-5, 5)}, sampler=tc.make_sampler("sobol", seed=0))
        >>> study.optimize(lambda trial: (trial.config["x"] - 1) ** 2, n_trials=16)
        >>> abs(study.best_config["x"] - 1) < 1
        True
    """

    def __init__(
        self,
        space: Space | Mapping[str, Param | str] | None = None,
        *,
        direction: str = "minimize",
        sampler: Sampler | str = "auto",
        scheduler: Scheduler | str | None = None,
        storage: Storage | str | None = None,
        name: str | None = None,
        seed: int | None = None,
        load_if_exists: bool = False,
        artifact_dir: str | os.PathLike[str] | None = None,
        heartbeat_interval: float | None = None,
        grace_period: float | None = None,
    ) -> None:
        if artifact_dir is not None and not isinstance(artifact_dir, (str, os.PathLike)):
            raise TypeError(
                "The 'artifact_dir' parameter of Study must be None or a path, "
                f"got {artifact_dir!r}."
            )
        check_choice(direction, "direction", "Study", _DIRECTIONS)
        check_int(seed, "seed", "Study", low=0, allow_none=True)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise InvalidParameterError(
                f"The 'name' parameter of Study must be a non-empty str, got {name!r}."
            )
        self._storage = get_storage(storage)
        self._heartbeat, self._grace_period = _resolve_heartbeat(
            self._storage, heartbeat_interval, grace_period
        )
        self.sampler = _resolve_sampler(sampler, seed, seeds_other=isinstance(scheduler, str))
        self.scheduler = _resolve_scheduler(scheduler, seed)
        self._seed = seed
        if space is None:
            if name is None:
                raise InvalidParameterError(
                    "Study: give a 'space', or the 'name' of a stored study to load."
                )
            info = self._storage.get_study(name)
        else:
            space = space if isinstance(space, Space) else Space(space)
            name = name or f"study-{uuid.uuid4().hex[:12]}"
            try:
                info = self._storage.create_study(name, direction, space.to_dict())
            except DuplicatedStudyError:
                if not load_if_exists:
                    raise DuplicatedStudyError(
                        f"A study named '{name}' already exists; pass load_if_exists=True to "
                        "continue it, or choose another name."
                    ) from None
                info = self._storage.get_study(name)
                stored = Space.from_dict(info.space)
                if stored != space:
                    raise InvalidParameterError(
                        f"Study '{name}' exists with another space ({stored.to_dict()}); "
                        "pass the same space, space=None to use the stored one, or a new name."
                    ) from None
                if info.direction != direction:
                    raise InvalidParameterError(
                        f"Study '{name}' exists with direction '{info.direction}', "
                        f"not '{direction}'."
                    ) from None
        self._info: StudyInfo = info
        self.space = Space.from_dict(info.space)
        # Set by the budgeted pipeline: user attributes every new trial gets unless it already
        # has them ("tc.budget", "tc.seed", "tc.phase", "tc.split"), and the map from a sampled
        # config to the one the objective runs with (recorded as "tc.config").
        self._trial_attrs: dict[str, Any] = {}
        self._derive: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        # A time.monotonic() after which reports answer "stop" (a pipeline phase out of time).
        self._deadline: float | None = None
        self._artifact_dir = (
            os.path.abspath(os.fspath(artifact_dir))
            if artifact_dir is not None
            else os.path.abspath(os.path.join("tunecraft-artifacts", _default_folder(info)))
        )
        # The Trial handles this process runs, so that tell(number) finds what a handle holds.
        self._handles: weakref.WeakValueDictionary[int, Trial] = weakref.WeakValueDictionary()

    # -- identity --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The study's name in its storage."""
        return self._info.name

    @property
    def direction(self) -> str:
        """``"minimize"`` or ``"maximize"``."""
        return self._info.direction

    @property
    def storage(self) -> Storage:
        """Where the trials live."""
        return self._storage

    @property
    def artifact_dir(self) -> str:
        """The folder under which trials keep their checkpoints (an absolute path)."""
        return self._artifact_dir

    @property
    def study_id(self) -> int:
        """The storage's key of the study."""
        return self._info.study_id

    def __getstate__(self) -> dict[str, Any]:
        # A study is sent to worker processes (spawn, executors). The handles of the trials
        # this process runs stay here: a weak dictionary does not pickle, and another
        # process runs trials of its own.
        state = self.__dict__.copy()
        del state["_handles"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._handles = weakref.WeakValueDictionary()

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, direction={self.direction!r}, space={self.space!r})"

    # -- reading ---------------------------------------------------------------------------------
    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial, ordered by number."""
        return self._storage.get_trials(self.study_id)

    def get_trials(self, states: Iterable[TrialState | str] | None = None) -> list[FrozenTrial]:
        """The trials in ``states`` (all when ``None``)."""
        if states is None:
            return self.trials
        wanted = {TrialState.parse(s, "Study.get_trials") for s in states}
        return self._storage.get_trials(self.study_id, wanted)

    def history(self) -> History:
        """The trials as samplers and schedulers see them (fetched on first use)."""
        return History(lambda: self._storage.get_trials(self.study_id), self.direction)

    @property
    def best_trial(self) -> FrozenTrial:
        """The complete trial with the best value (the lowest number among ties).

        Raises:
            ValueError: No trial is complete yet.
        """
        complete = self._storage.get_trials(self.study_id, {TrialState.COMPLETE})
        if not complete:
            raise InvalidParameterError(f"Study '{self.name}' has no complete trial yet.")
        sign = 1.0 if self.direction == "minimize" else -1.0
        return min(complete, key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]

    @property
    def best_config(self) -> dict[str, Any]:
        """The config of :attr:`best_trial`."""
        return dict(self.best_trial.config)

    @property
    def best_params(self) -> dict[str, Any]:
        """Alias of :attr:`best_config`, for Optuna users."""
        return self.best_config

    @property
    def best_value(self) -> float:
        """The value of :attr:`best_trial`."""
        return float(self.best_trial.value)  # type: ignore[arg-type]

    def to_dataframe(self) -> pd.DataFrame:
        """One row a trial: number, state, value, ``config_<name>`` (missing when inactive),
        start, completion, duration in seconds, ``user_<key>``, error, last step reported.

        Needs pandas (``pip install "tunecraft[pandas]"``).
        """
        from tunecraft._imports import require

        pd_mod = require("pandas", "pandas", purpose="Study.to_dataframe")
        rows = []
        attr_keys: list[str] = []
        for t in self.trials:
            for k in t.user_attrs:
                if k not in attr_keys:
                    attr_keys.append(k)
        for t in self.trials:
            row: dict[str, Any] = {"number": t.number, "state": t.state.value, "value": t.value}
            for n in self.space.names:
                row[f"config_{n}"] = t.config.get(n)
            row["datetime_start"] = t.datetime_start
            row["datetime_complete"] = t.datetime_complete
            row["duration"] = t.duration
            row["last_step"] = t.last_step
            for k in attr_keys:
                row[f"user_{k}"] = t.user_attrs.get(k)
            row["error"] = t.error
            rows.append(row)
        columns = (
            ["number", "state", "value"]
            + [f"config_{n}" for n in self.space.names]
            + ["datetime_start", "datetime_complete", "duration", "last_step"]
            + [f"user_{k}" for k in attr_keys]
            + ["error"]
        )
        return pd_mod.DataFrame(rows, columns=columns)

    # -- ask and tell ----------------------------------------------------------------------------
    def enqueue(
        self, config: Mapping[str, Any], *, user_attrs: Mapping[str, Any] | None = None
    ) -> FrozenTrial:
        """Queue a config (possibly partial) to be evaluated by the next :meth:`ask`.

        Parameters left out are filled by the sampler when the trial starts.

        Args:
            config: The parameters to evaluate.
            user_attrs: Attributes the trial starts with (JSON-serializable), for example
                ``{"tc.seed": 3}`` so that ``trial.seed`` is 3.
        """
        if not isinstance(config, Mapping):
            raise TypeError(
                f"The 'config' parameter of Study.enqueue must be a dict, got {config!r}."
            )
        attrs = _check_attrs(user_attrs, "Study.enqueue")
        for k, v in config.items():
            if k not in self.space:
                raise InvalidParameterError(
                    f"Study.enqueue: unknown parameter '{k}'; the space has "
                    f"{', '.join(self.space.names)}."
                )
            if not self.space[k].contains(v):
                raise InvalidParameterError(
                    f"Study.enqueue: '{k}'={v!r} is outside {self.space[k].notation()}."
                )
            parents = self.space[k].condition or {}
            if all(p in config for p in parents) and not self.space.is_active(k, config):
                raise InvalidParameterError(
                    f"Study.enqueue: '{k}' is inactive for this config (it needs "
                    f"{', '.join(f'{p} in {list(vs)!r}' for p, vs in parents.items())}); "
                    "leave it out."
                )
        record = self._storage.create_trial(
            self.study_id,
            state=TrialState.WAITING,
            config={k: _plain(v) for k, v in config.items()},  # np.int64(3) is stored as 3
        )
        self._storage.set_user_attrs(record.trial_id, attrs)
        return _with(record, user_attrs=attrs) if attrs else record

    def add_trial(
        self,
        config: Mapping[str, Any],
        value: float | None = None,
        *,
        intermediate: Mapping[int, float] | None = None,
        user_attrs: Mapping[str, Any] | None = None,
        state: TrialState | str = "complete",
    ) -> FrozenTrial:
        """Record a trial evaluated elsewhere, without running anything.

        Warm-starts the sampler with results it can learn from: an earlier study's trials, a
        colleague's runs, the short runs of a previous phase.

        Args:
            config: A full config of the space.
            value: The objective's value (required for a complete trial).
            intermediate: ``{step: value}`` reported along the way.
            user_attrs: Attributes to attach (JSON-serializable).
            state: ``"complete"`` (default), ``"pruned"`` or ``"failed"``.

        Returns:
            The finished record.

        Example:
            >>> import tunecraft as tc
            >>> study = tc.Study({"x": tc.uniform(0, 1)})
            >>> study.add_trial({"x": 0.25}, 0.5, intermediate={1: 0.7, 2: 0.5}).value
            0.5
        """
        if not isinstance(config, Mapping):
            raise TypeError(
                f"The 'config' parameter of Study.add_trial must be a dict, got {config!r}."
            )
        new_state = TrialState.parse(state, "Study.add_trial")
        if not new_state.is_finished:
            raise InvalidParameterError(
                "The 'state' parameter of Study.add_trial must be 'complete', 'pruned' or "
                f"'failed', got {new_state.value!r}."
            )
        config = self.space.validate(config)
        if new_state is TrialState.FAILED and value is not None:
            raise InvalidParameterError(
                "The 'value' parameter of Study.add_trial must be None for a failed trial, "
                f"got {value!r}."
            )
        stored: float | None = None
        if new_state is TrialState.COMPLETE or value is not None:
            stored = check_value(value, "Study.add_trial(value=...)")
        steps: dict[int, float] = {}
        for step, v in (intermediate or {}).items():
            if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
                raise InvalidParameterError(
                    "The 'intermediate' parameter of Study.add_trial must map int steps >= 0 "
                    f"to values, got step {step!r}."
                )
            steps[int(step)] = check_value(v, "Study.add_trial(intermediate=...)")
        attrs = _check_attrs(user_attrs, "Study.add_trial")
        record = self._storage.create_trial(
            self.study_id, state=TrialState.RUNNING, config=config, worker=current_worker()
        )
        # Attributes first: a crash before the state is set leaves a running trial that
        # already says what it is (the pipeline recognizes its warm-start copies by them).
        self._storage.set_user_attrs(record.trial_id, attrs)
        self._storage.report_many(record.trial_id, {s: steps[s] for s in sorted(steps)})
        if stored is None and steps and new_state is TrialState.PRUNED:
            stored = steps[max(steps)]
        return self._storage.set_state(
            record.trial_id,
            new_state,
            value=stored,
            error="added with Study.add_trial" if new_state is TrialState.FAILED else None,
        )

    @overload
    def ask(self) -> Trial: ...

    @overload
    def ask(self, n: int) -> list[Trial]: ...

    def ask(self, n: int | None = None) -> Trial | list[Trial]:
        """Start a trial: a paused one the scheduler resumes, an enqueued config, or a new one.

        With a scheduler that pauses (successive halving, ASHA's promotion variant, Hyperband,
        PBT), the scheduler first names paused trials it gives up on (they are pruned) and may
        name one to resume: that trial is returned running again with its number, config (or
        PBT's new one), intermediate values and checkpoint; ``trial.resumed`` is true and
        ``trial.budget`` says how far the scheduler means it to go. Otherwise an enqueued
        config, if any waits, else the sampler's proposal.

        Args:
            n: Start ``n`` trials at once and return them as a list (for a batch of parallel
                evaluations). Each is started before the next is proposed, so the sampler sees
                the earlier ones as running and can spread the batch out.

        Raises:
            SamplerExhaustedError: The sampler has nothing left (a finished grid).
        """
        if n is None:
            return self._ask_one()
        check_int(n, "n", "Study.ask", low=1)
        trials: list[Trial] = []
        for _ in range(n):
            try:
                trials.append(self._ask_one())
            except SamplerExhaustedError:
                if not trials:
                    raise
                break
        return trials

    def _ask_one(self) -> Trial:
        if self._heartbeat is None:
            return self._ask_unbeaten()
        self._fail_silent_trials()
        before = self._heartbeat.trial_ids
        try:
            return self._ask_unbeaten()
        except BaseException:  # no handle was given out: nobody would stop their beats
            for tid in self._heartbeat.trial_ids - before:
                self._heartbeat.stop(tid)
            raise

    def _beat(self, record: FrozenTrial) -> FrozenTrial:
        """Beat for a trial from the moment it is running here, not only once it is handed
        out: a worker that dies while it samples, completes a config or copies a checkpoint
        must leave a heartbeat behind to go stale."""
        if self._heartbeat is not None:
            self._heartbeat.start(record.trial_id)
        return record

    def _ask_unbeaten(self) -> Trial:
        worker = current_worker()
        fresh: History | None = None
        if self.scheduler is not None:
            resumed, fresh = self._resume_paused(worker)
            if resumed is not None:
                return resumed
        record = self._storage.claim_waiting_trial(self.study_id, worker)
        if record is not None:
            self._beat(record)
            partial = record.config
            if not self.space.contains(partial):
                number = record.number
                stored = self.history()
                if self.sampler.avoids_twins:
                    stored.trials  # noqa: B018  (read now: _untwin compares with it)
                try:
                    config = self._complete(partial, number, self._sampler_history(stored))
                except BaseException as exc:
                    self._fail_asked(record, repr(exc))
                    raise
                if self.sampler.avoids_twins:  # the sampler filled in what it would propose
                    config = self._untwin(
                        record,
                        config,
                        stored,
                        lambda h: self._complete(partial, number, self._sampler_history(h)),
                    )
                else:
                    self._storage.set_trial_config(record.trial_id, config)
                record = _with(record, config=config)
            return self._handle(self._prepare(record))
        stored = fresh if fresh is not None else self.history()
        history = self._sampler_history(stored)
        if self.sampler.is_exhausted(self.space, history):
            resumed = self._resume_stranded(worker) if self.scheduler is not None else None
            if resumed is not None:
                return resumed
            raise SamplerExhaustedError(f"The sampler of study '{self.name}' has nothing left.")
        self.sampler.warm_up(self.space, history)  # before the trial's clock starts
        if self.sampler.avoids_twins:
            stored.trials  # noqa: B018  (read now: _untwin compares with what was stored then)
        record = self._beat(
            self._storage.create_trial(self.study_id, state=TrialState.RUNNING, worker=worker)
        )
        try:
            config = self.space.validate(self.sampler.suggest(self.space, history, record.number))
        except BaseException as exc:
            self._fail_asked(record, f"sampler: {_describe(exc)}")
            raise
        if self.sampler.avoids_twins:
            number = record.number
            try:
                config = self._untwin(
                    record,
                    config,
                    stored,
                    lambda h: self.space.validate(
                        self.sampler.suggest(self.space, self._sampler_history(h), number)
                    ),
                )
            except SamplerExhaustedError:  # its twin took the last point: as an ask after it
                resumed = self._resume_stranded(worker) if self.scheduler is not None else None
                if resumed is not None:
                    return resumed
                raise
        else:
            self._storage.set_trial_config(record.trial_id, config)
        return self._handle(self._prepare(_with(record, config=config)))

    def _untwin(
        self,
        record: FrozenTrial,
        config: dict[str, Any],
        stored: History,
        propose: Callable[[History], dict[str, Any]],
    ) -> dict[str, Any]:
        """Store ``config`` for ``record``, and ``propose`` another (from a fresh history)
        while another trial holds the same config, one whose config the ``stored`` history
        (read before the sampler proposed) did not show: started by another worker, which
        could not see this one either, or running then and without its config yet (or with
        one it changed since, for a twin of its own). Return the config stored.

        The storage stores and reads as one step that workers take in turn, so of two that
        propose the same config at once exactly the second proposes again, with the first's
        config in its history. Of ``n`` such workers each round settles one, so the rounds
        allowed grow with the trials running. A sampler that, shown the twin, proposes its
        config again keeps it (a scheduler's view may hide the twin from the sampler), as
        does one past its rounds; one with nothing left (a used-up grid) fails the trial and
        raises :class:`~tunecraft.exceptions.SamplerExhaustedError`, as an ask after the
        twin's would have.
        """
        rounds, attempt = _TWIN_RETRIES, 0
        while True:
            shown = {t.number: t.config for t in stored.trials}
            running = [t.number for t in stored.running if t.number != record.number]
            rounds = max(rounds, 2 * len(running) + 2)
            after = max(shown, default=-1)
            if len(running) > _MAX_LISTED:  # a range, not a list a driver may refuse
                after, running = min(after, min(running) - 1), []
            try:
                others = self._storage.set_trial_config_and_read(
                    record.trial_id,
                    config,
                    study_id=self.study_id,
                    after=after,
                    numbers=running,
                )
            except BaseException as exc:
                self._fail_asked(record, f"storing its config: {_describe(exc)}")
                raise
            twins = sorted(
                n
                for n, c in others.items()  # of any state: a fast twin may be finished already
                if n != record.number and c == config and shown.get(n) != config
            )
            if not twins or attempt >= rounds:
                return config
            attempt += 1
            stored = self.history()
            try:
                again = propose(stored)
            except BaseException as exc:
                self._fail_asked(record, f"sampler: {_describe(exc)}")
                raise
            if again == config:
                return config
            _log.debug(
                "Study '%s': trial %d had the config of trial %d, started meanwhile; "
                "the sampler proposed again.",
                self.name,
                record.number,
                twins[0],
            )
            config = again

    def _fail_asked(self, record: FrozenTrial, error: str) -> None:
        """Fail a trial whose ask went wrong; an error doing so (the storage is down) is
        logged, and the caller raises the ask's own."""
        try:
            self._storage.set_state(record.trial_id, TrialState.FAILED, error=error)
        except Exception as exc:
            _log.warning("Trial %d could not be marked failed: %s", record.number, exc)

    def _prepare(self, record: FrozenTrial, *, new_config: bool = False) -> FrozenTrial:
        """Give a starting trial the study's default attributes and its derived config."""
        attrs = {k: v for k, v in self._trial_attrs.items() if k not in record.user_attrs}
        if self._derive is not None and (new_config or CONFIG_ATTR not in record.user_attrs):
            attrs[CONFIG_ATTR] = self._derive(dict(record.config))
        self._storage.set_user_attrs(record.trial_id, attrs)
        return _with(record, user_attrs={**record.user_attrs, **attrs}) if attrs else record

    def _sampler_history(self, history: History | None = None) -> History:
        """The history the sampler sees: the stored one, or the scheduler's view of it."""
        history = history if history is not None else self.history()
        if self.scheduler is None:
            return history
        view = self.scheduler.sampler_trials(self.space, history)
        return history if view is None else History(view, self.direction)

    def _resume_paused(self, worker: str) -> tuple[Trial | None, History | None]:
        """Prune the paused trials the scheduler gave up on; resume the one it promotes.

        Returns the resumed trial, or ``None`` and the history just read (for the sampler).
        """
        assert self.scheduler is not None
        for _ in range(16):  # another worker may win each race; the history is then fresher
            history = self.history()
            stop = set(self.scheduler.to_stop(history))
            by_number = {t.number: t for t in history.trials}
            for number in sorted(stop):
                t = by_number.get(number)
                if t is None or t.state is not TrialState.PAUSED:
                    continue
                last = t.intermediate[max(t.intermediate)] if t.intermediate else None
                with contextlib.suppress(TrialStateError):  # another worker got there first
                    self._storage.set_state(
                        t.trial_id, TrialState.PRUNED, value=last, expected={TrialState.PAUSED}
                    )
            if stop:
                history = self.history()
                by_number = {t.number: t for t in history.trials}
            order = self.scheduler.on_ask(self.space, history)
            if order is None:
                return None, history
            target = by_number.get(order.number)
            if target is None or target.state is not TrialState.PAUSED:
                raise TrialStateError(
                    f"{type(self.scheduler).__name__}.on_ask asked to resume trial "
                    f"{order.number}, which is not paused."
                )
            try:
                record = self._beat(self._storage.resume_trial(target.trial_id, worker))
            except TrialStateError:
                continue  # another worker resumed it first
            if order.config is not None:
                config = self.space.validate(order.config)
                if config != record.config:  # keep what the values so far were run with
                    past = record.user_attrs.get("pbt_history")
                    entry = {"until_step": record.last_step, "config": dict(record.config)}
                    past = [*past, entry] if isinstance(past, list) else [entry]
                    self._storage.set_user_attr(record.trial_id, "pbt_history", past)
                    record = _with(record, user_attrs={**record.user_attrs, "pbt_history": past})
                self._storage.set_trial_config(record.trial_id, config)
                record = _with(record, config=config)
            record = self._prepare(record, new_config=order.config is not None)
            if order.checkpoint_from is not None:
                record = self._copy_checkpoint(
                    record, order.checkpoint_from, by_number, order.checkpoint_step
                )
            _log.debug("Resuming trial %d (budget %s).", record.number, order.budget)
            return self._handle(record, resumed=True, budget=order.budget), None
        return None, None

    def _resume_stranded(self, worker: str) -> Trial | None:
        """With the sampler used up, resume the best paused trial the scheduler still waits on.

        A scheduler waits for more trials to reach a rung before it promotes anyone (a rung
        of fewer than ``reduction_factor`` trials promotes nobody; a synchronous bracket that
        is still filling decides nothing). With a finite sampler (a grid) those trials never
        come, so the trial furthest along, and best there, goes on: the study ends with
        complete trials instead of paused ones.
        """
        sign = 1.0 if self.direction == "minimize" else -1.0
        for _ in range(16):  # another worker may resume the one picked first
            paused = [
                t
                for t in self._storage.get_trials(self.study_id, {TrialState.PAUSED})
                if t.intermediate
            ]
            if not paused:
                return None
            best = min(
                paused,
                key=lambda t: (-max(t.intermediate), sign * t.intermediate[max(t.intermediate)]),
            )
            try:
                record = self._beat(self._storage.resume_trial(best.trial_id, worker))
            except TrialStateError:
                continue
            _log.info(
                "The sampler has nothing left: resuming paused trial %d, which the scheduler "
                "would wait on for trials that will not come.",
                record.number,
            )
            return self._handle(self._prepare(record), resumed=True)
        return None

    # -- checkpoints -----------------------------------------------------------------------------
    def _checkpoint_path(self, number: int, step: int | None = None) -> str:
        name = "checkpoint.pkl" if step is None else f"checkpoint-step-{step}.pkl"
        return os.path.join(self._artifact_dir, f"trial-{number}", name)

    def _save_checkpoint(self, trial: Trial, state: Any) -> str:
        path = self._checkpoint_path(trial.number)
        try:
            payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(
                f"The 'state' parameter of Trial.save_checkpoint must be picklable (a dict of "
                f"tensors, arrays and numbers is), got {type(state).__name__}: {exc}"
            ) from None
        _atomic_write(path, payload)
        if trial._record.user_attrs.get(CHECKPOINT_ATTR) != path:
            self._set_user_attr(trial, CHECKPOINT_ATTR, path)
        if trial._save_first is None:
            trial._save_first = True
        if trial._snapshot_pending is not None:  # report, then save: this is that step's state
            self._snapshot(trial, trial._snapshot_pending, payload)
            trial._snapshot_pending = None
        return path

    def _snapshot(self, trial: Trial, step: int, payload: bytes | None = None) -> None:
        """Keep a copy of the trial's checkpoint as its state at ``step`` (if it has one)."""
        if payload is None:
            path = trial._record.user_attrs.get(CHECKPOINT_ATTR)
            if not isinstance(path, str) or not os.path.exists(path):
                return
            with open(path, "rb") as f:
                payload = f.read()
        _atomic_write(self._checkpoint_path(trial.number, step), payload)
        kept = trial._record.user_attrs.get(SNAPSHOTS_ATTR)
        steps = sorted({*(kept if isinstance(kept, list) else []), step})
        self._set_user_attr(trial, SNAPSHOTS_ATTR, steps)

    def _load_checkpoint(self, trial: Trial, default: Any) -> Any:
        path = trial._record.user_attrs.get(CHECKPOINT_ATTR)
        if not isinstance(path, str) or not os.path.exists(path):
            return default
        with open(path, "rb") as f:
            return pickle.load(f)  # our own file, written by save_checkpoint

    def _copy_checkpoint(
        self,
        record: FrozenTrial,
        donor_number: int,
        by_number: Mapping[int, FrozenTrial],
        step: int | None = None,
    ) -> FrozenTrial:
        donor = by_number.get(donor_number)
        latest = donor.user_attrs.get(CHECKPOINT_ATTR) if donor is not None else None
        if step is None:
            source = latest
        else:  # the donor's state at that step; its latest may be further trained
            kept = donor.user_attrs.get(SNAPSHOTS_ATTR) if donor is not None else None
            # Only a copy this study recorded (not a leftover file of an older run), next to
            # the donor's checkpoint (written by whichever process ran it, whatever its cwd).
            folder = os.path.dirname(latest) if isinstance(latest, str) else None
            source = (
                os.path.join(folder, os.path.basename(self._checkpoint_path(donor_number, step)))
                if folder and isinstance(kept, list) and step in kept
                else None
            )
        attrs: dict[str, Any] = {"pbt_parent": donor_number, "pbt_step": record.last_step}
        if isinstance(source, str) and os.path.exists(source):
            path = self._checkpoint_path(record.number)
            with open(source, "rb") as f:
                _atomic_write(path, f.read())
            attrs[CHECKPOINT_ATTR] = path
        else:
            _log.warning(
                "Trial %d has no checkpoint%s to copy into trial %d; the objective resumes "
                "from its own state.",
                donor_number,
                "" if step is None else f" at step {step}",
                record.number,
            )
        self._storage.set_user_attrs(record.trial_id, attrs)
        return _with(record, user_attrs={**record.user_attrs, **attrs})

    def _complete(
        self, partial: Mapping[str, Any], number: int, history: History | None = None
    ) -> dict[str, Any]:
        """Fill the parameters an enqueued config leaves out (the sampler proposes them from
        ``history``, by default the sampler's view of the stored one)."""
        history = history if history is not None else self._sampler_history()
        suggested = self.sampler.suggest(self.space, history, number)
        rng = self.sampler.rng(number, 1)
        config: dict[str, Any] = {}
        for name in self.space.names:
            if not self.space.is_active(name, config):
                continue
            if name in partial:
                config[name] = partial[name]
            elif name in suggested:
                config[name] = suggested[name]
            else:
                config[name] = self.space[name].sample(rng)
        return self.space.validate(config)

    def tell(
        self,
        trial: Trial | int,
        value: float | None = None,
        *,
        state: TrialState | str | None = None,
        error: str | None = None,
    ) -> FrozenTrial:
        """Finish a trial started with :meth:`ask`.

        Args:
            trial: The :class:`Trial` or its number.
            value: The objective's value (needed for a complete trial).
            state: ``"complete"`` (default), ``"pruned"``, ``"failed"`` or ``"paused"``. When
                the scheduler stopped the trial, the default is ``"pruned"``.
            error: Why the trial failed.

        An invalid value (None, NaN, inf, not a number) fails the trial with the reason
        recorded instead of raising. Telling a finished trial raises ``TrialStateError``.
        """
        handle = trial if isinstance(trial, Trial) else None
        record = self._record_of(trial)
        if handle is None:
            handle = self._handles.get(record.number)
        if state is None:
            decision = handle.decision if handle is not None else "continue"
            new_state = {"stop": TrialState.PRUNED, "pause": TrialState.PAUSED}.get(
                decision, TrialState.COMPLETE
            )
        else:
            new_state = TrialState.parse(state, "Study.tell")
        if new_state in (TrialState.WAITING, TrialState.RUNNING):
            raise InvalidParameterError(
                f"The 'state' parameter of Study.tell must be complete, pruned, paused or "
                f"failed, got {new_state.value!r}."
            )
        if record.state.is_finished:
            raise TrialStateError(
                f"Trial {record.number} is already {record.state.value}; it cannot be told twice."
            )
        stored_value: float | None = None
        if new_state is TrialState.COMPLETE:
            try:
                stored_value = check_value(value, "The objective")
            except ValueError as exc:
                new_state, error = TrialState.FAILED, str(exc)
                _log.warning("Trial %d failed: %s", record.number, exc)
        elif new_state in (TrialState.PRUNED, TrialState.PAUSED):
            if value is not None and _finite(value):
                stored_value = float(value)
            elif record.intermediate or (handle and handle.intermediate):
                inter = handle.intermediate if handle else record.intermediate
                stored_value = inter[max(inter)]
        if handle is not None:
            handle._flush_train()  # the training curve's reports not written yet
            if handle._snapshot_pending is not None:  # no save after its last report
                self._snapshot(handle, handle._snapshot_pending)
                handle._snapshot_pending = None
        try:
            finished = self._storage.set_state(
                record.trial_id, new_state, value=stored_value, error=error
            )
        except TrialStateError:
            stored = self._storage.get_trial(record.trial_id)
            if stored.state is not TrialState.FAILED or not str(stored.error).startswith("stale:"):
                raise
            # Another process judged it lost (no heartbeat, or its worker gone): its result
            # arrives too late to count, and the study goes on.
            _log.warning(
                "Trial %d was marked failed by another process (%s); its result is dropped.",
                record.number,
                stored.error,
            )
            finished = stored
        finally:
            if self._heartbeat is not None:
                self._heartbeat.stop(record.trial_id)
        if handle is not None:
            handle._update(finished)
        return finished

    def _handle(self, record: FrozenTrial, **kwargs: Any) -> Trial:
        """A new :class:`Trial` for ``record``, known to :meth:`tell` by its number."""
        trial = Trial(self, record, **kwargs)
        self._handles[record.number] = trial
        return trial

    def _record_of(self, trial: Trial | int) -> FrozenTrial:
        if isinstance(trial, Trial):
            if trial.study is not self and trial.study.name != self.name:
                raise InvalidParameterError(
                    f"Trial {trial.number} belongs to study '{trial.study.name}', "
                    f"not '{self.name}'."
                )
            return trial._record  # this process owns the trial; the storage re-checks its state
        number = check_int(trial, "trial", "Study.tell", low=0)
        for t in self._storage.get_trials(self.study_id):
            if t.number == number:
                return t
        raise InvalidParameterError(f"Study '{self.name}' has no trial number {number}.")

    # -- called by Trial -------------------------------------------------------------------------
    def _report(self, trial: Trial, value: float, step: int) -> str:
        trial._check_running("Trial.report")
        self._storage.report(trial.trial_id, step, value)
        record = _with(trial._record, intermediate={**trial._record.intermediate, step: value})
        trial._update(record)
        if trial._save_first is None:
            trial._save_first = False
        if trial._snapshot_pending is not None:  # no save came: keep the older state there
            self._snapshot(trial, trial._snapshot_pending)
            trial._snapshot_pending = None
        replayed = trial._replay_until is not None and step <= trial._replay_until
        if self.scheduler is not None and not replayed:
            keep = self.scheduler.snapshot_at(record)
            if keep is not None:
                # The snapshot at a step is the newest state saved at or before it. Save,
                # then report: the latest checkpoint is this step's state. Report, then save:
                # the next one is.
                if trial._save_first:
                    self._snapshot(trial, keep)
                else:
                    trial._snapshot_pending = keep
        if self._deadline is not None and time.monotonic() >= self._deadline:
            return Decision.STOP.value
        if self.scheduler is None or replayed:
            return Decision.CONTINUE.value
        decision = Decision(self.scheduler.on_report(record, self.history()))
        return decision.value

    def _set_user_attr(self, trial: Trial, key: str, value: Any) -> None:
        self._storage.set_user_attr(trial.trial_id, key, value)
        # What a reader of the storage gets back (a tuple is a list there), not the caller's
        # own object, which it may change afterwards.
        value = json.loads(json.dumps(value))
        trial._update(_with(trial._record, user_attrs={**trial._record.user_attrs, key: value}))

    # -- recovery --------------------------------------------------------------------------------
    def fail_stale_trials(self, *, all_running: bool = False) -> list[int]:
        """Mark failed the running trials whose worker process is gone; return their numbers.

        A trial records the ``host:pid`` that runs it. Trials of a process on this host that no
        longer exists (killed, crashed) are stale. With ``all_running=True`` every running trial
        is marked failed, for when you know no worker anywhere is alive. With heartbeats
        (``Study(heartbeat_interval=...)``), so are the trials whose last heartbeat is older
        than the grace period, on any host.
        """
        failed = [] if self._heartbeat is None or all_running else self._fail_silent_trials()
        host = current_worker().rsplit(":", 1)[0]
        for t in self._storage.get_trials(self.study_id, {TrialState.RUNNING}):
            worker = t.worker or ""
            w_host, _, pid = worker.rpartition(":")
            dead = all_running or (w_host == host and pid.isdigit() and not _pid_alive(int(pid)))
            if not dead:
                continue
            try:
                self._storage.set_state(
                    t.trial_id,
                    TrialState.FAILED,
                    error=f"stale: worker {worker or '?'} is gone",
                    expected={TrialState.RUNNING},
                )
                failed.append(t.number)
            except TrialStateError:
                pass  # finished meanwhile
        if failed:
            _log.warning("Marked %d stale trial(s) failed: %s", len(failed), failed)
        return failed

    def _fail_silent_trials(self) -> list[int]:
        """Mark failed the running trials whose last heartbeat is older than the grace period
        (not those this process runs: it knows they are alive); return their numbers."""
        assert self._heartbeat is not None and self._grace_period is not None
        mine = self._heartbeat.trial_ids
        failed = []
        for tid, age in sorted(self._storage.heartbeat_ages(self.study_id).items()):
            if age <= self._grace_period or tid in mine:
                continue
            record = self._storage.fail_if_silent(  # checked again, in the same statement
                tid,
                self._grace_period,
                f"stale: no heartbeat for {age:.1f} s (grace period {self._grace_period:g} s)",
            )
            if record is None:
                continue  # finished, paused or beating again meanwhile
            _log.warning(
                "Trial %d (worker %s) sent no heartbeat for %.1f s: marked failed.",
                record.number,
                record.worker or "?",
                age,
            )
            failed.append(record.number)
        return failed

    # -- optimize --------------------------------------------------------------------------------
    def optimize(
        self,
        objective: Objective,
        *,
        n_trials: int | None = None,
        timeout: float | None = None,
        n_jobs: int = 1,
        callbacks: Sequence[StudyCallback] | None = None,
        catch: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        show_progress_bar: bool = False,
        executor: Any = None,
    ) -> None:
        """Run ``objective`` on new trials until ``n_trials`` are done or ``timeout`` passes.

        Args:
            objective: ``objective(trial) -> float``; it may ``trial.report`` and check
                ``trial.should_stop()``.
            n_trials: Objective runs in this call (``None``: until the timeout, the sampler is
                exhausted or Ctrl-C). A paused trial that the scheduler resumes runs again and
                counts again.
            timeout: Seconds after which no new trial starts.
            n_jobs: Worker processes (``-1``: one per CPU). Processes share the storage, so
                ``n_jobs > 1`` needs a storage another process can open (SQLite, PostgreSQL).
            callbacks: ``callback(study, frozen_trial)`` after each trial, in the worker that
                ran it.
            catch: Exceptions that fail the trial and let the study go on (default: any
                ``Exception``). Others fail the trial and are raised.
            show_progress_bar: Show a progress bar on the terminal.
            executor: ``None`` (default): in this process, or ``n_jobs`` local worker
                processes. A ``dask.distributed.Client`` (the ``dask`` extra) or ``"ray"``
                (the ``ray`` extra; the cluster ``ray.init()`` connected to, called with its
                defaults if it was not): each trial is a task on the cluster's workers, on
                this machine or others (:func:`tunecraft.execution.run_as_tasks`).
                ``n_jobs`` is then the number of trials in flight (default 1: one at a time;
                ``-1``: one per worker thread or CPU of the cluster); callbacks run in this
                process. The storage must be one the workers can open by its URL (SQLite on
                one machine, PostgreSQL across machines).

        An objective that raises, or returns NaN, inf or None, fails its trial with the reason
        recorded. Ctrl-C fails the running trial and stops; the study stays resumable.
        """
        if not callable(objective):
            raise TypeError(
                f"The 'objective' parameter of Study.optimize must be callable, got {objective!r}."
            )
        check_int(n_trials, "n_trials", "Study.optimize", low=1, allow_none=True)
        check_float(
            timeout, "timeout", "Study.optimize", low=0, low_inclusive=False, allow_none=True
        )
        check_int(n_jobs, "n_jobs", "Study.optimize", low=-1)
        if n_jobs == 0:
            raise InvalidParameterError(
                "The 'n_jobs' parameter of Study.optimize must be -1 or an int >= 1, got 0."
            )
        catch_tuple = catch if isinstance(catch, tuple) else (catch,)
        for c in catch_tuple:
            if not (isinstance(c, type) and issubclass(c, BaseException)):
                raise TypeError(
                    "The 'catch' parameter of Study.optimize must hold exception classes, "
                    f"got {c!r}."
                )
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not callable(cb):
                raise TypeError(
                    f"The 'callbacks' parameter of Study.optimize must hold callables, got {cb!r}."
                )
        self.fail_stale_trials()
        if executor is not None:
            from tunecraft.execution._tasks import backend_for, run_as_tasks

            run_as_tasks(
                self,
                objective,
                backend=backend_for(executor),
                n_trials=n_trials,
                timeout=timeout,
                n_concurrent=None if n_jobs == -1 else n_jobs,
                callbacks=callbacks,
                catch=catch_tuple,
                show_progress_bar=show_progress_bar,
            )
            return
        n_workers = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
        deadline = None if timeout is None else time.monotonic() + timeout
        if n_workers > 1:
            from tunecraft.execution._local import run_in_processes

            run_in_processes(
                self,
                objective,
                n_trials=n_trials,
                deadline=deadline,
                n_workers=n_workers,
                callbacks=callbacks,
                catch=catch_tuple,
                show_progress_bar=show_progress_bar,
            )
            return
        progress = _progress(show_progress_bar, n_trials, timeout)
        done = 0
        try:
            while n_trials is None or done < n_trials:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                try:
                    record = self.run_trial(objective, catch=catch_tuple)
                except SamplerExhaustedError:
                    _log.info("Study '%s': the sampler is exhausted.", self.name)
                    break
                done += 1
                for cb in callbacks:
                    cb(self, record)
                progress.update(self, record)
        finally:
            progress.close()

    def run_trial(
        self, objective: Objective, *, catch: tuple[type[BaseException], ...] = (Exception,)
    ) -> FrozenTrial:
        """Ask, run ``objective`` on the trial, tell, and return the finished record."""
        trial = self._ask_one()
        try:
            value = objective(trial)
        except TrialPruned:
            return self.tell(trial, None, state=TrialState.PRUNED)
        except catch as exc:
            _log.warning("Trial %d failed: %s", trial.number, _describe(exc))
            return self.tell(
                trial, state=TrialState.FAILED, error=_describe(exc, with_traceback=True)
            )
        except BaseException as exc:  # KeyboardInterrupt, SystemExit, exceptions not caught
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else _describe(exc, True)
            try:
                self.tell(trial, state=TrialState.FAILED, error=reason)
            finally:
                raise
        return self.tell(trial, value)


# -- module functions ----------------------------------------------------------------------------
def load_study(
    name: str,
    *,
    storage: Storage | str,
    sampler: Sampler | str = "auto",
    scheduler: Scheduler | str | None = None,
    seed: int | None = None,
    artifact_dir: str | os.PathLike[str] | None = None,
    heartbeat_interval: float | None = None,
    grace_period: float | None = None,
) -> Study:
    """Open a stored study (its space and direction come from the storage). The arguments
    are :class:`Study`'s.

    Example:
        >>> import tunecraft as tc
        >>> storage = tc.storage.MemoryStorage()
        >>> _ = tc.Study({"x": tc.uniform(0, 1)}, name="demo", storage=storage)
        >>> tc.load_study("demo", storage=storage).space["x"]
        <uniform(0, 1)>
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(
            f"The 'name' parameter of load_study must be a non-empty str, got {name!r}."
        )
    st = get_storage(storage)
    info = st.get_study(name)
    return Study(
        None,
        direction=info.direction,
        sampler=sampler,
        scheduler=scheduler,
        storage=st,
        name=name,
        seed=seed,
        artifact_dir=artifact_dir,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
    )


def delete_study(name: str, *, storage: Storage | str) -> None:
    """Delete a stored study and all its trials."""
    st = get_storage(storage)
    st.delete_study(st.get_study(name).study_id)


def list_studies(storage: Storage | str) -> list[StudyInfo]:
    """The studies a storage holds, oldest first."""
    return get_storage(storage).list_studies()


# -- helpers -------------------------------------------------------------------------------------
def _resolve_sampler(sampler: Sampler | str, seed: int | None, *, seeds_other: bool) -> Sampler:
    if isinstance(sampler, Sampler):
        if seed is not None and not seeds_other:
            raise InvalidParameterError(
                "Study: 'seed' seeds a sampler or scheduler given by name; a Sampler instance "
                "carries its own seed (tc.make_sampler(name, seed=...))."
            )
        return sampler
    if isinstance(sampler, str):
        if sampler not in available_samplers():  # name the parameter the user gave
            raise InvalidParameterError(
                f"The 'sampler' parameter of Study must be a Sampler or one of: "
                f"{', '.join(repr(n) for n in available_samplers())}; got {sampler!r}."
            )
        return make_sampler(sampler, seed=seed)
    raise TypeError(
        f"The 'sampler' parameter of Study must be a name or a Sampler, got {sampler!r}."
    )


def _resolve_scheduler(scheduler: Scheduler | str | None, seed: int | None) -> Scheduler | None:
    if scheduler is None or isinstance(scheduler, Scheduler):
        return scheduler
    if isinstance(scheduler, str):
        return make_scheduler(scheduler, seed=seed)
    raise TypeError(
        f"The 'scheduler' parameter of Study must be None, a name or a Scheduler, "
        f"got {scheduler!r}."
    )


def _resolve_heartbeat(
    storage: Storage, interval: float | None, grace: float | None
) -> tuple[Heartbeat | None, float | None]:
    interval = check_float(
        interval, "heartbeat_interval", "Study", low=0, low_inclusive=False, allow_none=True
    )
    grace = check_float(
        grace, "grace_period", "Study", low=0, low_inclusive=False, allow_none=True
    )
    if interval is None:
        if grace is not None:
            raise InvalidParameterError(
                "Study: 'grace_period' needs 'heartbeat_interval' (the seconds between "
                "heartbeats); pass both, or neither."
            )
        return None, None
    grace = 2.0 * interval if grace is None else grace
    if grace <= interval:
        raise InvalidParameterError(
            f"The 'grace_period' parameter of Study must be more than heartbeat_interval "
            f"({interval:g} s), or a live trial is stale between two beats; got {grace:g}."
        )
    missing = any(
        getattr(type(storage), m) is getattr(Storage, m)
        for m in ("record_heartbeat", "heartbeat_ages", "fail_if_silent")
    )
    if missing:
        raise InvalidParameterError(
            f"Study(heartbeat_interval=...): {type(storage).__name__} does not record "
            "heartbeats; use a built-in storage (SQLite, PostgreSQL, in memory)."
        )
    if getattr(storage, "_has_beats", True) is False:
        raise InvalidParameterError(
            f"Study(heartbeat_interval=...): {storage!r} has no heartbeat table and could not "
            "create one (the database user may not create tables); the table's owner can "
            "open it once with tunecraft to create it."
        )
    return Heartbeat(storage, interval), grace


def _check_attrs(attrs: Mapping[str, Any] | None, owner: str) -> dict[str, Any]:
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping) or not all(isinstance(k, str) and k for k in attrs):
        raise TypeError(
            f"The 'user_attrs' parameter of {owner} must be a dict with non-empty str keys, "
            f"got {attrs!r}."
        )
    return dict(attrs)


def _with(record: FrozenTrial, **changes: Any) -> FrozenTrial:
    from dataclasses import replace

    return replace(record, **changes)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _describe(exc: BaseException, with_traceback: bool = False) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if with_traceback:
        text += "\n" + "".join(traceback.format_exception(exc)[-6:])
    return text


def _safe(name: str) -> str:
    """A study name made safe as one folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study"


def _default_folder(info: StudyInfo) -> str:
    """The default artifact folder of a study: its name and creation time, so that a study
    of the same name in another storage, or one created again after a delete, never reads
    or overwrites its checkpoints. Every process reads the same time from the storage; where
    one would not, nothing breaks: checkpoints are found by the paths recorded with them."""
    created = info.datetime_created
    if created is None:  # a storage that keeps no creation time
        return _safe(info.name)
    return f"{_safe(info.name)}-{created.strftime('%Y%m%d-%H%M%S.%f')}"


def _atomic_write(path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so readers see the old file or the new one, never half."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists"; it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


class _NoProgress:
    def update(self, study: Study, record: FrozenTrial) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(show: bool, n_trials: int | None, timeout: float | None) -> Any:
    if not show:
        return _NoProgress()
    from tunecraft._progress import ProgressBar

    return ProgressBar(total=n_trials, timeout=timeout)
