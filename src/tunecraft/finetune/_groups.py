"""Layer groups: a model's parameters split into ordered groups, base first, head last."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from tunecraft.exceptions import InvalidParameterError

__all__ = ["LayerGroup", "find_module_name", "layer_groups"]

GroupSpec = str | nn.Module | Sequence[str | nn.Module]


@dataclass
class LayerGroup:
    """A named set of parameters that is frozen, unfrozen and given a learning rate together.

    Attributes:
        name: The group's name (a submodule name, or ``"head"``).
        param_names: The full names of its parameters in the model.
        params: The parameters themselves (same order as ``param_names``).
    """

    name: str
    param_names: list[str] = field(default_factory=list)
    params: list[nn.Parameter] = field(default_factory=list)

    @property
    def numel(self) -> int:
        """How many scalar parameters the group holds."""
        return sum(p.numel() for p in self.params)

    def set_trainable(self, trainable: bool) -> None:
        """Set ``requires_grad`` on every parameter of the group."""
        for p in self.params:
            p.requires_grad_(trainable)


def find_module_name(model: nn.Module, module: nn.Module) -> str:
    """The name of ``module`` inside ``model`` (``""`` for the model itself).

    Raises:
        InvalidParameterError: ``module`` is not part of ``model``.
    """
    for name, sub in model.named_modules():
        if sub is module:
            return name
    raise InvalidParameterError(
        f"The module {type(module).__name__} is not a submodule of the model "
        f"{type(model).__name__}."
    )


def _submodule(model: nn.Module, name: str, what: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise InvalidParameterError(
            f"The '{what}' parameter names {name!r}, which is not a submodule of "
            f"{type(model).__name__} (its children: {names})."
        ) from None


def _params_of(model: nn.Module, prefix: str) -> list[tuple[str, nn.Parameter]]:
    module = model.get_submodule(prefix) if prefix else model
    dot = f"{prefix}." if prefix else ""
    return [(dot + n, p) for n, p in module.named_parameters()]


def _sequential_groups(model: nn.Sequential, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Children with parameters, nested ``nn.Sequential`` flattened."""
    out: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            out.extend(_sequential_groups(child, f"{full}."))
        elif any(True for _ in child.parameters()):
            out.append((full, child))
    return out


def _transformer_layout(model: nn.Module) -> tuple[str, list[str]] | None:
    """``(embeddings name, [layer names])`` of the first BERT-like encoder inside ``model``."""
    for name, module in model.named_modules():
        embeddings = getattr(module, "embeddings", None)
        if not isinstance(embeddings, nn.Module):
            continue
        for attr in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
            try:
                layers = module.get_submodule(attr)
            except AttributeError:
                continue
            if isinstance(layers, nn.ModuleList) and len(layers) > 0:
                dot = f"{name}." if name else ""
                return f"{dot}embeddings", [f"{dot}{attr}.{i}" for i in range(len(layers))]
    return None


def _spec_names(model: nn.Module, spec: GroupSpec, what: str) -> list[str]:
    items: Sequence[str | nn.Module] = [spec] if isinstance(spec, (str, nn.Module)) else list(spec)
    names: list[str] = []
    for item in items:
        if isinstance(item, nn.Module):
            names.append(find_module_name(model, item))
        elif isinstance(item, str):
            _submodule(model, item, what)
            names.append(item)
        else:
            raise TypeError(
                f"The '{what}' parameter must hold submodule names or modules, got {item!r}."
            )
    return names


