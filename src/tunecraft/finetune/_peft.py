"""Parameter-efficient fine-tuning through ``peft``: LoRA, IA3, prompt and prefix tuning.

A text classifier wrapper (encoder, mean pooling that knows about virtual tokens, linear head),
the PEFT configs built from tunecraft options with sensible target modules, and adapter
save / load / merge.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunecraft._imports import require
from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError

__all__ = [
    "HEAD_FILE",
    "PEFT_STRATEGIES",
    "TextClassifier",
    "default_target_modules",
    "load_adapter",
    "merge_adapter",
    "save_adapter",
]

PEFT_STRATEGIES = ("lora", "ia3", "prompt", "prefix")
HEAD_FILE = "tunecraft_head.pt"
_POOLINGS = ("mean", "cls")


def _peft() -> Any:
    return require("peft", "peft", purpose="parameter-efficient fine-tuning")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the deprecation warning peft triggers in transformers (not ours to fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        yield


def is_transformer(model: nn.Module) -> bool:
    """Whether ``model`` looks like a transformers ``PreTrainedModel``."""
    return hasattr(model, "config") and hasattr(model, "get_input_embeddings")


def _is_prompt_learning(encoder: nn.Module) -> bool:
    config = getattr(encoder, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


class TextClassifier(nn.Module):
    """A transformers encoder, pooling over the real tokens, and a linear head.

    ``forward`` takes the tokenizer's output (a mapping with ``input_ids`` and
    ``attention_mask``; a bare ``input_ids`` tensor works too) and returns logits. Pooling reads
    the attention mask, so padding never changes a sentence's logits. Prompt tuning makes the
    encoder return more positions than the mask has (its virtual tokens come first); they are
    left out of the pooling, which always covers the sentence's own tokens. Prefix tuning keeps
    the length and needs nothing special.

    Args:
        encoder: A transformers encoder (``AutoModel.from_pretrained(...)``), or a PEFT model
            around one.
        num_classes: Outputs of the head.
        pooling: ``"mean"`` (mean of the real tokens) or ``"cls"`` (the first real token).
        dropout: Dropout before the head.
        hidden_size: The encoder's output size; read from ``encoder.config`` by default.
        drop_pooler: Remove the encoder's ``pooler`` (BERT's, unused here), so that it is
            neither trained nor counted.

    Example:
        >>> from tunecraft.finetune import TextClassifier
        >>> # model = TextClassifier(AutoModel.from_pretrained(path), num_classes=4)
        >>> # logits = model(tokenizer(["a sentence"], return_tensors="pt"))
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        *,
        pooling: str = "mean",
        dropout: float = 0.0,
        hidden_size: int | None = None,
        drop_pooler: bool = True,
    ) -> None:
        super().__init__()
        check_int(num_classes, "num_classes", "TextClassifier", low=1)
        check_choice(pooling, "pooling", "TextClassifier", _POOLINGS)
        check_float(dropout, "dropout", "TextClassifier", low=0.0)
        if dropout >= 1:  # nn.Dropout takes p in [0, 1]; 1 would zero every feature
            raise InvalidParameterError(
                f"The 'dropout' parameter of TextClassifier must be in [0, 1), got {dropout!r}."
            )
        if hidden_size is None:
            hidden_size = getattr(getattr(encoder, "config", None), "hidden_size", None)
            if hidden_size is None:
                raise InvalidParameterError(
                    "TextClassifier cannot read the encoder's hidden size from "
                    "encoder.config.hidden_size; pass 'hidden_size'."
                )
        check_int(hidden_size, "hidden_size", "TextClassifier", low=1)
        if drop_pooler and isinstance(getattr(encoder, "pooler", None), nn.Module):
            encoder.pooler = None  # type: ignore[assignment]
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(hidden_size), num_classes)

    def features(
        self, inputs: Mapping[str, torch.Tensor] | torch.Tensor, attention_mask: Any = None
    ) -> torch.Tensor:
        """The pooled sentence features ``(batch, hidden_size)``."""
        extra: dict[str, torch.Tensor] = {}
        if isinstance(inputs, torch.Tensor):
            input_ids = inputs
        else:
            input_ids = inputs["input_ids"]
            attention_mask = inputs.get("attention_mask", attention_mask)
            if "token_type_ids" in inputs and not _is_prompt_learning(self.encoder):
                extra["token_type_ids"] = inputs["token_type_ids"]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        length = attention_mask.shape[1]
        if hidden.shape[1] < length:
            raise RuntimeError(
                f"The encoder returned {hidden.shape[1]} positions for {length} tokens."
            )
        hidden = hidden[:, hidden.shape[1] - length :]  # virtual tokens come first
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return pooled

    def forward(
        self, inputs: Mapping[str, torch.Tensor] | torch.Tensor, attention_mask: Any = None
    ) -> torch.Tensor:
        """Logits ``(batch, num_classes)``."""
        return self.head(self.dropout(self.features(inputs, attention_mask)))


