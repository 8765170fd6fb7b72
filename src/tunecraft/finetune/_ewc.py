"""Elastic weight consolidation (Kirkpatrick et al., 2017) and its online variant (Schwarz et
al., 2018): a quadratic penalty that holds the weights important for old tasks near their old
values, importance measured by the diagonal of the Fisher information.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.logging import get_logger

__all__ = ["EWC", "fisher_diagonal"]

_log = get_logger("finetune")
_KINDS = ("empirical", "true")
LossFn = Callable[[Any, Any], torch.Tensor]


def _select(model: nn.Module, parameters: Iterable[str] | None, owner: str) -> list[str]:
    """The parameters to track: every trainable one, or those named (frozen ones included, for
    layers unfrozen later) or under named modules."""
    if parameters is None:
        chosen = [n for n, p in model.named_parameters() if p.requires_grad]
        if not chosen:
            raise InvalidParameterError(
                f"{owner}: the model has no trainable parameter; name the ones to protect with "
                "'parameters'."
            )
        return chosen
    names = [n for n, _ in model.named_parameters()]
    wanted = [parameters] if isinstance(parameters, str) else list(parameters)
    chosen = [n for n in names if any(n == w or n.startswith(w + ".") for w in wanted)]
    if not chosen:
        raise InvalidParameterError(
            f"The 'parameters' parameter of {owner} matches no parameter of the model "
            f"(got {parameters!r}; parameters: {names[:5]}{'...' if len(names) > 5 else ''})."
        )
    return chosen


def _split(batch: Any, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    raise InvalidParameterError(
        f"{owner} expects batches of (inputs, targets) pairs, got {type(batch).__name__}."
    )


def fisher_diagonal(
    model: nn.Module,
    data: Iterable[Any],
    *,
    kind: str = "empirical",
    parameters: Iterable[str] | None = None,
    max_batches: int | None = None,
    vectorize: bool = True,
) -> dict[str, torch.Tensor]:
    """The diagonal Fisher information of a classifier, averaged over the samples of ``data``.

    The model maps a batch of inputs to logits ``(n, n_classes)``; the log-likelihood of a sample
    is ``log_softmax(logits)[label]``. Per-sample gradients are computed with ``torch.func``
    (``vmap`` over ``grad``), the model in eval mode (no dropout, BatchNorm running statistics).

    - ``kind="empirical"``: ``mean_i (d log p(y_i | x_i) / d theta)^2`` with the data's labels
      ``y_i``: cheap (one gradient per sample), the usual choice in EWC code.
    - ``kind="true"``: ``mean_i sum_c p(c | x_i) (d log p(c | x_i) / d theta)^2``, the exact
      expectation over the model's own predictive distribution (one Jacobian row per class):
      the Fisher information proper; labels are not used.

    Memory: the vectorized path holds one gradient per sample of a batch (times the number of
    classes for ``"true"``); for large models feed small batches, or use ``parameters`` to
    restrict the computation to the layers being fine-tuned.

    Args:
        model: The classifier (its mode is restored afterwards).
        data: ``(inputs, labels)`` batches of the task to remember (inputs a tensor whose
            first dimension is the batch).
        kind: ``"empirical"`` or ``"true"``.
        parameters: Names of parameters (or of modules, as prefixes) to compute it for; all
            trainable parameters by default.
        max_batches: Use at most this many batches.
        vectorize: Use ``torch.func.vmap``; ``False`` loops over samples (for models whose
            operations ``vmap`` does not support).

    Returns:
        ``{parameter name: tensor of the parameter's shape and dtype}`` (summed in float32 at
        least, so a half-precision model's Fisher does not stall over many batches).

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(2, 2)
        >>> data = [(torch.randn(8, 2), torch.randint(0, 2, (8,)))]
        >>> fisher = fisher_diagonal(model, data)
        >>> sorted(fisher), fisher["weight"].shape
        (['bias', 'weight'], torch.Size([2, 2]))
    """
    owner = "fisher_diagonal"
    check_choice(kind, "kind", owner, _KINDS)
    check_int(max_batches, "max_batches", owner, low=1, allow_none=True)
    names = _select(model, parameters, owner)
    params = dict(model.named_parameters())
    tracked = {n: params[n].detach() for n in names}
    others = {n: p.detach() for n, p in params.items() if n not in tracked}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    device = next(iter(tracked.values())).device
    # Accumulate in float32 at least: a bfloat16 sum stalls once it is ~256 times a term.
    sums = {
        n: torch.zeros_like(p, dtype=torch.promote_types(p.dtype, torch.float32))
        for n, p in tracked.items()
    }
    count = 0

    def log_probs(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, ({**p, **others}, buffers), (x.unsqueeze(0),))
        return torch.log_softmax(out, dim=-1).squeeze(0)

    def empirical(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> Any:
        return grad(lambda q: log_probs(q, x).gather(0, y.reshape(1)).sum())(p)

    def true(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> Any:
        jac = jacrev(log_probs)(p, x)  # {name: (n_classes, *shape)}
        prob = log_probs(p, x).exp().detach()
        return {
            n: (prob.reshape(-1, *([1] * (g.dim() - 1))) * g.pow(2)).sum(0) for n, g in jac.items()
        }

    per_sample = empirical if kind == "empirical" else true
    was_training = model.training
    model.eval()
    try:
        for i, batch in enumerate(data):
            if max_batches is not None and i >= max_batches:
                break
            x, y = _split(batch, owner)
            x, y = x.to(device), torch.as_tensor(y).to(device)
            if x.shape[0] == 0:
                continue
            if vectorize:
                g = vmap(per_sample, in_dims=(None, 0, 0))(tracked, x, y)
                values = {n: v.pow(2) if kind == "empirical" else v for n, v in g.items()}
                for n in names:
                    sums[n] += values[n].sum(0, dtype=sums[n].dtype)
            else:
                for j in range(x.shape[0]):
                    g1 = per_sample(tracked, x[j], y[j])
                    for n in names:
                        sums[n] += (g1[n].pow(2) if kind == "empirical" else g1[n]).to(
                            sums[n].dtype
                        )
            count += int(x.shape[0])
    finally:
        model.train(was_training)
    if count == 0:
        raise InvalidParameterError(
            f"The 'data' parameter of {owner} gave no samples; pass the old task's batches."
        )
    return {n: (s / count).to(tracked[n].dtype) for n, s in sums.items()}


class EWC:
    """Elastic weight consolidation: ``strength / 2 * sum_i F_i (theta_i - theta*_i)^2``.

    After training on a task, :meth:`consolidate` computes the diagonal Fisher information ``F``
    on that task's data and anchors ``theta*`` at the current weights; while training on the
    next task, :meth:`penalty` (or the loss :meth:`wrap` returns) pulls important weights back.

    With ``online=False`` each consolidated task keeps its own Fisher and anchor and their
    penalties add up (Kirkpatrick et al.). With ``online=True`` one Fisher is accumulated,
    ``F <- gamma * F + F_new``, anchored at the latest weights (online EWC, Schwarz et al.):
    memory stays constant however many tasks come.

    ``strength`` is tunable (a log scale from about 1 to 1e5 is the usual range; it depends on
    the loss scale and on how many samples the Fisher averages), and can be changed between
    tasks: ``ewc.strength = 100.0``.

    Args:
        model: The model being fine-tuned (the penalty reads its live parameters).
        strength: The penalty weight ``lambda`` (>= 0).
        fisher: ``"empirical"`` (gradients at the data's labels) or ``"true"`` (expectation
            over the model's predictions); see :func:`fisher_diagonal`.
        online: Accumulate one Fisher over tasks instead of keeping one per task.
        gamma: Decay of the accumulated Fisher in online mode, in ``(0, 1]``.
        parameters: Names of parameters (or module prefixes such as ``"backbone"``) to protect,
            frozen ones included (gradual unfreezing trains them later); by default every
            parameter trainable now.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(4, 3)
        >>> old_task = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
        >>> ewc = EWC(model, strength=100.0)
        >>> ewc.consolidate(old_task)
        >>> ewc.penalty().item()  # at the anchor
        0.0
        >>> with torch.no_grad():
        ...     _ = model.weight.add_(0.5)
        >>> ewc.penalty().item() > 0
        True
        >>> loss_fn = ewc.wrap(torch.nn.functional.cross_entropy)  # for tunecraft.train.fit
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        strength: float = 1.0,
        fisher: str = "empirical",
        online: bool = False,
        gamma: float = 1.0,
        parameters: Iterable[str] | None = None,
    ) -> None:
        owner = "EWC"
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"The 'model' parameter of EWC must be a torch.nn.Module, got {type(model)!r}."
            )
        check_choice(fisher, "fisher", owner, _KINDS)
        gamma_ = check_float(gamma, "gamma", owner, low=0.0, low_inclusive=False)
        if gamma_ is None or gamma_ > 1.0:
            raise InvalidParameterError(
                f"The 'gamma' parameter of EWC must be a float in (0, 1], got {gamma!r}."
            )
        self.model = model
        self.strength = strength
        self.fisher_kind = fisher
        self.online = bool(online)
        self.gamma = gamma_
        self.parameters = _select(model, parameters, owner)
        self.tasks: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []
        self.n_consolidated = 0

    @property
    def strength(self) -> float:
        """The penalty weight ``lambda``."""
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        self._strength = float(check_float(value, "strength", "EWC", low=0.0))  # type: ignore[arg-type]

    def consolidate(
        self, data: Iterable[Any], *, max_batches: int | None = None, vectorize: bool = True
    ) -> None:
        """Remember the task just learned: its Fisher on ``data``, anchored at the current weights.

        Args:
            data: ``(inputs, labels)`` batches of the task just trained (its training data).
            max_batches: Use at most this many batches for the Fisher.
            vectorize: See :func:`fisher_diagonal`.
        """
        fisher = fisher_diagonal(
            self.model,
            data,
            kind=self.fisher_kind,
            parameters=self.parameters,
            max_batches=max_batches,
            vectorize=vectorize,
        )
        total = sum(float(f.sum()) for f in fisher.values())
        if total == 0.0:
            _log.warning(
                "EWC.consolidate: the Fisher information is zero everywhere (the model fits the "
                "data perfectly or the parameters do not affect the output); the penalty will "
                "be zero."
            )
        params = dict(self.model.named_parameters())
        anchor = {n: params[n].detach().clone() for n in self.parameters}
        if self.online and self.tasks:
            old, _ = self.tasks[0]
            fisher = {n: self.gamma * old[n].to(fisher[n].device) + fisher[n] for n in fisher}
            self.tasks = [(fisher, anchor)]
        else:
            self.tasks.append((fisher, anchor))
        self.n_consolidated += 1

    @property
    def fisher(self) -> dict[str, torch.Tensor]:
        """The Fisher diagonals summed over the remembered tasks (empty before consolidating)."""
        total: dict[str, torch.Tensor] = {}
        for fisher, _ in self.tasks:
            for n, f in fisher.items():
                total[n] = total[n] + f if n in total else f.clone()
        return total

    def penalty(self) -> torch.Tensor:
        """``strength / 2 * sum_tasks sum_i F_i (theta_i - theta*_i)^2``, differentiable in the
        model's parameters; zero before the first :meth:`consolidate`."""
        params = dict(self.model.named_parameters())
        device = params[self.parameters[0]].device
        total = torch.zeros((), device=device)
        for fisher, anchor in self.tasks:
            for n in self.parameters:
                p = params[n]
                diff = p - anchor[n].to(p.device)
                total = total + (fisher[n].to(p.device) * diff.pow(2)).sum()
        return 0.5 * self.strength * total

    def wrap(self, loss_fn: LossFn, *, only_training: bool = True) -> LossFn:
        """A loss ``loss_fn(outputs, targets) + penalty()`` for :func:`tunecraft.train.fit`.

        With gradient accumulation, ``fit`` weights the micro-batches' losses by shares that sum
        to one, so the penalty enters each optimizer step exactly once.

        Args:
            loss_fn: The task loss.
            only_training: Add the penalty only while gradients are recorded, so the validation
                loss ``fit`` reports (computed under ``torch.no_grad``) stays the task loss.
        """
        if not callable(loss_fn):
            raise TypeError(
                f"The 'loss_fn' parameter of EWC.wrap must be callable, got {loss_fn!r}."
            )

        def loss(outputs: Any, targets: Any) -> torch.Tensor:
            value = loss_fn(outputs, targets)
            if only_training and not torch.is_grad_enabled():
                return value
            return value + self.penalty()

        return loss

    def state_dict(self) -> dict[str, Any]:
        """The remembered Fishers and anchors, for saving with ``torch.save``."""
        return {
            "strength": self.strength,
            "online": self.online,
            "gamma": self.gamma,
            "n_consolidated": self.n_consolidated,
            "tasks": [{"fisher": dict(f), "anchor": dict(a)} for f, a in self.tasks],
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        tasks = [(dict(t["fisher"]), dict(t["anchor"])) for t in state_dict["tasks"]]
        for fisher, _ in tasks:
            missing = set(self.parameters) - set(fisher)
            if missing:
                raise InvalidParameterError(
                    f"EWC.load_state_dict: the state lacks parameters {sorted(missing)[:3]}."
                )
        self.strength = state_dict["strength"]
        self.online = bool(state_dict["online"])
        self.gamma = float(state_dict["gamma"])
        self.n_consolidated = int(state_dict["n_consolidated"])
        self.tasks = tasks

    def __repr__(self) -> str:
        return (
            f"EWC(strength={self.strength:g}, fisher={self.fisher_kind!r}, online={self.online}, "
            f"tasks={self.n_consolidated})"
        )
