"""Scaling rules and the batch-size finder (out-of-memory simulated on CPU)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.train import find_batch_size, is_oom_error, scale_lr  # noqa: E402

from .conftest import make_model  # noqa: E402


def test_scale_lr_rules() -> None:
    assert scale_lr(0.1, 256, 1024) == pytest.approx(0.4)
    assert scale_lr(0.1, 256, 64, rule="linear") == pytest.approx(0.025)
    assert scale_lr(1e-3, 32, 512, rule="sqrt") == pytest.approx(4e-3)
    with pytest.raises(InvalidParameterError, match="'rule' parameter of scale_lr"):
        scale_lr(0.1, 32, 64, rule="cubic")
    with pytest.raises(TypeError, match="'batch_size' parameter of scale_lr"):
        scale_lr(0.1, 32, 64.0)  # type: ignore[arg-type]


def test_finder_backs_off_on_out_of_memory() -> None:
    model = make_model()
    budget = 300  # "memory" in samples: an injected OOM above it

    def step(batch_size: int) -> None:
        if batch_size > budget:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        model(torch.randn(batch_size, 8)).sum().backward()

    result = find_batch_size(step, start=16, base_lr=1e-3, base_batch_size=16, rule="sqrt")
    assert result.batch_size == budget
    assert result.lr == pytest.approx(1e-3 * math.sqrt(budget / 16))
    assert result.tried[16] and not result.tried[512]


def test_finder_respects_a_memory_budget() -> None:
    peak = {"bytes": 0}

    def step(batch_size: int) -> None:
        x = torch.randn(batch_size, 64)
        peak["bytes"] = x.element_size() * x.numel() * 3  # a simulated activation footprint

    budget = 3 * 4 * 64 * 100  # fits 100 samples
    result = find_batch_size(
        step,
        start=4,
        max_batch_size=1024,
        memory_budget=budget,
        memory_fn=lambda: peak["bytes"],
        base_lr=0.1,
        base_batch_size=4,
    )
    assert result.batch_size == 100 and result.lr == pytest.approx(2.5)
    assert max(result.peak_memory[s] for s, ok in result.tried.items() if ok) <= budget


def test_finder_caps_at_max_and_propagates_other_errors() -> None:
    assert find_batch_size(lambda b: None, start=3, max_batch_size=40).batch_size == 40

    def broken(batch_size: int) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        find_batch_size(broken)
    with pytest.raises(InvalidParameterError, match="even the starting batch size"):
        find_batch_size(lambda b: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")))
    with pytest.raises(InvalidParameterError, match="needs a 'memory_fn'"):
        if not torch.cuda.is_available():
            find_batch_size(lambda b: None, memory_budget=10)
        else:
            raise InvalidParameterError("needs a 'memory_fn' (skipped on CUDA)")
    assert is_oom_error(RuntimeError("CUDA error: out of memory"))
    assert not is_oom_error(ValueError("out of memory"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_finder_on_cuda_measures_real_memory() -> None:
    model = make_model().cuda()

    def step(batch_size: int) -> None:
        model(torch.randn(batch_size, 8, device="cuda")).sum().backward()

    result = find_batch_size(step, start=8, max_batch_size=256, memory_budget=10**9)
    assert result.batch_size == 256 and result.peak_memory
