"""Learning-rate scaling rules and a batch-size finder."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.logging import get_logger

__all__ = ["BatchSizeResult", "find_batch_size", "is_oom_error", "scale_lr"]

_log = get_logger("train")
RULES = ("linear", "sqrt")


def scale_lr(lr: float, base_batch_size: int, batch_size: int, *, rule: str = "linear") -> float:
    """The learning rate for ``batch_size``, given one tuned at ``base_batch_size``.

    * ``"linear"``: ``lr * batch_size / base_batch_size``, the rule for SGD (Goyal et al. 2017,
      with a warmup for large factors).
    * ``"sqrt"``: ``lr * sqrt(batch_size / base_batch_size)``, the rule for adaptive optimizers
      such as Adam and AdamW (Malladi et al. 2022), which keeps the gradient noise scale.

    Example:
        >>> scale_lr(0.1, 256, 1024)
        0.4
        >>> scale_lr(1e-3, 64, 256, rule="sqrt")
        0.002
    """
    check_float(lr, "lr", "scale_lr", low=0.0, low_inclusive=False)
    check_int(base_batch_size, "base_batch_size", "scale_lr", low=1)
    check_int(batch_size, "batch_size", "scale_lr", low=1)
    check_choice(rule, "rule", "scale_lr", RULES)
    ratio = batch_size / base_batch_size
    return float(lr * (ratio if rule == "linear" else math.sqrt(ratio)))


def is_oom_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error (CUDA, MPS or CPU allocator)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@dataclass
class BatchSizeResult:
    """What :func:`find_batch_size` found.

    Attributes:
        batch_size: The largest batch size that fits.
        lr: The learning rate the scaling rule implies for it (``None`` without ``base_lr``).
        tried: ``{batch_size: fits}`` for every size tried, in order.
        peak_memory: ``{batch_size: bytes}`` measured for each size that ran.
    """

    batch_size: int
    lr: float | None
    tried: dict[int, bool] = field(default_factory=dict)
    peak_memory: dict[int, int] = field(default_factory=dict)


def find_batch_size(
    step_fn: Callable[[int], object],
    *,
    start: int = 1,
    max_batch_size: int = 4096,
    memory_budget: int | None = None,
    memory_fn: Callable[[], int] | None = None,
    base_lr: float | None = None,
    base_batch_size: int | None = None,
    rule: str = "linear",
) -> BatchSizeResult:
    """Find the largest batch size whose training step fits in memory.

    Doubles from ``start`` until a step runs out of memory (or exceeds ``memory_budget``), then
    bisects between the last size that fit and the first that did not. ``step_fn(batch_size)``
    must run one forward and backward pass at that size; an out-of-memory error from it counts
    as "does not fit" (the CUDA cache is emptied), any other error propagates.

    Args:
        step_fn: Runs one training step at the given batch size.
        start: The first size tried (it must fit).
        max_batch_size: Never try more.
        memory_budget: Bytes a step may use at its peak; ``None``: whatever the device has.
        memory_fn: Returns the peak bytes of the last step; default on CUDA
            ``torch.cuda.max_memory_allocated`` (the peak is reset before each step). Needed
            with a ``memory_budget`` on other devices.
        base_lr: A learning rate tuned at ``base_batch_size``: the result's ``lr`` scales it.
        base_batch_size: The batch size ``base_lr`` was tuned at.
        rule: ``"linear"`` (SGD) or ``"sqrt"`` (adaptive optimizers); see :func:`scale_lr`.

    Returns:
        A :class:`BatchSizeResult`.

    Example:
        >>> def step(batch_size):  # a stand-in that "runs out of memory" above 48
        ...     if batch_size > 48:
        ...         raise torch.OutOfMemoryError("out of memory")
        >>> result = find_batch_size(step, start=8, base_lr=0.1, base_batch_size=8)
        >>> result.batch_size, round(result.lr, 6)
        (48, 0.6)
    """
    owner = "find_batch_size"
    if not callable(step_fn):
        raise TypeError(f"The 'step_fn' parameter of {owner} must be callable, got {step_fn!r}.")
    check_int(start, "start", owner, low=1)
    check_int(max_batch_size, "max_batch_size", owner, low=start)
    check_int(memory_budget, "memory_budget", owner, low=1, allow_none=True)
    check_choice(rule, "rule", owner, RULES)
    if (base_lr is None) != (base_batch_size is None):
        raise InvalidParameterError(
            f"{owner}: give both 'base_lr' and 'base_batch_size', or neither."
        )
    cuda = torch.cuda.is_available()
    if memory_fn is None and cuda:
        memory_fn = torch.cuda.max_memory_allocated
    if memory_budget is not None and memory_fn is None:
        raise InvalidParameterError(
            f"{owner}: a 'memory_budget' needs a 'memory_fn' to measure steps off CUDA."
        )
    result = BatchSizeResult(batch_size=0, lr=None)

    def fits(size: int) -> bool:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            step_fn(size)
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if not is_oom_error(exc):
                raise
            ok = False
        else:
            ok = True
            if memory_fn is not None:
                peak = int(memory_fn())
                result.peak_memory[size] = peak
                ok = memory_budget is None or peak <= memory_budget
        finally:
            if cuda:
                torch.cuda.empty_cache()
        result.tried[size] = ok
        _log.debug("find_batch_size: %d %s", size, "fits" if ok else "does not fit")
        return ok

    if not fits(start):
        raise InvalidParameterError(
            f"{owner}: even the starting batch size {start} does not fit; lower 'start'."
        )
    good, bad = start, None
    while bad is None and good < max_batch_size:
        size = min(good * 2, max_batch_size)
        if fits(size):
            good = size
        else:
            bad = size
    if bad is not None:
        while bad - good > 1:
            mid = (good + bad) // 2
            if fits(mid):
                good = mid
            else:
                bad = mid
    result.batch_size = good
    if base_lr is not None and base_batch_size is not None:
        result.lr = scale_lr(base_lr, base_batch_size, good, rule=rule)
    return result
