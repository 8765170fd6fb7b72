"""A compact, readable training loop: :func:`fit`."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.train._callbacks import Callback, EarlyStopping, FitState, _Averaging
from tunecraft.train._checkpoint import CheckpointError, load_checkpoint, load_model_state
from tunecraft.train._optim import make_optimizer
from tunecraft.train._schedules import ScheduleConfig, ScheduledLR, make_lr_scheduler
from tunecraft.train._seed import get_rng_state, set_rng_state

__all__ = ["FitResult", "fit"]

MetricFn = Callable[[torch.Tensor, torch.Tensor], Any]
_PRECISIONS = ("32", "bf16", "fp16")


@dataclass
class FitResult:
    """What :func:`fit` returns (the model itself is trained in place).

    Attributes:
        history: One dict per epoch: ``epoch``, ``step``, ``train_loss``, ``val_loss``,
            ``val_<metric>`` for each metric function, ``lr``.
        epochs: Epochs finished (counting those before a resume).
        steps: Optimizer steps taken.
        stop_reason: ``"early_stopping"``, ``"trial"`` (the trial's scheduler stopped it),
            ``"paused"`` (the trial's scheduler paused it: save what resuming needs),
            ``"diverged"`` (with a trial: the monitored metric was NaN or infinite, which a
            trial cannot report), ``"steps"`` (the step budget ran out), another callback's
            reason, or ``None`` when the epochs ran out.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    epochs: int = 0
    steps: int = 0
    stop_reason: str | None = None

    @property
    def pruned(self) -> bool:
        """Whether a tunecraft trial's scheduler stopped the run."""
        return self.stop_reason == "trial"

    @property
    def last(self) -> dict[str, float]:
        """The last epoch's metrics."""
        return self.history[-1] if self.history else {}


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(o, device) for o in obj)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def _split(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    raise InvalidParameterError(
        "fit expects every batch to be an (inputs, targets) pair, "
        f"got {type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}."
    )


def _count_items(target: Any) -> torch.Tensor:
    """How many loss terms a batch contributes: targets not equal to -100 for integer targets
    (the ``ignore_index`` of cross-entropy), every element otherwise."""
    if isinstance(target, torch.Tensor):
        if target.is_floating_point():
            return torch.tensor(float(target.numel()), device=target.device)
        return (target != -100).sum().to(torch.float32)
    return torch.tensor(float(len(target)))


def _windows(data: Iterable[Any], size: int) -> Iterator[list[Any]]:
    window: list[Any] = []
    for batch in data:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def fit(
    model: nn.Module,
    train_data: Iterable[Any],
    val_data: Iterable[Any] | None = None,
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    optimizer: str | torch.optim.Optimizer = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    exclude_bias_and_norm: bool = True,
    optimizer_options: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    schedule: str | ScheduleConfig | None = None,
    schedule_options: Mapping[str, Any] | None = None,
    grad_clip: float | None = None,
    grad_clip_mode: str = "norm",
    accumulate: int = 1,
    precision: str = "32",
    device: str | torch.device | None = None,
    metrics: Mapping[str, MetricFn] | None = None,
    monitor: str | None = None,
    callbacks: Sequence[Callback] = (),
    trial: Any = None,
    resume_from: str | os.PathLike[str] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_data``, validating on ``val_data`` after every epoch.

    Batches are ``(inputs, targets)`` pairs (a ``DataLoader`` of a ``TensorDataset`` gives
    them); the loss is ``loss_fn(model(inputs), targets)`` averaged over the batch.

    Gradient accumulation normalizes over the whole window: each micro-batch's mean loss is
    weighted by its share of the window's loss terms (targets other than -100 for integer
    targets, elements otherwise), so ``accumulate=4`` gives the gradient of one batch four times
    as large even when micro-batches differ in size or padding (Hugging Face issue #34191).

    Args:
        model: The model, trained in place.
        train_data: Re-iterable training batches (a ``DataLoader``).
        val_data: Validation batches, or ``None``.
        loss_fn: ``loss_fn(outputs, targets)`` returning the mean loss of a batch.
        optimizer: A name (``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adam"``, ``"adamw"``,
            ``"rmsprop"``, ``"adagrad"``) or a built ``torch.optim.Optimizer``.
        lr: The (peak) learning rate, for an optimizer given by name.
        weight_decay: The weight decay, for an optimizer given by name.
        exclude_bias_and_norm: No weight decay on biases and normalization weights.
        optimizer_options: More keyword arguments of the torch optimizer.
        epochs: Passes over ``train_data``; at least one of ``epochs`` and ``steps``.
        steps: Optimizer steps; training stops when they are taken (validation runs then).
        schedule: A schedule name (see :class:`ScheduleConfig`) or a config; ``None`` keeps the
            learning rate constant. Stepped once per optimizer step; ``"plateau"`` also reads
            the monitored metric after every epoch.
        schedule_options: Fields of :class:`ScheduleConfig` (``{"warmup_steps": 100}``).
        grad_clip: Clip gradients to this norm (``grad_clip_mode="norm"``) or value
            (``"value"``); ``None`` does not clip.
        grad_clip_mode: ``"norm"`` or ``"value"``.
        accumulate: Micro-batches per optimizer step.
        precision: ``"32"``; ``"bf16"`` (autocast, CPU or GPU); ``"fp16"`` (CUDA only: autocast
            with a ``GradScaler``, gradients unscaled before clipping).
        device: Where to train; default CUDA when available, else CPU.
        metrics: ``{name: fn(outputs, targets)}`` computed on validation batches and averaged
            weighted by batch size; reported as ``val_<name>``.
        monitor: The metric reported to ``trial`` and read by ``"plateau"``; default
            ``"val_loss"`` (``"train_loss"`` without validation data).
        callbacks: :class:`Callback` instances, run in order.
        trial: A :class:`tunecraft.Trial`: ``monitor`` is reported after every epoch
            (``step=epoch``) and training stops when ``trial.should_stop()``.
        resume_from: A checkpoint written by :class:`ModelCheckpoint`: continue that run
            exactly (weights, optimizer, scheduler, scaler, RNG, epoch, step, callbacks).

    Returns:
        A :class:`FitResult`.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(64, 3); y = x @ torch.tensor([1.0, -2.0, 0.5])
        >>> data = DataLoader(TensorDataset(x, y.unsqueeze(1)), batch_size=16)
        >>> model = torch.nn.Linear(3, 1)
        >>> result = fit(model, data, data, loss_fn=torch.nn.functional.mse_loss,
        ...              lr=0.1, epochs=20, schedule="cosine", device="cpu")
        >>> result.last["val_loss"] < 0.01
        True
    """
    owner = "fit"
    check_int(epochs, "epochs", owner, low=1, allow_none=True)
    check_int(steps, "steps", owner, low=1, allow_none=True)
    if epochs is None and steps is None:
        raise InvalidParameterError("fit needs 'epochs' or 'steps' (or both); got neither.")
    check_int(accumulate, "accumulate", owner, low=1)
    check_choice(precision, "precision", owner, _PRECISIONS)
    check_choice(grad_clip_mode, "grad_clip_mode", owner, ("norm", "value"))
    check_float(grad_clip, "grad_clip", owner, low=0.0, low_inclusive=False, allow_none=True)
    if not callable(loss_fn):
        raise TypeError(f"The 'loss_fn' parameter of fit must be callable, got {loss_fn!r}.")
    callbacks = list(callbacks)
    _warn_on_rival_final_weights(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"fit callbacks must be Callback instances, got {cb!r}.")
    metric_fns = dict(metrics or {})
    monitor = monitor or ("val_loss" if val_data is not None else "train_loss")

    dev = (
        torch.device(device)
        if device is not None
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if precision == "fp16" and dev.type != "cuda":
        raise InvalidParameterError(
            "The 'precision' parameter of fit is 'fp16', which needs a CUDA device "
            f"(got {dev}); use precision='bf16' on CPU."
        )
    model.to(dev)

    if isinstance(optimizer, torch.optim.Optimizer):
        opt = optimizer
    else:
        opt = make_optimizer(
            optimizer,
            model,
            lr=lr,
            weight_decay=weight_decay,
            exclude_bias_and_norm=exclude_bias_and_norm,
            options=optimizer_options,
        )

    steps_per_epoch: int | None = None
    if hasattr(train_data, "__len__"):
        steps_per_epoch = math.ceil(len(train_data) / accumulate)  # type: ignore[arg-type]
    # The schedule spans the run: whichever limit ends it first (a step budget longer than
    # the epochs left the cosine at 0.92 of its peak when training ended).
    total_steps = steps
    if steps_per_epoch is not None and epochs is not None:
        by_epochs = steps_per_epoch * epochs
        total_steps = by_epochs if total_steps is None else min(total_steps, by_epochs)
    scheduler: ScheduledLR | None = None
    if schedule is not None:
        scheduler = make_lr_scheduler(opt, schedule, schedule_options, total_steps=total_steps)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    state = FitState(
        model=model,
        optimizer=opt,
        scheduler=scheduler,
        train_data=train_data,
        device=dev,
        max_epochs=epochs,
        max_steps=steps,
    )

    def checkpoint() -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": get_rng_state(),
            "optimizer_class": type(opt).__name__,
            "loader_rng": [g.get_state() for g in _loader_generators(train_data)],
            "epoch": state.epoch,
            "step": state.step,
            "history": [dict(h) for h in state.history],
            "callbacks": [cb.state_dict() for cb in callbacks],
            "callback_names": [type(cb).__name__ for cb in callbacks],
        }

    state.checkpoint = checkpoint
    start_epoch = 0
    if resume_from is not None:
        start_epoch = _resume(state, scaler, callbacks, resume_from) + 1

    for cb in callbacks:
        cb.on_fit_start(state)

    epoch = start_epoch
    while (epochs is None or epoch < epochs) and (steps is None or state.step < steps):
        state.epoch = epoch
        model.train()
        for cb in callbacks:
            cb.on_epoch_start(state)
        loss_sum = torch.zeros((), device=dev)
        n_batches = 0
        for window in _windows(train_data, accumulate):
            window = [_split(_to_device(b, dev)) for b in window]
            if len(window) == 1:
                weights: list[Any] = [1.0]
            else:
                counts = [_count_items(y) for _, y in window]
                total = torch.stack(counts).sum().clamp_min(1.0)
                weights = [c / total for c in counts]
            for (x, y), w in zip(window, weights, strict=True):
                with _autocast(precision, dev):
                    loss = loss_fn(model(x), y)
                scaled = loss * w if len(window) > 1 else loss
                if scaler is not None:
                    scaler.scale(scaled).backward()
                else:
                    scaled.backward()
                loss_sum += loss.detach().float()
                n_batches += 1
            if grad_clip is not None:
                if scaler is not None:
                    scaler.unscale_(opt)
                # Read the groups on every step: a callback may add one mid-run.
                params = [p for group in opt.param_groups for p in group["params"]]
                if grad_clip_mode == "norm":
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                else:
                    torch.nn.utils.clip_grad_value_(params, grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
            state.step += 1
            if scheduler is not None and not state.scheduler_paused:
                scheduler.step()
            for cb in callbacks:
                cb.on_step_end(state)
            if steps is not None and state.step >= steps:
                state.stop, state.stop_reason = True, "steps"
                break

        epoch_metrics: dict[str, float] = {
            "epoch": float(epoch),
            "step": float(state.step),
            "train_loss": (loss_sum / max(n_batches, 1)).item(),
            "lr": float(opt.param_groups[0]["lr"]),
        }
        if val_data is not None:
            epoch_metrics.update(evaluate(model, val_data, loss_fn, metric_fns, dev, precision))
        state.metrics = epoch_metrics
        if monitor not in epoch_metrics:
            raise InvalidParameterError(
                f"The 'monitor' parameter of fit is {monitor!r}, which fit does not compute; "
                f"available: {sorted(epoch_metrics)}."
            )
        if (
            scheduler is not None
            and scheduler.config.name == "plateau"
            and not state.scheduler_paused  # SWA anneals the rate: a plateau cut would fight it
        ):
            scheduler.observe(epoch_metrics[monitor])
        for cb in callbacks:
            cb.on_epoch_end(state)
        state.history.append(dict(state.metrics))
        if trial is not None:
            value = float(state.metrics[monitor])
            if not math.isfinite(value):  # diverged: nothing to report, nothing to go on with
                state.stop, state.stop_reason = True, "diverged"
            else:
                trial.report(value, step=epoch)
                if trial.should_stop():
                    paused = getattr(trial, "decision", "stop") == "pause"
                    state.stop, state.stop_reason = True, "paused" if paused else "trial"
        for cb in callbacks:
            cb.on_checkpoint(state)
        epoch += 1
        if state.stop:
            break

    for cb in callbacks:
        cb.on_fit_end(state)
    return FitResult(
        history=state.history,
        epochs=len(state.history),
        steps=state.step,
        stop_reason=state.stop_reason,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: Callable[[Any, Any], torch.Tensor],
    metrics: Mapping[str, MetricFn] | None = None,
    device: str | torch.device | None = None,
    precision: str = "32",
) -> dict[str, float]:
    """Mean loss and metrics over ``data`` (``val_loss``, ``val_<name>``), weighted by batch size.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(2, 1)
        >>> data = [(torch.zeros(4, 2), model.bias.detach().expand(4, 1))]
        >>> evaluate(model, data, torch.nn.functional.mse_loss)
        {'val_loss': 0.0}
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    total = 0
    for batch in data:
        x, y = _split(_to_device(batch, dev))
        with _autocast(precision, dev):
            out = model(x)
            values = {"val_loss": loss_fn(out, y)}
        for name, fn in (metrics or {}).items():
            values[f"val_{name}"] = fn(out, y)
        n = len(y)
        for name, value in values.items():
            v = torch.as_tensor(value, device=dev).detach().float() * n
            sums[name] = sums[name] + v if name in sums else v
        total += n
    model.train(was_training)
    if total == 0:
        raise InvalidParameterError("The validation data gave no batches.")
    return {name: (v / total).item() for name, v in sums.items()}


def _warn_on_rival_final_weights(callbacks: Sequence[Callback]) -> None:
    """EarlyStopping(restore_best=True) and SWA/EMA each load their weights at the end of
    training; the one later in ``callbacks`` silently wins, so say so."""
    restore = [cb for cb in callbacks if isinstance(cb, EarlyStopping) and cb.restore_best]
    averaging = [cb for cb in callbacks if isinstance(cb, _Averaging)]
    if restore and averaging:
        last = max((*restore, *averaging), key=callbacks.index)
        warnings.warn(
            f"fit: EarlyStopping(restore_best=True) and {type(averaging[0]).__name__} both "
            f"load the final weights; {type(last).__name__}, later in 'callbacks', wins. Pass "
            "restore_best=False to keep the averaged weights.",
            UserWarning,
            stacklevel=3,
        )


def _loader_generators(data: Any) -> list[torch.Generator]:
    """The generators of a ``DataLoader`` and its samplers (``DataLoader(generator=g)``, the
    reproducible way to shuffle), each once: the global generators do not drive them, so an
    exact resume saves their states too."""
    found: list[torch.Generator] = []
    sampler = getattr(data, "sampler", None)
    batch_sampler = getattr(data, "batch_sampler", None)
    for owner in (data, sampler, getattr(batch_sampler, "sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and all(g is not f for f in found):
            found.append(g)
    return found


def _resume(
    state: FitState,
    scaler: torch.amp.GradScaler | None,
    callbacks: Sequence[Callback],
    path: str | os.PathLike[str],
) -> int:
    """Load a checkpoint into the run; return the epoch it finished."""
    ckpt = load_checkpoint(path)
    source = repr(os.fspath(path))
    try:
        load_model_state(state.model, ckpt["model"], source=source)
        written = ckpt.get("optimizer_class")
        if written is not None and written != type(state.optimizer).__name__:
            # torch loads another optimizer's state without complaint and fails mid-epoch
            # (SGD: KeyError 'momentum'), or runs on with the other one's group settings
            raise CheckpointError(
                f"Checkpoint {source} was written with optimizer {written}, not "
                f"{type(state.optimizer).__name__}; resume with the same optimizer."
            )
        try:
            state.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(
                f"Checkpoint {source}: the optimizer state does not fit this optimizer ({exc})."
            ) from None
        if (ckpt["scheduler"] is None) != (state.scheduler is None):
            raise CheckpointError(
                f"Checkpoint {source} was written "
                f"{'with' if ckpt['scheduler'] is not None else 'without'} a schedule; "
                "resume with the same schedule."
            )
        if state.scheduler is not None:
            try:
                state.scheduler.load_state_dict(ckpt["scheduler"])
            except (ValueError, KeyError) as exc:
                raise CheckpointError(f"Checkpoint {source}: {exc}") from None
        if scaler is not None and ckpt["scaler"] is not None:
            scaler.load_state_dict(ckpt["scaler"])
        names = [type(cb).__name__ for cb in callbacks]
        if names != list(ckpt["callback_names"]):
            raise CheckpointError(
                f"Checkpoint {source} was written with callbacks {ckpt['callback_names']}, "
                f"not {names}; resume with the same callbacks."
            )
        for cb, cb_state in zip(callbacks, ckpt["callbacks"], strict=True):
            cb.load_state_dict(cb_state)
        set_rng_state(ckpt["rng"])
        generators = _loader_generators(state.train_data)
        saved = ckpt.get("loader_rng") or []
        if len(saved) == len(generators):  # the loader's own generator shuffles the epochs
            for g, g_state in zip(generators, saved, strict=True):
                g.set_state(g_state)
        state.step = int(ckpt["step"])
        state.epoch = int(ckpt["epoch"])
        state.history = [dict(h) for h in ckpt["history"]]
    except KeyError as exc:
        raise CheckpointError(f"Checkpoint {source} lacks the entry {exc}.") from None
    return state.epoch
