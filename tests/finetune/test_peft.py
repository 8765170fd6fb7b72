"""PEFT on MiniLM and on plain modules: counts, targets, merge, save/load, virtual tokens."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

import torch.nn.functional as F  # noqa: E402, N812
from torch import nn  # noqa: E402

from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.finetune import (  # noqa: E402
    TextClassifier,
    default_target_modules,
    layer_groups,
    load_adapter,
    merge_adapter,
    prepare,
    save_adapter,
)

from .conftest import SENTENCES, make_mlp  # noqa: E402

HIDDEN, LAYERS = 384, 6


def _classifier(minilm: dict[str, Any], seed: int = 0) -> TextClassifier:
    torch.manual_seed(seed)
    model = TextClassifier(copy.deepcopy(minilm["encoder"]), 3)
    return model.eval()


def _perturb(model: nn.Module, seed: int = 1) -> None:
    """Make the adapter non-trivial (LoRA's B starts at zero, IA3's scales at one)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name or "ia3_" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def _head_numel(model: TextClassifier) -> int:
    return sum(p.numel() for p in model.head.parameters())


def test_text_classifier_groups_and_no_pooler(minilm: dict[str, Any]) -> None:
    model = _classifier(minilm)
    assert model.encoder.pooler is None
    groups = layer_groups(model)
    assert [g.name for g in groups] == [
        "encoder.embeddings",
        *[f"encoder.encoder.layer.{i}" for i in range(LAYERS)],
        "head",
    ]
    setup = prepare(model, "feature_extraction", lr=1e-3)
    assert setup.trainable_parameters() == HIDDEN * 3 + 3


@pytest.mark.parametrize(
    "options", [{}, {"use_dora": True}, {"use_rslora": True, "r": 4, "alpha": 8.0}]
)
def test_lora_targets_attention_and_counts_match_peft(
    minilm: dict[str, Any], options: dict[str, Any]
) -> None:
    model = _classifier(minilm)
    setup = prepare(model, "lora", lr=1e-3, options=options)
    encoder = setup.model.encoder
    assert isinstance(encoder, peft.PeftModel)
    targeted = {n.split(".lora_A")[0] for n, _ in encoder.named_parameters() if "lora_A" in n}
    assert targeted and all(n.endswith(("query", "value")) for n in targeted)
    assert not any("pooler" in n for n in targeted) and len(targeted) == 2 * LAYERS
    r = options.get("r", 8)
    by_hand = 2 * LAYERS * r * (HIDDEN + HIDDEN)
    if options.get("use_dora"):
        by_hand += 2 * LAYERS * HIDDEN  # DoRA's magnitude vector per module
    peft_trainable, _ = encoder.get_nb_trainable_parameters()
    assert peft_trainable == by_hand
    assert setup.trainable_parameters() == peft_trainable + _head_numel(model)


def test_ia3_defaults_scale_key_value_and_feed_forward(minilm: dict[str, Any]) -> None:
    targets, ffn = default_target_modules(minilm["encoder"], "ia3")
    assert targets is not None and ffn is not None
    assert len(targets) == 3 * LAYERS and len(ffn) == LAYERS
    assert all(".attention." not in f and f.endswith("output.dense") for f in ffn)
    setup = prepare(_classifier(minilm), "ia3", lr=1e-3)
    trainable, _ = setup.model.encoder.get_nb_trainable_parameters()
    # key and value scale their 384 outputs; the FFN down-projection scales its 1536 inputs
    assert trainable == LAYERS * (HIDDEN + HIDDEN + 4 * HIDDEN)