def _module_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def _linear_names(model: nn.Module, exclude: Sequence[str] = ()) -> list[str]:
    out = []
    for name, module in model.named_modules():
        if not name or not isinstance(module, nn.Linear):
            continue
        if any(name == e or name.startswith(f"{e}.") for e in exclude):
            continue
        if "pooler" in name.split("."):
            continue
        out.append(name)
    return out


def _is_bert_like(model: nn.Module) -> bool:
    return any(name.endswith("attention.self.query") for name in _module_names(model))


def default_target_modules(
    model: nn.Module, strategy: str, *, head: str | None = None
) -> tuple[list[str] | None, list[str] | None]:
    """The default ``(target_modules, feedforward_modules)`` of LoRA or IA3 for ``model``.

    BERT-like encoders (MiniLM): LoRA on the attention ``query`` and ``value`` projections;
    IA3 on ``key``, ``value`` and each feed-forward down-projection (scaled on its input, as
    the IA3 paper does). Never the pooler. Plain PyTorch modules: every ``nn.Linear`` except
    the head (which is trained fully). Other transformers models: ``None`` (PEFT's own
    defaults for the architecture).

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> default_target_modules(net, "lora", head="2")
        (['0'], None)
    """
    check_choice(strategy, "strategy", "default_target_modules", ("lora", "ia3"))
    if _is_bert_like(model):
        names = _module_names(model)
        ffn = [n for n in names if n.endswith("output.dense") and ".attention." not in f".{n}"]
        if strategy == "lora":
            return ["query", "value"], None
        kv = [n for n in names if n.endswith(("attention.self.key", "attention.self.value"))]
        return kv + ffn, ffn
    if is_transformer(model):
        return None, None
    linears = _linear_names(model, exclude=[head] if head else [])
    if not linears:
        raise InvalidParameterError(
            f"{type(model).__name__} has no nn.Linear outside the head for {strategy}; pass "
            "options={'target_modules': [...]}."
        )
    return linears, (linears if strategy == "ia3" else None)


def _check_targets(model: nn.Module, targets: Any, owner: str, name: str) -> list[str] | str:
    names = _module_names(model)
    if isinstance(targets, str):
        if targets == "all-linear":
            return _linear_names(model)
        if not any(re.fullmatch(targets, n) for n in names):
            raise InvalidParameterError(
                f"The '{name}' parameter of {owner} is the pattern {targets!r}, which matches no "
                f"module of {type(model).__name__}; linear modules: {_linear_names(model)[:6]}."
            )
        return targets
    if not isinstance(targets, (list, tuple)) or not targets:
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be a non-empty list of module names, a "
            f"regex or 'all-linear', got {targets!r}."
        )
    unmatched = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if unmatched:
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} names {unmatched}, which match no module of "
            f"{type(model).__name__}; linear modules: {_linear_names(model)[:6]}."
        )
    return list(targets)


def _task_heads(model: nn.Module) -> list[str] | None:
    """The new task head of a transformers model (``...ForSequenceClassification``): the
    children PEFT's own classification models train fully (``classifier``, ``score``,
    ``pre_classifier``); ``None`` for a bare encoder."""
    children = dict(model.named_children())
    names: list[str] = [
        n
        for n in ("pre_classifier", "classifier", "score")
        if n in children and any(True for _ in children[n].parameters())
    ]
    return names or None


