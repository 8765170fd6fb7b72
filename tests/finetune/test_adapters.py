"""Bottleneck adapters: identity at init, placement, training, MiniLM layers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812
from torch import nn  # noqa: E402

from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.finetune import (  # noqa: E402
    AdaptedLayer,
    BottleneckAdapter,
    TextClassifier,
    add_adapters,
    prepare,
)

from .conftest import make_mlp  # noqa: E402


def test_adapter_is_the_identity_at_init_and_learns() -> None:
    adapter = BottleneckAdapter(6, bottleneck=3, activation="gelu")
    x = torch.randn(4, 6)
    assert torch.equal(adapter(x), x)
    assert torch.count_nonzero(adapter.up.weight) == 0
    assert torch.count_nonzero(adapter.down.weight) > 0  # the down projection is random
    opt = torch.optim.SGD(adapter.parameters(), lr=0.1)
    F.mse_loss(adapter(x), torch.zeros_like(x)).backward()
    opt.step()
    assert not torch.allclose(adapter(x), x)


def test_add_adapters_keeps_outputs_and_infers_sizes() -> None:
    net = make_mlp()
    x = torch.randn(5, 8)
    before = net(x)
    adapters = add_adapters(net, ["0", "2"], bottleneck=4)
    assert isinstance(net[0], AdaptedLayer) and isinstance(net[2], AdaptedLayer)
    assert [a.up.out_features for a in adapters] == [16, 16]
    assert torch.equal(net(x), before)


def test_add_adapters_bad_input() -> None:
    with pytest.raises(InvalidParameterError, match=r"'after'.*'9'"):
        add_adapters(make_mlp(), ["9"])
    with pytest.raises(InvalidParameterError, match="'after'"):
        add_adapters(make_mlp(), [])
    with pytest.raises(InvalidParameterError, match="'bottleneck'"):
        add_adapters(make_mlp(), ["0"], bottleneck=0)
    with pytest.raises(InvalidParameterError, match="'dim'"):
        add_adapters(nn.Sequential(nn.ReLU()), ["0"])
    wrapped = AdaptedLayer(nn.Identity(), BottleneckAdapter(2))
    with pytest.raises(TypeError, match="tensor"):
        wrapped({"not": "a tensor"})


def test_adapter_strategy_on_minilm_starts_unchanged_and_trains_only_adapters(
    minilm: dict[str, Any],
) -> None:
    batch = minilm["batch"]
    torch.manual_seed(0)
    model = TextClassifier(copy.deepcopy(minilm["encoder"]), 2).eval()
    with torch.no_grad():
        before = model(batch)
    setup = prepare(model, "adapter", lr=1e-2, options={"bottleneck": 8})
    adapted = [n for n, m in model.named_modules() if isinstance(m, AdaptedLayer)]
    assert adapted == [f"encoder.encoder.layer.{i}" for i in range(6)]
    with torch.no_grad():
        assert torch.allclose(model(batch), before, atol=1e-6)
    per_adapter = 384 * 8 + 8 + 8 * 384 + 384
    assert setup.trainable_parameters() == 6 * per_adapter + 384 * 2 + 2
    opt = setup.make_optimizer("adamw")
    model.train()
    F.cross_entropy(model(batch), torch.tensor([0, 1, 0, 1])).backward()
    opt.step()
    with torch.no_grad():
        assert not torch.allclose(model.eval()(batch), before, atol=1e-4)
