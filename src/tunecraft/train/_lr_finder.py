"""The learning-rate range test: :func:`lr_find`."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tunecraft._imports import require
from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.train._fit import _split, _to_device
from tunecraft.train._optim import make_optimizer
from tunecraft.train._seed import get_rng_state, set_rng_state

__all__ = ["LRFinderResult", "lr_find", "suggest_lrs"]

RULES = ("valley", "steepest", "divergence")


def suggest_lrs(
    lrs: np.ndarray | list[float], losses: np.ndarray | list[float], *, skip_start: int = 10
) -> dict[str, float]:
    """Suggest learning rates from a range-test curve (smoothed losses).

    Slopes are taken against ``log10(lr)`` (not against ``lr``, whose geometric spacing makes a
    linear-axis gradient favour the smallest rates by orders of magnitude: Lightning #21141),
    on the points after the ``skip_start`` warm-up points and up to the lowest loss.

    * ``"steepest"``: where the loss falls fastest per decade.
    * ``"valley"``: the geometric middle of the stretch of falling loss that ends at the
      minimum (the longest run of negative slope before it).
    * ``"divergence"``: one tenth of the rate at the lowest loss, past which the loss rises
      and diverges.

    Example:
        >>> import numpy as np
        >>> lrs = np.logspace(-5, 0, 60)
        >>> losses = 1 / (1 + np.exp(3 * (np.log10(lrs) + 2.5))) + np.exp(6 * np.log10(lrs))
        >>> s = suggest_lrs(lrs, losses)
        >>> 3e-4 < s["steepest"] < 3e-2, 1e-4 < s["divergence"] < 1e-1
        (True, True)
    """
    lrs = np.asarray(lrs, dtype=float)
    losses = np.asarray(losses, dtype=float)
    if lrs.shape != losses.shape or lrs.ndim != 1 or len(lrs) < 3:
        raise InvalidParameterError(
            "suggest_lrs needs two 1-d arrays of the same length >= 3 (learning rates, losses)."
        )
    finite = np.isfinite(losses)
    lrs, losses = lrs[finite], losses[finite]
    skip = min(skip_start, max(len(lrs) - 3, 0))
    log_lr = np.log10(lrs)
    slopes = np.gradient(losses, log_lr)
    i_min = skip + int(np.argmin(losses[skip:]))
    end = max(i_min, skip + 1)
    i_steep = skip + int(np.argmin(slopes[skip:end]))
    # The valley: the run of negative slope that ends at (or just before) the minimum.
    start = end - 1
    while start > skip and slopes[start - 1] < 0:
        start -= 1
    i_valley = (start + end) // 2
    return {
        "steepest": float(lrs[i_steep]),
        "valley": float(lrs[i_valley]),
        "divergence": float(lrs[i_min] / 10.0),
    }


@dataclass
class LRFinderResult:
    """The range test's curve and suggested learning rates.

    Attributes:
        lrs: The learning rate of each step.
        losses: The smoothed loss of each step.
        raw_losses: The loss of each step, unsmoothed.
        suggestions: ``{"steepest": ..., "valley": ..., "divergence": ...}``.
        diverged: Whether the test stopped early because the loss diverged.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestions: dict[str, float] = field(default_factory=dict)
    diverged: bool = False

    def suggest(self, rule: str = "valley") -> float:
        """The learning rate suggested by ``rule`` (``"valley"``, ``"steepest"``,
        ``"divergence"``)."""
        check_choice(rule, "rule", "LRFinderResult.suggest", RULES)
        return self.suggestions[rule]

    @property
    def suggested_lr(self) -> float:
        """The default suggestion (the valley rule)."""
        return self.suggestions["valley"]

    def plot(self, ax: Any = None, *, show_suggestions: bool = True) -> Any:
        """Plot loss against learning rate (log axis) with the suggestions; returns the axes.

        Needs matplotlib (``pip install "tunecraft[plot]"``).
        """
        plt = require("matplotlib.pyplot", "plot", purpose="LRFinderResult.plot")
        if ax is None:
            _, ax = plt.subplots()
        ax.plot(self.lrs, self.losses, label="smoothed loss")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        if show_suggestions:
            for (rule, lr), color in zip(
                self.suggestions.items(), ("tab:red", "tab:green", "tab:orange"), strict=False
            ):
                ax.axvline(lr, color=color, linestyle="--", label=f"{rule}: {lr:.2e}")
        ax.legend()
        return ax


def _cycle(data: Iterable[Any]) -> Iterator[Any]:
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise InvalidParameterError("lr_find: the training data gave no batches.")


def lr_find(
    model: nn.Module,
    train_data: Iterable[Any],
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    optimizer: str | torch.optim.Optimizer = "adamw",
    optimizer_options: Mapping[str, Any] | None = None,
    weight_decay: float = 0.0,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smoothing: float = 0.05,
    divergence_threshold: float = 4.0,
    skip_start: int = 10,
    device: str | torch.device | None = None,
) -> LRFinderResult:
    """Run the exponential learning-rate range test, then put everything back as it was.

    The rate grows geometrically from ``start_lr`` to ``end_lr`` over ``num_steps`` optimizer
    steps, one batch each (the data is cycled). The loss is smoothed by an exponential moving
    average with bias correction; the test stops when the smoothed loss exceeds
    ``divergence_threshold`` times the best so far (or is not finite). Afterwards the model's
    weights, the optimizer's state and the random generators are restored.

    Args:
        model: The model to test (left unchanged).
        train_data: Training batches, ``(inputs, targets)`` pairs.
        loss_fn: ``loss_fn(outputs, targets)``, the batch's mean loss.
        optimizer: A name (see :func:`make_optimizer`) or an optimizer over ``model``'s
            parameters; every group's rate is set to the test's rate each step.
        optimizer_options: More keyword arguments of an optimizer given by name.
        weight_decay: For an optimizer given by name.
        start_lr: The first rate.
        end_lr: The last rate.
        num_steps: Steps of the test.
        smoothing: Weight of the new loss in the moving average (``0 < smoothing <= 1``;
            1 is no smoothing).
        divergence_threshold: Stop when the smoothed loss exceeds this times the best.
        skip_start: Warm-up points the suggestions ignore.
        device: Where to run; default the model's device.

    Returns:
        An :class:`LRFinderResult`; ``result.suggested_lr`` is the valley rule.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(256, 4); y = (x.sum(1) > 0).long()
        >>> data = torch.utils.data.DataLoader(list(zip(x, y)), batch_size=32, shuffle=True)
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
        ...                             torch.nn.Linear(16, 2))
        >>> result = lr_find(model, data, loss_fn=torch.nn.functional.cross_entropy,
        ...                  num_steps=60)
        >>> 1e-5 < result.suggested_lr < 1.0
        True
    """
    owner = "lr_find"
    check_float(start_lr, "start_lr", owner, low=0.0, low_inclusive=False)
    check_float(end_lr, "end_lr", owner, low=0.0, low_inclusive=False)
    if end_lr <= start_lr:
        raise InvalidParameterError(
            f"The 'end_lr' parameter of lr_find must be > start_lr ({start_lr}), got {end_lr}."
        )
    check_int(num_steps, "num_steps", owner, low=3)
    check_float(smoothing, "smoothing", owner, low=0.0, low_inclusive=False)
    if smoothing > 1.0:
        raise InvalidParameterError(
            f"The 'smoothing' parameter of lr_find must be in (0, 1], got {smoothing}."
        )
    check_float(divergence_threshold, "divergence_threshold", owner, low=1.0, low_inclusive=False)
    check_int(skip_start, "skip_start", owner, low=0)

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    if isinstance(optimizer, torch.optim.Optimizer):
        opt = optimizer
    else:
        opt = make_optimizer(
            optimizer, model, lr=start_lr, weight_decay=weight_decay, options=optimizer_options
        )
    model_state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(opt.state_dict())
    rng_state = get_rng_state()
    was_training = model.training

    lrs: list[float] = []
    smoothed: list[float] = []
    raw: list[float] = []
    beta = 1.0 - smoothing
    avg = 0.0
    best = math.inf
    diverged = False
    ratio = end_lr / start_lr
    try:
        model.train()
        batches = _cycle(train_data)
        for i in range(num_steps):
            lr = start_lr * ratio ** (i / (num_steps - 1))
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = _split(_to_device(next(batches), dev))
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            value = float(loss.item())
            avg = beta * avg + (1.0 - beta) * value
            smooth = avg / (1.0 - beta ** (i + 1))
            lrs.append(lr)
            raw.append(value)
            smoothed.append(smooth)
            if not math.isfinite(smooth) or smooth > divergence_threshold * best:
                diverged = True
                break
            best = min(best, smooth)
    finally:
        model.load_state_dict(model_state)
        opt.load_state_dict(opt_state)
        opt.zero_grad(set_to_none=True)
        set_rng_state(rng_state)
        model.train(was_training)
    if len(lrs) < 3:
        raise InvalidParameterError(
            f"lr_find: the loss diverged after {len(lrs)} steps; lower 'start_lr' "
            f"(got {start_lr})."
        )
    return LRFinderResult(
        lrs=lrs,
        losses=smoothed,
        raw_losses=raw,
        suggestions=suggest_lrs(lrs, smoothed, skip_start=skip_start),
        diverged=diverged,
    )