def peft_config(
    model: nn.Module,
    strategy: str,
    options: Mapping[str, Any],
    *,
    head: str | None = None,
    transformer: bool = False,
) -> Any:
    """Build the ``peft`` config of ``strategy`` for ``model`` from resolved options."""
    peft = _peft()
    owner = f"prepare(strategy={strategy!r})"
    save = [head] if head else (_task_heads(model) if transformer else None)
    task = "FEATURE_EXTRACTION" if transformer else None
    defaults = strategy in ("lora", "ia3") and options["target_modules"] is None
    if defaults and head is None and not transformer:  # the defaults leave the head out
        raise InvalidParameterError(
            f"{owner} cannot tell the head of {type(model).__name__} (it trains fully, "
            "outside the adapter); pass head='<submodule name>' or "
            "options={'target_modules': [...]}."
        )
    if strategy == "lora":
        targets = options["target_modules"]
        if targets is None:
            targets, _ = default_target_modules(model, "lora", head=head)
        else:
            targets = _check_targets(model, targets, owner, "target_modules")
        return peft.LoraConfig(
            r=options["r"],
            lora_alpha=options["alpha"],
            lora_dropout=options["dropout"],
            target_modules=targets,
            use_dora=options["use_dora"],
            use_rslora=options["use_rslora"],
            modules_to_save=save,
        )
    if strategy == "ia3":
        targets, ffn = options["target_modules"], options["feedforward_modules"]
        if targets is None:
            targets, default_ffn = default_target_modules(model, "ia3", head=head)
            ffn = default_ffn if ffn is None else ffn
        else:
            targets = _check_targets(model, targets, owner, "target_modules")
        if ffn is not None:
            ffn = _check_targets(model, ffn, owner, "feedforward_modules")
            if isinstance(targets, list) and isinstance(ffn, list):
                outside = [f for f in ffn if f not in targets]
                if outside:
                    raise InvalidParameterError(
                        f"The 'feedforward_modules' parameter of {owner} must be a subset of "
                        f"target_modules; not targeted: {outside}."
                    )
        return peft.IA3Config(
            target_modules=targets, feedforward_modules=ffn if ffn else [], modules_to_save=save
        )
    if not transformer:
        raise InvalidParameterError(
            f"The 'strategy' parameter of prepare is {strategy!r}, which needs a transformers "
            f"model (or a TextClassifier around one), got {type(model).__name__}."
        )
    n_virtual = options["num_virtual_tokens"]
    if strategy == "prompt":
        return peft.PromptTuningConfig(
            task_type=task, num_virtual_tokens=n_virtual, modules_to_save=save
        )
    return peft.PrefixTuningConfig(
        task_type=task,
        num_virtual_tokens=n_virtual,
        prefix_projection=options["prefix_projection"],
        modules_to_save=save,
    )


