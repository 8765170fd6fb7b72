"""Fine-tuning toolbox on scikit-learn's digits: forgetting with and without EWC, every
fine-tuning strategy, temperature scaling, distillation. Medians over seeds, one run.

1. Digits transfer. An MLP (64-128-128) with a 5-way head is pretrained on digits 0-4, then
   adapted to 5-9 with a new 5-way head (task-incremental: the old head is kept and scores
   0-4 on the adapted network), AdamW, 30 epochs at ``--ft-lr`` (1e-2; pretraining uses 1e-3).
   "naive" fine-tunes every layer at one learning rate; "EWC"
   adds the penalty (Fisher on the 0-4 training data), its strength picked per seed on the
   validation splits: the strength with the best old-task validation accuracy among those
   whose new-task validation accuracy is within 2 points of naive's (the target allows 3).
   Every strategy of ``tunecraft.finetune.prepare`` that applies to a plain MLP runs the same
   transfer.
2. Temperature scaling: a 64-256-256-10 MLP trained to ~zero loss (500 epochs, no weight decay)
   on 10% of digits, so overconfident; the temperature is fitted on 30% of the held-out logits
   and the ECE (15 equal-width bins) is measured on the other 70% before and after.
3. Distillation: 10% of digits labelled, 60% unlabelled, 30% test. A 64-256-256-10 teacher
   learns the labelled 10%; a 64-8-10 student learns it from labels alone, or is distilled from
   the teacher (T=4, alpha=0.9) on the same 10%, or distilled (T=4, soft targets only) on the
   labelled and unlabelled 70% (a transfer set: what the teacher can label, the student learns).

Run: ``nice -n 10 .venv/bin/python benchmarks/finetune.py --seeds 5 --markdown``
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tunecraft.finetune._calibration import TemperatureScaler, expected_calibration_error
from tunecraft.finetune._distill import distill
from tunecraft.finetune._ewc import EWC
from tunecraft.finetune._forgetting import accuracy
from tunecraft.train import fit, seed_everything

HIDDEN = 128
EPOCHS_PRE = 30
LR = 1e-3
CONFIG = {"ft_epochs": 30, "ft_lr": 1e-2}  # the fine-tuning budget (command-line options)
STRENGTHS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
STRATEGY_RUNS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("feature_extraction", {}),
    ("full", {}),
    ("gradual_unfreeze", {"unfreeze_every": 5}),
    ("discriminative", {}),
    ("lora", {"r": 8}),
    ("ia3", {}),
    ("adapter", {"bottleneck": 16}),
)


def loader(x: np.ndarray, y: np.ndarray, *, shuffle: bool, seed: int = 0) -> DataLoader:
    ds = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long))
    if shuffle:
        return DataLoader(
            ds, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
    return DataLoader(ds, batch_size=512)


def task_splits(seed: int) -> dict[str, dict[str, DataLoader]]:
    """For each task (0-4 as "old", 5-9 as "new", labels 0-4): train/val/test loaders."""
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    out: dict[str, dict[str, DataLoader]] = {}
    for name, classes in (("old", range(5)), ("new", range(5, 10))):
        mask = np.isin(y, list(classes))
        xt, yt = x[mask], y[mask] - min(classes)
        x_tr, x_rest, y_tr, y_rest = train_test_split(
            xt, yt, test_size=0.4, random_state=seed, stratify=yt
        )
        x_va, x_te, y_va, y_te = train_test_split(
            x_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest
        )
        out[name] = {
            "train": loader(x_tr, y_tr, shuffle=True, seed=seed),
            "fisher": loader(x_tr, y_tr, shuffle=False),
            "val": loader(x_va, y_va, shuffle=False),
            "test": loader(x_te, y_te, shuffle=False),
        }
    return out


class Transfer:
    """The shared backbone, the old head and a fresh new head (one nn.Sequential per task)."""

    def __init__(self, seed: int) -> None:
        seed_everything(seed)
        self.backbone = [nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU()]
        self.old = nn.Sequential(*self.backbone, nn.Linear(HIDDEN, 5))
        self.new = nn.Sequential(*self.backbone, nn.Linear(HIDDEN, 5))
        self._features: torch.Tensor | None = None
        # the old task is scored by the old head on whatever the (possibly wrapped) new model's
        # backbone computes: a hook on the last activation catches it
        self.backbone[-1].register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self._features = output

    def old_accuracy(self, model: nn.Module, data: DataLoader) -> float:
        def predict(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
            m(x)
            assert self._features is not None
            return self.old[-1](self._features)

        return accuracy(model, data, predict=predict)


def pretrained(seed: int, data: dict[str, dict[str, DataLoader]]) -> Transfer:
    net = Transfer(seed)
    fit(
        net.old,
        data["old"]["train"],
        loss_fn=F.cross_entropy,
        lr=LR,
        epochs=EPOCHS_PRE,
        device="cpu",
    )
    return net


def fine_tune(
    net: Transfer,
    data: dict[str, dict[str, DataLoader]],
    *,
    strength: float | None = None,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    callbacks: list[Any] | None = None,
) -> tuple[float, float, float, float]:
    """Adapt to the new task; return (new val, new test, old val, old test) accuracies."""
    loss_fn: Callable[[Any, Any], torch.Tensor] = F.cross_entropy
    if strength is not None:
        ewc = EWC(net.old, strength=strength, parameters=["0", "2"])
        ewc.consolidate(data["old"]["fisher"])
        loss_fn = ewc.wrap(F.cross_entropy)
    target = model if model is not None else net.new
    fit(
        target,
        data["new"]["train"],
        loss_fn=loss_fn,
        lr=CONFIG["ft_lr"],
        epochs=int(CONFIG["ft_epochs"]),
        optimizer=optimizer or "adamw",
        callbacks=callbacks or [],
        device="cpu",
    )
    return (
        accuracy(target, data["new"]["val"]),
        accuracy(target, data["new"]["test"]),
        net.old_accuracy(target, data["old"]["val"]),
        net.old_accuracy(target, data["old"]["test"]),
    )


def transfer_seed(seed: int, with_strategies: bool) -> dict[str, Any]:
    data = task_splits(seed)
    base = pretrained(seed, data)
    before = base.old_accuracy(base.old, data["old"]["test"])
    state = copy.deepcopy(base)

    def fresh() -> Transfer:
        return copy.deepcopy(state)

    naive = fine_tune(fresh(), data)
    grid = {s: fine_tune(fresh(), data, strength=s) for s in STRENGTHS}
    eligible = [s for s, r in grid.items() if r[0] >= naive[0] - 0.02] or [min(STRENGTHS)]
    chosen = max(eligible, key=lambda s: (grid[s][2], -s))
    out: dict[str, Any] = {
        "before": before,
        "naive": naive,
        "ewc": grid[chosen],
        "strength": chosen,
        "grid": grid,
        "strategies": {},
    }
    if with_strategies:
        from tunecraft.finetune import prepare

        for name, options in STRATEGY_RUNS:
            for use_ewc in (False, True):
                if use_ewc and name in ("feature_extraction", "lora", "ia3", "adapter"):
                    continue  # the backbone does not move (or EWC's tracked weights are frozen)
                net = fresh()
                seed_everything(seed)
                setup = prepare(net.new, name, lr=CONFIG["ft_lr"], options=options)
                result = fine_tune(
                    net,
                    data,
                    strength=chosen if use_ewc else None,
                    model=setup.model,
                    optimizer=setup.make_optimizer("adamw"),
                    callbacks=list(setup.callbacks),
                )
                out["strategies"][name + (" + EWC" if use_ewc else "")] = (
                    result,
                    setup.optimized_parameters(),
                )
    return out


def overconfident_ece(seed: int) -> dict[str, float]:
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    x_tr, x_ho, y_tr, y_ho = train_test_split(x, y, train_size=0.1, random_state=seed, stratify=y)
    x_cal, x_te, y_cal, y_te = train_test_split(
        x_ho, y_ho, test_size=0.7, random_state=seed, stratify=y_ho
    )
    seed_everything(seed)
    model = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )
    fit(
        model,
        loader(x_tr, y_tr, shuffle=True, seed=seed),
        loss_fn=F.cross_entropy,
        lr=3e-3,
        epochs=500,
        device="cpu",
    )
    model.eval()
    with torch.no_grad():
        cal_logits = model(torch.tensor(x_cal, dtype=torch.float32))
        te_logits = model(torch.tensor(x_te, dtype=torch.float32))
    y_cal_t, y_te_t = torch.tensor(y_cal), torch.tensor(y_te)
    scaler = TemperatureScaler().fit(cal_logits, y_cal_t)
    out = {"temperature": scaler.temperature}
    out["accuracy"] = float((te_logits.argmax(-1) == y_te_t).float().mean())
    for when, logits in (("before", te_logits), ("after", scaler(te_logits))):
        probs = logits.softmax(-1)
        out[f"ece_{when}"] = expected_calibration_error(probs, y_te_t)
        out[f"aece_{when}"] = expected_calibration_error(probs, y_te_t, strategy="quantile")
        out[f"nll_{when}"] = float(F.cross_entropy(logits, y_te_t))
    return out


def distillation(seed: int) -> tuple[float, float, float, float]:
    """Teacher, labels-only student, student distilled on the same labelled data, student
    distilled on the labelled data plus an unlabelled transfer set (test accuracies)."""
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    x_pool, x_te, y_pool, y_te = train_test_split(
        x, y, train_size=0.7, random_state=seed, stratify=y
    )
    x_lab, x_unl, y_lab, _ = train_test_split(
        x_pool, y_pool, train_size=1 / 7, random_state=seed, stratify=y_pool
    )  # 10% of digits labelled, 60% unlabelled, 30% test
    train = loader(x_lab, y_lab, shuffle=True, seed=seed)
    test = loader(x_te, y_te, shuffle=False)
    seed_everything(seed)
    teacher = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )
    fit(
        teacher, train, loss_fn=F.cross_entropy, lr=LR, weight_decay=1e-2, epochs=100, device="cpu"
    )

    def student() -> nn.Module:
        seed_everything(seed + 1000)
        return nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))

    options = {"lr": 3e-3, "epochs": 150, "device": "cpu"}
    plain = student()
    fit(plain, train, loss_fn=F.cross_entropy, **options)  # type: ignore[arg-type]
    same = student()
    distill(same, teacher, train, temperature=4.0, alpha=0.9, fit_options=options)
    # the transfer set: labelled and unlabelled inputs (label -100), soft targets only (alpha=1)
    transfer = loader(
        np.concatenate([x_lab, x_unl]),
        np.concatenate([y_lab, np.full(len(x_unl), -100)]),
        shuffle=True,
        seed=seed,
    )
    wide = student()
    distill(wide, teacher, transfer, temperature=4.0, alpha=1.0, fit_options=options)
    return tuple(accuracy(m, test) for m in (teacher, plain, same, wide))  # type: ignore[return-value]


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-strategies", action="store_true")
    parser.add_argument("--ft-epochs", type=int, default=CONFIG["ft_epochs"])
    parser.add_argument("--ft-lr", type=float, default=CONFIG["ft_lr"])
    parser.add_argument("--only", choices=("transfer", "calibration", "distillation"))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    start = time.perf_counter()

    CONFIG.update(ft_epochs=args.ft_epochs, ft_lr=args.ft_lr)
    only = args.only
    runs = (
        [transfer_seed(s, not args.no_strategies) for s in seeds]
        if only in (None, "transfer")
        else []
    )
    ece = [overconfident_ece(s) for s in seeds] if only in (None, "calibration") else []
    dist = [distillation(s) for s in seeds] if only in (None, "distillation") else []
    elapsed = time.perf_counter() - start

    pct = 100.0
    print(
        f"# digits fine-tuning toolbox, {len(seeds)} seeds, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {elapsed:.0f} s\n"
    )
    if runs:
        print("## Digits transfer 0-4 -> 5-9 (test accuracy, medians; forgetting = drop on 0-4)\n")
        print("| method | new task 5-9 | old task 0-4 | forgetting 0-4 | trained params |")
        print("|---|---|---|---|---|")
        before = med([r["before"] for r in runs])
        print(f"| pretrained (before) | - | {pct * before:.1f} | - | - |")
        rows: dict[str, list[tuple[float, float, float]]] = {}
        for r in runs:
            for key in ("naive", "ewc"):
                res = r[key]
                rows.setdefault(key, []).append((res[1], res[3], r["before"] - res[3]))
        labels = {"naive": "naive (all layers, one lr)", "ewc": "naive + EWC (strength on val)"}
        n_params = sum(p.numel() for p in Transfer(0).new.parameters())
        for key, values in rows.items():
            new, old, forg = (med([v[i] for v in values]) for i in range(3))
            print(
                f"| {labels[key]} | {pct * new:.1f} | {pct * old:.1f} | {pct * forg:.1f} | "
                f"{n_params} |"
            )
        if runs[0]["strategies"]:
            for name in runs[0]["strategies"]:
                vals = [(r["strategies"][name][0], r["before"]) for r in runs]
                new = med([v[0][1] for v in vals])
                old = med([v[0][3] for v in vals])
                forg = med([b - v[3] for v, b in vals])
                params = runs[0]["strategies"][name][1]
                print(
                    f"| prepare: {name} | {pct * new:.1f} | {pct * old:.1f} | {pct * forg:.1f} | "
                    f"{params} |"
                )
        gaps_old = [r["ewc"][3] - r["naive"][3] for r in runs]
        gaps_new = [r["ewc"][1] - r["naive"][1] for r in runs]
        per_old = [round(pct * g, 1) for g in gaps_old]
        per_new = [round(pct * g, 1) for g in gaps_new]
        print(
            f"\nEWC - naive, per seed (points): old task {per_old} "
            f"(median {pct * med(gaps_old):.1f}), new task {per_new} "
            f"(median {pct * med(gaps_new):.1f}); strengths chosen "
            f"{[r['strength'] for r in runs]}"
        )
        print("\nEWC strength grid (medians over seeds: new val / old val accuracy):")
        for s in STRENGTHS:
            nv = med([r["grid"][s][0] for r in runs])
            ov = med([r["grid"][s][2] for r in runs])
            print(f"  strength {s:g}: new {pct * nv:.1f}  old {pct * ov:.1f}")

    if ece:
        print("\n## Temperature scaling (overconfident MLP; 15 bins; medians over seeds)\n")
        print("| | ECE (equal-width) | ECE (adaptive) | NLL |")
        print("|---|---|---|---|")
        for when in ("before", "after"):
            cells = [med([e[f"{k}_{when}"] for e in ece]) for k in ("ece", "aece", "nll")]
            print(f"| {when} | {cells[0]:.4f} | {cells[1]:.4f} | {cells[2]:.3f} |")
        ratios = [e["ece_after"] / e["ece_before"] for e in ece]
        aratios = [e["aece_after"] / e["aece_before"] for e in ece]
        print(
            f"\nECE after/before per seed: equal-width {[round(r, 2) for r in ratios]} "
            f"(median {med(ratios):.2f}), adaptive {[round(r, 2) for r in aratios]} "
            f"(median {med(aratios):.2f}); "
            f"temperature {med([e['temperature'] for e in ece]):.2f}, "
            f"test accuracy {pct * med([e['accuracy'] for e in ece]):.1f}"
        )

    if dist:
        print("\n## Distillation (64-8-10 student; 10% of digits labelled, 30% test)\n")
        print(
            "| | teacher 64-256-256-10 | student, labels only | distilled, same data | "
            "distilled, + unlabelled transfer set |"
        )
        print("|---|---|---|---|---|")
        cols = [med([d[i] for d in dist]) for i in range(4)]
        print("| median test accuracy | " + " | ".join(f"{pct * c:.1f}" for c in cols) + " |")
        for i, name in ((2, "same data"), (3, "transfer set")):
            diffs = [d[i] - d[1] for d in dist]
            print(
                f"\ndistilled ({name}) - labels only, per seed (points): "
                f"{[round(pct * d, 1) for d in diffs]} (median {pct * med(diffs):+.1f})"
            )


if __name__ == "__main__":
    main()
