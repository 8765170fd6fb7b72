"""Bottleneck adapters: a small residual module inserted after chosen layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tunecraft._validation import check_choice, check_int
from tunecraft.exceptions import InvalidParameterError

__all__ = ["ACTIVATIONS", "AdaptedLayer", "BottleneckAdapter", "add_adapters"]

ACTIVATIONS = ("relu", "gelu", "tanh", "silu")


def _activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}[name]()


class BottleneckAdapter(nn.Module):
    """``x + up(act(down(x)))`` with ``up`` initialized to zero, so it starts as the identity.

    Args:
        dim: The feature size of the input (its last dimension).
        bottleneck: The hidden size between the two projections.
        activation: One of :data:`ACTIVATIONS`.

    Example:
        >>> import torch
        >>> adapter = BottleneckAdapter(8, bottleneck=2)
        >>> x = torch.randn(3, 8)
        >>> torch.equal(adapter(x), x)
        True
    """

    def __init__(self, dim: int, bottleneck: int = 16, *, activation: str = "relu") -> None:
        super().__init__()
        check_int(dim, "dim", "BottleneckAdapter", low=1)
        check_int(bottleneck, "bottleneck", "BottleneckAdapter", low=1)
        check_choice(activation, "activation", "BottleneckAdapter", ACTIVATIONS)
        self.down = nn.Linear(dim, bottleneck)
        self.act = _activation(activation)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the adapter's correction to ``x``."""
        return x + self.up(self.act(self.down(x)))


class AdaptedLayer(nn.Module):
    """A layer followed by a :class:`BottleneckAdapter`; the layer runs unchanged.

    A tensor output goes through the adapter; for a tuple (or list) output, its first element
    does (transformers layers return ``(hidden_states, ...)``), the rest passes through.
    """

    def __init__(self, layer: nn.Module, adapter: BottleneckAdapter) -> None:
        super().__init__()
        self.layer = layer
        self.adapter = adapter

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the layer, then the adapter on its (first) output."""
        out = self.layer(*args, **kwargs)
        if isinstance(out, torch.Tensor):
            return self.adapter(out)
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            return type(out)([self.adapter(out[0]), *out[1:]])
        raise TypeError(
            f"AdaptedLayer: {type(self.layer).__name__} returned {type(out).__name__}; "
            "adapters need a tensor or a tuple whose first element is a tensor."
        )


def _output_dim(layer: nn.Module, name: str) -> int:
    linears = [m for m in layer.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InvalidParameterError(
            f"Cannot tell the output size of layer {name!r} ({type(layer).__name__}: no "
            "nn.Linear inside); pass 'dim'."
        )
    return int(linears[-1].out_features)


def add_adapters(
    model: nn.Module,
    after: Sequence[str],
    *,
    bottleneck: int = 16,
    activation: str = "relu",
    dim: int | None = None,
) -> list[BottleneckAdapter]:
    """Insert a :class:`BottleneckAdapter` after each named layer of ``model`` (in place).

    Each named submodule is replaced by an :class:`AdaptedLayer` holding it and a new adapter.
    The adapters start as the identity, so the model's outputs are unchanged until they train.
    The feature size is the ``out_features`` of the last ``nn.Linear`` inside the layer, or
    ``dim``.

    Args:
        model: The model to modify.
        after: Names of the submodules to follow with an adapter (``"encoder.layer.0"``).
        bottleneck: The adapters' hidden size.
        activation: One of :data:`ACTIVATIONS`.
        dim: The feature size, when it cannot be read from the layers.

    Returns:
        The new adapters, in the order of ``after``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> x = torch.randn(5, 4)
        >>> before = net(x)
        >>> adapters = add_adapters(net, ["0"], bottleneck=2)
        >>> torch.equal(net(x), before), sum(p.numel() for p in adapters[0].parameters())
        (True, 42)
    """
    check_int(bottleneck, "bottleneck", "add_adapters", low=1)
    check_choice(activation, "activation", "add_adapters", ACTIVATIONS)
    check_int(dim, "dim", "add_adapters", low=1, allow_none=True)
    if isinstance(after, str) or not after:
        raise InvalidParameterError(
            "The 'after' parameter of add_adapters must be a non-empty list of submodule "
            f"names, got {after!r}."
        )
    modules = dict(model.named_modules())
    missing = [name for name in after if name not in modules or name == ""]
    if missing:
        raise InvalidParameterError(
            f"The 'after' parameter of add_adapters names {missing}, which are not submodules "
            f"of {type(model).__name__}."
        )
    adapters: list[BottleneckAdapter] = []
    for name in after:
        layer = model.get_submodule(name)
        width = dim if dim is not None else _output_dim(layer, name)
        ref = next(layer.parameters(), None)
        adapter = BottleneckAdapter(width, bottleneck, activation=activation)
        if ref is not None:
            adapter.to(device=ref.device, dtype=ref.dtype)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, AdaptedLayer(layer, adapter))
        adapters.append(adapter)
    return adapters