def apply_peft(
    model: nn.Module,
    strategy: str,
    options: Mapping[str, Any],
    *,
    head: str | None = None,
) -> nn.Module:
    """Wrap ``model`` (or a :class:`TextClassifier`'s encoder) with ``strategy``'s adapter.

    A :class:`TextClassifier` keeps its head trainable and outside PEFT; a plain module's
    head goes into PEFT's ``modules_to_save``.
    """
    peft = _peft()
    if isinstance(model, peft.PeftModel) or (
        isinstance(model, TextClassifier) and isinstance(model.encoder, peft.PeftModel)
    ):
        raise InvalidParameterError(
            f"prepare(strategy={strategy!r}) got a model that already carries a PEFT adapter."
        )
    target = model.encoder if isinstance(model, TextClassifier) else model
    transformer = is_transformer(target)
    config = peft_config(
        target,
        strategy,
        options,
        head=None if isinstance(model, TextClassifier) else head,
        transformer=transformer,
    )
    try:
        with _quiet():
            wrapped = peft.get_peft_model(target, config)
    except (ValueError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidParameterError(
            f"peft could not apply {strategy!r} to {type(target).__name__}: {first}"
        ) from None
    if isinstance(model, TextClassifier):
        model.encoder = wrapped
        for p in model.head.parameters():
            p.requires_grad_(True)
        return model
    return wrapped


def _peft_encoder(model: nn.Module, what: str) -> tuple[Any, TextClassifier | None]:
    peft = _peft()
    if isinstance(model, TextClassifier):
        if not isinstance(model.encoder, peft.PeftModel):
            raise InvalidParameterError(f"{what}: the TextClassifier's encoder has no adapter.")
        return model.encoder, model
    if isinstance(model, peft.PeftModel):
        return model, None
    raise TypeError(
        f"{what} needs a PEFT model or a TextClassifier with a PEFT encoder, "
        f"got {type(model).__name__}."
    )


def save_adapter(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save only the adapter (and a :class:`TextClassifier`'s head) to the folder ``path``.

    The adapter is written by PEFT's ``save_pretrained`` (``adapter_config.json`` and the
    weights); a text classifier's head goes to ``tunecraft_head.pt`` beside it.

    Returns:
        The folder.
    """
    encoder, classifier = _peft_encoder(model, "save_adapter")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(str(folder))
    if classifier is not None:
        state = {k: v.detach().cpu() for k, v in classifier.head.state_dict().items()}
        torch.save(state, folder / HEAD_FILE)
    return folder


def load_adapter(
    model: nn.Module, path: str | os.PathLike[str], *, trainable: bool = False
) -> nn.Module:
    """Load an adapter saved by :func:`save_adapter` onto a base model.

    Args:
        model: The base model the adapter was trained on: a plain module, a transformers
            model, or a :class:`TextClassifier` whose encoder has no adapter yet (its encoder is
            replaced and its head loaded, in place).
        path: The folder :func:`save_adapter` wrote.
        trainable: Keep the adapter trainable (to continue training); frozen by default.

    Returns:
        The model with the adapter: a ``peft.PeftModel``, or the text classifier.
    """
    peft = _peft()
    folder = Path(path)
    if not (folder / "adapter_config.json").is_file():
        raise InvalidParameterError(
            f"The 'path' parameter of load_adapter must be a folder written by save_adapter; "
            f"{str(folder)!r} has no adapter_config.json."
        )
    if isinstance(model, TextClassifier):
        if isinstance(model.encoder, peft.PeftModel):
            raise InvalidParameterError("load_adapter: the TextClassifier already has an adapter.")
        with _quiet():
            model.encoder = peft.PeftModel.from_pretrained(
                model.encoder, str(folder), is_trainable=trainable
            )
        head_file = folder / HEAD_FILE
        if head_file.is_file():
            model.head.load_state_dict(torch.load(head_file, weights_only=True))
        for p in model.head.parameters():
            p.requires_grad_(trainable)
        loaded: nn.Module = model
    else:
        with _quiet():
            loaded = peft.PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)
    if not trainable:  # PEFT leaves a prompt encoder trainable even in inference mode
        for p in loaded.parameters():
            p.requires_grad_(False)
    return loaded


def merge_adapter(model: nn.Module) -> nn.Module:
    """Fold a LoRA or IA3 adapter into the base weights and drop the PEFT wrappers.

    The merged model computes the same function (up to rounding) without the adapter's extra
    work. Prompt and prefix tuning add virtual tokens rather than weight updates, so they
    cannot be merged.

    Returns:
        The plain model (a text classifier keeps its head and gets the merged encoder).
    """
    encoder, classifier = _peft_encoder(model, "merge_adapter")
    if encoder.active_peft_config.is_prompt_learning:
        kind = type(encoder.active_peft_config).__name__
        raise InvalidParameterError(
            f"merge_adapter: {kind} adds virtual tokens, not weight updates, and cannot be "
            "merged; keep the PEFT model."
        )
    merged = encoder.merge_and_unload()
    if classifier is not None:
        classifier.encoder = merged
        return classifier
    return merged
