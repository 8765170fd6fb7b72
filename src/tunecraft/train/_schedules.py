"""Learning-rate schedules: pure functions of the step, and one thin ``LambdaLR`` adapter.

Every schedule is a *factor* ``f(step)`` that multiplies each parameter group's base learning
rate, so the same function plots the curve, is tested on its own, and drives the optimizer
through :class:`ScheduledLR` (a :class:`torch.optim.lr_scheduler.LambdaLR`). Reduce-on-plateau is
the one schedule driven by the validation metric: its factor is a pure function of the metric
history (:func:`plateau_factor`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError

__all__ = [
    "SCHEDULES",
    "ScheduleConfig",
    "ScheduledLR",
    "constant_factor",
    "cosine_factor",
    "cosine_restarts_factor",
    "exponential_factor",
    "make_lr_scheduler",
    "multistep_factor",
    "one_cycle_factor",
    "plateau_factor",
    "polynomial_factor",
    "schedule_factor",
    "step_factor",
    "warmup_factor",
]

SCHEDULES = (
    "constant",
    "step",
    "multistep",
    "exponential",
    "cosine",
    "cosine_restarts",
    "one_cycle",
    "linear",
    "polynomial",
    "plateau",
)


def constant_factor(step: int) -> float:
    """Always 1.

    Example:
        >>> constant_factor(123)
        1.0
    """
    return 1.0


def step_factor(step: int, *, step_size: int, gamma: float = 0.1) -> float:
    """Multiply by ``gamma`` every ``step_size`` steps (``StepLR``).

    Example:
        >>> step_factor(25, step_size=10, gamma=0.5)
        0.25
    """
    return float(gamma ** (step // step_size))


def multistep_factor(step: int, *, milestones: Sequence[int], gamma: float = 0.1) -> float:
    """Multiply by ``gamma`` at each milestone (``MultiStepLR``).

    Example:
        >>> round(multistep_factor(35, milestones=[10, 30], gamma=0.1), 6)
        0.01
    """
    return float(gamma ** bisect.bisect_right(sorted(milestones), step))


def exponential_factor(step: int, *, gamma: float) -> float:
    """Multiply by ``gamma`` every step (``ExponentialLR``).

    Example:
        >>> exponential_factor(2, gamma=0.5)
        0.25
    """
    return float(gamma**step)


def cosine_factor(step: int, *, total_steps: int, min_factor: float = 0.0) -> float:
    """Half a cosine from 1 down to ``min_factor`` at ``total_steps`` (``CosineAnnealingLR``).

    Example:
        >>> cosine_factor(0, total_steps=100), cosine_factor(50, total_steps=100)
        (1.0, 0.5)
    """
    t = min(step, total_steps) / total_steps
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


def cosine_restarts_factor(
    step: int, *, period: int, period_mult: int = 1, min_factor: float = 0.0
) -> float:
    """Cosine annealing restarted every ``period`` steps, periods growing by ``period_mult``.

    Matches ``CosineAnnealingWarmRestarts(T_0=period, T_mult=period_mult)``.

    Example:
        >>> cosine_restarts_factor(10, period=10)
        1.0
        >>> cosine_restarts_factor(15, period=10, period_mult=2)
        0.8535533905932737
    """
    if period_mult == 1:
        t_cur, t_i = step % period, period
    else:
        # Walk the periods in integers: int(math.log(243, 3)) is 4, one period short, so a
        # restart step fell to the minimum instead of back to 1.
        t_cur, t_i = step, period
        while t_cur >= t_i:
            t_cur -= t_i
            t_i *= period_mult
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * t_cur / t_i))


def polynomial_factor(
    step: int, *, total_steps: int, power: float = 1.0, min_factor: float = 0.0
) -> float:
    """Polynomial decay from 1 to ``min_factor`` at ``total_steps``; ``power=1`` is linear.

    With ``min_factor=0`` this is ``PolynomialLR(total_iters=total_steps, power=power)``.

    Example:
        >>> polynomial_factor(25, total_steps=100)
        0.75
        >>> polynomial_factor(50, total_steps=100, power=2.0)
        0.25
    """
    t = min(step, total_steps) / total_steps
    return min_factor + (1.0 - min_factor) * (1.0 - t) ** power


def one_cycle_factor(
    step: int,
    *,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> float:
    """The one-cycle policy (cosine annealing), relative to the peak learning rate.

    Rises from ``1 / div_factor`` to 1 over the first ``pct_start`` of the steps, then falls to
    ``1 / (div_factor * final_div_factor)`` at step ``total_steps - 1``; the learning-rate part of
    ``OneCycleLR(max_lr=base_lr, three_phase=False)``.

    Example:
        >>> round(one_cycle_factor(0, total_steps=100), 6)
        0.04
        >>> one_cycle_factor(29, total_steps=100)
        1.0
    """
    start = 1.0 / div_factor
    end = start / final_div_factor
    peak_step = float(pct_start * total_steps) - 1
    last_step = float(total_steps - 1)

    def anneal(a: float, b: float, pct: float) -> float:
        return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)

    if step <= peak_step:
        return anneal(start, 1.0, step / peak_step if peak_step > 0 else 1.0)
    pct = min((step - peak_step) / (last_step - peak_step), 1.0)
    return anneal(1.0, end, pct)


def plateau_factor(
    metrics: Sequence[float],
    *,
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    cooldown: int = 0,
    min_factor: float = 0.0,
) -> float:
    """The factor reduce-on-plateau has reached after seeing ``metrics`` (one per epoch).

    The same rule as ``ReduceLROnPlateau(threshold_mode="rel")``: after more than ``patience``
    epochs without a relative improvement of ``threshold``, multiply by ``factor``, then wait
    ``cooldown`` epochs.

    Example:
        >>> plateau_factor([1.0, 0.9, 0.9, 0.9, 0.9], patience=2, factor=0.5)
        0.5
    """
    best = math.inf if mode == "min" else -math.inf
    bad = cool = 0
    current = 1.0
    for value in metrics:
        better = (
            value < best * (1.0 - threshold) if mode == "min" else value > best * (1.0 + threshold)
        )
        if better:
            best, bad = value, 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if bad > patience:
            current = max(current * factor, min_factor)
            cool, bad = cooldown, 0
    return current


def warmup_factor(step: int, *, warmup_steps: int, start_factor: float = 0.0) -> float:
    """Linear warmup from ``start_factor`` to 1 over ``warmup_steps`` steps (1 afterwards).

    Example:
        >>> warmup_factor(5, warmup_steps=10)
        0.5
    """
    if step >= warmup_steps:
        return 1.0
    return start_factor + (1.0 - start_factor) * step / warmup_steps


@dataclass(frozen=True)
class ScheduleConfig:
    """A learning-rate schedule, by name, with every option it reads.

    Steps count optimizer updates (not micro-batches). ``total_steps`` includes the warmup, and
    the named schedule runs on the steps after it.

    Attributes:
        name: One of ``"constant"``, ``"step"``, ``"multistep"``, ``"exponential"``,
            ``"cosine"``, ``"cosine_restarts"``, ``"one_cycle"``, ``"linear"``,
            ``"polynomial"``, ``"plateau"``.
        total_steps: Length of the run; needed by cosine, one-cycle, linear and polynomial
            (``fit`` fills it in).
        warmup_steps: Linear warmup steps placed before any schedule.
        warmup_start_factor: Factor at step 0 of the warmup.
        min_factor: Floor of cosine, restarts, linear, polynomial and plateau, as a fraction of
            the base learning rate.
        step_size: Steps between decays of ``"step"``.
        gamma: Decay factor of ``"step"``, ``"multistep"``, ``"exponential"``.
        milestones: Steps at which ``"multistep"`` decays.
        period: First period of ``"cosine_restarts"``.
        period_mult: Growth of the period after each restart.
        power: Exponent of ``"polynomial"`` (``"linear"`` is power 1).
        pct_start: Fraction of the steps ``"one_cycle"`` spends rising.
        div_factor: ``"one_cycle"`` starts at ``1 / div_factor`` of the peak.
        final_div_factor: ``"one_cycle"`` ends at ``1 / (div_factor * final_div_factor)``.
        plateau_mode: ``"min"`` or ``"max"``: the direction of the monitored metric.
        plateau_factor: Reduce-on-plateau multiplies by this.
        plateau_patience: Epochs without improvement tolerated.
        plateau_threshold: Relative improvement that counts.
        plateau_cooldown: Epochs to wait after a reduction.

    Example:
        >>> config = ScheduleConfig("cosine", total_steps=100, warmup_steps=10)
        >>> [round(config.factor(s), 3) for s in (0, 5, 10, 55, 100)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """

    name: str = "constant"
    total_steps: int | None = None
    warmup_steps: int = 0
    warmup_start_factor: float = 0.0
    min_factor: float = 0.0
    step_size: int = 1
    gamma: float = 0.1
    milestones: tuple[int, ...] = field(default=())
    period: int = 1
    period_mult: int = 1
    power: float = 1.0
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    plateau_mode: str = "min"
    plateau_factor: float = 0.1
    plateau_patience: int = 10
    plateau_threshold: float = 1e-4
    plateau_cooldown: int = 0

    def __post_init__(self) -> None:
        owner = "ScheduleConfig"
        check_choice(self.name, "name", owner, SCHEDULES)
        check_int(self.total_steps, "total_steps", owner, low=1, allow_none=True)
        check_int(self.warmup_steps, "warmup_steps", owner, low=0)
        check_float(self.warmup_start_factor, "warmup_start_factor", owner, low=0.0)
        check_float(self.min_factor, "min_factor", owner, low=0.0)
        check_int(self.step_size, "step_size", owner, low=1)
        check_float(self.gamma, "gamma", owner, low=0.0, low_inclusive=False)
        check_int(self.period, "period", owner, low=1)
        check_int(self.period_mult, "period_mult", owner, low=1)
        check_float(self.power, "power", owner, low=0.0)
        check_float(self.div_factor, "div_factor", owner, low=0.0, low_inclusive=False)
        check_float(self.final_div_factor, "final_div_factor", owner, low=0.0, low_inclusive=False)
        check_choice(self.plateau_mode, "plateau_mode", owner, ("min", "max"))
        check_float(self.plateau_factor, "plateau_factor", owner, low=0.0, low_inclusive=False)
        check_int(self.plateau_patience, "plateau_patience", owner, low=0)
        check_int(self.plateau_cooldown, "plateau_cooldown", owner, low=0)
        if not 0.0 < self.pct_start < 1.0:
            raise InvalidParameterError(
                f"The 'pct_start' parameter of ScheduleConfig must be in (0, 1), "
                f"got {self.pct_start!r}."
            )
        if self.plateau_factor >= 1.0:
            raise InvalidParameterError(
                f"The 'plateau_factor' parameter of ScheduleConfig must be < 1, "
                f"got {self.plateau_factor!r}."
            )
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        total = self.total_steps
        if self.needs_total_steps and total is not None and total <= self.warmup_steps:
            raise InvalidParameterError(
                f"The 'total_steps' parameter of ScheduleConfig must be > warmup_steps "
                f"({self.warmup_steps}) for {self.name!r}, got {total}."
            )

    @property
    def needs_total_steps(self) -> bool:
        """Whether the schedule is defined relative to the length of the run."""
        return self.name in ("cosine", "one_cycle", "linear", "polynomial")

    @classmethod
    def from_name(cls, name: str, options: Mapping[str, Any] | None = None) -> ScheduleConfig:
        """Build a config from a name and a dict of options (the dict is not mutated).

        Example:
            >>> ScheduleConfig.from_name("step", {"step_size": 30}).step_size
            30
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options or {}) - known)
        if unknown:
            raise InvalidParameterError(
                f"Unknown schedule option(s) {unknown}; allowed: {sorted(known - {'name'})}."
            )
        return cls(name=name, **dict(options or {}))

    def with_total_steps(self, total_steps: int) -> ScheduleConfig:
        """A copy with ``total_steps`` set (kept when already set)."""
        if self.total_steps is not None:
            return self
        return replace(self, total_steps=total_steps)

    def factor(self, step: int, metrics: Sequence[float] = ()) -> float:
        """The multiplier of the base learning rate at optimizer step ``step``.

        Args:
            step: Optimizer steps taken so far (0 for the first update).
            metrics: Validation values seen so far, for ``"plateau"`` only.
        """
        if step < self.warmup_steps:
            return warmup_factor(
                step, warmup_steps=self.warmup_steps, start_factor=self.warmup_start_factor
            )
        s = step - self.warmup_steps
        if self.needs_total_steps:
            if self.total_steps is None:
                raise InvalidParameterError(
                    f"The {self.name!r} schedule needs 'total_steps' (the number of optimizer "
                    "steps of the run); pass it, or give fit() epochs with a sized train_data."
                )
            span = self.total_steps - self.warmup_steps
        else:
            span = 1
        name = self.name
        if name == "constant":
            return 1.0
        if name == "step":
            return step_factor(s, step_size=self.step_size, gamma=self.gamma)
        if name == "multistep":
            return multistep_factor(s, milestones=self.milestones, gamma=self.gamma)
        if name == "exponential":
            return exponential_factor(s, gamma=self.gamma)
        if name == "cosine":
            return cosine_factor(s, total_steps=span, min_factor=self.min_factor)
        if name == "cosine_restarts":
            return cosine_restarts_factor(
                s, period=self.period, period_mult=self.period_mult, min_factor=self.min_factor
            )
        if name in ("linear", "polynomial"):
            power = 1.0 if name == "linear" else self.power
            return polynomial_factor(s, total_steps=span, power=power, min_factor=self.min_factor)
        if name == "one_cycle":
            return one_cycle_factor(
                s,
                total_steps=span,
                pct_start=self.pct_start,
                div_factor=self.div_factor,
                final_div_factor=self.final_div_factor,
            )
        # plateau
        return plateau_factor(
            metrics,
            mode=self.plateau_mode,
            factor=self.plateau_factor,
            patience=self.plateau_patience,
            threshold=self.plateau_threshold,
            cooldown=self.plateau_cooldown,
            min_factor=self.min_factor,
        )


