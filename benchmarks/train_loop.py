"""The cost of ``tunecraft.train.fit`` over a hand-written PyTorch loop.

Both train the same MLP on the same synthetic data for the same epochs (AdamW, a validation
pass per epoch), interleaved, ``--repeats`` times; the table gives the median seconds and the
overhead of ``fit`` (target: at most 3%).

Run: ``.venv/bin/python benchmarks/train_loop.py --markdown``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.data import DataLoader, TensorDataset

from tunecraft.train import fit


def make_data(n: int, features: int, batch_size: int) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    y = (x[:, :4].sum(1) > 0).long()
    train = DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(1),
    )
    val = DataLoader(TensorDataset(x[: n // 4], y[: n // 4]), batch_size=512)
    return train, val


def make_model(features: int, hidden: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(features, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 2),
    )


def hand_loop(model: torch.nn.Module, train: DataLoader, val: DataLoader, epochs: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    val_loss = 0.0
    for _ in range(epochs):
        model.train()
        total = torch.zeros(())
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            total += loss.detach()
        model.eval()
        with torch.no_grad():
            s, n = torch.zeros(()), 0
            for x, y in val:
                s += F.cross_entropy(model(x), y) * len(y)
                n += len(y)
        val_loss = (s / n).item()
    return val_loss


def with_fit(model: torch.nn.Module, train: DataLoader, val: DataLoader, epochs: int) -> float:
    result = fit(
        model,
        train,
        val,
        loss_fn=F.cross_entropy,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.0,
        epochs=epochs,
        device="cpu",
    )
    return result.last["val_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    features = 32
    train, val = make_data(args.samples, features, args.batch_size)
    runners: dict[str, Callable[..., float]] = {
        "hand-written loop": hand_loop,
        "tunecraft fit": with_fit,
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    losses: dict[str, float] = {}
    for run in runners.values():  # untimed warm-up
        run(make_model(features, args.hidden), train, val, 1)
    for repeat in range(args.repeats):
        order = list(runners) if repeat % 2 == 0 else list(reversed(runners))
        for name in order:
            model = make_model(features, args.hidden)
            start = time.perf_counter()
            losses[name] = runners[name](model, train, val, args.epochs)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["hand-written loop"])
    steps = args.epochs * len(train)
    print(
        f"# {args.samples} samples, batch {args.batch_size}, {steps} steps, MLP "
        f"{features}-{args.hidden}-{args.hidden}-2, {args.repeats} repeats, "
        f"{args.threads} thread(s); torch {torch.__version__}, Python {platform.python_version()}"
    )
    if args.markdown:
        print("| loop | median s | min-max s | ms/step | final val_loss | overhead |")
        print("|:--|--:|--:|--:|--:|--:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        overhead = (med / base - 1.0) * 100.0
        cells = [
            name,
            f"{med:.3f}",
            f"{min(ts):.3f}-{max(ts):.3f}",
            f"{1000 * med / steps:.3f}",
            f"{losses[name]:.4f}",
            f"{overhead:+.1f}%",
        ]
        print("| " + " | ".join(cells) + " |" if args.markdown else "  ".join(cells))


if __name__ == "__main__":
    main()
