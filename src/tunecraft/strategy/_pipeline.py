"""The budgeted pipeline: transfer, explore, refine, validate, resumable from storage."""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError, TunecraftError
from tunecraft.logging import get_logger
from tunecraft.schedulers import Decision, Scheduler
from tunecraft.space import Categorical, Int, Param, Space
from tunecraft.storage import Storage, get_storage
from tunecraft.strategy._plan import Budget, Plan, check_shares, plan, race_sizes
from tunecraft.strategy._transfer import (
    DERIVED_ATTR,
    WARM_ATTR,
    apply_lr_scaling,
    default_config,
    load_prior,
    map_config,
    narrow_lr,
)
from tunecraft.strategy._validate import (
    FinalistResult,
    ProxyCheck,
    check_curve,
    proxy_check,
    summarize,
)
from tunecraft.study import Study, delete_study
from tunecraft.trial import (
    BUDGET_ATTR,
    PHASE_ATTR,
    SEED_ATTR,
    SPLIT_ATTR,
    FrozenTrial,
    Trial,
    TrialState,
)

if TYPE_CHECKING:
    from tunecraft.analysis import Importance
    from tunecraft.strategy._narrow import Narrowing

__all__ = ["BudgetedSearch", "PhaseSpend", "PipelineError", "TuneResult", "tune"]

_log = get_logger("strategy")
_DIRECTIONS = ("minimize", "maximize")
_SEARCH_PHASES = ("transfer", "explore", "refine")
#: User attributes the pipeline adds besides the trial's budget, seed, phase and split.
FINALIST_ATTR = "tc.finalist"
#: Refine's successive halving keeps the top third at each rung (``_lowest_rung`` assumes it).
_REFINE_REDUCTION = 3
#: Set to ``"holdout"`` by an objective whose final-validation runs report holdout values as
#: intermediates (it trains on the validation data too): they then cannot choose a finalist.
CURVE_SPLIT_ATTR = "tc.curve_split"
_SELECT = ("validation", "holdout")
_JOURNAL_ATTR = "tc.record"
#: Seconds the objective itself ran (the calibration run records it; the trial's own duration
#: also counts the sampler's suggestion).
OBJECTIVE_SECONDS_ATTR = "tc.objective_seconds"
_KILLED = ("interrupted", "stale", "KeyboardInterrupt", "SystemExit", "GeneratorExit")
#: How the study words the error of a run that returned NaN, inf or None, and how a report of
#: one is worded (raised in the objective, so after the exception's type).
_BAD_VALUE = "The objective returned"
_BAD_REPORT = ("Trial.report(value=...) got", "Trial.report(train=...) got")
_LR_NAMES = ("lr", "learning_rate")
_BATCH_NAMES = ("batch_size",)
#: Fewer complete explore trials than this: no importance, no narrowing.
MIN_TRIALS_FOR_IMPORTANCE = 6
Objective = Callable[[Trial], Any]


class PipelineError(TunecraftError, RuntimeError):
    """The pipeline cannot go on (every run of a phase failed, a phase run out of order...)."""


