"""PyTorch training utilities: LR finder, schedules, optimizers, a fit loop, callbacks.

Needs the ``torch`` extra (``pip install "tunecraft[torch]"``); ``import tunecraft`` alone never
imports torch.

Example:
    >>> from tunecraft.train import schedule_factor, scale_lr
    >>> schedule_factor("cosine", 50, {"total_steps": 100})
    0.5
    >>> scale_lr(0.1, 256, 512)
    0.2
"""

from __future__ import annotations

from tunecraft._imports import require

require("torch", "torch", purpose="tunecraft.train")

from tunecraft.train._callbacks import (  # noqa: E402
    EMA,
    SWA,
    Callback,
    EarlyStopping,
    FitState,
    LRMonitor,
    ModelCheckpoint,
    ProgressBar,
)
from tunecraft.train._checkpoint import (  # noqa: E402
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from tunecraft.train._fit import FitResult, evaluate, fit  # noqa: E402
from tunecraft.train._lr_finder import LRFinderResult, lr_find, suggest_lrs  # noqa: E402
from tunecraft.train._optim import OPTIMIZERS, make_optimizer, param_groups  # noqa: E402
from tunecraft.train._scaling import (  # noqa: E402
    BatchSizeResult,
    find_batch_size,
    is_oom_error,
    scale_lr,
)
from tunecraft.train._schedules import (  # noqa: E402
    SCHEDULES,
    ScheduleConfig,
    ScheduledLR,
    constant_factor,
    cosine_factor,
    cosine_restarts_factor,
    exponential_factor,
    make_lr_scheduler,
    multistep_factor,
    one_cycle_factor,
    plateau_factor,
    polynomial_factor,
    schedule_factor,
    step_factor,
    warmup_factor,
)
from tunecraft.train._seed import get_rng_state, seed_everything, set_rng_state  # noqa: E402

__all__ = [
    "EMA",
    "OPTIMIZERS",
    "SCHEDULES",
    "SWA",
    "BatchSizeResult",
    "Callback",
    "CheckpointError",
    "EarlyStopping",
    "FitResult",
    "FitState",
    "LRFinderResult",
    "LRMonitor",
    "ModelCheckpoint",
    "ProgressBar",
    "ScheduleConfig",
    "ScheduledLR",
    "constant_factor",
    "cosine_factor",
    "cosine_restarts_factor",
    "evaluate",
    "exponential_factor",
    "find_batch_size",
    "fit",
    "get_rng_state",
    "is_oom_error",
    "load_checkpoint",
    "lr_find",
    "make_lr_scheduler",
    "make_optimizer",
    "multistep_factor",
    "one_cycle_factor",
    "param_groups",
    "plateau_factor",
    "polynomial_factor",
    "save_checkpoint",
    "scale_lr",
    "schedule_factor",
    "seed_everything",
    "set_rng_state",
    "step_factor",
    "suggest_lrs",
    "warmup_factor",
]
