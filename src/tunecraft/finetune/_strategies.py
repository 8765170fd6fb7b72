"""Fine-tuning strategies as values of one tunable parameter, behind :func:`prepare`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.finetune._adapters import ACTIVATIONS, add_adapters
from tunecraft.finetune._groups import (
    GroupSpec,
    LayerGroup,
    _spec_names,
    _transformer_layout,
    layer_groups,
)
from tunecraft.finetune._peft import PEFT_STRATEGIES, TextClassifier, apply_peft
from tunecraft.train._callbacks import Callback, FitState
from tunecraft.train._optim import _NORM_TYPES, make_optimizer

__all__ = ["STRATEGIES", "FineTuneSetup", "GradualUnfreezing", "prepare", "strategy_options"]

STRATEGIES = (
    "feature_extraction",
    "full",
    "gradual_unfreeze",
    "discriminative",
    "lora",
    "ia3",
    "prompt",
    "prefix",
    "adapter",
)

_Check = Callable[[Any, str, str], Any]


def _pos_int(value: Any, name: str, owner: str) -> Any:
    return check_int(value, name, owner, low=1)


def _factor(value: Any, name: str, owner: str) -> Any:
    check_float(value, name, owner, low=0.0, low_inclusive=False)
    if value > 1.0:
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be in (0, 1], got {value!r}."
        )
    return float(value)


def _pos_float(value: Any, name: str, owner: str) -> Any:
    return check_float(value, name, owner, low=0.0, low_inclusive=False)


def _dropout(value: Any, name: str, owner: str) -> Any:
    check_float(value, name, owner, low=0.0)
    if value >= 1.0:
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be in [0, 1), got {value!r}."
        )
    return float(value)


def _flag(value: Any, name: str, owner: str) -> Any:
    if not isinstance(value, bool):
        raise TypeError(f"The '{name}' parameter of {owner} must be a bool, got {value!r}.")
    return value


def _names(value: Any, name: str, owner: str) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(
        f"The '{name}' parameter of {owner} must be None, a string or a list of module names, "
        f"got {value!r}."
    )


def _activation(value: Any, name: str, owner: str) -> Any:
    return check_choice(value, name, owner, ACTIVATIONS)


# strategy -> option -> (default, check). Documented in prepare's docstring.
_OPTIONS: dict[str, dict[str, tuple[Any, _Check]]] = {
    "feature_extraction": {},
    "full": {"base_lr_factor": (0.1, _factor)},
    "gradual_unfreeze": {
        "unfreeze_every": (1, _pos_int),
        "initial_groups": (1, _pos_int),
        "base_lr_factor": (1.0, _factor),
    },
    "discriminative": {"base_lr_factor": (0.01, _factor)},
    "lora": {
        "r": (8, _pos_int),
        "alpha": (16.0, _pos_float),
        "dropout": (0.0, _dropout),
        "target_modules": (None, _names),
        "use_dora": (False, _flag),
        "use_rslora": (False, _flag),
    },
    "ia3": {"target_modules": (None, _names), "feedforward_modules": (None, _names)},
    "prompt": {"num_virtual_tokens": (8, _pos_int)},
    "prefix": {"num_virtual_tokens": (8, _pos_int), "prefix_projection": (False, _flag)},
    "adapter": {
        "bottleneck": (16, _pos_int),
        "activation": ("relu", _activation),
        "after": (None, _names),
    },
}


def strategy_options(strategy: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The options of ``strategy`` with defaults filled in and every value checked.

    Example:
        >>> strategy_options("lora", {"r": 4})["r"], strategy_options("lora")["alpha"]
        (4, 16.0)
    """
    check_choice(strategy, "strategy", "prepare", STRATEGIES)
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(
            f"The 'options' parameter of prepare(strategy={strategy!r}) must be a dict of "
            f"option values, got {options!r}."
        )
    spec = _OPTIONS[strategy]
    given = dict(options or {})
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise InvalidParameterError(
            f"The 'options' parameter of prepare(strategy={strategy!r}) has unknown key(s) "
            f"{unknown}; allowed: {sorted(spec) or 'none'}."
        )
    owner = f"prepare(strategy={strategy!r})"
    resolved: dict[str, Any] = {}
    for key, (default, check) in spec.items():
        value = given.get(key, default)
        resolved[key] = value if value is None and default is None else check(value, key, owner)
    return resolved