@dataclass(frozen=True)
class PhaseSpend:
    """What a phase used.

    Attributes:
        units: Fidelity units trained (a pruned run counts the steps it reached).
        seconds: Wall-clock seconds of its runs.
        runs: Runs started (warm-start records aside), those that failed or were killed
            included.
        allotted: Fidelity units the plan gave the phase.
        failed: Of :attr:`runs`, those that failed or were killed. They count in
            :attr:`units` with the steps they reached (at least an explore-length run when
            they reported none), and a continued phase runs the killed ones and those that
            raised again, so a phase can use more than its allotment.
    """

    units: float
    seconds: float
    runs: int
    allotted: float
    failed: int = 0


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` found, validated on the holdout.

    Attributes:
        name: The pipeline's name (its studies are ``f"{name}.explore"`` and so on).
        direction: ``"minimize"`` or ``"maximize"``.
        plan: The :class:`~tunecraft.strategy.Plan` decided before any trial ran.
        best_config: The chosen finalist (see :attr:`selected_by`; the config the objective
            received: fixed parameters included, learning rate scaled).
        score: Its mean holdout score: the estimate to report (``None`` when no validation
            run finished). Unbiased unless :attr:`optimistic`.
        score_std: Standard deviation of that score over seeds.
        score_ci: Its 95% confidence interval.
        validation: One :class:`FinalistResult` per finalist, the chosen one first, then in
            the order of the choice's criterion; finalists whose every run failed last (when
            all failed, none is chosen and ``best_config`` is the search's best).
        search_value: The best value the search itself saw (validation split, possibly at a
            shorter fidelity): what a plain search would claim.
        importance: Importance of each hyperparameter from the explore phase (with
            ``.method``), or ``None`` when too few trials finished.
        narrowing: What was fixed, what narrowed, and why (``None`` without importance).
        spent: ``{phase: PhaseSpend}``.
        proxy: The rank-correlation check of the explore fidelity against full-length runs.
        transfer_notes: How prior and default configurations were mapped into the space.
        lr_range_test: The learning-rate range test's curve, suggestion and new range.
        studies: ``{phase: study name}``.
        selected_by: What chose the finalist: ``"validation"`` (the mean over seeds of the
            validation metric the final runs reported last), ``"search"`` (when the final
            runs report no validation metric: the best search value among the finalists
            found at the highest fidelity), ``"holdout"`` (the holdout itself:
            ``select="holdout"``, or nothing else to choose by), or ``"none"`` when no
            final-validation run finished (not run yet, or every one failed): nothing was
            validated, and ``best_config`` is the search's best.
    """

    name: str
    direction: str
    plan: Plan
    best_config: dict[str, Any]
    score: float | None
    score_std: float | None
    score_ci: tuple[float, float] | None
    validation: list[FinalistResult]
    search_value: float | None
    importance: Importance | None
    narrowing: Narrowing | None
    spent: dict[str, PhaseSpend]
    proxy: ProxyCheck | None = None
    transfer_notes: list[str] = field(default_factory=list)
    lr_range_test: dict[str, Any] | None = None
    studies: dict[str, str] = field(default_factory=dict)
    selected_by: str = "holdout"

    @property
    def optimistic(self) -> bool:
        """Whether :attr:`score` is biased toward good: the holdout chose among several
        finalists and also scored the chosen one (the winner's curse)."""
        return self.selected_by == "holdout" and sum(1 for f in self.validation if f.values) > 1

    @property
    def best_finalist(self) -> FinalistResult | None:
        """The chosen finalist (``None`` before any validation run, or when every one
        failed)."""
        return self.validation[0] if self.validation and self.validation[0].values else None

    def validation_table(self) -> str:
        """The finalists, one row each: holdout mean, std, interval, search value, flags."""
        rows = [
            (
                "#",
                "holdout mean",
                "std",
                "95% CI",
                "seeds",
                "validation",
                "search value",
                "from",
                "flags",
            )
        ]
        for i, f in enumerate(self.validation):
            ci = "-" if math.isnan(f.ci[0]) else f"[{f.ci[0]:.4g}, {f.ci[1]:.4g}]"
            rows.append(
                (
                    str(i + 1),
                    f"{f.mean:.4g}" if f.values else "-",
                    "-" if math.isnan(f.std) else f"{f.std:.2g}",
                    ci,
                    str(f.n),
                    _fmt(f.validation_mean),
                    _fmt(f.search_value),
                    f.source,
                    ", ".join(f.flags) or "-",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(
                c.ljust(w) if j in (7, 8) else c.rjust(w)
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
            for r in rows
        )

    def spent_table(self) -> str:
        """Budget used per phase against the plan."""
        unit = self.plan.unit
        rows = [("phase", f"{unit} used", "planned", "runs", "seconds")]
        for name, s in self.spent.items():
            runs = f"{s.runs} ({s.failed} failed)" if s.failed else str(s.runs)
            rows.append((name, _num(s.units), _num(s.allotted), runs, f"{s.seconds:.1f}"))
        total = sum(s.units for s in self.spent.values())
        rows.append(
            (
                "total",
                _num(total),
                _num(self.plan.budget),
                "",
                f"{sum(s.seconds for s in self.spent.values()):.1f}",
            )
        )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        table = "\n".join(
            "  ".join([r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, 5)])
            for r in rows
        )
        if any(s.failed for s in self.spent.values()):
            table += (
                f"\nFailed or killed runs count the {unit} they reached (an explore-length run "
                "when they reported none)."
            )
        return table

    def summary(self) -> str:
        """A readable report: plan, spending, importance, narrowing, validation, choice."""
        parts = [self.plan.table(), "", "Spent:", self.spent_table()]
        if self.importance is not None:
            imp = ", ".join(f"{k} {v:.0%}" for k, v in self.importance.items())
            parts += ["", f"Importance ({self.importance.method}): {imp}"]
        if self.narrowing is not None:
            parts += ["", "Narrowing:", self.narrowing.describe()]
        if self.proxy is not None and not math.isnan(self.proxy.correlation):
            parts += [
                "",
                f"Proxy check: {self.proxy.proxy} vs full length, Spearman "
                f"{self.proxy.correlation:.2f} over {self.proxy.n} configurations"
                + ("" if self.proxy.trusted else " (too low: its ranking is not trusted)"),
            ]
        if self.validation:
            parts += ["", "Final validation on the holdout:", self.validation_table()]
        parts += ["", f"Best config: {self.best_config}"]
        if self.selected_by == "none" and "validate" in self.plan:
            failures = [line for f in self.validation for line in f.failures]
            why = f": every run failed ({failures[-1]})" if failures else ""
            parts.append(
                f"Validation produced nothing{why}. The config above is the search's best, "
                "not validated on the holdout; run again with the same name (after fixing the "
                "objective) to validate it."
            )
        if self.score is not None:
            ci = (
                ""
                if self.score_ci is None or math.isnan(self.score_ci[0])
                else (f" (95% CI {self.score_ci[0]:.4g} to {self.score_ci[1]:.4g})")
            )
            parts.append(
                f"Holdout score: {self.score:.4g}{ci}; best search value was "
                f"{_fmt(self.search_value)}"
            )
            parts.append(self._selection_note())
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.summary()

    def _selection_note(self) -> str:
        if self.selected_by == "validation":
            return (
                "Chosen by the validation metric of the final runs (mean over seeds); the "
                "holdout only scored it, so the holdout score is an unbiased estimate."
            )
        if self.selected_by == "search":
            return (
                "Chosen by the finalists' search values (the final runs reported no validation "
                "metric); the holdout only scored it, so the holdout score is unbiased."
            )
        if not self.optimistic:
            return "One finalist: the holdout score is an unbiased estimate."
        return (
            "Chosen by the holdout score itself: the best of several noisy means, so the "
            "holdout score is optimistic (the winner's curse)."
        )


class BudgetedSearch:
    """The budgeted pipeline step by step: plan, run a phase, inspect, change, go on.

    Phases, in order (see :func:`tune` for the whole story):

    * ``lr_range_test`` (when ``lr_find`` is given): narrows the learning rate's range.
    * ``transfer``: prior and default configurations, mapped into the space, run first.
    * ``explore``: Sobol over the whole space at a short fidelity; then the importance of
      each hyperparameter and the narrowing of the space.
    * ``refine``: the ``auto`` sampler with a multi-fidelity scheduler in the narrowed space,
      warm-started from the explore trials inside it, until its allotment is spent.
    * ``validate``: the best finalists trained in full with several seeds, scored on the
      holdout split (``trial.split == "holdout"``).

    Everything (the plan, each decision, every trial) is stored, one study per phase
    (``f"{name}.explore"``...) plus ``f"{name}.pipeline"`` for the decisions; a new
    ``BudgetedSearch`` with the same name and storage continues where the last one stopped.
    One process drives a pipeline at a time, running its trials one after another: two
    drivers of the same name at once would both enqueue the validation runs and race on the
    narrowing.

    Args:
        objective, space, budget, max_fidelity, direction, storage, name, seed, prior,
            defaults, lr_scaling, lr_find, shares, n_finalists, n_seeds, scheduler, timeout,
            select, validation_cost, verbose: As in :func:`tune`.
        min_fidelity: The shortest run worth doing (default 1 for an int ``max_fidelity``).
        unit: The fidelity unit's name, for the tables (``"epochs"``).
        lr_param: The learning-rate parameter (default ``"lr"`` or ``"learning_rate"``).
        batch_param: The batch-size parameter (default ``"batch_size"``).
        reference_batch_size: The batch size at which ``lr_scaling`` searches the rate
            (default the smallest the space allows).
        importance_method: ``"fanova"`` (default), ``"permutation"`` or ``"mdi"``.
        narrowing_options: Keyword arguments of
            :func:`~tunecraft.strategy.narrow_space` (``min_importance``, ``top_quantile``,
            ``margin``, ``keep``, ``spread``...). The pipeline's own defaults are wider than
            the function's, as explore's runs are short and few: ``top_quantile=0.5``,
            ``margin=0.2`` and ``spread`` the importance's spread (over the forest's trees, or
            the shuffles with ``"permutation"``; deliberately strict: a parameter is fixed
            only when even a share one spread higher is small); ``spread=None`` fixes on the
            share alone.
        race: Race the final validation (default ``True``; see
            :func:`~tunecraft.strategy.race_sizes`): each finalist (3 by default) gets one
            full-length run, and the best of them by that run (by what ``select`` chooses
            with) the other ``n_seeds - 1`` seeds; it is the choice, scored on ``n_seeds``
            runs (among all, when time ran out in the first round). The runs this saves
            against ``n_finalists * n_seeds`` go to refine. A search with one distinct
            configuration gives it every seed. ``False``: every finalist gets every seed
            (up to 5 finalists). A continued pipeline keeps its stored plan's.
        seconds_per_unit: For a budget in time: seconds one fidelity unit takes (measured by
            one calibration run when not given).
        on_trial: ``on_trial(phase, record)`` after each run (for a progress display).

    Example:
        >>> import tunecraft as tc
        >>> from tunecraft.strategy import BudgetedSearch
        >>> def objective(trial):
        ...     x = trial.config["x"]
        ...     noise = 0.01 * (trial.seed % 3) + (0.05 if trial.split == "holdout" else 0)
        ...     for epoch in range(1, int(trial.budget) + 1):
        ...         trial.report((x - 0.3) ** 2 + 1 / epoch + noise, step=epoch)
        ...     return (x - 0.3) ** 2 + 1 / trial.budget + noise
        >>> search = BudgetedSearch(objective, {"x": tc.uniform(0, 1)}, budget="20 trials",
        ...                         max_fidelity=9, seed=0)
        >>> search.plan().names
        ['explore', 'refine', 'validate']
        >>> search.run_phase("explore")
        >>> search.next_phase
        'refine'
        >>> result = search.run()
        >>> abs(result.best_config["x"] - 0.3) < 0.2
        True
    """

    def __init__(
        self,
        objective: Objective,
        space: Space | Mapping[str, Param | str],
        *,
        budget: Budget | float | str,
        max_fidelity: float,
        direction: str = "minimize",
        min_fidelity: float | None = None,
        unit: str = "epochs",
        storage: Storage | str | None = None,
        name: str | None = None,
        seed: int = 0,
        prior: Any = None,
        defaults: bool | Mapping[str, Any] = True,
        lr_scaling: str | None = None,
        lr_param: str | None = None,
        batch_param: str | None = None,
        reference_batch_size: int | None = None,
        lr_find: Mapping[str, Any] | Callable[[], Any] | None = None,
        shares: Mapping[str, float] | Sequence[float] | None = None,
        n_finalists: int | None = None,
        n_seeds: int = 3,
        scheduler: Any = None,
        timeout: float | None = None,
        select: str = "validation",
        validation_cost: float | None = None,
        importance_method: str = "fanova",
        narrowing_options: Mapping[str, Any] | None = None,
        race: bool = True,
        seconds_per_unit: float | None = None,
        verbose: bool | Callable[[str], None] = False,
        on_trial: Callable[[str, FrozenTrial], None] | None = None,
    ) -> None:
        owner = "BudgetedSearch"
        if not callable(objective):
            raise TypeError(
                f"The 'objective' parameter of {owner} must be callable, got {objective!r}."
            )
        check_choice(direction, "direction", owner, _DIRECTIONS)
        check_int(seed, "seed", owner, low=0)
        check_int(n_seeds, "n_seeds", owner, low=1)
        check_int(n_finalists, "n_finalists", owner, low=1, allow_none=True)
        check_float(timeout, "timeout", owner, low=0, low_inclusive=False, allow_none=True)
        check_choice(lr_scaling, "lr_scaling", owner, (None, "linear", "sqrt"))
        check_choice(select, "select", owner, _SELECT)
        check_float(
            validation_cost, "validation_cost", owner, low=0, low_inclusive=False, allow_none=True
        )
        check_shares(shares)
        if not isinstance(race, bool):
            raise TypeError(f"The 'race' parameter of {owner} must be a bool, got {race!r}.")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise InvalidParameterError(
                f"The 'name' parameter of {owner} must be a non-empty str, got {name!r}."
            )
        if lr_find is not None and not (callable(lr_find) or isinstance(lr_find, Mapping)):
            raise TypeError(
                f"The 'lr_find' parameter of {owner} must be None, a dict of lr_find's "
                f"arguments (model, train_data, loss_fn...) or a callable, got {lr_find!r}."
            )
        self.objective = objective
        self.space = space if isinstance(space, Space) else Space(space)
        self.budget = Budget.parse(budget, unit=unit)
        self.max_fidelity = max_fidelity
        self.min_fidelity = min_fidelity
        self.direction = direction
        self.unit = unit
        self.seed = seed
        self.prior = prior
        self.defaults = defaults
        self.lr_scaling = lr_scaling
        self.lr_param = lr_param or _find_name(self.space, _LR_NAMES)
        self.batch_param = batch_param or _find_name(self.space, _BATCH_NAMES)
        self.lr_find = lr_find
        self.shares = shares
        self.n_finalists = n_finalists
        self.n_seeds = n_seeds
        self.scheduler = scheduler
        self.timeout = timeout
        self.select = select
        self.validation_cost = validation_cost
        self.importance_method = importance_method
        self.narrowing_options = dict(narrowing_options or {})
        self.race = race
        self.seconds_per_unit = seconds_per_unit
        if on_trial is not None and not callable(on_trial):
            raise TypeError(
                f"The 'on_trial' parameter of {owner} must be None or a callable, got "
                f"{on_trial!r}."
            )
        self._on_trial = on_trial
        self._say: Callable[[str], None] = (
            verbose if callable(verbose) else (print if verbose else (lambda _text: None))
        )
        if (lr_scaling or lr_find is not None) and self.lr_param is None:
            raise InvalidParameterError(
                f"{owner}: lr_scaling and lr_find need a learning-rate parameter; name it with "
                f"lr_param= (a 'lr_param' key in a tunecraft tune config; the space has "
                f"{', '.join(self.space.names)})."
            )
        self.reference_batch_size: int | None = None
        if lr_scaling:
            if self.batch_param is None:
                raise InvalidParameterError(
                    f"{owner}: lr_scaling needs a batch-size parameter; name it with "
                    f"batch_param= (a 'batch_param' key in a tunecraft tune config; the space "
                    f"has {', '.join(self.space.names)})."
                )
            self.reference_batch_size = _reference_batch(
                self.space[self.batch_param], reference_batch_size
            )
        self._storage = get_storage(storage)
        self.name = name or f"pipeline-{uuid.uuid4().hex[:8]}"
        self._journal = _Journal(self._storage, f"{self.name}.pipeline", self.space)
        self._plan: Plan | None = None
        self._studies: dict[str, Study] = {}
        self._candidates: list[dict[str, Any]] | None = None
        self._transfer_notes: list[str] = []
        # phase -> (time.monotonic() when it started in this process, its seconds before)
        self._clock: dict[str, tuple[float, float]] = {}
        # trial ids of the runs an exception ended before the phase (re)started: a resumed
        # phase runs them again (the objective may have been fixed since)
        self._retry: set[int] = set()

    # -- inspecting ------------------------------------------------------------------------------
    def plan(self) -> Plan:
        """The plan (decided and stored on first call; a continued pipeline reads it back).

        A budget in time is converted with ``seconds_per_unit``, measured when not given by
        one calibration run of ``min_fidelity`` (it counts as an explore run).
        """
        if self._plan is not None:
            return self._plan
        stored = self._journal.get("plan")
        if stored is not None:
            self._plan = Plan.from_dict(stored["plan"])
            ignored = self._ignored_settings(self._plan)
            if ignored:
                warnings.warn(
                    f"Pipeline '{self.name}' continues with its stored plan; "
                    f"{', '.join(ignored)} given now "
                    f"{'is' if len(ignored) == 1 else 'are'} ignored. Use another name to "
                    "start afresh.",
                    UserWarning,
                    stacklevel=2,
                )
            self._candidates = stored.get("candidates", [])
            self._transfer_notes = stored.get("notes", [])
            self._say(f"Continuing pipeline '{self.name}' from {self._storage_name()}.")
            return self._plan
        candidates, notes = self._transfer_candidates()
        spu = self.seconds_per_unit
        if self.budget.kind == "seconds" and spu is None:
            spu = self._calibrate()
        self._plan = plan(
            self.budget,
            max_fidelity=self.max_fidelity,
            min_fidelity=self.min_fidelity,
            shares=self.shares,
            n_finalists=self.n_finalists,
            n_seeds=self.n_seeds,
            n_transfer=len(candidates),
            lr_range_test=self.lr_find is not None,
            unit=self.unit,
            seconds_per_unit=spu,
            validation_cost=self.validation_cost,
            race=self.race,
        )
        self._candidates, self._transfer_notes = candidates, notes
        self._journal.add(
            "plan", {"plan": self._plan.to_dict(), "candidates": candidates, "notes": notes}
        )
        self._say(self._plan.table())
        return self._plan

    def _ignored_settings(self, stored: Plan) -> list[str]:
        """The settings given now that differ from those ``stored`` was made with."""
        out: list[str] = []
        if stored.requested != self.budget.describe(self.unit):
            out.append(f"budget (stored: {stored.requested})")
        if stored.max_fidelity != self.max_fidelity:
            out.append(f"max_fidelity (stored: {_num(stored.max_fidelity)})")
        if stored.n_seeds != self.n_seeds:
            out.append(f"n_seeds (stored: {stored.n_seeds})")
        if self.n_finalists is not None and stored.n_finalists != self.n_finalists:
            out.append(f"n_finalists (stored: {stored.n_finalists})")
        if stored.shares is not None and stored.shares != check_shares(self.shares):
            out.append(
                "shares (stored: " + ", ".join(f"{v:g}" for v in stored.shares.values()) + ")"
            )
        if stored.validation_cost != (
            None if self.validation_cost is None else float(self.validation_cost)
        ):
            out.append(f"validation_cost (stored: {stored.validation_cost})")
        # race=True plans no race when there is nothing to race (one finalist or one seed)
        could_race = race_sizes(stored.n_finalists, stored.n_seeds) is not None
        if could_race and self.race != (stored.race is not None):
            out.append(f"race (stored: {stored.race is not None})")
        return out

    @property
    def done(self) -> list[str]:
        """The phases finished so far."""
        return [r["phase"] for r in self._journal.all("phase")]

    @property
    def next_phase(self) -> str | None:
        """The phase :meth:`run` would run next (``None`` when all are done)."""
        finished = set(self.done)
        for name in self.plan().names:
            if name not in finished:
                return name
        return None

    def study(self, phase: str) -> Study:
        """The study that holds the trials of ``phase`` (created when first needed)."""
        if phase == "calibration":
            return self._calibration_study()
        if phase not in self.plan().names:
            raise InvalidParameterError(
                f"The 'phase' parameter of BudgetedSearch.study must be one of "
                f"{', '.join(map(repr, self.plan().names))}, got {phase!r}."
            )
        if phase not in self._studies:
            if phase == "refine":
                if "explore" not in self.done:
                    raise PipelineError(
                        "The refine study exists once explore is done (it searches the "
                        "narrowed space)."
                    )
                self._decide_narrowing()
            self._studies[phase] = self._make_study(phase)
        return self._studies[phase]

    @property
    def importance(self) -> Importance | None:
        """The importance measured after exploring (``None`` before, or with too few trials)."""
        rec = self._journal.get("narrowing")
        if rec is None or rec.get("importance") is None:
            return None
        from tunecraft.analysis import Importance

        return Importance.from_dict(rec["importance"])

    @property
    def narrowing(self) -> Narrowing | None:
        """The narrowing decided after exploring (``None`` before, or with too few trials)."""
        rec = self._journal.get("narrowing")
        if rec is None or rec.get("narrowing") is None:
            return None
        from tunecraft.strategy._narrow import Narrowing

        return Narrowing.from_dict(rec["narrowing"])

    def search_space(self) -> Space:
        """The space transfer and explore search (the lr range narrowed by the range test)."""
        rec = self._journal.get("lr_range_test")
        if rec is not None:
            return Space.from_dict(rec["space"])
        return self.space

    # -- changing --------------------------------------------------------------------------------
    def set_narrowing(
        self,
        space: Space | Mapping[str, Param | str],
        fixed: Mapping[str, Any] | None = None,
        *,
        reason: str = "set by the user",
    ) -> Narrowing:
        """Replace the automatic narrowing before refine starts.

        Args:
            space: The space refine searches (parameters of the search space).
            fixed: ``{name: value}`` for every other parameter of the search space.
            reason: Recorded as the reason of each decision.
        """
        from tunecraft.strategy._narrow import Narrowing

        if "explore" not in self.done:
            raise PipelineError("set_narrowing: run the 'explore' phase first.")
        if "refine" in self.done or self._refine_started():
            raise PipelineError("set_narrowing: refine has started; the narrowing is final.")
        original = self.search_space()
        new = space if isinstance(space, Space) else Space(space)
        fixed = dict(fixed or {})
        for n in new.names:
            if n not in original:
                raise InvalidParameterError(
                    f"set_narrowing: '{n}' is not a parameter of the search space."
                )
        for n in original.names:
            if n not in new and n not in fixed:
                raise InvalidParameterError(
                    f"set_narrowing: give '{n}' a range in 'space' or a value in 'fixed'."
                )
        old = self.narrowing
        narrowing = Narrowing(
            space=new,
            fixed=fixed,
            reasons={n: reason for n in original.names},
            original=original,
            importance=old.importance if old is not None else None,
        )
        rec = self._journal.get("narrowing") or {}
        self._journal.add(
            "narrowing", {"importance": rec.get("importance"), "narrowing": narrowing.to_dict()}
        )
        self._studies.pop("refine", None)
        with contextlib.suppress(TunecraftError):  # only warm-start records: start afresh
            delete_study(f"{self.name}.refine", storage=self._storage)
        return narrowing

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> TuneResult:
        """Run every phase not yet done, then return the :class:`TuneResult`.

        When no final-validation run finished (each one failed), the result says so
        (``selected_by == "none"``) and validate stays to do: running again after fixing the
        objective retries the failed runs.
        """
        while (phase := self.next_phase) is not None:
            self.run_phase(phase)
            if phase not in self.done:
                break
        return self.result()

    def run_phase(self, name: str | None = None) -> None:
        """Run phase ``name`` (default: the next one) to its end; earlier phases must be done.

        A phase interrupted before (a crash, Ctrl-C) continues where it stopped. Runs that
        the objective's exceptions failed do not count as done when the phase continues: they
        run again, up to the phase's planned runs (their cost stays in the spending). A search
        phase none of whose runs completed raises :class:`PipelineError`; a validation none
        of whose runs finished is not recorded as done.
        """
        p = self.plan()
        name = name or self.next_phase
        if name is None:
            return
        check_choice(name, "name", "BudgetedSearch.run_phase", tuple(p.names))
        if name in self.done:
            self._say(f"Phase {name} is already done.")
            return
        earlier = p.names[: p.names.index(name)]
        missing = [n for n in earlier if n not in self.done]
        if missing:
            raise PipelineError(f"run_phase('{name}'): run {', '.join(map(repr, missing))} first.")
        runner = {
            "lr_range_test": self._run_lr_range_test,
            "transfer": self._run_transfer,
            "explore": self._run_explore,
            "refine": self._run_refine,
            "validate": self._run_validate,
        }[name]
        if name in ("transfer", "explore"):
            # Sobol's first suggestion imports scipy.stats.qmc (most of a second): a cost of
            # the process, not of the phase, whose short time share it used up on a budget
            # in seconds (1 run of 30 started). Imported before the phase's clock starts.
            from scipy.stats import qmc  # noqa: F401
        self._clock[name] = (time.monotonic(), self._spend(name).seconds)
        self._retry = {t.trial_id for t in self._phase_trials(name) if _crashed(t)}
        try:
            runner()
        finally:
            self._retry = set()
        if name == "explore":
            self._decide_narrowing()  # before explore counts as done: refine needs it
        spend = self._spend(name)
        failed = f" ({spend.failed} failed or killed)" if spend.failed else ""
        if name == "validate" and not any(_finished_ok(t) for t in self.study("validate").trials):
            self._clock.pop(name, None)
            self._say(
                f"validate: {spend.runs} runs{failed}, none finished: validation produced "
                "nothing. Fix the objective and run again with the same name: the failed "
                "runs are retried."
            )
            return
        self._journal.add("phase", {"phase": name, "units": spend.units, "seconds": spend.seconds})
        self._clock.pop(name, None)
        if name == "lr_range_test":
            return
        self._say(
            f"{name}: {spend.runs} runs{failed}, {_num(spend.units)} of "
            f"{_num(spend.allotted)} {self.unit}, {spend.seconds:.1f}s"
        )

    def _phase_trials(self, phase: str) -> list[FrozenTrial]:
        """The runs of a phase so far (with the calibration run for explore)."""
        if phase == "lr_range_test":
            return []
        out = list(self._trials_of(phase))
        if phase == "explore" and self._calibrated():
            out += self.study("calibration").trials
        return out

    def _counted(self, t: FrozenTrial) -> bool:
        """Whether a run counts as done work of the phase running now (see :meth:`run_phase`)."""
        return _counts(t) and t.trial_id not in self._retry

    # -- phases ----------------------------------------------------------------------------------
    def _run_lr_range_test(self) -> None:
        assert self.lr_find is not None and self.lr_param is not None
        if callable(self.lr_find):
            found = self.lr_find()
        else:
            from tunecraft.train import lr_find

            found = lr_find(**dict(self.lr_find))
        suggestion = float(found.suggested_lr)
        space = narrow_lr(self.space, self.lr_param, suggestion)
        how = f"'{self.lr_param}' narrowed to {space[self.lr_param].notation()}"
        self._journal.add(
            "lr_range_test",
            {
                "lrs": [float(x) for x in found.lrs],
                "losses": [float(x) for x in found.losses],
                "suggestion": suggestion,
                "space": space.to_dict(),
                "note": how,
            },
        )
        self._say(f"lr_range_test: suggestion {suggestion:.3g}; {how}")

    def _run_transfer(self) -> None:
        study = self.study("transfer")
        p = self.plan().phase("transfer")
        if self._journal.get("transfer") is None:
            # Enqueue what is missing: a crash between two enqueues must not lose the rest.
            space = self.search_space()
            fill = self._default_config(space)
            have = [t.config for t in study.trials]
            notes: list[str] = []
            for c in (self._candidates or [])[: p.runs]:
                mapped, why = map_config(c, space, defaults=fill)
                notes += why
                if mapped in have:
                    have.remove(mapped)
                else:
                    study.enqueue(mapped)
            self._journal.add("transfer", {"notes": notes})
        else:
            self._requeue_transfer(study)
        self._run_count(study, "transfer", p.runs)

    def _requeue_transfer(self, study: Study) -> None:
        """Enqueue again the transferred configs whose every run was killed or failed with an
        exception (a continued transfer; a config whose run returned NaN is not retried)."""
        study.fail_stale_trials()
        trials = study.trials
        settled = {
            json.dumps(t.config, sort_keys=True, default=str)
            for t in trials
            if t.state in (TrialState.WAITING, TrialState.RUNNING) or self._counted(t)
        }
        for t in trials:
            key = json.dumps(t.config, sort_keys=True, default=str)
            if t.state is TrialState.FAILED and key not in settled:
                settled.add(key)
                study.enqueue(t.config)

    def _run_explore(self) -> None:
        p = self.plan().phase("explore")
        self._run_count(self.study("explore"), "explore", p.runs)

    def _run_refine(self) -> None:
        """Runs until the budget left, less the validation reserve, is spent.

        With an integer fidelity, the run going when the budget runs out is stopped at that
        report (``trial.should_stop()``), and runs start while a short (explore-length) run
        still fits; otherwise a run starts only while a full-length one fits.
        """
        study = self.study("refine")
        p = self.plan()
        self._warm_start(study)
        study.fail_stale_trials()
        cap = study.scheduler if isinstance(study.scheduler, _BudgetCap) else None
        shortest = p.phase("explore").fidelity if cap is not None else p.phase("refine").fidelity
        limit = self._refine_limit()
        failures = 0
        try:
            while True:
                costs = self._refine_costs(study)
                spent = sum(costs.values())
                if spent > limit - shortest + 1e-9 or self._out_of_time("refine"):
                    break
                if cap is not None:
                    cap.arm(limit, spent, costs, p)
                record = self._run_one(study, "refine")
                failures = failures + 1 if record.state is TrialState.FAILED else 0
                if failures >= 10:
                    raise PipelineError(
                        f"refine: 10 runs in a row failed; the last: {_first_line(record.error)}"
                    )
                if self._repeats_a_full_run(study, record):
                    self._finish_used_up_space(study, limit)
                    break
        finally:
            if cap is not None:
                cap.disarm()
        own = [t for t in study.trials if not t.user_attrs.get(WARM_ATTR)]
        crashed = [t for t in own if _crashed(t) and t.trial_id not in self._retry]
        if crashed and not any(_finished_ok(t) for t in own):
            raise _no_run_completed("refine", crashed)

    def _refine_costs(self, study: Study) -> dict[int, float]:
        """Fidelity units each of refine's own runs used (runs that crashed before this
        session are run again, so theirs is not counted)."""
        p = self.plan()
        return {
            t.number: _cost(t, p)
            for t in study.trials
            if not t.user_attrs.get(WARM_ATTR)
            and t.state is not TrialState.WAITING
            and t.trial_id not in self._retry
        }

    def _repeats_a_full_run(self, study: Study, record: FrozenTrial) -> bool:
        """Whether ``record`` ran a config that an earlier refine run completed in full.

        The model-based samplers never propose a completed config again while any other is
        left, so a repeat means a finite space is used up (three choices of ``C`` had refine
        run each of them ten times over, every run the same fit).
        """
        if record.state is not TrialState.COMPLETE:
            return False
        full = self.plan().phase("refine").fidelity
        return any(
            t.number != record.number
            and t.state is TrialState.COMPLETE
            and not t.user_attrs.get(WARM_ATTR)
            and t.config == record.config
            and t.seed == record.seed
            and _reached_full(t, full)
            for t in study.trials
        )

    def _finish_used_up_space(self, study: Study, limit: float) -> None:
        """A finite space is used up: run each config that only ran short (stopped at a rung,
        or an explore run) in full, best first, while a full run fits, then end refine.

        Every config has been proposed, and the ones stopped at a low rung would only be
        stopped there again, so the search has nothing left to learn but their full value.
        """
        full = self.plan().phase("refine").fidelity
        sign = 1.0 if self.direction == "minimize" else -1.0
        trials = study.trials  # explore's short runs (the warm-start copies) included
        done = [
            t.config for t in trials if t.state is TrialState.COMPLETE and _reached_full(t, full)
        ]
        stopped: dict[str, tuple[float, float, dict[str, Any]]] = {}
        for t in trials:
            ended = t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            if not ended or t.config in done or not t.intermediate:
                continue
            key = json.dumps(t.config, sort_keys=True, default=str)
            last = max(t.intermediate)
            rank = (-float(last), sign * t.intermediate[last])
            if key not in stopped or rank < stopped[key][:2]:
                stopped[key] = (*rank, dict(t.config))
        self._say(
            f"refine: the space is used up (a configuration came back that ran in full); "
            f"{len(stopped)} that ran short run in full where the budget allows, then refine ends"
        )
        for *_, config in sorted(stopped.values(), key=lambda r: r[:2]):
            spent = sum(self._refine_costs(study).values())
            if spent + full > limit + 1e-9 or self._out_of_time("refine"):
                break
            study.enqueue(config)
            scheduler, study.scheduler = study.scheduler, None  # in full: no rung stops it
            try:
                self._run_one(study, "refine")
            finally:
                study.scheduler = scheduler

    def _refine_limit(self) -> float:
        """Fidelity units refine may spend: the budget, less what transfer and explore
        spent, less the validation reserve (the plan's allotment when they kept to theirs)."""
        p = self.plan()
        earlier = sum(self._spend(n).units for n in ("transfer", "explore") if n in p)
        reserve = p.phase("validate").cost if "validate" in p else 0.0
        return p.budget - earlier - reserve

    def _run_validate(self) -> None:
        study = self.study("validate")
        finalists = self._finalists()
        if not finalists:
            raise PipelineError("validate: the search has no complete trial to validate.")
        seeds = self._validation_seeds()
        study.fail_stale_trials()
        p = self.plan()
        race = p.race
        # Nothing to race: every seed for each. (A plan stored by an earlier version, whose
        # race had more candidates than finalists, raced only beyond n_finalists of them.)
        at_most = race[1] if race is not None and race[0] == p.n_finalists else p.n_finalists
        if race is None or len(finalists) <= at_most:
            self._validate_round(study, finalists, range(len(finalists)), seeds)
            return
        # The race: one run each, then the other seeds for the best of them.
        if not self._validate_round(study, finalists, range(len(finalists)), seeds[:1]):
            return
        if not any(t.state is TrialState.COMPLETE for t in study.trials):
            return  # every first run failed: nothing to race on (run_phase says so)
        kept = self._contenders()
        self._validate_round(study, finalists, kept, seeds[1:])

    def _validate_round(
        self,
        study: Study,
        finalists: list[dict[str, Any]],
        which: Iterable[int],
        seeds: Sequence[int],
    ) -> bool:
        """Run ``seeds`` for the finalists ``which``; ``False`` when time ran out first."""
        which = list(which)
        have = {
            (t.user_attrs.get(FINALIST_ATTR), t.seed)
            for t in study.trials
            if t.state is TrialState.WAITING or self._counted(t)
        }
        fmax = self.plan().max_fidelity
        # Seed by seed across finalists (waiting runs start in the order enqueued): out of time,
        # every finalist has had its first seeds.
        for s in seeds:
            for i in which:
                if (i, s) not in have:
                    study.enqueue(
                        finalists[i]["config"],
                        user_attrs={
                            FINALIST_ATTR: i,
                            SEED_ATTR: s,
                            BUDGET_ATTR: fmax,
                            PHASE_ATTR: "validate",
                            SPLIT_ATTR: "holdout",
                        },
                    )
        while study.get_trials([TrialState.WAITING]):
            done = [t for t in study.trials if t.state is TrialState.COMPLETE]
            if done and self._out_of_time("validate"):
                self._say("validate: out of time; the result uses the runs finished.")
                return False
            self._run_one(study, "validate")
        return True

    def _contenders(self) -> list[int]:
        """The finalists that go on in the race: the best by their first run (stored once)."""
        rec = self._journal.get("contenders")
        if rec is not None:
            return [int(i) for i in rec["contenders"]]
        race = self.plan().race
        assert race is not None
        sign = 1.0 if self.direction == "minimize" else -1.0
        first: dict[int, FrozenTrial] = {}
        for t in self.study("validate").trials:
            i = t.user_attrs.get(FINALIST_ATTR)
            if t.state is TrialState.COMPLETE and t.value is not None and isinstance(i, int):
                first.setdefault(i, t)
        by = "holdout"
        if self.select == "validation":
            # the validation metric of the runs; without one the search's order (the
            # finalists' order), so that the holdout does not choose
            seen = all(_validation_value(t) is not None for t in first.values())
            by = "validation" if seen else "search"

        def key(i: int) -> tuple[float, int]:
            t = first[i]
            if by == "search":
                return 0.0, i
            v = _validation_value(t) if by == "validation" else t.value
            return sign * float(v), i  # type: ignore[arg-type]

        kept = sorted(sorted(first, key=key)[: race[1]])
        self._journal.add("contenders", {"contenders": kept, "by": by})
        return kept

    # -- the decisions ---------------------------------------------------------------------------
    def _decide_narrowing(self) -> None:
        if self._journal.get("narrowing") is not None:
            return
        trials = [
            t
            for t in self._search_trials(("transfer", "explore"))
            if t.state is TrialState.COMPLETE
        ]
        space = self.search_space()
        if len(trials) < max(MIN_TRIALS_FOR_IMPORTANCE, len(space) + 1):
            self._journal.add("narrowing", {"importance": None, "narrowing": None})
            self._say(
                f"explore: {len(trials)} complete runs are too few to measure importance; "
                "refine searches the whole space."
            )
            return
        from tunecraft.analysis import importance
        from tunecraft.strategy._narrow import narrow_space

        pairs = [(t.config, float(t.value)) for t in trials if t.value is not None]
        imp = importance(
            pairs, space, direction=self.direction, method=self.importance_method, seed=self.seed
        )
        options = {"direction": self.direction, **self.narrowing_options}
        if self.defaults:  # an unimportant parameter is fixed at its known default
            options.setdefault("defaults", self._default_config(space))
        # Explore's runs are short (a third of full length at most) and few: their ranking
        # favours fast starters and their importance shares are unstable. So a parameter is
        # fixed only when confidently unimportant, and the ranges keep the better half of the
        # runs with a wide margin (the top quarter with a narrow one lost 1-2 points of true
        # error on LCBench, docs/benchmarks.md).
        options.setdefault("spread", dict(imp.std))
        options.setdefault("top_quantile", 0.5)
        options.setdefault("margin", 0.2)
        narrowing = narrow_space(space, pairs, imp, **options)
        self._journal.add(
            "narrowing", {"importance": imp.to_dict(), "narrowing": narrowing.to_dict()}
        )
        self._say(
            f"importance ({imp.method}): "
            + ", ".join(f"{k} {v:.0%}" for k, v in imp.items())
            + "\n"
            + narrowing.describe()
        )

    def _finalists(self) -> list[dict[str, Any]]:
        rec = self._journal.get("finalists")
        if rec is not None:
            return list(rec["finalists"])
        p = self.plan()
        k = p.race[0] if p.race is not None else p.n_finalists
        sign = 1.0 if self.direction == "minimize" else -1.0
        pool: list[tuple[float, float, int, dict[str, Any], str, float]] = []
        narrowing = self.narrowing
        for phase in _SEARCH_PHASES:
            if phase not in self.plan():
                continue
            for t in self.study(phase).trials:
                if t.user_attrs.get(WARM_ATTR):
                    continue
                seen_at = _search_value(t)
                if seen_at is None:
                    continue
                fid, value = seen_at
                config = dict(t.config)
                if phase == "refine" and narrowing is not None:
                    config = narrowing.complete(config)
                pool.append((-fid, sign * value, t.number, config, f"{phase} #{t.number}", value))
        pool.sort(key=lambda r: (r[0], r[1], r[2]))
        chosen: list[dict[str, Any]] = []
        seen: set[str] = set()
        for neg_fid, _v, _n, config, source, value in pool:
            key = json.dumps(config, sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            chosen.append(
                {"config": config, "source": source, "value": value, "fidelity": -neg_fid}
            )
            if len(chosen) == k:
                break
        self._journal.add("finalists", {"finalists": chosen})
        return chosen

    def _validation_seeds(self) -> list[int]:
        # Seeds the search never used (it trains with self.seed).
        return [self.seed + 1 + i for i in range(self.plan().n_seeds)]

    def _warm_start(self, study: Study) -> None:
        """Copy the search trials inside the narrowed space into refine's study, once each.

        Copies already there (a resumed pipeline) are kept; those a crash cut short (failed)
        are made again, so a crash in the middle loses none.
        """
        if any(not t.user_attrs.get(WARM_ATTR) for t in study.trials):
            return  # refine has started its own runs: the copies it learned from stay as they are
        done = {t.user_attrs[WARM_ATTR] for t in study.trials if t.state is not TrialState.FAILED}
        narrowing = self.narrowing
        n = len(done)
        for t in self._search_trials(("transfer", "explore")):
            if t.state is not TrialState.COMPLETE or t.value is None:
                continue
            if f"{t.phase} #{t.number}" in done:
                continue
            config = narrowing.project(t.config) if narrowing is not None else dict(t.config)
            if config is None or not study.space.contains(config):
                continue
            study.add_trial(
                config,
                t.value,
                intermediate=t.intermediate,
                user_attrs={
                    WARM_ATTR: f"{t.phase} #{t.number}",
                    BUDGET_ATTR: t.budget,
                    PHASE_ATTR: t.phase,
                },
            )
            n += 1
        if n == 0:  # the sampler starts cold (quasi-random first)
            _log.info("refine: no explore trial lies in the narrowed space.")
        if not done:
            self._say(f"refine: warm-started from {n} explore runs inside the narrowed space")

    # -- studies and accounting ------------------------------------------------------------------
    def _make_study(self, phase: str) -> Study:
        p = self.plan()
        space = self.search_space()
        sampler: Any = "random"
        scheduler = None
        derive: Callable[[dict[str, Any]], dict[str, Any]] | None = self._scaler()
        if phase in ("transfer", "explore"):
            sampler = "sobol"
        elif phase == "refine":
            narrowing = self.narrowing
            if narrowing is not None:
                space = narrowing.space
                scale = derive
                complete = narrowing.complete

                def derive(config: dict[str, Any]) -> dict[str, Any]:
                    full = complete(config)
                    return scale(full) if scale is not None else full

            sampler = "auto"
            scheduler = self._refine_scheduler(p)
            if p.integer and scheduler is not None:  # stops the run going when the budget ends
                if isinstance(scheduler, str):
                    from tunecraft.schedulers import make_scheduler

                    scheduler = make_scheduler(scheduler, seed=self.seed)
                scheduler = _BudgetCap(scheduler)
        study = Study(
            space,
            direction=self.direction,
            sampler=sampler,
            scheduler=scheduler,
            storage=self._storage,
            name=f"{self.name}.{phase}",
            seed=self.seed if isinstance(sampler, str) else None,
            load_if_exists=True,
        )
        study._trial_attrs = {
            BUDGET_ATTR: p.phase(phase).fidelity,
            SEED_ATTR: self.seed,
            PHASE_ATTR: phase,
            SPLIT_ATTR: "holdout" if phase == "validate" else "validation",
            **self._derived_attr(),
        }
        study._derive = derive
        return study

    def _refine_scheduler(self, p: Plan) -> Any:
        if self.scheduler is not None:
            return self.scheduler
        f_r = p.phase("refine").fidelity
        if not isinstance(f_r, int) or f_r < 2:
            return None  # a data fraction, or too short to stop early
        from tunecraft.schedulers import available_schedulers, make_scheduler

        f_e = p.phase("explore").fidelity
        if "auto" in available_schedulers():
            options: dict[str, Any] = {
                "max_resource": f_r,
                "variant": "stopping",
                "reduction_factor": _REFINE_REDUCTION,
            }
            k = p.race[0] if p.race is not None else p.n_finalists
            lowest = _lowest_rung(p.phase("refine").allotted, f_r, k, _REFINE_REDUCTION)
            if lowest > 1:
                options["min_resource"] = lowest
                _log.info(
                    "refine: rungs from step %d, so that about %d runs reach full length.",
                    lowest,
                    k,
                )
            try:
                return make_scheduler("auto", options=options)
            except (TypeError, ValueError) as exc:
                _log.info("refine: the 'auto' scheduler refused (%s); using ASHA.", exc)
        return make_scheduler(
            "asha",
            options={
                "min_resource": max(1, int(f_e)),
                "max_resource": f_r,
                "reduction_factor": _REFINE_REDUCTION,
            },
        )

    def _scaler(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        if not self.lr_scaling:
            return None
        lr, batch, ref, rule = (
            self.lr_param,
            self.batch_param,
            self.reference_batch_size,
            self.lr_scaling,
        )
        assert lr is not None and batch is not None and ref is not None

        def scale(config: dict[str, Any]) -> dict[str, Any]:
            if lr not in config or batch not in config:
                return dict(config)
            return apply_lr_scaling(
                config, rule=rule, lr_param=lr, batch_param=batch, reference_batch_size=ref
            )

        return scale

    def _derived_attr(self) -> dict[str, Any]:
        """``{"tc.derived": [lr_param]}`` when the objective receives a scaled learning rate
        (so that a later ``prior=`` does not take it for the searched one), else ``{}``."""
        return {DERIVED_ATTR: [self.lr_param]} if self.lr_scaling else {}

    def _search_trials(self, phases: Iterable[str]) -> list[FrozenTrial]:
        out: list[FrozenTrial] = []
        for phase in phases:
            if phase in self.plan():
                out += self._trials_of(phase)
        return out

    def _trials_of(self, phase: str) -> list[FrozenTrial]:
        """The trials of a phase so far (none for refine before its space is decided)."""
        if phase == "refine" and "explore" not in self.done:
            return []
        return self.study(phase).trials

    def _refine_started(self) -> bool:
        try:
            s = Study(None, storage=self._storage, name=f"{self.name}.refine", sampler="random")
        except TunecraftError:
            return False
        return any(not t.user_attrs.get(WARM_ATTR) for t in s.trials)

    def _run_count(self, study: Study, phase: str, runs: int) -> None:
        """Run trials until ``runs`` of them count (finished, not killed) or time runs out."""
        study.fail_stale_trials()
        while True:
            trials = study.trials
            counted = sum(self._counted(t) for t in trials)
            if phase == "explore" and self._calibrated():
                counted += sum(self._counted(t) for t in self.study("calibration").trials)
            if counted >= runs:
                break
            if _ran_one(study) and self._out_of_time(phase):
                self._say(f"{phase}: out of time after {counted} of {runs} runs.")
                break
            if not study.get_trials([TrialState.WAITING]) and phase == "transfer":
                break  # every transferred config ran
            self._run_one(study, phase)
        trials = study.trials
        if any(t.state is TrialState.COMPLETE for t in trials):
            return
        failed = [
            t
            for t in trials
            if t.state is TrialState.FAILED and _counts(t) and t.trial_id not in self._retry
        ]
        # a transfer whose every config returned NaN is done; one whose runs crashed is not
        if phase == "explore" or any(_crashed(t) for t in failed):
            raise _no_run_completed(phase, failed)

    def _calibrated(self) -> bool:
        """Whether a calibration run converted a time budget (it counts as explore)."""
        return self._journal.get("calibration") is not None

    def _spend(self, phase: str) -> PhaseSpend:
        p = self.plan()
        phases = [phase] + (["calibration"] if phase == "explore" and self._calibrated() else [])
        units = seconds = 0.0
        runs = failed = 0
        for ph in phases:
            if ph == "lr_range_test":
                continue
            for t in self._trials_of(ph):
                if t.user_attrs.get(WARM_ATTR) or t.state in (TrialState.WAITING,):
                    continue
                runs += 1
                failed += t.state is TrialState.FAILED
                units += _cost(t, p)
                took = t.user_attrs.get(OBJECTIVE_SECONDS_ATTR)  # the calibration run's
                seconds += float(took) if isinstance(took, (int, float)) else t.duration or 0.0
        allotted = p.phase(phase).allotted if phase in p.names else 0.0
        return PhaseSpend(
            units, max(seconds, self._wall_seconds(phase)), runs, allotted, failed=failed
        )

    def _wall_seconds(self, phase: str) -> float:
        """Wall-clock seconds of a phase, its own work between runs included (importance,
        narrowing, the samplers): recorded when it finished, measured while it runs."""
        for r in reversed(self._journal.all("phase")):
            if r["phase"] == phase:
                return float(r["seconds"])
        if phase in self._clock:
            started, before = self._clock[phase]
            return before + time.monotonic() - started
        return 0.0

    def _out_of_time(self, phase: str) -> bool:
        left = self._seconds_left(phase)
        return left is not None and left <= 0

    def _seconds_left(self, phase: str) -> float | None:
        """Seconds the phase may still use (``None`` without a time budget or timeout).

        Each phase is allowed its share of the time plus what earlier phases left unused.
        """
        p = self.plan()
        total = p.seconds if p.seconds is not None else self.timeout
        if total is None:
            return None
        allowed = 0.0
        used = 0.0
        for name in p.names:
            if name == "lr_range_test":
                continue
            allowed += total * p.phase(name).allotted / p.budget
            if name == phase:
                break
            used += self._spend(name).seconds
        return allowed - used - self._spend(phase).seconds

    def _run_one(self, study: Study, phase: str) -> FrozenTrial:
        """Run one trial; in a search phase with a time limit, a run still going when the
        phase's time is up is stopped at its next report (``trial.should_stop()``)."""
        left = self._seconds_left(phase) if phase != "validate" else None
        if left is not None and not _ran_one(study):
            left = None  # every phase gets one complete run, whatever the clock says
        study._deadline = None if left is None else time.monotonic() + max(left, 0.0)
        try:
            record = study.run_trial(self.objective)
        finally:
            study._deadline = None
        if self._on_trial is not None:
            self._on_trial(phase, record)
        return record

    def _calibrate(self) -> float:
        """Seconds per fidelity unit, from one run at the minimum fidelity."""
        rec = self._journal.get("calibration")
        if rec is not None:
            return float(rec["seconds_per_unit"])
        study = self._calibration_study()
        # The objective's own time: the trial's clock also runs while the sampler suggests
        # (the first Sobol suggestion imports scipy.stats.qmc, which took 100 times as long as
        # a fast run and made a time budget look far too small).
        trial = study.run_trial(_timed(self.objective))
        took = trial.user_attrs.get(OBJECTIVE_SECONDS_ATTR)
        seconds = float(took) if isinstance(took, (int, float)) else (trial.duration or 0.0)
        fid = float(study._trial_attrs[BUDGET_ATTR])
        spu = max(seconds, 1e-3) / fid
        self._journal.add("calibration", {"phase": "calibration", "seconds_per_unit": spu})
        self._say(f"calibration: one run of {_num(fid)} {self.unit} took {seconds:.2f}s")
        return spu

    def _calibration_study(self) -> Study:
        """The study of the calibration run that converts a time budget."""
        if "calibration" not in self._studies:
            self._studies["calibration"] = self._make_study_unplanned("calibration")
        return self._studies["calibration"]

    def _make_study_unplanned(self, phase: str) -> Study:
        fidelity = self.min_fidelity or (
            1 if isinstance(self.max_fidelity, int) else self.max_fidelity / 16
        )
        study = Study(
            self.space,
            direction=self.direction,
            sampler="sobol",
            storage=self._storage,
            name=f"{self.name}.{phase}",
            seed=self.seed,
            load_if_exists=True,
        )
        study._trial_attrs = {
            BUDGET_ATTR: fidelity,
            SEED_ATTR: self.seed,
            PHASE_ATTR: "explore",
            SPLIT_ATTR: "validation",
            **self._derived_attr(),
        }
        study._derive = self._scaler()
        return study

    def _storage_name(self) -> str:
        return self._storage.url or type(self._storage).__name__

    # -- transfer --------------------------------------------------------------------------------
    def _default_config(self, space: Space) -> dict[str, Any]:
        if not self.defaults:
            return {}
        table = self.defaults if isinstance(self.defaults, Mapping) else None
        return default_config(space, table=table)

    def _transfer_candidates(self) -> tuple[list[dict[str, Any]], list[str]]:
        configs: list[dict[str, Any]] = []
        notes: list[str] = []
        if self.prior is not None:
            for item in load_prior(
                self.prior, self.space, storage=self._storage, direction=self.direction
            ):
                configs.append(item.config)
                notes += [f"{item.source}: {n}" for n in item.notes]
        if self.defaults:
            d = self._default_config(self.space)
            if d:
                configs.append(d)
                notes.append(f"defaults table: {d}")
        unique: list[dict[str, Any]] = []
        seen: set[str] = set()
        for c in configs:
            key = json.dumps(c, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                unique.append(c)
        return unique, notes

    # -- the result ------------------------------------------------------------------------------
    def result(self) -> TuneResult:
        """The result from what exists now (the validation may be partial or empty)."""
        p = self.plan()
        sign = 1.0 if self.direction == "minimize" else -1.0
        validation: list[FinalistResult] = []
        if "validate" in p and self._journal.get("finalists") is not None:
            finalists = self._finalists()
            raced = self._journal.get("contenders")
            kept = None if raced is None else set(raced["contenders"])
            by_finalist: dict[int, list[FrozenTrial]] = {}
            failed: dict[int, list[FrozenTrial]] = {}
            for t in self.study("validate").trials:
                i = t.user_attrs.get(FINALIST_ATTR)
                if not isinstance(i, int):
                    continue
                if t.state is TrialState.COMPLETE and t.value is not None:
                    by_finalist.setdefault(i, []).append(t)
                elif t.state is TrialState.FAILED and _counts(t):  # a crash, not a kill
                    failed.setdefault(i, []).append(t)
            for i, f in enumerate(finalists):
                runs = sorted(by_finalist.get(i, []), key=lambda t: t.seed or 0)
                failures = [_first_line(t.error) for t in failed.get(i, [])]
                if not runs:
                    if failures:  # every run failed: listed, never chosen
                        validation.append(
                            FinalistResult(
                                config=failed[i][0].run_config,
                                source=f["source"],
                                search_value=f["value"],
                                seeds=[],
                                values=[],
                                mean=math.nan,
                                std=math.nan,
                                ci=(math.nan, math.nan),
                                search_config=dict(f["config"]),
                                search_fidelity=f.get("fidelity"),
                                failures=failures,
                            )
                        )
                    continue
                values = [float(t.value) for t in runs if t.value is not None]
                mean, spread, interval = summarize(values)
                seen = [_validation_value(t) for t in runs]
                v_values = [v for v in seen if v is not None] if None not in seen else []
                flags = [
                    check_curve(t.intermediate, t.train_intermediate, direction=self.direction)
                    for t in runs
                ]
                validation.append(
                    FinalistResult(
                        config=runs[0].run_config,
                        source=f["source"],
                        search_value=f["value"],
                        seeds=[int(t.seed or 0) for t in runs],
                        values=values,
                        mean=mean,
                        std=spread,
                        ci=interval,
                        curves={int(t.seed or 0): dict(t.intermediate) for t in runs},
                        train_curves={int(t.seed or 0): t.train_intermediate for t in runs},
                        overfitting=sum(o for o, _ in flags) * 2 > len(flags),
                        undertrained=sum(u for _, u in flags) * 2 > len(flags),
                        search_config=dict(f["config"]),
                        validation_values=v_values,
                        validation_mean=(
                            float(sum(v_values) / len(v_values)) if v_values else None
                        ),
                        search_fidelity=f.get("fidelity"),
                        raced_out=kept is not None and i not in kept,
                        failures=failures,
                    )
                )
        validation, selected_by = _choose(validation, self.select, sign)
        search = [
            t
            for t in self._search_trials(_SEARCH_PHASES)
            if t.state is TrialState.COMPLETE
            and t.value is not None
            and not t.user_attrs.get(WARM_ATTR)
        ]
        search_value = min((sign * float(t.value) for t in search), default=None)  # type: ignore[arg-type]
        best_search = min(search, key=lambda t: sign * float(t.value)) if search else None  # type: ignore[arg-type]
        score: float | None = None
        std: float | None = None
        ci: tuple[float, float] | None = None
        if validation and validation[0].values:
            best = validation[0]
            best_config, score, std, ci = best.config, best.mean, best.std, best.ci
        else:
            best_config = best_search.run_config if best_search is not None else {}
        spent = {n: self._spend(n) for n in p.names if n != "lr_range_test"}
        return TuneResult(
            name=self.name,
            direction=self.direction,
            plan=p,
            best_config=best_config,
            score=score,
            score_std=std,
            score_ci=ci,
            validation=validation,
            search_value=None if search_value is None else sign * search_value,
            importance=self.importance,
            narrowing=self.narrowing,
            spent=spent,
            proxy=self._proxy_check(warn="validate" in self.done),
            transfer_notes=list(self._transfer_notes)
            + [n for r in self._journal.all("transfer") for n in r["notes"]],
            lr_range_test=self._journal.get("lr_range_test"),
            studies={n: f"{self.name}.{n}" for n in p.names if n != "lr_range_test"},
            selected_by=selected_by,
        )

    def _proxy_check(self, *, warn: bool) -> ProxyCheck | None:
        p = self.plan()
        if "refine" not in p:
            return None
        f_e, f_r = p.phase("explore").fidelity, p.phase("refine").fidelity
        if f_e >= f_r:
            return None
        pairs = []
        for t in self._trials_of("refine"):
            if (
                t.state is not TrialState.COMPLETE
                or t.user_attrs.get(WARM_ATTR)
                or t.value is None
            ):
                continue
            early = _value_at(t.intermediate, f_e)
            if early is not None:
                pairs.append((early, float(t.value)))
        with warnings.catch_warnings():
            if not warn:
                warnings.simplefilter("ignore")
            return proxy_check(f"{_num(f_e)} {self.unit}", pairs, warn=warn)


def tune(
    objective: Objective,
    space: Space | Mapping[str, Param | str],
    *,
    budget: Budget | float | str,
    max_fidelity: float,
    direction: str = "minimize",
    storage: Storage | str | None = None,
    name: str | None = None,
    seed: int = 0,
    prior: Any = None,
    defaults: bool | Mapping[str, Any] = True,
    lr_scaling: str | None = None,
    lr_find: Mapping[str, Any] | Callable[[], Any] | None = None,
    shares: Mapping[str, float] | Sequence[float] | None = None,
    n_finalists: int | None = None,
    n_seeds: int = 3,
    scheduler: Any = None,
    timeout: float | None = None,
    select: str = "validation",
    validation_cost: float | None = None,
    verbose: bool | Callable[[str], None] = False,
    **options: Any,
) -> TuneResult:
    """Spend a compute budget the way an expert does, and validate the choice on a holdout.

    1. **Transfer** (``prior=``, ``defaults=``, ``lr_scaling=``, ``lr_find=``): start from
       earlier studies' best configurations and a table of well-known defaults, mapped into
       the space; with a scaling rule the learning rate is searched at a reference batch size
       and the objective receives the scaled rate; a learning-rate range test narrows the rate.
    2. **Explore** (10%): Sobol over the whole space with short runs; then the importance of
       each hyperparameter, the unimportant ones fixed, the others narrowed.
    3. **Refine** (30%, plus what validate does not need): the model-based ``auto`` sampler
       and early stopping in the narrowed space, warm-started from the explore runs inside
       it. Early stopping starts at step 1 when refine's allotment leaves about as many
       full-length runs as there are finalists, else at a later rung that does (on a small
       budget, stopping from step 1 let one run in a hundred finish).
    4. **Validate** (up to 60%): the finalists (the search's best configurations, those
       that went furthest first: complete runs at their budget, runs stopped early at their
       last report) trained in full, reporting their
       validation metric as they train and returning their holdout score
       (``trial.split == "holdout"``); the choice among them and the reported score are
       explained below; learning curves are checked. By default the validation races
       (``race=True``): 3 finalists get one full-length run each, and the best of them by
       that run the other ``n_seeds - 1`` seeds (``result.validation`` marks the others
       ``raced_out``), 5 runs in all with 3 seeds. ``race=False`` gives each of up to 5
       finalists every seed. What the runs need less than the validate share goes to
       refine (the plan's table says so): on digits and three LCBench tasks at 20
       full-length trainings, 5 raced runs and the rest in refine beat 12 runs of
       validation by 0.5 to 1.5 points of true test error (``docs/benchmarks.md``).

    The objective reads ``trial.config``, trains ``trial.budget`` units (epochs, steps or a
    data fraction) with ``trial.seed``, reports ``trial.report(value, step=epoch)`` as usual
    (optionally ``train=``), and returns its metric on ``trial.split``. The holdout never
    influences a search decision.

    **Choosing the finalist, and an honest score.** The finalists are the best of many noisy
    search results; choosing the one with the best mean holdout score and reporting that same
    mean repeats the winner's curse one level up: the best of ``k`` noisy means is, on
    average, better than the chosen configuration truly is (on scikit-learn tasks the claimed
    score was 0.2 to 2.4 points too good). So by default (``select="validation"``) the holdout
    does not choose: the finalist with the best *validation* metric of its full-length final
    runs wins (the last intermediate value each seed reported, averaged over seeds; fresh
    seeds and full length, so a lucky search run does not win on luck alone), and
    ``result.score`` is its mean holdout score, an unbiased estimate of the chosen
    configuration's performance. When the final runs report no validation metric (or mark
    their reports as holdout values with the user attribute ``"tc.curve_split"``), the
    search values choose: the best among the finalists found at the highest fidelity
    (``result.selected_by`` says what chose; ``result.optimistic`` says whether the holdout
    both chose and scored).
    ``select="holdout"`` chooses by the mean holdout score, as the issue first described: a
    finalist slightly better on average, a score slightly too good.

    Args:
        objective: ``objective(trial) -> float``.
        space: ``{name: domain}`` or a :class:`~tunecraft.space.Space`.
        budget: Fidelity units (``800`` or ``"800 epochs"``), full-length trials
            (``"40 trials"``) or time (``"2h"``, ``"600s"``).
        max_fidelity: The length of a full run (an int: epochs, steps; a float: a fraction).
        direction: ``"minimize"`` or ``"maximize"``.
        storage: ``None`` (in memory) or a URL such as ``"sqlite:///runs.db"``; with a stored
            pipeline, calling again with the same ``name`` continues it.
        name: The pipeline's name (its studies are ``f"{name}.explore"`` and so on).
        seed: Seeds the samplers; search runs use it as ``trial.seed``, validation runs use
            ``seed + 1``, ``seed + 2``...
        prior: Earlier results to start from: study or pipeline names in ``storage``
            (a config is taken as it ran: values an earlier narrowing fixed included, the
            learning rate unscaled), :class:`Study`
            objects, lists of trials or of config dicts (see
            :func:`~tunecraft.strategy.load_prior`; from several studies, up to five
            configurations that together do best across them, as many as the plan's transfer
            runs allow).
        defaults: Use the shipped defaults table (``True``), none (``False``), or your own
            ``{name: value}`` table.
        lr_scaling: ``"linear"`` or ``"sqrt"``: the batch-size scaling rule of the learning
            rate (needs an ``lr`` and a ``batch_size`` parameter, or ``lr_param=`` and
            ``batch_param=``, and optionally ``reference_batch_size=``).
        lr_find: Arguments of :func:`tunecraft.train.lr_find` (``model``, ``train_data``,
            ``loss_fn``...) or a callable returning its result: run once, first.
        shares: Shares of explore, refine and validate (default ``0.1, 0.3, 0.6``).
        n_finalists: Finalists to validate (default: 3 when raced, else up to 5 as the budget
            allows; fewer when the budget requires).
        n_seeds: Seeds the chosen finalist is trained with (raced; every finalist with
            ``race=False``).
        scheduler: The refine phase's scheduler (default: the ``auto`` scheduler, stopping
            variant, or ASHA).
        timeout: Wall-clock seconds for the whole pipeline, shared out like the budget; a
            phase out of time ends cleanly and the validation still runs.
        select: What chooses among the finalists: ``"validation"`` (default, see above) or
            ``"holdout"`` (the best mean holdout score; its reported score is optimistic).
        validation_cost: Fidelity units one final-validation run costs (default
            ``max_fidelity``): less when a holdout run is cheaper than a full search run, as
            for cross-validation with folds as the fidelity (one fit instead of ``k``).
            The planner and the accounting use it.
        verbose: Print the plan, each phase's spending and the validation (or pass a
            function that receives each text).
        **options: More options of :class:`BudgetedSearch` (``min_fidelity``, ``unit``,
            ``lr_param``, ``batch_param``, ``reference_batch_size``, ``importance_method``,
            ``narrowing_options``, ``race``, ``seconds_per_unit``, ``on_trial``).

    Returns:
        A :class:`TuneResult`.

    Example:
        >>> import tunecraft as tc
        >>> from tunecraft.strategy import tune
        >>> def objective(trial):
        ...     x, y = trial.config["x"], trial.config["y"]
        ...     loss = (x - 0.7) ** 2 + 0.001 * y
        ...     for epoch in range(1, trial.budget + 1):
        ...         trial.report(loss + 1 / epoch, step=epoch)
        ...     return loss + 1 / trial.budget + (0.01 if trial.split == "holdout" else 0)
        >>> result = tune(objective, {"x": tc.uniform(0, 1), "y": tc.uniform(0, 1)},
        ...               budget="30 trials", max_fidelity=9, seed=0)
        >>> result.plan.names, len(result.validation) > 0
        (['explore', 'refine', 'validate'], True)
        >>> abs(result.best_config["x"] - 0.7) < 0.2
        True
    """
    known = set(inspect.signature(BudgetedSearch).parameters)
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"tune() got an unknown keyword argument {unknown[0]!r}; the options it passes on "
            f"to BudgetedSearch are: {', '.join(sorted(known - _TUNE_OWN))}."
        )
    search = BudgetedSearch(
        objective,
        space,
        budget=budget,
        max_fidelity=max_fidelity,
        direction=direction,
        storage=storage,
        name=name,
        seed=seed,
        prior=prior,
        defaults=defaults,
        lr_scaling=lr_scaling,
        lr_find=lr_find,
        shares=shares,
        n_finalists=n_finalists,
        n_seeds=n_seeds,
        scheduler=scheduler,
        timeout=timeout,
        select=select,
        validation_cost=validation_cost,
        verbose=verbose,
        **options,
    )
    result = search.run()
    search._say("\n" + result.summary())
    return result


# -- the journal ------------------------------------------------------------------------------
class _Journal:
    """The pipeline's decisions, kept as records of a study ``f"{name}.pipeline"``.

    Each record is a finished trial whose user attribute ``"tc.record"`` holds
    ``{"kind": ..., **data}``: the plan, the lr range test, the narrowing, each finished
    phase, the finalists. The latest record of a kind wins.
    """

    def __init__(self, storage: Storage, name: str, space: Space) -> None:
        try:
            self.study = Study(
                space, storage=storage, name=name, sampler="random", load_if_exists=True
            )
        except InvalidParameterError as exc:
            raise InvalidParameterError(
                f"A pipeline named '{name.removesuffix('.pipeline')}' exists with another "
                f"space; use the same space or another name ({exc})."
            ) from None
        self._storage = storage
        self._records: list[dict[str, Any]] | None = None

    def _load(self) -> list[dict[str, Any]]:
        if self._records is None:
            self._records = [
                dict(t.user_attrs[_JOURNAL_ATTR])
                for t in self.study.trials
                if t.state is TrialState.COMPLETE and _JOURNAL_ATTR in t.user_attrs
            ]
        return self._records

    def add(self, kind: str, data: Mapping[str, Any]) -> None:
        record = {"kind": kind, **data}
        payload = json.loads(json.dumps(record, default=_jsonable))
        t = self._storage.create_trial(self.study.study_id, state=TrialState.RUNNING, config={})
        self._storage.set_user_attr(t.trial_id, _JOURNAL_ATTR, payload)
        self._storage.set_state(t.trial_id, TrialState.COMPLETE, value=0.0)
        self._load().append(payload)

    def get(self, kind: str) -> dict[str, Any] | None:
        found = self.all(kind)
        return found[-1] if found else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self._load() if r.get("kind") == kind]


# -- helpers ------------------------------------------------------------------------------------
def _counts(t: FrozenTrial) -> bool:
    """A finished run that counts toward a phase's runs (a killed one does not)."""
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return t.state is TrialState.FAILED and not (t.error or "").startswith(_KILLED)


def _crashed(t: FrozenTrial) -> bool:
    """A run that an exception ended (not a kill, not a NaN or missing value): the objective
    had a bug, and a run after the fix may go otherwise."""
    error = t.error or ""
    bad_value = error.startswith(_BAD_VALUE) or any(r in error for r in _BAD_REPORT)
    return _counts(t) and t.state is TrialState.FAILED and not bad_value


def _finished_ok(t: FrozenTrial) -> bool:
    """A run that ended without error (complete, or stopped or paused by a scheduler)."""
    return t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.PAUSED)


def _no_run_completed(phase: str, failed: Sequence[FrozenTrial]) -> PipelineError:
    reason = _first_line(failed[-1].error) if failed else "no run finished"
    return PipelineError(
        f"{phase}: no run completed ({len(failed)} failed; {reason}). Fix the objective and "
        "run again with the same name: the failed runs are retried."
    )


def _timed(objective: Objective) -> Objective:
    """``objective``, recording the wall-clock seconds of each call in the trial's user
    attribute ``"tc.objective_seconds"`` (whether it returns or raises)."""

    def timed(trial: Trial) -> Any:
        start = time.perf_counter()
        try:
            return objective(trial)
        finally:
            with contextlib.suppress(TunecraftError):  # the trial is no longer running
                trial.set_user_attr(OBJECTIVE_SECONDS_ATTR, time.perf_counter() - start)

    return timed


def _reached(t: FrozenTrial) -> float | None:
    """Fidelity units a run has trained, from its reports: its last step, plus one when it
    counts steps from 0 (``report(v, step=epoch)`` with ``epoch`` in ``range(n)``)."""
    if not t.intermediate:
        return None
    last = max(t.intermediate)
    return float(last + 1 if 0 in t.intermediate else last)


def _cost(t: FrozenTrial, p: Plan) -> float:
    """Fidelity units a run used: its budget when complete, the steps reached otherwise;
    a final-validation run costs ``p.validation_run_cost`` in full."""
    budget = float(t.budget if t.budget is not None else p.max_fidelity)
    floor = p.phase("explore").fidelity if "explore" in p else budget
    reached = _reached(t)
    if t.state is TrialState.COMPLETE:
        units = budget
    elif t.state in (TrialState.PRUNED, TrialState.PAUSED, TrialState.RUNNING):
        units = min(budget, reached) if reached else min(budget, floor)
    elif t.state is TrialState.FAILED:
        units = min(budget, max(reached or 0.0, floor))
    else:
        return 0.0
    if t.phase == "validate" and budget > 0:
        units *= p.validation_run_cost / budget
    return units


def _lowest_rung(
    allotted: float, max_fidelity: int, n_full: int, reduction_factor: int = 3
) -> int:
    """The lowest rung at which refine's successive halving may stop runs, so that about
    ``n_full`` of its runs reach full length within ``allotted`` fidelity units.

    With rungs ``m, m * eta, ...`` below ``max_fidelity`` (``L`` of them; ``eta`` the
    reduction factor), a ``1 / eta`` share of the runs passes each rung, so a run costs
    ``m + sum_i (r_i - r_(i-1)) / eta**i + (max_fidelity - r_L) / eta**L`` units on average,
    about ``allotted / cost`` runs start, and ``1 / eta**L`` of them reach full length. From
    step 1 on a small budget that is one or two: on the cancer task one of 91 refine runs
    went the full 30 epochs, and the finalists were chosen on runs of a few epochs. So the
    lowest rung is raised (``1``, ``eta``, ``eta**2``...) until ``n_full`` full-length runs
    are expected, or to the highest rung below ``max_fidelity``; ``1`` when the budget
    already allows it.

    Example:
        >>> _lowest_rung(390, 30, 3), _lowest_rung(260, 20, 3), _lowest_rung(676, 52, 3)
        (27, 1, 3)
    """
    from tunecraft.schedulers._rungs import milestones

    m = 1
    while m * reduction_factor < max_fidelity:
        rungs = milestones(m, reduction_factor, max_fidelity)
        cost = float(rungs[0])
        for i in range(1, len(rungs)):
            cost += (rungs[i] - rungs[i - 1]) / reduction_factor**i
        cost += (max_fidelity - rungs[-1]) / reduction_factor ** len(rungs)
        if allotted / cost / reduction_factor ** len(rungs) >= n_full:
            return m
        m *= reduction_factor
    return m


def _search_value(t: FrozenTrial) -> tuple[float, float] | None:
    """The fidelity a search run reached and its value there (``None``: no usable value).

    A complete run counts at its budget with its final value; a run stopped or paused early
    at its last report. Under successive halving most runs stop early: on a small task one
    run in a hundred reached full length, and leaving the stopped ones out filled the
    finalists with explore's short runs instead of the runs that went furthest.
    """
    if t.state is TrialState.COMPLETE:
        if t.value is None:
            return None
        return float(t.budget or 0.0), float(t.value)
    if t.state not in (TrialState.PRUNED, TrialState.PAUSED) or not t.intermediate:
        return None
    value = float(t.intermediate[max(t.intermediate)])
    reached = _reached(t)
    if reached is None or not math.isfinite(value):
        return None
    budget = float(t.budget) if t.budget is not None else reached
    return min(budget, reached), value


def _validation_value(t: FrozenTrial) -> float | None:
    """The validation metric a final-validation run reported last (``None``: none, or its
    reports are holdout values)."""
    if not t.intermediate or t.user_attrs.get(CURVE_SPLIT_ATTR) == "holdout":
        return None
    return float(t.intermediate[max(t.intermediate)])


def _choose(
    validation: list[FinalistResult], select: str, sign: float
) -> tuple[list[FinalistResult], str]:
    """Order the finalists by what chooses among them; the first is the choice.

    Finalists a race dropped after one run come after those that went on (they have fewer
    seeds, and were beaten on the first).

    ``select="validation"``: the validation metric of the final runs when every finalist
    has it; else the search values, longest runs first (the best search run at the highest
    fidelity wins, as the finalists were picked); else (no search record) the holdout.
    Finalists whose every run failed come last, in their order.
    """
    dead = [f for f in validation if not f.values]
    ordered, by = _order(validation=[f for f in validation if f.values], select=select, sign=sign)
    return ordered + dead, by


def _order(
    validation: list[FinalistResult], select: str, sign: float
) -> tuple[list[FinalistResult], str]:
    if not validation:
        return validation, "none"
    if select == "validation":
        if all(f.validation_mean is not None for f in validation):
            return sorted(
                validation, key=lambda f: (f.raced_out, sign * (f.validation_mean or 0.0))
            ), "validation"
        if all(f.search_value is not None and f.search_fidelity is not None for f in validation):
            return sorted(
                validation,
                key=lambda f: (
                    f.raced_out,
                    -(f.search_fidelity or 0.0),
                    sign * (f.search_value or 0.0),
                ),
            ), "search"
    return sorted(validation, key=lambda f: (f.raced_out, sign * f.mean)), "holdout"


class _BudgetCap(Scheduler):
    """Refine's scheduler, wrapped: it passes on the inner scheduler's decisions and stops
    the run going at the report where refine's budget is spent (the pipeline arms it with
    the budget before each run; disarmed, it only passes decisions on)."""

    def __init__(self, inner: Scheduler | None) -> None:
        self.inner = inner
        self._limit: float | None = None
        self._others = 0.0
        self._costs: dict[int, float] = {}
        self._plan: Plan | None = None

    def arm(self, limit: float, spent: float, costs: Mapping[int, float], plan: Plan) -> None:
        """Before a run: refine may spend ``limit`` units, the runs so far cost ``costs``."""
        self._limit, self._plan = limit, plan
        self._costs = dict(costs)
        self._others = spent

    def disarm(self) -> None:
        self._limit = None

    def on_report(self, trial: FrozenTrial, history: Any) -> Decision:
        decision = (
            Decision.CONTINUE
            if self.inner is None
            else Decision(self.inner.on_report(trial, history))
        )
        if self._limit is None or self._plan is None or decision is Decision.STOP:
            return decision
        reached = _reached(trial)
        budget = trial.budget
        if reached is None or (budget is not None and reached >= budget):
            return decision  # the run ends here anyway
        spent = self._others - self._costs.get(trial.number, 0.0) + _cost(trial, self._plan)
        return Decision.STOP if spent >= self._limit - 1e-9 else decision

    def on_ask(self, space: Space, history: Any) -> Any:
        return None if self.inner is None else self.inner.on_ask(space, history)

    def snapshot_at(self, trial: FrozenTrial) -> int | None:
        return None if self.inner is None else self.inner.snapshot_at(trial)

    def to_stop(self, history: Any) -> list[int]:
        return [] if self.inner is None else self.inner.to_stop(history)

    def sampler_trials(self, space: Space, history: Any) -> list[FrozenTrial] | None:
        return None if self.inner is None else self.inner.sampler_trials(space, history)


def _reached_full(t: FrozenTrial, full: float) -> bool:
    """Whether a run's reports reached ``full`` fidelity units (see :func:`_reached`)."""
    reached = _reached(t)
    return reached is not None and reached >= full - 1e-9


def _value_at(curve: Mapping[int, float], step: float) -> float | None:
    below = [s for s in curve if s <= step + 1e-9]
    return curve[max(below)] if below else None


def _find_name(space: Space, names: Sequence[str]) -> str | None:
    for n in names:
        if n in space:
            return n
    return None


def _reference_batch(param: Param, given: int | None) -> int:
    if given is not None:
        return int(check_int(given, "reference_batch_size", "BudgetedSearch", low=1) or 1)
    if isinstance(param, Categorical):
        sizes = [o for o in param.options if isinstance(o, int) and not isinstance(o, bool)]
        if sizes and len(sizes) == len(param.options):
            return min(sizes)
    elif isinstance(param, Int):
        return int(param.low)
    raise InvalidParameterError(
        "BudgetedSearch: lr_scaling needs an integer batch-size parameter (int(...) or a "
        f"choice of ints), got {param.notation()}."
    )


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _first_line(text: str | None) -> str:
    text = (text or "").strip()
    return text.splitlines()[0] if text else "no reason recorded"


def _num(x: float) -> str:
    if abs(x - round(x)) < 1e-9 and abs(x) < 1e7:
        return str(round(x))
    return f"{x:.3g}"


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _ran_one(study: Study) -> bool:
    """Whether the phase's study holds a complete run of its own (warm-start copies aside)."""
    return any(
        t.state is TrialState.COMPLETE and not t.user_attrs.get(WARM_ATTR) for t in study.trials
    )


#: Parameters ``tune`` names itself (the rest of BudgetedSearch's come through ``**options``).
_TUNE_OWN = frozenset(inspect.signature(tune).parameters.keys() - {"options"})
