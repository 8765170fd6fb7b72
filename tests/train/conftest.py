"""Shared fixtures of the training tests: tiny data and models, one CPU thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_data(n: int = 96, batch_size: int = 16, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """A small 3-class problem: (shuffled train loader, validation loader)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    train = DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed + 1),
    )
    val = DataLoader(TensorDataset(x[: n // 2], y[: n // 2]), batch_size=32)
    return train, val


def make_model(seed: int = 0, *, dropout: float = 0.0, batchnorm: bool = False) -> torch.nn.Module:
    """An 8-16-3 MLP, optionally with dropout and BatchNorm."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Linear(8, 16)]
    if batchnorm:
        layers.append(torch.nn.BatchNorm1d(16))
    layers += [torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(16, 3)]
    return torch.nn.Sequential(*layers)
