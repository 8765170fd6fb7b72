"""Callbacks of :func:`tunecraft.train.fit`: early stopping, checkpoints, SWA, EMA, monitors."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import swa_utils

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.logging import get_logger
from tunecraft.train._checkpoint import save_checkpoint

__all__ = [
    "EMA",
    "SWA",
    "Callback",
    "EarlyStopping",
    "FitState",
    "LRMonitor",
    "ModelCheckpoint",
    "ProgressBar",
]

_log = get_logger("train")


@dataclass
class FitState:
    """What :func:`~tunecraft.train.fit` shares with its callbacks.

    Attributes:
        model: The model being trained.
        optimizer: Its optimizer.
        scheduler: The learning-rate scheduler, or ``None``.
        train_data: The training batches (for BatchNorm updates of averaged models).
        device: Where training runs.
        epoch: The current epoch (0-based); after a finished epoch, that epoch.
        step: Optimizer steps taken so far.
        max_epochs: The epoch budget (``None`` when only ``steps`` bounds the run).
        max_steps: The step budget (``None`` when only ``epochs`` bounds the run).
        metrics: The last finished epoch's ``{name: value}`` (``train_loss``, ``val_loss``...).
        history: One ``metrics`` dict per finished epoch.
        stop: Set to ``True`` to end training after the current epoch.
        stop_reason: Why training stopped (``"early_stopping"``, ``"trial"``...).
        scheduler_paused: Callbacks that take over the learning rate (SWA) set it.
        extra: Free room for callbacks.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_data: Any
    device: torch.device
    epoch: int = 0
    step: int = 0
    max_epochs: int | None = None
    max_steps: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False
    stop_reason: str | None = None
    scheduler_paused: bool = False
    checkpoint: Any = None  # set by fit: a function returning the full checkpoint dict
    extra: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Base class: override the hooks you need. Hooks run in the order callbacks are given.

    ``on_checkpoint`` runs after every callback's ``on_epoch_end``, when the state of the whole
    run is consistent: the place to save it. ``state_dict`` / ``load_state_dict`` let a
    checkpoint carry the callback's own state (numbers, lists, tensors only).

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_epoch_end(self, state):
        ...         print(state.epoch, round(state.metrics["train_loss"], 2))
    """

    def on_fit_start(self, state: FitState) -> None:
        """Before the first epoch (after a resume, too)."""

    def on_epoch_start(self, state: FitState) -> None:
        """Before an epoch's first batch."""

    def on_step_end(self, state: FitState) -> None:
        """After each optimizer step (and scheduler step)."""

    def on_epoch_end(self, state: FitState) -> None:
        """After validation; ``state.metrics`` holds the epoch's values."""

    def on_checkpoint(self, state: FitState) -> None:
        """After every ``on_epoch_end``: the run's state is complete and consistent."""

    def on_fit_end(self, state: FitState) -> None:
        """After the last epoch, whatever ended training."""

    def state_dict(self) -> dict[str, Any]:
        """The callback's state, for checkpoints."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    if mode == "min":
        return value < best - min_delta
    return value > best + min_delta


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _monitored(state: FitState, monitor: str, owner: str) -> float:
    if monitor not in state.metrics:
        raise InvalidParameterError(
            f"{owner} monitors {monitor!r}, which fit did not compute; "
            f"available: {sorted(state.metrics)}."
        )
    return float(state.metrics[monitor])


class EarlyStopping(Callback):
    """Stop when the monitored metric stops improving; optionally restore the best weights.

    Args:
        monitor: The metric to watch (``"val_loss"``, ``"val_accuracy"``...).
        mode: ``"min"`` or ``"max"``.
        patience: Epochs without improvement tolerated before stopping.
        min_delta: The smallest change that counts as an improvement.
        restore_best: At the end of training, load the weights of the best epoch.

    Example:
        >>> stopper = EarlyStopping(monitor="val_loss", patience=3, min_delta=1e-3)
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        mode: str = "min",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        check_choice(mode, "mode", "EarlyStopping", ("min", "max"))
        check_int(patience, "patience", "EarlyStopping", low=0)
        check_float(min_delta, "min_delta", "EarlyStopping", low=0.0)
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, state: FitState) -> None:
        """Compare with the best so far; ask fit to stop when patience runs out."""
        value = _monitored(state, self.monitor, "EarlyStopping")
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            if self.restore_best:
                self.best_weights = _cpu_state(state.model)
            return
        self.wait += 1
        if self.wait > self.patience:
            state.stop = True
            state.stop_reason = "early_stopping"

    def on_fit_end(self, state: FitState) -> None:
        """Load the best weights when asked to."""
        if self.restore_best and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        """Best value and epoch, the wait counter and the best weights."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.best = float(state_dict["best"])
        self.best_epoch = int(state_dict["best_epoch"])
        self.wait = int(state_dict["wait"])
        self.best_weights = state_dict["best_weights"]


class ModelCheckpoint(Callback):
    """Save the full training state: ``last.pt`` every epoch and ``best.pt`` on improvement.

    Resume with ``fit(..., resume_from=".../last.pt")``. Files are written atomically.

    Args:
        dirpath: The folder to write to.
        monitor: The metric that decides the best epoch.
        mode: ``"min"`` or ``"max"``.
        save_last: Write ``last.pt`` after every epoch.
        save_best: Write ``best.pt`` when ``monitor`` improves.

    Example:
        >>> import tempfile
        >>> checkpoint = ModelCheckpoint(tempfile.mkdtemp(), monitor="val_loss")
    """

    def __init__(
        self,
        dirpath: str | os.PathLike[str],
        *,
        monitor: str = "val_loss",
        mode: str = "min",
        save_last: bool = True,
        save_best: bool = True,
    ) -> None:
        check_choice(mode, "mode", "ModelCheckpoint", ("min", "max"))
        self.dirpath = Path(dirpath)
        self.monitor, self.mode = monitor, mode
        self.save_last, self.save_best = save_last, save_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_path: Path | None = None
        self.last_path: Path | None = None

    def on_checkpoint(self, state: FitState) -> None:
        """Write ``best.pt`` (when improved) and ``last.pt``."""
        improved = False
        if self.save_best:
            value = _monitored(state, self.monitor, "ModelCheckpoint")
            improved = _improved(value, self.best, self.mode, 0.0)
            if improved:
                self.best = value
        if not (improved or self.save_last):
            return
        checkpoint = state.checkpoint()
        if improved:
            self.best_path = save_checkpoint(self.dirpath / "best.pt", checkpoint)
        if self.save_last:
            self.last_path = save_checkpoint(self.dirpath / "last.pt", checkpoint)

    def state_dict(self) -> dict[str, Any]:
        """The best value so far."""
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.best = float(state_dict["best"])


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class _Averaging(Callback):
    """Shared by SWA and EMA: an ``AveragedModel`` swapped into the model at the end."""

    averaged: swa_utils.AveragedModel | None

    def __init__(self, update_bn: bool) -> None:
        self.update_bn = update_bn
        self.averaged = None
        self._pending: dict[str, Any] | None = None

    def _make(self, model: nn.Module) -> swa_utils.AveragedModel:
        raise NotImplementedError

    def on_fit_start(self, state: FitState) -> None:
        """Build the averaged copy (and restore it after a resume)."""
        self.averaged = self._make(state.model)
        if self._pending is not None:
            self.averaged.load_state_dict(self._pending)
            self._pending = None

    def _finish(self, state: FitState) -> None:
        assert self.averaged is not None
        if self.update_bn and _has_batchnorm(state.model):
            swa_utils.update_bn(state.train_data, self.averaged, device=state.device)
        state.model.load_state_dict(self.averaged.module.state_dict())

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights and the count of averaged models."""
        return {"averaged": None if self.averaged is None else self.averaged.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (applied at ``on_fit_start``)."""
        self._pending = state_dict.get("averaged")


class SWA(_Averaging):
    """Stochastic weight averaging (``torch.optim.swa_utils``) from a given epoch on.

    From ``start_epoch`` the weights at the end of every epoch are averaged; with ``swa_lr`` the
    learning rate is annealed to it by ``SWALR`` (the step schedule is paused). At the end the
    averaged weights replace the model's, with BatchNorm statistics recomputed on the training
    data (``update_bn``).

    Args:
        start_epoch: The first epoch (0-based) whose weights are averaged.
        swa_lr: The constant SWA learning rate, or ``None`` to keep the schedule.
        anneal_epochs: Epochs ``SWALR`` takes to reach ``swa_lr``.
        update_bn: Recompute BatchNorm statistics of the averaged model.

    Example:
        >>> swa = SWA(start_epoch=5, swa_lr=0.01)
    """

    def __init__(
        self,
        start_epoch: int,
        *,
        swa_lr: float | None = None,
        anneal_epochs: int = 1,
        update_bn: bool = True,
    ) -> None:
        check_int(start_epoch, "start_epoch", "SWA", low=0)
        check_float(swa_lr, "swa_lr", "SWA", low=0.0, low_inclusive=False, allow_none=True)
        check_int(anneal_epochs, "anneal_epochs", "SWA", low=1)
        super().__init__(update_bn)
        self.start_epoch, self.swa_lr, self.anneal_epochs = start_epoch, swa_lr, anneal_epochs
        self.swa_scheduler: swa_utils.SWALR | None = None
        self._pending_sched: dict[str, Any] | None = None

    def _make(self, model: nn.Module) -> swa_utils.AveragedModel:
        return swa_utils.AveragedModel(model)

    def _ensure_scheduler(self, state: FitState) -> None:
        if self.swa_lr is not None and self.swa_scheduler is None:
            state.scheduler_paused = True
            self.swa_scheduler = swa_utils.SWALR(
                state.optimizer, swa_lr=self.swa_lr, anneal_epochs=self.anneal_epochs
            )
            if self._pending_sched is not None:
                self.swa_scheduler.load_state_dict(self._pending_sched)
                self._pending_sched = None

    def on_epoch_start(self, state: FitState) -> None:
        """Switch to the SWA learning rate once averaging starts."""
        if state.epoch >= self.start_epoch:
            self._ensure_scheduler(state)

    def on_epoch_end(self, state: FitState) -> None:
        """Average this epoch's weights; step ``SWALR``."""
        if state.epoch < self.start_epoch:
            return
        assert self.averaged is not None
        self.averaged.update_parameters(state.model)
        if self.swa_scheduler is not None:
            self.swa_scheduler.step()

    def on_fit_end(self, state: FitState) -> None:
        """Swap in the averaged weights (when any epoch was averaged)."""
        if self.averaged is not None and int(self.averaged.n_averaged) > 0:
            self._finish(state)
        else:
            _log.warning(
                "SWA: no epoch reached start_epoch=%d; weights left as trained.", self.start_epoch
            )

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights and the SWALR state."""
        sd = super().state_dict()
        sched = self.swa_scheduler.state_dict() if self.swa_scheduler is not None else None
        if sched is not None:
            sched = {k: v for k, v in sched.items() if k != "anneal_func"}
        sd["swa_scheduler"] = sched
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        super().load_state_dict(state_dict)
        self._pending_sched = state_dict.get("swa_scheduler")


class EMA(_Averaging):
    """An exponential moving average of the weights, updated every optimizer step.

    Uses ``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))``. At the end of
    training the averaged weights replace the model's, BatchNorm statistics recomputed on the
    training data when ``update_bn`` (with ``use_buffers=True`` the buffers are averaged too).

    Args:
        decay: The EMA decay, in ``(0, 1)``; 0.999 averages over about 1000 steps.
        use_buffers: Average buffers (BatchNorm running statistics) as well.
        update_bn: Recompute BatchNorm statistics at the end (ignored with ``use_buffers``).

    Example:
        >>> ema = EMA(decay=0.99)
    """

    def __init__(
        self, decay: float = 0.999, *, use_buffers: bool = False, update_bn: bool = True
    ) -> None:
        if not isinstance(decay, (int, float)) or not 0.0 < decay < 1.0:
            raise InvalidParameterError(
                f"The 'decay' parameter of EMA must be a float in (0, 1), got {decay!r}."
            )
        super().__init__(update_bn and not use_buffers)
        self.decay, self.use_buffers = float(decay), use_buffers

    def _make(self, model: nn.Module) -> swa_utils.AveragedModel:
        return swa_utils.AveragedModel(
            model,
            multi_avg_fn=swa_utils.get_ema_multi_avg_fn(self.decay),
            use_buffers=self.use_buffers,
        )

    def on_step_end(self, state: FitState) -> None:
        """Fold the new weights into the average."""
        assert self.averaged is not None
        self.averaged.update_parameters(state.model)

    def on_fit_end(self, state: FitState) -> None:
        """Swap in the averaged weights."""
        if self.averaged is not None and int(self.averaged.n_averaged) > 0:
            self._finish(state)


class LRMonitor(Callback):
    """Record every parameter group's learning rate after each optimizer step.

    Attributes:
        history: One list of learning rates (one per group) per step.

    Example:
        >>> monitor = LRMonitor()
    """

    def __init__(self) -> None:
        self.history: list[list[float]] = []

    def on_step_end(self, state: FitState) -> None:
        """Append the current learning rates."""
        self.history.append([float(g["lr"]) for g in state.optimizer.param_groups])

    def on_epoch_end(self, state: FitState) -> None:
        """Add ``lr`` (the first group's) to the epoch's metrics."""
        state.metrics["lr"] = float(state.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        """The recorded history."""
        return {"history": [list(h) for h in self.history]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.history = [list(h) for h in state_dict["history"]]


class ProgressBar(Callback):
    """A terminal progress bar over epochs (rich), showing the last metrics.

    Example:
        >>> bar = ProgressBar()
    """

    def __init__(self, *, metrics: Iterable[str] = ("train_loss", "val_loss")) -> None:
        self.shown = tuple(metrics)
        self._progress: Any = None
        self._task: Any = None

    def on_fit_start(self, state: FitState) -> None:
        """Start drawing."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("[bold]epochs"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[m]}"),
        )
        self._task = self._progress.add_task(
            "fit", total=state.max_epochs, completed=len(state.history), m=""
        )
        self._progress.start()

    def on_epoch_end(self, state: FitState) -> None:
        """Advance one epoch."""
        text = "  ".join(f"{k} {state.metrics[k]:.4g}" for k in self.shown if k in state.metrics)
        self._progress.update(self._task, advance=1, m=text)

    def on_fit_end(self, state: FitState) -> None:
        """Stop drawing."""
        if self._progress is not None:
            self._progress.stop()