def layer_groups(
    model: nn.Module,
    groups: Sequence[GroupSpec] | None = None,
    *,
    head: str | nn.Module | None = None,
) -> list[LayerGroup]:
    """Split ``model``'s parameters into layer groups ordered from the base to the head.

    Found automatically for

    - ``nn.Sequential``: one group per child that has parameters (nested ``nn.Sequential`` are
      flattened; activations and dropout, which have none, are skipped), the last one the head;
    - BERT-like transformers encoders (a module with ``embeddings`` and ``encoder.layer``, also
      inside a wrapper such as :class:`~tunecraft.finetune.TextClassifier`): the embeddings,
      each encoder layer, then every remaining parameter as ``"head"``.

    Otherwise give ``groups``: submodule names (or modules, or lists of them for a group of
    several), base first. Every parameter must belong to exactly one group.

    Args:
        model: The model.
        groups: Explicit groups, base first; ``None`` finds them automatically.
        head: A submodule (or its name) to make the last group, taken out of the others.

    Returns:
        The groups, base first, head last. Parameters are listed once even when shared.

    Raises:
        InvalidParameterError: No groups can be found, a name is not a submodule, or the
            given groups leave parameters out or overlap.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> [(g.name, g.numel) for g in layer_groups(net)]
        [('0', 40), ('2', 18)]
    """
    all_params = dict(model.named_parameters())
    if not all_params:
        raise InvalidParameterError(f"The model {type(model).__name__} has no parameters.")
    named: list[tuple[str, list[str]]] = []  # (group name, module prefixes)
    if groups is not None:
        if isinstance(groups, (str, nn.Module)) or len(groups) == 0:
            raise InvalidParameterError(
                "The 'groups' parameter of layer_groups must be a non-empty list of groups "
                f"(submodule names or modules, base first), got {groups!r}."
            )
        for spec in groups:
            prefixes = _spec_names(model, spec, "groups")
            named.append(("+".join(prefixes) or "model", prefixes))
    elif isinstance(model, nn.Sequential):
        named = [(name, [name]) for name, _ in _sequential_groups(model)]
    else:
        layout = _transformer_layout(model)
        if layout is None:
            raise InvalidParameterError(
                f"Cannot find the layer groups of {type(model).__name__} automatically (only "
                "nn.Sequential and BERT-like transformers encoders are recognized); pass "
                "groups=[...] with submodule names, base first."
            )
        embeddings, layers = layout
        named = [(embeddings, [embeddings])] + [(name, [name]) for name in layers]

    seen: dict[int, str] = {}
    result: list[LayerGroup] = []
    for gname, prefixes in named:
        group = LayerGroup(gname)
        for prefix in prefixes:
            for pname, param in _params_of(model, prefix):
                if id(param) in seen:
                    if seen[id(param)] != gname:
                        raise InvalidParameterError(
                            f"The 'groups' parameter of layer_groups puts {pname!r} in two "
                            f"groups ({seen[id(param)]!r} and {gname!r})."
                        )
                    continue
                seen[id(param)] = gname
                group.param_names.append(pname)
                group.params.append(param)
        if group.params:
            result.append(group)

    left = [n for n, p in all_params.items() if id(p) not in seen]
    if left and groups is not None:
        raise InvalidParameterError(
            f"The 'groups' parameter of layer_groups leaves parameters out: {left[:5]}"
            f"{' ...' if len(left) > 5 else ''}; add their modules to a group."
        )
    if left:  # the transformer's head: everything outside embeddings and layers
        result.append(LayerGroup("head", left, [all_params[n] for n in left]))

    if head is not None:
        hname = _spec_names(model, head, "head")[0]
        hparams = _params_of(model, hname)
        if not hparams:
            raise InvalidParameterError(
                f"The 'head' parameter names {hname!r}, which has no parameters."
            )
        hids = {id(p) for _, p in hparams}
        rest: list[LayerGroup] = []
        for g in result:
            keep = [
                (n, p) for n, p in zip(g.param_names, g.params, strict=True) if id(p) not in hids
            ]
            if keep:
                rest.append(LayerGroup(g.name, [n for n, _ in keep], [p for _, p in keep]))
        result = [*rest, LayerGroup(hname, [n for n, _ in hparams], [p for _, p in hparams])]
    return result
