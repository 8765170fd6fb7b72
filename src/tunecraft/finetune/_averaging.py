"""Weight averaging and ensembles: average the last checkpoints' weights (BatchNorm statistics
recomputed), SWA and EMA (from :mod:`tunecraft.train`), and ensembles averaging probabilities or
logits with a ``torch.func`` vectorized path for members of one architecture.
"""

from __future__ import annotations

import copy
import math
import os
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.optim import swa_utils

from tunecraft._validation import check_choice, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.logging import get_logger
from tunecraft.train._callbacks import EMA, SWA, Callback, FitState
from tunecraft.train._checkpoint import load_checkpoint

__all__ = ["EMA", "SWA", "CheckpointAverage", "Ensemble", "average_checkpoints", "average_weights"]

_log = get_logger("finetune")
WeightSource = Union[str, "os.PathLike[str]", Mapping[str, torch.Tensor], nn.Module]


def _state_of(source: Any, index: int) -> Mapping[str, torch.Tensor]:
    if isinstance(source, nn.Module):
        return source.state_dict()
    if isinstance(source, (str, os.PathLike)):
        loaded = load_checkpoint(source, map_location="cpu", check_format=False)
        # A fit checkpoint (ModelCheckpoint) keeps the weights under "model"; a file written by
        # torch.save(model.state_dict()) or save_checkpoint holds them at the top level.
        if isinstance(loaded.get("model"), Mapping):
            return loaded["model"]
        return {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    if isinstance(source, Mapping):
        return source
    raise TypeError(
        "Each source of average_weights must be a path, a state dict or an nn.Module, "
        f"got {type(source).__name__} at position {index}."
    )


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def average_weights(
    sources: Sequence[WeightSource], *, weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """The (weighted) mean of several state dicts of one architecture.

    Floating-point entries are averaged (in float64, cast back); integer entries (BatchNorm's
    ``num_batches_tracked``) are taken from the last source.

    Args:
        sources: Checkpoint paths (a :class:`tunecraft.train.ModelCheckpoint` file or a saved
            state dict), state dicts, or modules.
        weights: One non-negative weight per source (normalized); equal by default.

    Returns:
        The averaged state dict (on the CPU).

    Example:
        >>> import torch
        >>> a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
        >>> avg = average_weights([a, b])
        >>> torch.allclose(avg["weight"], (a.weight + b.weight) / 2)
        True
    """
    owner = "average_weights"
    if isinstance(sources, (str, os.PathLike, Mapping, nn.Module)) or len(sources) == 0:
        raise InvalidParameterError(
            f"The 'sources' parameter of {owner} must be a non-empty sequence of checkpoints."
        )
    if weights is None:
        w = [1.0 / len(sources)] * len(sources)
    else:
        if (
            len(weights) != len(sources)
            or any(not math.isfinite(x) or x < 0 for x in weights)
            or sum(weights) <= 0
        ):
            raise InvalidParameterError(
                f"The 'weights' parameter of {owner} must hold {len(sources)} non-negative "
                f"numbers with a positive sum, got {list(weights)!r}."
            )
        total = float(sum(weights))
        w = [float(x) / total for x in weights]
    states = [_state_of(s, i) for i, s in enumerate(sources)]
    keys = list(states[0])
    out: dict[str, torch.Tensor] = {}
    for i, state in enumerate(states[1:], start=1):
        if set(state) != set(keys):  # the order may differ (a state dict rebuilt by hand)
            extra = set(state) ^ set(keys)
            raise InvalidParameterError(
                f"Source {i} of {owner} has other entries than source 0 (differ: "
                f"{sorted(extra)[:3]}); average checkpoints of one architecture."
            )
    for key in keys:
        tensors = [torch.as_tensor(s[key]).detach().cpu() for s in states]
        shape = tensors[0].shape
        if any(t.shape != shape for t in tensors):
            raise InvalidParameterError(
                f"Entry {key!r} has different shapes across the sources of {owner}."
            )
        if tensors[0].is_floating_point() or tensors[0].is_complex():
            acc = sum(wi * t.to(torch.float64) for wi, t in zip(w, tensors, strict=True))
            out[key] = torch.as_tensor(acc).to(tensors[0].dtype)
        else:
            out[key] = tensors[-1].clone()
    return out


def average_checkpoints(
    model: nn.Module,
    sources: Sequence[WeightSource],
    *,
    last_k: int | None = None,
    bn_data: Iterable[Any] | None = None,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Load the average of the last ``k`` checkpoints' weights into ``model``.

    Averaged BatchNorm running statistics do not match the averaged weights, so when the model
    has BatchNorm layers and ``bn_data`` is given they are recomputed with
    ``torch.optim.swa_utils.update_bn`` (a pass over ``bn_data`` in training mode).

    Args:
        model: A model of the checkpoints' architecture (loaded in place and returned).
        sources: Checkpoints, oldest first (paths, state dicts or modules).
        last_k: Average only the last ``k`` (all by default).
        bn_data: Batches (``(inputs, targets)`` or inputs) to recompute BatchNorm statistics.
        device: Where ``update_bn`` runs; the model's device by default.

    Returns:
        ``model``.

    Example:
        >>> import torch
        >>> snapshots = [{"weight": torch.full((1, 1), float(i)), "bias": torch.zeros(1)}
        ...              for i in range(5)]
        >>> model = average_checkpoints(torch.nn.Linear(1, 1), snapshots, last_k=2)
        >>> model.weight.item()
        3.5
    """
    check_int(last_k, "last_k", "average_checkpoints", low=1, allow_none=True)
    chosen = list(sources)[-last_k:] if last_k is not None else list(sources)
    averaged = average_weights(chosen)
    model.load_state_dict(averaged)
    if _has_batchnorm(model):
        if bn_data is None:
            _log.warning(
                "average_checkpoints: the model has BatchNorm layers but no 'bn_data' was given; "
                "the averaged running statistics are kept (pass bn_data to recompute them)."
            )
        else:
            dev = device if device is not None else next(model.parameters()).device
            swa_utils.update_bn(bn_data, model, device=torch.device(dev))
    return model


class CheckpointAverage(Callback):
    """Keep the weights of the last ``k`` epochs (on the CPU) and load their average at the end
    of :func:`tunecraft.train.fit`, BatchNorm statistics recomputed on the training data.

    Unlike :class:`SWA` (a running average from an epoch on, usually with a constant or cyclic
    learning rate), this averages exactly the final ``k`` snapshots of an ordinary run.

    Args:
        last_k: How many final epochs to average (>= 1).
        update_bn: Recompute BatchNorm statistics after averaging.

    Example:
        >>> averager = CheckpointAverage(last_k=3)
    """

    def __init__(self, last_k: int = 5, *, update_bn: bool = True) -> None:
        check_int(last_k, "last_k", "CheckpointAverage", low=1)
        self.last_k = last_k
        self.update_bn = update_bn
        self.snapshots: deque[dict[str, torch.Tensor]] = deque(maxlen=last_k)

    def on_epoch_end(self, state: FitState) -> None:
        """Keep this epoch's weights."""
        self.snapshots.append(
            {k: v.detach().to("cpu", copy=True) for k, v in state.model.state_dict().items()}
        )

    def on_fit_end(self, state: FitState) -> None:
        """Load the average of the kept snapshots."""
        if not self.snapshots:
            return
        average_checkpoints(
            state.model,
            list(self.snapshots),
            bn_data=state.train_data if self.update_bn else None,
            device=state.device,
        )

    def state_dict(self) -> dict[str, Any]:
        """The kept snapshots."""
        return {"snapshots": list(self.snapshots)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.snapshots = deque(state_dict["snapshots"], maxlen=self.last_k)


def _signature(model: nn.Module) -> tuple[Any, ...]:
    return (
        type(model),
        tuple((n, tuple(p.shape), p.dtype) for n, p in model.named_parameters()),
        tuple((n, tuple(b.shape), b.dtype) for n, b in model.named_buffers()),
    )


class Ensemble(nn.Module):
    """Average the predictions of several classifiers.

    ``combine="probs"`` averages the members' softmax probabilities and returns their log (so
    the output works with ``argmax`` and with cross-entropy as logits do); ``combine="logits"``
    returns the mean of the logits.

    When every member has the same architecture (same class, parameter names and shapes), the
    forward pass is vectorized with ``torch.func``: the members' parameters and buffers are
    stacked and one ``vmap`` over ``functional_call`` evaluates all members at once. The stack
    is rebuilt at each call with ``torch.stack`` (differentiable, unlike
    ``torch.func.stack_module_state``, which detaches), so it always reflects the members'
    current weights and gradients reach them. Models in training mode with BatchNorm use the
    loop (``vmap`` cannot update running statistics in place).

    Args:
        models: The members (at least one).
        combine: ``"probs"`` or ``"logits"``.
        vectorize: ``"auto"`` (vectorize when the members share an architecture), ``True``
            (require it), or ``False`` (loop over members).

    Example:
        >>> import torch
        >>> members = [torch.nn.Linear(4, 3) for _ in range(5)]
        >>> ensemble = Ensemble(members, combine="probs")
        >>> ensemble.vectorized
        True
        >>> probs = ensemble(torch.randn(2, 4)).exp()  # the mean of the members' probabilities
        >>> torch.allclose(probs.sum(-1), torch.ones(2))
        True
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        *,
        combine: str = "probs",
        vectorize: bool | str = "auto",
    ) -> None:
        owner = "Ensemble"
        check_choice(combine, "combine", owner, ("probs", "logits"))
        check_choice(vectorize, "vectorize", owner, ("auto", True, False))
        models = list(models)
        if not models or not all(isinstance(m, nn.Module) for m in models):
            raise InvalidParameterError(
                f"The 'models' parameter of {owner} must be a non-empty sequence of nn.Module."
            )
        super().__init__()
        self.members = nn.ModuleList(models)
        self.combine = combine
        same = all(_signature(m) == _signature(models[0]) for m in models[1:])
        if vectorize is True and not same:
            raise InvalidParameterError(
                f"The 'vectorize' parameter of {owner} is True but the members differ in "
                "architecture (class, parameter or buffer names and shapes); use 'auto' or False."
            )
        self.vectorized = bool(vectorize) and same
        # A stateless copy on the meta device, kept out of the module tree (no state dict entry).
        self._base: tuple[nn.Module, ...] = (
            (copy.deepcopy(models[0]).to("meta"),) if self.vectorized else ()
        )

    def member_outputs(self, x: Any) -> torch.Tensor:
        """Every member's logits, stacked: ``(n_members, *output_shape)``."""
        members = list(self.members)
        if self.vectorized and not (self.training and _has_batchnorm(members[0])):
            base = self._base[0]
            base.train(self.training)
            named = [dict(m.named_parameters()) for m in members]
            params = {n: torch.stack([p[n] for p in named]) for n in named[0]}
            bufs = [dict(m.named_buffers()) for m in members]
            buffers = {n: torch.stack([b[n] for b in bufs]) for n in bufs[0]}

            def call(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: Any) -> Any:
                return functional_call(base, (p, b), (x,))

            return vmap(call, in_dims=(0, 0, None), randomness="different")(params, buffers, x)
        return torch.stack([m(x) for m in members])

    def forward(self, x: Any) -> torch.Tensor:
        """The combined prediction (log of mean probabilities, or mean logits)."""
        out = self.member_outputs(x)
        if self.combine == "logits":
            return out.mean(0)
        return torch.logsumexp(torch.log_softmax(out, dim=-1), dim=0) - math.log(out.shape[0])