class GradualUnfreezing(Callback):
    """Unfreeze layer groups from the head down, one more every ``unfreeze_every`` epochs.

    Every group is in the optimizer from the first step; a frozen group has
    ``requires_grad=False``, so it gets no gradient and torch's optimizers skip it (no update,
    no weight decay, no momentum or Adam state until it trains). Which groups train is a pure
    function of the epoch, set at the start of each epoch, so a run resumed from a checkpoint
    freezes exactly the groups the uninterrupted run froze, and the optimizer and the
    learning-rate schedule always see the same parameter groups.

    Args:
        groups: Layer groups, base first (see :func:`~tunecraft.finetune.layer_groups`).
        unfreeze_every: Epochs between two unfreezings (``>= 1``).
        initial_groups: Groups trainable from the start, counted from the head.

    Example:
        >>> from torch import nn
        >>> from tunecraft.finetune import layer_groups
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
        >>> unfreeze = GradualUnfreezing(layer_groups(net), unfreeze_every=2)
        >>> [unfreeze.n_trainable(epoch) for epoch in range(6)]
        [1, 1, 2, 2, 3, 3]
    """

    def __init__(
        self, groups: Sequence[LayerGroup], *, unfreeze_every: int = 1, initial_groups: int = 1
    ) -> None:
        check_int(unfreeze_every, "unfreeze_every", "GradualUnfreezing", low=1)
        check_int(initial_groups, "initial_groups", "GradualUnfreezing", low=1)
        if not groups:
            raise InvalidParameterError(
                "The 'groups' parameter of GradualUnfreezing must hold at least one group."
            )
        self.groups = list(groups)
        self.unfreeze_every = unfreeze_every
        self.initial_groups = initial_groups

    def n_trainable(self, epoch: int) -> int:
        """How many groups (from the head) train during ``epoch`` (0-based)."""
        return min(len(self.groups), self.initial_groups + epoch // self.unfreeze_every)

    def apply(self, epoch: int) -> None:
        """Set ``requires_grad`` of every group for ``epoch``."""
        first = len(self.groups) - self.n_trainable(epoch)
        for i, group in enumerate(self.groups):
            group.set_trainable(i >= first)

    def on_fit_start(self, state: FitState) -> None:
        """Check that the optimizer holds every group, so an unfrozen group really trains.

        Raises:
            InvalidParameterError: Some group's parameters are not in the optimizer (for
                example ``fit(optimizer="adamw")``, which takes only the parameters trainable
                at the start).
        """
        in_optimizer = {id(p) for g in state.optimizer.param_groups for p in g["params"]}
        missing = [g.name for g in self.groups if any(id(p) not in in_optimizer for p in g.params)]
        if missing:
            raise InvalidParameterError(
                f"GradualUnfreezing: the optimizer lacks the parameters of group(s) {missing}, "
                "which would never train once unfrozen; pass "
                "optimizer=setup.make_optimizer(...) (every group's parameters), not a name."
            )

    def on_epoch_start(self, state: FitState) -> None:
        """Freeze and unfreeze the groups for this epoch."""
        self.apply(state.epoch)

    def state_dict(self) -> dict[str, Any]:
        """The settings, checked when a run resumes."""
        return {
            "n_groups": len(self.groups),
            "unfreeze_every": self.unfreeze_every,
            "initial_groups": self.initial_groups,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Check that the checkpoint was written with the same groups and schedule."""
        mine = self.state_dict()
        missing = sorted(k for k in mine if k not in state_dict)
        if missing:  # another callback's state, or one of an older release
            raise InvalidParameterError(
                f"GradualUnfreezing: the checkpoint's state lacks {missing}; it was not written "
                "by GradualUnfreezing."
            )
        theirs = {k: int(state_dict[k]) for k in mine}
        if theirs != mine:
            raise InvalidParameterError(
                f"GradualUnfreezing: the checkpoint was written with {theirs}, this run has "
                f"{mine}; resume with the same groups and unfreeze_every."
            )


def _no_decay_ids(model: nn.Module) -> set[int]:
    ids: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, _NORM_TYPES)
        for name, param in module.named_parameters(recurse=False):
            if is_norm or name == "bias" or name.endswith("_bias"):
                ids.add(id(param))
    return ids


@dataclass
class FineTuneSetup:
    """What :func:`prepare` returns: the model to train, its parameter groups and callbacks.

    Train with :func:`tunecraft.train.fit`::

        fit(setup.model, train, val, loss_fn=..., optimizer=setup.make_optimizer("adamw"),
            callbacks=[*setup.callbacks, ...], epochs=..., schedule="cosine")

    Attributes:
        model: The model to train (a PEFT model or the classifier around one for PEFT
            strategies; the given model, modified in place, otherwise).
        strategy: The strategy's name.
        lr: The head's learning rate.
        param_groups: ``{"name", "params", "lr"}`` dicts for the optimizer.
        callbacks: Callbacks for ``fit`` (gradual unfreezing's schedule).
        groups: The layer groups (empty for PEFT strategies).
        options: The strategy's options, defaults filled in.
    """

    model: nn.Module
    strategy: str
    lr: float
    param_groups: list[dict[str, Any]]
    callbacks: list[Callback] = field(default_factory=list)
    groups: list[LayerGroup] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def trainable_parameters(self) -> int:
        """Parameters with ``requires_grad`` now (before training, for gradual unfreezing)."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def total_parameters(self) -> int:
        """All parameters of the model."""
        return sum(p.numel() for p in self.model.parameters())

    def optimized_parameters(self) -> int:
        """Parameters in the optimizer's groups (every group that will ever train)."""
        return sum(p.numel() for g in self.param_groups for p in g["params"])

    def make_optimizer(
        self,
        name: str = "adamw",
        *,
        weight_decay: float = 0.0,
        exclude_bias_and_norm: bool = True,
        options: Mapping[str, Any] | None = None,
    ) -> torch.optim.Optimizer:
        """A torch optimizer over :attr:`param_groups`, each at its own learning rate.

        Args:
            name: An optimizer name of :func:`tunecraft.train.make_optimizer`.
            weight_decay: Weight decay; biases and normalization weights get none when
                ``exclude_bias_and_norm``.
            exclude_bias_and_norm: Leave biases and normalization weights undecayed.
            options: More keyword arguments of the torch optimizer.
        """
        check_float(weight_decay, "weight_decay", "FineTuneSetup.make_optimizer", low=0.0)
        skip = _no_decay_ids(self.model) if exclude_bias_and_norm else set()
        groups: list[dict[str, Any]] = []
        for group in self.param_groups:
            decay = [p for p in group["params"] if id(p) not in skip]
            plain = [p for p in group["params"] if id(p) in skip]
            for params, wd, suffix in ((decay, weight_decay, ""), (plain, 0.0, ".no_decay")):
                if params:
                    groups.append(
                        {
                            "params": params,
                            "lr": group["lr"],
                            "weight_decay": wd,
                            "name": group["name"] + suffix,
                        }
                    )
        return make_optimizer(name, groups, lr=self.lr, weight_decay=weight_decay, options=options)


def _group_lrs(n: int, lr: float, factor: float, spread: bool) -> list[float]:
    """Learning rates base first: geometric from ``lr * factor`` to ``lr`` (or flat base)."""
    if n == 1:
        return [lr]
    if not spread:
        return [lr * factor] * (n - 1) + [lr]
    return [lr * factor ** ((n - 1 - i) / (n - 1)) for i in range(n)]


def _head_name(model: nn.Module, head: str | nn.Module | None) -> str | None:
    if head is not None:  # checked as layer_groups checks it: a typo would freeze the head
        name = _spec_names(model, head, "head")[0]
        if not any(True for _ in model.get_submodule(name).parameters()):
            raise InvalidParameterError(
                f"The 'head' parameter names {name!r}, which has no parameters."
            )
        return name
    if isinstance(model, nn.Sequential):
        return layer_groups(model)[-1].name
    return None


def _default_after(model: nn.Module, groups: list[LayerGroup]) -> list[str]:
    layout = _transformer_layout(model)
    if layout is not None:
        return layout[1]
    modules = dict(model.named_modules())
    after = [g.name for g in groups[:-1] if g.name in modules]
    if not after:
        raise InvalidParameterError(
            "prepare(strategy='adapter') found no layer to follow with an adapter; pass "
            "options={'after': [submodule names]}."
        )
    return after


def prepare(
    model: nn.Module,
    strategy: str,
    *,
    lr: float,
    head: str | nn.Module | None = None,
    groups: Sequence[GroupSpec] | None = None,
    options: Mapping[str, Any] | None = None,
) -> FineTuneSetup:
    """Set ``model`` up for fine-tuning with ``strategy``: one tunable choice among many.

    ======================  ===================================================================
    ``feature_extraction``  The base frozen; only the head (the last layer group) trains.
    ``full``                Every layer trains; the base at ``lr * base_lr_factor`` (0.1).
    ``gradual_unfreeze``    The head first; one more group (from the top) every
                            ``unfreeze_every`` epochs (1), ``initial_groups`` (1) at the start;
                            with ``base_lr_factor`` < 1 (default 1) rates spread as below.
    ``discriminative``      Every layer trains; rates spread geometrically from ``lr`` (head)
                            to ``lr * base_lr_factor`` (0.01, the first group), like fastai's
                            ``slice(low, high)``.
    ``lora``                PEFT LoRA: ``r`` (8), ``alpha`` (16), ``dropout`` (0),
                            ``target_modules``, ``use_dora``, ``use_rslora``.
    ``ia3``                 PEFT IA3: ``target_modules``, ``feedforward_modules``.
    ``prompt``              PEFT prompt tuning: ``num_virtual_tokens`` (8). Transformers only.
    ``prefix``              PEFT prefix tuning: ``num_virtual_tokens`` (8),
                            ``prefix_projection``. Transformers only.
    ``adapter``             Bottleneck adapters (``bottleneck`` 16, ``activation``) after the
                            layers named in ``after`` (default: each encoder layer, or each
                            group but the head); only adapters and head train.
    ======================  ===================================================================

    Layer groups come from :func:`layer_groups` (``groups`` overrides them). LoRA and IA3
    target, by default, a BERT-like encoder's attention (never its pooler) or a plain model's
    ``nn.Linear`` layers except the head, which trains fully. For a :class:`TextClassifier`,
    PEFT wraps the encoder and the classifier's head trains; for a plain module, the head goes
    into PEFT's ``modules_to_save`` (a plain module other than ``nn.Sequential`` needs ``head``);
    so does a transformers model's task head (``classifier``, ``score``: what a
    ``...ForSequenceClassification`` model adds), as in PEFT's own classification models.

    The model is modified in place (``requires_grad``, adapters); PEFT strategies return a
    wrapped model in :attr:`FineTuneSetup.model`.

    Args:
        model: The pretrained model with its new head.
        strategy: One of :data:`STRATEGIES`.
        lr: The head's learning rate (the peak, when a schedule is used).
        head: The head (a submodule or its name); default the last layer group (for PEFT
            strategies on a transformers model, its ``classifier`` or ``score``, if any).
        groups: Layer groups, base first, when they cannot be found automatically.
        options: The strategy's options (the table above); unknown keys are an error.

    Returns:
        A :class:`FineTuneSetup`.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 2))
        >>> setup = prepare(net, "discriminative", lr=1e-2, options={"base_lr_factor": 0.01})
        >>> [round(g["lr"], 6) for g in setup.param_groups]
        [0.0001, 0.001, 0.01]
        >>> setup = prepare(net, "feature_extraction", lr=1e-2)
        >>> setup.trainable_parameters()
        18
    """
    check_choice(strategy, "strategy", "prepare", STRATEGIES)
    check_float(lr, "lr", "prepare", low=0.0, low_inclusive=False)
    if not isinstance(model, nn.Module):
        raise TypeError(f"The 'model' parameter of prepare must be an nn.Module, got {model!r}.")
    opts = strategy_options(strategy, options)

    if strategy in PEFT_STRATEGIES:
        head_name = None if isinstance(model, TextClassifier) else _head_name(model, head)
        wrapped = apply_peft(model, strategy, opts, head=head_name)
        params = [p for p in wrapped.parameters() if p.requires_grad]
        return FineTuneSetup(
            model=wrapped,
            strategy=strategy,
            lr=float(lr),
            param_groups=[{"name": strategy, "params": params, "lr": float(lr)}],
            options=opts,
        )

    found = layer_groups(model, groups, head=head)
    if len(found) < 2:
        raise InvalidParameterError(
            f"prepare(strategy={strategy!r}) needs at least two layer groups (a base and a "
            f"head); found {[g.name for g in found]}. Pass 'groups'."
        )
    n = len(found)
    callbacks: list[Callback] = []
    if strategy == "adapter":
        for p in model.parameters():
            p.requires_grad_(False)
        after = opts["after"] if opts["after"] is not None else _default_after(model, found)
        adapters = add_adapters(
            model,
            [after] if isinstance(after, str) else after,
            bottleneck=opts["bottleneck"],
            activation=opts["activation"],
        )
        adapter_params = [p for a in adapters for p in a.parameters()]
        found[-1].set_trainable(True)
        for p in adapter_params:
            p.requires_grad_(True)
        param_groups = [
            {"name": "adapters", "params": adapter_params, "lr": float(lr)},
            {"name": found[-1].name, "params": list(found[-1].params), "lr": float(lr)},
        ]
        return FineTuneSetup(model, strategy, float(lr), param_groups, [], found, opts)

    if strategy == "feature_extraction":
        lrs = [float(lr)] * n
        chosen = found[-1:]
    else:
        factor = opts["base_lr_factor"]
        lrs = _group_lrs(n, float(lr), factor, spread=strategy != "full")
        chosen = found
    for g in found:
        g.set_trainable(g in chosen)
    if strategy == "gradual_unfreeze":
        unfreeze = GradualUnfreezing(
            found, unfreeze_every=opts["unfreeze_every"], initial_groups=opts["initial_groups"]
        )
        unfreeze.apply(0)
        callbacks.append(unfreeze)
    offset = n - len(chosen)
    param_groups = [
        {"name": g.name, "params": list(g.params), "lr": lrs[offset + i]}
        for i, g in enumerate(chosen)
    ]
    return FineTuneSetup(model, strategy, float(lr), param_groups, callbacks, found, opts)
