"""The budget and the plan: how a compute budget is split into phases before any trial runs."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tunecraft._validation import check_int
from tunecraft.exceptions import InvalidParameterError

__all__ = ["DEFAULT_SHARES", "PHASES", "Budget", "PhasePlan", "Plan", "plan", "race_sizes"]

#: The phases of the budgeted pipeline, in the order they run.
PHASES = ("lr_range_test", "transfer", "explore", "refine", "validate")
#: Shares of the budget: quick exploration, focused refinement, final validation.
DEFAULT_SHARES: dict[str, float] = {"explore": 0.1, "refine": 0.3, "validate": 0.6}
#: Explore aims at this many short runs (20-30 where the budget allows).
EXPLORE_TARGET_RUNS = 25
#: Finalists validated when the budget allows (fewer when it does not), every one with
#: every seed (``race=False``).
MAX_FINALISTS = 5
#: Finalists a raced validation gives one full-length run each (``race=True``).
RACE_FINALISTS = 3
_EPS = 1e-9
_KINDS = ("units", "trials", "seconds")
_TIME_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}
_TRIAL_WORDS = ("trial", "trials", "run", "runs")
#: How :meth:`Budget.describe` and the plan's messages write a budget in trials, read back too.
_FULL_TRIAL_WORDS = tuple(
    f"{full} {w}" for full in ("full", "full-length", "full length") for w in _TRIAL_WORDS
)


@dataclass(frozen=True)
class Budget:
    """A compute budget: fidelity units, full-length trials or wall-clock seconds.

    Attributes:
        amount: How much (> 0).
        kind: ``"units"`` (total epochs, steps... in the fidelity unit), ``"trials"`` (runs of
            full length) or ``"seconds"`` (wall clock).

    Example:
        >>> Budget.parse("40 trials"), Budget.parse("1.5h"), Budget.parse(800)
        (Budget(amount=40.0, kind='trials'), Budget(amount=5400.0, kind='seconds'), \
Budget(amount=800.0, kind='units'))
    """

    amount: float
    kind: str = "units"

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidParameterError(
                f"The 'kind' parameter of Budget must be one of {', '.join(map(repr, _KINDS))}, "
                f"got {self.kind!r}."
            )
        if (
            isinstance(self.amount, bool)
            or not isinstance(self.amount, numbers.Real)
            or not math.isfinite(self.amount)
            or self.amount <= 0
        ):
            raise InvalidParameterError(
                f"The 'budget' parameter must be a finite number > 0, got {self.amount!r}."
            )
        object.__setattr__(self, "amount", float(self.amount))

    @classmethod
    def parse(cls, value: Budget | float | str, *, unit: str = "epochs") -> Budget:
        """Read a budget: a number (fidelity units), ``"800 epochs"``, ``"40 trials"``,
        ``"600s"``, ``"30 min"``, ``"2h"``, or a :class:`Budget`.

        Raises:
            ValueError: The text names no known unit, or the amount is not > 0.
        """
        if isinstance(value, Budget):
            return value
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return cls(float(value), "units")
        if not isinstance(value, str):
            raise TypeError(
                "The 'budget' parameter must be a number of fidelity units, a string such as "
                f"'40 trials' or '2h', or a Budget; got {value!r}."
            )
        match = re.fullmatch(
            r"\s*((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z_ -]*)\s*", value
        )
        if match is None:
            raise InvalidParameterError(
                f"The 'budget' parameter must read like '800 {unit}', '40 trials' or '2h', "
                f"got {value!r}."
            )
        amount, word = float(match.group(1)), match.group(2).strip().lower()
        u = unit.strip().lower()
        if word in ("", "units", "unit", u, u.rstrip("s"), u + "s"):  # singular or plural
            return cls(amount, "units")
        if word in _TRIAL_WORDS or word in _FULL_TRIAL_WORDS:
            return cls(amount, "trials")
        if word in _TIME_UNITS:
            return cls(amount * _TIME_UNITS[word], "seconds")
        raise InvalidParameterError(
            f"The 'budget' parameter names an unknown unit {word!r} in {value!r}; use "
            f"'{unit}' (the fidelity unit), 'trials' (full-length runs) or a time "
            "('s', 'min', 'h')."
        )

    def describe(self, unit: str = "epochs") -> str:
        """The budget as a person writes it."""
        if self.kind == "seconds":
            return _seconds(self.amount)
        word = "full-length trials" if self.kind == "trials" else unit
        return f"{_num(self.amount)} {word}"


@dataclass(frozen=True)
class PhasePlan:
    """One row of the plan.

    Attributes:
        name: ``"lr_range_test"``, ``"transfer"``, ``"explore"``, ``"refine"`` or
            ``"validate"``.
        share: The fraction of the budget the phase gets, ``cost / budget`` (transfer's comes
            out of explore's; refine also receives what validate does not need and what
            rounding leaves over; :attr:`Plan.shares` holds the shares asked for).
        runs: Runs planned (refine: at full length; its scheduler stops poor runs early, so
            it runs more until its allotment is spent).
        fidelity: How long each run trains, in the fidelity unit (``trial.budget``).
        allotted: Fidelity units the phase may spend (validate: its runs times the cost of
            one final-validation run, which may differ from ``fidelity``, see
            :attr:`Plan.validation_cost`).
        note: What the phase does, in a few words.
    """

    name: str
    share: float
    runs: int
    fidelity: float
    allotted: float
    note: str = ""

    @property
    def cost(self) -> float:
        """Planned cost in fidelity units: :attr:`allotted` (``runs * fidelity`` for transfer
        and explore; refine spends up to it; validate's runs cost ``validation_cost`` each)."""
        return self.allotted


@dataclass(frozen=True)
class Plan:
    """How the budget is spent, decided before any trial runs.

    Attributes:
        budget: The budget in fidelity units.
        max_fidelity: The length of a full run (``trial.budget`` in final validation).
        unit: The name of the fidelity unit (``"epochs"``, ``"steps"``, ``"fraction"``...).
        phases: One :class:`PhasePlan` per phase that runs, in order.
        n_finalists: Configurations trained in full in the final validation.
        n_seeds: Seeds each finalist is trained with.
        requested: The budget as given (``"40 full-length trials"``, ``"2h"``...).
        seconds: A wall-clock budget, when the budget was given in time.
        seconds_per_unit: The speed a time budget was converted with.
        validation_cost: Fidelity units one final-validation run costs (``None``:
            ``max_fidelity``); less for a cross-validation objective whose holdout run is
            one fit while a full search run is ``k`` fold fits.
        shares: The shares as requested (``None`` in plans stored by older versions); the
            ``share`` of each row is what the phase actually gets.
        race: ``(candidates, contenders)`` when the final validation races: ``candidates``
            configurations get one full-length run each, and the best ``contenders`` of them
            the other ``n_seeds - 1`` seeds (``None``: every finalist gets every seed). Plans
            made now race as :func:`race_sizes` says (the best one goes on); plans stored by
            earlier versions may carry other sizes and run as they say.
    """

    budget: float
    max_fidelity: float
    unit: str
    phases: tuple[PhasePlan, ...]
    n_finalists: int
    n_seeds: int
    requested: str = ""
    seconds: float | None = None
    seconds_per_unit: float | None = None
    validation_cost: float | None = None
    shares: dict[str, float] | None = None
    integer: bool = field(default=True, repr=False)
    race: tuple[int, int] | None = None

    @property
    def names(self) -> list[str]:
        """The phases, in order."""
        return [p.name for p in self.phases]

    def phase(self, name: str) -> PhasePlan:
        """The row of phase ``name``."""
        for p in self.phases:
            if p.name == name:
                return p
        raise InvalidParameterError(
            f"The plan has no phase {name!r}; its phases are {', '.join(self.names)}."
        )

    def __contains__(self, name: object) -> bool:
        return name in self.names

    @property
    def validation_run_cost(self) -> float:
        """Fidelity units one final-validation run costs."""
        return self.max_fidelity if self.validation_cost is None else self.validation_cost

    @property
    def cost(self) -> float:
        """Planned cost of every phase together (at most :attr:`budget`)."""
        return sum(p.cost for p in self.phases)

    def table(self) -> str:
        """The plan as the table a practitioner writes by hand."""
        u = self.unit
        head = (
            f"Plan: {_num(self.budget)} {u} = {_num(self.budget / self.max_fidelity)} runs of "
            f"{_num(self.max_fidelity)} {u}"
        )
        if self.requested:
            head += f" (budget: {self.requested}"
            if self.seconds_per_unit is not None:
                head += f", at {self.seconds_per_unit:.3g} s per {u.rstrip('s')}"
            head += ")"
        rows = [("phase", "share", "runs", f"{u} each", f"{u} in all", "")]
        for p in self.phases:
            runs = str(p.runs)
            if p.name == "validate" and self.race is not None:
                c, k = self.race
                runs = f"{c}+{k}x{self.n_seeds - 1}={p.runs}"
            elif p.name == "validate":
                runs = f"{self.n_finalists}x{self.n_seeds}={p.runs}"
            elif p.name == "refine":
                runs = f">={p.runs}"
            share = "-" if p.name == "lr_range_test" else _percent(p.share)
            each = "-" if p.name == "lr_range_test" else _num(p.fidelity)
            if p.name == "validate":
                each = _num(self.validation_run_cost)
            total = "-" if p.name == "lr_range_test" else _num(p.cost)
            rows.append((p.name, share, runs, each, total, p.note))
        rows.append(("total", "100%", "", "", _num(self.cost), ""))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [head]
        for r in rows:
            cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, 5)]
            lines.append("  ".join(cells + ([r[5]] if r[5] else [])).rstrip())
        surplus = self.surplus_note()
        if surplus:
            lines.append(surplus)
        return "\n".join(lines)

    def surplus_note(self) -> str:
        """One line saying that validation needs less than its requested share, and that
        the surplus (with explore's rounding) went to refine; ``""`` when it does not."""
        if self.shares is None or "validate" not in self or "refine" not in self:
            return ""
        v = self.phase("validate")
        asked = self.shares["validate"] * self.budget
        surplus = asked - v.cost
        if surplus <= max(_EPS, 1e-6 * self.budget):
            return ""
        if self.race is not None:
            c, kept = self.race
            best = "the best" if kept == 1 else f"the best {kept}"
            runs = f"{c} finalists x 1 run, {best} x {self.n_seeds - 1} more seeds"
        else:
            runs = f"{self.n_finalists} finalists x {self.n_seeds} seeds"
        u = self.unit
        refine = self.phase("refine")
        searched = sum(p.cost for p in self.phases if p.name in ("transfer", "explore"))
        rounding = self.shares["explore"] * self.budget - searched
        extra = f", with explore's rounding ({_num(rounding)})" if rounding > 1e-6 else ""
        return (
            f"Note: validate needs {_percent(v.cost / self.budget)} of its "
            f"{_percent(self.shares['validate'])} ({runs}, {_num(self.validation_run_cost)} "
            f"{u} each); the other "
            f"{_num(surplus)} {u} go to refine ({_percent(self.shares['refine'])} -> "
            f"{_percent(refine.share)}{extra}), where more search pays more than more seeds."
        )

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (:meth:`from_dict` reads it back)."""
        data = asdict(self)
        data["phases"] = [asdict(p) for p in self.phases]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """The plan :meth:`to_dict` wrote."""
        data = dict(data)
        data["phases"] = tuple(PhasePlan(**p) for p in data["phases"])
        if data.get("race") is not None:
            data["race"] = tuple(data["race"])
        return cls(**data)


def plan(
    budget: Budget | float | str,
    *,
    max_fidelity: float,
    min_fidelity: float | None = None,
    shares: Mapping[str, float] | Sequence[float] | None = None,
    n_finalists: int | None = None,
    n_seeds: int = 3,
    n_transfer: int = 0,
    lr_range_test: bool = False,
    unit: str = "epochs",
    seconds_per_unit: float | None = None,
    validation_cost: float | None = None,
    race: bool = False,
) -> Plan:
    """Split a budget into phases: transfer and explore, refine, validate.

    The arithmetic, in fidelity units (``B`` the budget, ``F`` the full length):

    * **validate** gets at most ``shares["validate"] * B``: ``k`` finalists (``n_finalists``;
      by default 3 when raced, up to 5 when not; fewer when the budget requires) trained in
      full, a run costing ``C`` (``validation_cost``, default ``F``). Not raced, each gets
      ``n_seeds`` seeds (``k * n_seeds`` runs); raced (:func:`race_sizes`), each gets one
      run and the best of them the other ``n_seeds - 1`` (``k + n_seeds - 1`` runs). What
      the runs leave over goes to refine (the table says so under it): more search pays more
      than more seeds for finalists that are not chosen.
    * **explore** gets ``shares["explore"] * B``: runs of length ``clip(E / 25, min_fidelity,
      F / 3)`` (short runs, about 25 of them where the budget allows); up to a third of them
      (``n_transfer`` at most) evaluate transferred configurations first (the transfer row).
    * **refine** gets ``shares["refine"] * B`` plus the leftovers: runs of full length (or
      half its allotment when that is shorter), under a scheduler that stops poor runs early,
      until the allotment is spent.

    Args:
        budget: Fidelity units (a number or ``"800 epochs"``), full-length trials
            (``"40 trials"``) or wall-clock time (``"2h"``, needs ``seconds_per_unit``).
        max_fidelity: The length of a full run: epochs, steps, or a data fraction (a float).
        min_fidelity: The shortest run worth doing (default 1 for an int ``max_fidelity``,
            ``max_fidelity / 16`` for a float).
        shares: ``{"explore": 0.1, "refine": 0.3, "validate": 0.6}`` (the default) or three
            numbers in that order; each > 0, summing to 1.
        n_finalists: Finalists to validate (``None``: 3 when raced, else as many as the budget
            allows up to 5).
        n_seeds: Seeds per finalist (an int >= 1).
        n_transfer: Transferred configurations waiting to be evaluated.
        lr_range_test: Whether a learning-rate range test runs first (outside the budget).
        unit: The fidelity unit's name, for the table.
        seconds_per_unit: Seconds one fidelity unit takes, to plan a time budget.
        validation_cost: Fidelity units one final-validation run costs (default
            ``max_fidelity``): for cross-validation with folds as the fidelity, a holdout run
            is one fit on all the search data, about one fold fit.
        race: Race the final validation (:func:`race_sizes`): one run per finalist, the
            other seeds only for the best of them.

    Raises:
        ValueError: Bad shares or counts, or a budget too small for a phase to get one run;
            the message says which budget would suffice.

    Example:
        >>> p = plan("40 trials", max_fidelity=20)
        >>> [(r.name, r.runs, r.fidelity) for r in p.phases]
        [('explore', 26, 3), ('refine', 21, 20), ('validate', 15, 20)]
    """
    owner = "plan"
    if not isinstance(unit, str) or not unit.strip():
        raise InvalidParameterError(f"The 'unit' parameter of plan must be a word, got {unit!r}.")
    parsed = Budget.parse(budget, unit=unit)
    integer = _is_int(max_fidelity)
    fmax = _positive(max_fidelity, "max_fidelity")
    if min_fidelity is None:
        fmin = 1.0 if integer else fmax / 16
    else:
        fmin = _positive(min_fidelity, "min_fidelity")
        if integer and not _is_int(min_fidelity):
            raise TypeError(
                "The 'min_fidelity' parameter of plan must be an int when max_fidelity is, "
                f"got {min_fidelity!r}."
            )
    if fmin > fmax:
        raise InvalidParameterError(
            f"The 'min_fidelity' parameter of plan must be <= max_fidelity ({_num(fmax)}), "
            f"got {_num(fmin)}."
        )
    split = check_shares(shares)
    check_int(n_seeds, "n_seeds", owner, low=1)
    check_int(n_finalists, "n_finalists", owner, low=1, allow_none=True)
    check_int(n_transfer, "n_transfer", owner, low=0)
    if not isinstance(race, bool):
        raise TypeError(f"The 'race' parameter of plan must be a bool, got {race!r}.")
    vcost = fmax if validation_cost is None else _positive(validation_cost, "validation_cost")
    if parsed.kind == "seconds":
        if seconds_per_unit is None:
            raise InvalidParameterError(
                "plan: a budget in time needs 'seconds_per_unit' (how long one "
                f"{unit.rstrip('s')} takes) to count runs; BudgetedSearch measures it."
            )
        spu = _positive(seconds_per_unit, "seconds_per_unit")
        units = parsed.amount / spu
    else:
        spu = None
        units = parsed.amount * (fmax if parsed.kind == "trials" else 1.0)
    args = (fmax, fmin, integer, split, n_finalists, n_seeds, n_transfer, vcost, race)
    rows, problem = _arithmetic(units, *args)
    if problem is not None:
        need = _minimum_budget(units, *args)
        alt = f"{_num_up(need)} {unit} = {_num_up(need / fmax)} full-length trials"
        if spu is not None:
            alt += f" = about {_seconds(need * spu)}"
        raise InvalidParameterError(
            f"The 'budget' ({parsed.describe(unit)} = {_num(units)} {unit}) is too small: "
            f"{problem}. A budget of at least {alt} would suffice with these shares."
        )
    assert rows is not None
    phases = [
        PhasePlan(r.name, r.share, r.runs, int(r.fidelity), r.allotted, r.note) if integer else r
        for r in rows
    ]
    if lr_range_test:
        phases.insert(
            0, PhasePlan("lr_range_test", 0.0, 1, 0.0, 0.0, "narrows the lr range; not counted")
        )
    k = _finalists_for(split["validate"] * units, vcost, n_finalists, n_seeds, race)
    sizes = race_sizes(k, n_seeds) if race else None
    if sizes is not None:
        c, kept = sizes
        best = "the best" if kept == 1 else f"the best {kept}"
        note = (
            f"{c} finalists x 1 run, {best} by it x {n_seeds - 1} more seeds; scored on "
            "the holdout"
        )
        if ";" in phases[-1].note:  # the cost of a run, when it differs
            note += phases[-1].note[phases[-1].note.index(";") :].replace(";", ",", 1)
        phases[-1] = replace(phases[-1], note=note)
    return Plan(
        budget=units,
        max_fidelity=int(fmax) if integer else fmax,
        unit=unit,
        phases=tuple(phases),
        n_finalists=k,
        n_seeds=n_seeds,
        requested=parsed.describe(unit),
        seconds=parsed.amount if parsed.kind == "seconds" else None,
        seconds_per_unit=spu,
        validation_cost=None if validation_cost is None else vcost,
        shares=split,
        integer=integer,
        race=sizes,
    )


def race_sizes(n_finalists: int, n_seeds: int) -> tuple[int, int] | None:
    """How a raced final validation spends its full-length runs.

    Every finalist gets one run (the first seed); the best of them by that run (its
    validation metric) gets the other ``n_seeds - 1`` seeds, so the chosen configuration is
    scored on ``n_seeds`` runs and the others cost one each: ``n_finalists + n_seeds - 1``
    runs instead of ``n_finalists * n_seeds``. Measured on digits and three LCBench tasks
    (``docs/benchmarks.md``), the runs this saves buy more as search (refine) than as
    seeds for finalists that are not chosen.

    Returns:
        ``(candidates, kept)``, or ``None`` when there is nothing to race (one finalist or
        one seed).

    Example:
        >>> race_sizes(3, 3), race_sizes(5, 2), race_sizes(1, 3), race_sizes(3, 1)
        ((3, 1), (5, 1), None, None)
    """
    if n_finalists < 2 or n_seeds < 2:
        return None
    return n_finalists, 1


def _validation_runs(n_finalists: int, n_seeds: int, race: bool) -> int:
    """Full-length runs a final validation makes: ``k * s``, or ``k + s - 1`` raced."""
    sizes = race_sizes(n_finalists, n_seeds) if race else None
    if sizes is None:
        return n_finalists * n_seeds
    return sizes[0] + sizes[1] * (n_seeds - 1)


def _finalists_for(
    v_allot: float, vcost: float, n_finalists: int | None, n_seeds: int, race: bool
) -> int:
    """Finalists the validation allotment affords (the wanted number at most; may be 0)."""
    slots = math.floor(v_allot / vcost + _EPS)
    # raced: k + s - 1 runs (k = 1: s runs, the same as not raced); else k * s
    affordable = slots - (n_seeds - 1) if race and n_seeds > 1 else slots // n_seeds
    return max(0, min(n_finalists or (RACE_FINALISTS if race else MAX_FINALISTS), affordable))


def check_shares(shares: Mapping[str, float] | Sequence[float] | None) -> dict[str, float]:
    """Validate phase shares: each > 0, the three summing to 1."""
    if shares is None:
        return dict(DEFAULT_SHARES)
    names = tuple(DEFAULT_SHARES)
    if isinstance(shares, Mapping):
        unknown = [k for k in shares if k not in names]
        missing = [k for k in names if k not in shares]
        if unknown or missing:
            raise InvalidParameterError(
                "The 'shares' parameter must have the keys 'explore', 'refine' and 'validate', "
                f"got {sorted(shares)!r}."
            )
        values = [shares[k] for k in names]
    elif isinstance(shares, Sequence) and not isinstance(shares, str) and len(shares) == 3:
        values = list(shares)
    else:
        raise TypeError(
            "The 'shares' parameter must be {'explore': e, 'refine': r, 'validate': v} or "
            f"three numbers, got {shares!r}."
        )
    for name, v in zip(names, values, strict=True):
        if (
            isinstance(v, bool)
            or not isinstance(v, numbers.Real)
            or not math.isfinite(v)
            or not 0 < v < 1
        ):
            raise InvalidParameterError(
                f"The 'shares' parameter must give each phase a number in (0, 1); "
                f"{name} got {v!r}."
            )
    total = float(sum(values))
    if abs(total - 1.0) > 1e-6:
        raise InvalidParameterError(
            f"The 'shares' parameter must sum to 1, got {total:.6g} ({values!r})."
        )
    return {n: float(v) for n, v in zip(names, values, strict=True)}


def _arithmetic(
    units: float,
    fmax: float,
    fmin: float,
    integer: bool,
    shares: Mapping[str, float],
    n_finalists: int | None,
    n_seeds: int,
    n_transfer: int,
    vcost: float,
    race: bool = False,
) -> tuple[tuple[PhasePlan, ...] | None, str | None]:
    """The plan's rows for a budget of ``units``, or why none fits."""

    def fit(x: float) -> float:
        return float(math.floor(x + _EPS)) if integer else x

    # Validate: k finalists, k * n_seeds full runs (raced: k + n_seeds - 1), each costing vcost.
    v_allot = shares["validate"] * units
    k = _finalists_for(v_allot, vcost, n_finalists, n_seeds, race)
    if k < 1 or (n_finalists is not None and k < n_finalists):
        want = n_finalists or 1
        runs = _validation_runs(want, n_seeds, race)
        how = (
            f"{want} finalist(s) x 1 run + {n_seeds - 1} more seeds"
            if race_sizes(want, n_seeds) is not None and race
            else f"{want} finalist(s) x {n_seeds} seeds"
        )
        return None, (
            f"validate ({shares['validate']:.0%}) needs {how} x {_num(vcost)} = "
            f"{_num(runs * vcost)}, it gets {_num_down(v_allot)}"
        )
    v_runs = _validation_runs(k, n_seeds, race)
    v_cost = v_runs * vcost
    # Explore: about 25 short runs; transferred configs first.
    e_allot = shares["explore"] * units
    f_e = max(fmin, fit(min(max(e_allot / EXPLORE_TARGET_RUNS, fmin), max(fmin, fmax / 3))))
    total = math.floor(e_allot / f_e + _EPS)
    if total < 1:
        return None, (
            f"explore ({shares['explore']:.0%}) needs one run of {_num(f_e)}, "
            f"it gets {_num_down(e_allot)}"
        )
    n_t = min(n_transfer, max(0, min(total - 1, max(1, total // 3))))
    n_e = total - n_t
    # Refine: full-length runs (or half its allotment) until the allotment is spent.
    r_allot = shares["refine"] * units + (e_allot - total * f_e) + (v_allot - v_cost)
    f_r = fmax if r_allot >= 2 * fmax - _EPS else max(fmin, fit(r_allot / 2))
    n_r = math.floor(r_allot / f_r + _EPS)
    if n_r < 1:
        return None, (
            f"refine ({shares['refine']:.0%}) needs one run of {_num(f_r)}, "
            f"it gets {_num_down(r_allot)}"
        )
    rows: list[PhasePlan] = []
    if n_t:
        rows.append(
            PhasePlan(
                "transfer",
                n_t * f_e / units,
                n_t,
                f_e,
                n_t * f_e,
                "prior and default configurations",
            )
        )
    rows.append(
        PhasePlan(
            "explore",
            n_e * f_e / units,
            n_e,
            f_e,
            n_e * f_e,
            "Sobol over the full space, short runs",
        )
    )
    rows.append(
        PhasePlan(
            "refine",
            r_allot / units,
            n_r,
            f_r,
            r_allot,
            "auto sampler + early stopping, narrowed space",
        )
    )
    rows.append(
        PhasePlan(
            "validate",
            v_cost / units,
            v_runs,
            fmax,
            v_cost,
            f"best {k} x {n_seeds} seeds, scored on the holdout"
            + ("" if vcost == fmax else f"; a run of {_num(fmax)} costs {_num(vcost)}"),
        )
    )
    return tuple(rows), None


def _minimum_budget(units: float, *args: Any) -> float:
    """The smallest budget (in units) the arithmetic accepts, for the error message."""
    hi = max(units, 1.0)
    while _arithmetic(hi, *args)[1] is not None:
        hi *= 2
        if hi > 1e15:  # pragma: no cover - the arithmetic always fits eventually
            return hi
    lo = units
    if args[2]:  # integer lengths: the smallest whole number of units that fits
        bad, good = math.floor(lo), math.ceil(hi - _EPS)
        while good - bad > 1:
            middle = (bad + good) // 2
            if _arithmetic(float(middle), *args)[1] is None:
                good = middle
            else:
                bad = middle
        return float(good)
    for _ in range(200):
        if hi - lo <= hi * 1e-6:
            break
        mid = (lo + hi) / 2
        if _arithmetic(mid, *args)[1] is None:
            hi = mid
        else:
            lo = mid
    return hi


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidParameterError(
            f"The '{name}' parameter of plan must be a number > 0, got {value!r}."
        )
    return float(value)


def _num(x: float) -> str:
    """A number as a person writes it: 20, 2.5, 0.125, 1.2e+04."""
    if abs(x - round(x)) < 1e-9 and abs(x) < 1e7:
        return str(round(x))
    return f"{x:.3g}"


def _num_up(x: float) -> str:
    """:func:`_num`, rounded up rather than to the nearest (a budget that suffices)."""
    text = _num(x)
    if float(text) >= x or x <= 0:
        return text
    scale = 10.0 ** (math.floor(math.log10(x)) - 2)  # the third significant digit
    return _num(math.ceil(x / scale - _EPS) * scale)


def _num_down(x: float) -> str:
    """:func:`_num`, rounded down (what a phase gets, so it never reads as what it needs)."""
    text = _num(x)
    if float(text) <= x or x <= 0:
        return text
    scale = 10.0 ** (math.floor(math.log10(x)) - 2)
    return _num(math.floor(x / scale + _EPS) * scale)


def _percent(share: float) -> str:
    """``10%``; one decimal below 10% (``0.4%``) so a small share does not read as nothing."""
    return f"{share:.0%}" if share >= 0.095 or share == 0 else f"{share:.1%}"


def _seconds(s: float) -> str:
    if s >= 3600:
        return f"{_num(s / 3600)}h" if s % 360 == 0 else f"{s / 3600:.2f}h"
    if s >= 60:
        return f"{_num(s / 60)} min" if s % 6 == 0 else f"{s / 60:.1f} min"
    return f"{_num(s)}s"
