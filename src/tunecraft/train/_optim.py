"""Optimizers by name, with weight decay that can leave biases and normalization weights alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from tunecraft._validation import check_choice, check_float
from tunecraft.exceptions import InvalidParameterError

__all__ = ["OPTIMIZERS", "make_optimizer", "param_groups"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)


def param_groups(
    model: nn.Module, weight_decay: float, *, exclude_bias_and_norm: bool = True
) -> list[dict[str, Any]]:
    """Split a model's trainable parameters into a decayed and a non-decayed group.

    Biases and the weights of normalization layers (BatchNorm, LayerNorm, GroupNorm, RMSNorm...)
    get no weight decay when ``exclude_bias_and_norm`` is true: decaying them toward zero only
    hurts. Parameters with ``requires_grad=False`` are left out; each parameter appears once even
    when modules share it.

    Example:
        >>> from torch import nn
        >>> groups = param_groups(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), 0.1)
        >>> [(g["weight_decay"], len(g["params"])) for g in groups]
        [(0.1, 1), (0.0, 3)]
    """
    check_float(weight_decay, "weight_decay", "param_groups", low=0.0)
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, _NORM_TYPES)
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            skip = exclude_bias_and_norm and (is_norm or name == "bias" or name.endswith("_bias"))
            (no_decay if skip else decay).append(param)
    groups = [{"params": decay, "weight_decay": float(weight_decay)}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(
    name: str,
    params: nn.Module | Iterable[Any],
    *,
    lr: float,
    weight_decay: float = 0.0,
    exclude_bias_and_norm: bool = True,
    options: Mapping[str, Any] | None = None,
) -> torch.optim.Optimizer:
    """Build a ``torch.optim`` optimizer by name, so that the choice can be tuned.

    ============  ==========================================================
    ``sgd``       ``SGD`` without momentum
    ``momentum``  ``SGD(momentum=0.9)``
    ``nesterov``  ``SGD(momentum=0.9, nesterov=True)``
    ``adam``      ``Adam`` (weight decay is an L2 term added to the gradient)
    ``adamw``     ``AdamW`` (decoupled weight decay)
    ``rmsprop``   ``RMSprop``
    ``adagrad``   ``Adagrad``
    ============  ==========================================================

    Args:
        name: One of :data:`OPTIMIZERS`.
        params: A model (its parameters are split by :func:`param_groups`), or parameters /
            parameter-group dicts as torch accepts them.
        lr: The learning rate.
        weight_decay: The weight decay (``>= 0``).
        exclude_bias_and_norm: With a model, give biases and normalization weights no decay.
        options: More keyword arguments of the torch optimizer (``{"betas": (0.9, 0.95)}``,
            ``{"momentum": 0.8}``); the dict is not mutated.

    Example:
        >>> from torch import nn
        >>> opt = make_optimizer("nesterov", nn.Linear(3, 1), lr=0.1, weight_decay=1e-4)
        >>> groups = opt.param_groups
        >>> type(opt).__name__, groups[0]["nesterov"], groups[1]["weight_decay"]
        ('SGD', True, 0.0)
    """
    check_choice(name, "name", "make_optimizer", OPTIMIZERS)
    check_float(lr, "lr", "make_optimizer", low=0.0, low_inclusive=False)
    check_float(weight_decay, "weight_decay", "make_optimizer", low=0.0)
    if isinstance(params, nn.Module):
        groups: Any = param_groups(
            params, weight_decay, exclude_bias_and_norm=exclude_bias_and_norm
        )
    else:
        groups = list(params)
    if not groups:
        raise InvalidParameterError("make_optimizer got no parameters to optimize.")
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if name == "momentum":
        kwargs["momentum"] = 0.9
    elif name == "nesterov":
        kwargs.update(momentum=0.9, nesterov=True)
    kwargs.update(options or {})
    classes: dict[str, type[torch.optim.Optimizer]] = {
        "sgd": torch.optim.SGD,
        "momentum": torch.optim.SGD,
        "nesterov": torch.optim.SGD,
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "rmsprop": torch.optim.RMSprop,
        "adagrad": torch.optim.Adagrad,
    }
    try:
        return classes[name](groups, **kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"make_optimizer({name!r}): {exc}") from None