@pytest.mark.parametrize(
    ("strategy", "options"), [("lora", {}), ("lora", {"use_dora": True}), ("ia3", {})]
)
def test_merged_model_equals_unmerged(
    minilm: dict[str, Any], strategy: str, options: dict[str, Any]
) -> None:
    batch = minilm["batch"]
    model = _classifier(minilm)
    with torch.no_grad():
        base = model(batch)
    setup = prepare(model, strategy, lr=1e-3, options=options)
    _perturb(setup.model)
    setup.model.eval()
    with torch.no_grad():
        adapted = setup.model(batch)
        merged_model = merge_adapter(setup.model)
        merged = merged_model(batch)
    assert not torch.allclose(adapted, base, atol=1e-3)  # the adapter does something
    assert not isinstance(merged_model.encoder, peft.PeftModel)
    assert not any("lora_" in n or "ia3_" in n for n, _ in merged_model.named_parameters())
    assert torch.allclose(merged, adapted, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("strategy", ["lora", "prompt"])
def test_reloaded_adapter_gives_the_same_outputs(
    minilm: dict[str, Any], strategy: str, tmp_path: Path
) -> None:
    batch = minilm["batch"]
    setup = prepare(_classifier(minilm, seed=0), strategy, lr=1e-3)
    _perturb(setup.model)
    with torch.no_grad():
        for name, p in setup.model.named_parameters():
            if "prompt_encoder" in name:
                p.mul_(1.5)
        expected = setup.model.eval()(batch)
    save_adapter(setup.model, tmp_path / "adapter")
    fresh = _classifier(minilm, seed=7)  # another head: the saved one must be loaded
    loaded = load_adapter(fresh, tmp_path / "adapter")
    with torch.no_grad():
        got = loaded.eval()(batch)
    assert torch.allclose(got, expected, atol=1e-5)
    assert sum(p.numel() for p in loaded.parameters() if p.requires_grad) == 0


@pytest.mark.parametrize("strategy", ["prompt", "prefix"])
def test_virtual_tokens_are_handled_by_the_pooling(minilm: dict[str, Any], strategy: str) -> None:
    tokenizer = minilm["tokenizer"]
    setup = prepare(_classifier(minilm), strategy, lr=1e-3, options={"num_virtual_tokens": 5})
    model = setup.model.eval()
    padded = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    with torch.no_grad():
        together = model(padded)
        alone = torch.cat([model(dict(tokenizer([s], return_tensors="pt"))) for s in SENTENCES])
    assert together.shape == (len(SENTENCES), 3)
    # padding (and the virtual tokens ahead of it) never changes a sentence's logits
    assert torch.allclose(together, alone, atol=1e-4)
    encoder = model.encoder
    trainable, _ = encoder.get_nb_trainable_parameters()
    assert setup.trainable_parameters() == trainable + HIDDEN * 3 + 3
    model.train()
    F.cross_entropy(model(padded), torch.tensor([0, 1, 2, 0])).backward()
    virtual = [p for n, p in encoder.named_parameters() if "prompt_encoder" in n]
    assert virtual and all(p.grad is not None and p.grad.abs().sum() > 0 for p in virtual)
    with pytest.raises(InvalidParameterError, match="cannot be merged"):
        merge_adapter(model)


@pytest.mark.parametrize("strategy", ["lora", "ia3"])
def test_plain_module_merge_and_reload(strategy: str, tmp_path: Path) -> None:
    x = torch.randn(5, 8)
    setup = prepare(make_mlp(), strategy, lr=1e-2)
    model = setup.model
    assert isinstance(model, peft.PeftModel)
    assert model.get_nb_trainable_parameters()[0] == setup.trainable_parameters()
    _perturb(model)
    with torch.no_grad():
        model.base_model.model[4].modules_to_save["default"].weight.mul_(2.0)
        expected = model(x)
    save_adapter(model, tmp_path / "a")
    reloaded = load_adapter(make_mlp(), tmp_path / "a")
    merged = merge_adapter(model)
    assert isinstance(merged, nn.Sequential)
    with torch.no_grad():
        assert torch.allclose(reloaded(x), expected, atol=1e-6)
        assert torch.allclose(merged(x), expected, atol=1e-5)


@pytest.mark.parametrize("strategy", ["lora", "ia3", "prompt", "prefix"])
def test_a_transformers_classification_head_trains_fully(
    minilm: dict[str, Any], strategy: str
) -> None:
    """As PEFT's own SEQ_CLS models do: the new, randomly initialized classifier trains."""
    import transformers

    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        minilm["path"], num_labels=3
    )
    setup = prepare(model, strategy, lr=1e-3, options=None)
    trainable = [n for n, p in setup.model.named_parameters() if p.requires_grad]
    head = [n for n in trainable if ".classifier." in n]
    assert len(head) == 2 and all("modules_to_save" in n for n in head)
    assert setup.optimized_parameters() == setup.trainable_parameters()
    setup.model.train()
    batch = {k: v for k, v in minilm["batch"].items() if k != "token_type_ids"}
    logits = setup.model(**batch).logits
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    grads = [p.grad for n, p in setup.model.named_parameters() if n in head]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.body(x)))


@pytest.mark.parametrize("strategy", ["lora", "ia3"])
def test_a_plain_module_whose_head_is_unknown_needs_head(strategy: str) -> None:
    """The default targets leave the head out; guessing none froze the new head."""
    with pytest.raises(InvalidParameterError, match="head=") as info:
        prepare(_Net(), strategy, lr=1e-3)
    assert "\n" not in str(info.value)
    setup = prepare(_Net(), strategy, lr=1e-3, head="fc")
    trainable = {n for n, p in setup.model.named_parameters() if p.requires_grad}
    assert any("fc.modules_to_save" in n for n in trainable)
    assert not any(".fc." in n and ("lora_" in n or "ia3_" in n) for n in trainable)


def test_peft_bad_input(minilm: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match=r"'target_modules'.*'attention_qq'"):
        prepare(_classifier(minilm), "lora", lr=1e-3, options={"target_modules": ["attention_qq"]})
    with pytest.raises(InvalidParameterError, match="'r' parameter"):
        prepare(_classifier(minilm), "lora", lr=1e-3, options={"r": 0})
    with pytest.raises(InvalidParameterError, match=r"'dropout' parameter .* \[0, 1\), got 1.5"):
        TextClassifier(minilm["encoder"], 3, dropout=1.5)  # was torch's own error
    with pytest.raises(InvalidParameterError, match=r"adapter_config\.json"):
        load_adapter(make_mlp(), tmp_path)
    with pytest.raises(TypeError, match="PEFT"):
        save_adapter(make_mlp(), tmp_path)
    setup = prepare(make_mlp(), "lora", lr=1e-3)
    with pytest.raises(InvalidParameterError, match="already carries"):
        prepare(setup.model, "lora", lr=1e-3)