def schedule_factor(name: str, step: int, options: Mapping[str, Any] | None = None) -> float:
    """The factor of the named schedule at ``step``: the pure function, for plots and tests.

    Example:
        >>> schedule_factor("linear", 50, {"total_steps": 100})
        0.5
    """
    return ScheduleConfig.from_name(name, options).factor(step)


class ScheduledLR(LambdaLR):
    """A ``LambdaLR`` over a :class:`ScheduleConfig`, safe when parameter groups are added.

    Each parameter group's learning rate is its base rate (``initial_lr``, or its ``lr`` when
    the group appears) times ``config.factor(step)``. A group added to the optimizer after the
    scheduler was built (gradual unfreezing) is picked up at the next :meth:`step` instead of
    crashing torch's ``zip(..., strict=True)``. Reduce-on-plateau reads the metrics given to
    :meth:`observe`. :meth:`state_dict` holds only numbers and lists (``weights_only`` safe).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> sched = ScheduledLR(opt, ScheduleConfig("step", step_size=2, gamma=0.5))
        >>> for _ in range(4):
        ...     opt.step()
        ...     sched.step()
        >>> sched.get_last_lr()
        [0.025]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: ScheduleConfig) -> None:
        if not isinstance(config, ScheduleConfig):
            raise TypeError(
                f"The 'config' parameter of ScheduledLR must be a ScheduleConfig, got {config!r}."
            )
        self.config = config
        self.metrics: list[float] = []
        super().__init__(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        return self.config.factor(step, self.metrics)

    def _sync_groups(self) -> None:
        groups = self.optimizer.param_groups
        for group in groups[len(self.base_lrs) :]:
            group.setdefault("initial_lr", group["lr"])
            self.base_lrs.append(group["initial_lr"])
            self.lr_lambdas.append(self._factor)

    def step(self, epoch: int | None = None) -> None:
        """Advance one optimizer step (call after ``optimizer.step()``)."""
        if hasattr(self, "config"):  # LambdaLR.__init__ steps before lr_lambdas exist
            self._sync_groups()
        super().step(epoch)

    def observe(self, metric: float) -> None:
        """Record an epoch's validation metric (reduce-on-plateau) and apply the new factor."""
        self.metrics.append(float(metric))
        self._sync_groups()
        factor = self._factor(self.last_epoch)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The step, the base rates and the metric history (numbers and lists only)."""
        return {
            "last_epoch": int(self.last_epoch),
            "step_count": int(self._step_count),
            "base_lrs": [float(b) for b in self.base_lrs],
            "last_lr": [float(v) for v in self._last_lr],
            "metrics": list(self.metrics),
            "name": self.config.name,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        if state_dict.get("name") != self.config.name:
            raise InvalidParameterError(
                f"The scheduler state is for schedule {state_dict.get('name')!r}, "
                f"not {self.config.name!r}."
            )
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["step_count"])
        self.base_lrs = list(state_dict["base_lrs"])
        self._last_lr = list(state_dict["last_lr"])
        self.metrics = [float(m) for m in state_dict["metrics"]]
        self.lr_lambdas = [self._factor] * len(self.base_lrs)


def make_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: str | ScheduleConfig,
    options: Mapping[str, Any] | None = None,
    *,
    total_steps: int | None = None,
) -> ScheduledLR:
    """Build a :class:`ScheduledLR` from a schedule name (or config) and its options.

    Args:
        optimizer: The optimizer whose parameter groups are scheduled.
        schedule: A name from :data:`SCHEDULES` or a :class:`ScheduleConfig`.
        options: Fields of :class:`ScheduleConfig` (with a name only).
        total_steps: Fills ``total_steps`` when the config leaves it unset.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = make_lr_scheduler(opt, "cosine", {"warmup_steps": 2}, total_steps=10)
        >>> sched.get_last_lr()
        [0.0]
    """
    if isinstance(schedule, ScheduleConfig):
        if options:
            raise InvalidParameterError(
                "Pass schedule options either in the ScheduleConfig or as 'options', not both."
            )
        config = schedule
    elif isinstance(schedule, str):
        config = ScheduleConfig.from_name(schedule, options)
    else:
        raise TypeError(
            "The 'schedule' parameter must be a schedule name or a ScheduleConfig, "
            f"got {schedule!r}."
        )
    if total_steps is not None:
        config = config.with_total_steps(total_steps)
    if config.needs_total_steps and config.total_steps is None:
        raise InvalidParameterError(
            f"The {config.name!r} schedule needs 'total_steps' (optimizer steps in the run)."
        )
    return ScheduledLR(optimizer, config)
