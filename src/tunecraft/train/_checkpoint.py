"""Training checkpoints: everything needed to continue a run exactly, loaded ``weights_only``."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunecraft.exceptions import TunecraftError

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "tunecraft.train/1"


class CheckpointError(TunecraftError, RuntimeError):
    """A checkpoint is missing, corrupted, of another format, or does not fit the model."""


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` atomically (a temporary file renamed into place).

    The dict must hold only tensors, numbers, strings, ``None`` and lists/tuples/dicts of them,
    so that :func:`load_checkpoint` can read it with ``weights_only=True``.

    Example:
        >>> import tempfile, torch
        >>> path = save_checkpoint(tempfile.mkdtemp() + "/c.pt", {"w": torch.ones(2)})
        >>> load_checkpoint(path, check_format=False)["w"]
        tensor([1., 1.])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, **checkpoint}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device | None = "cpu",
    check_format: bool = True,
) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; clear errors when it is bad.

    Raises:
        CheckpointError: The file is missing, truncated or corrupted, holds objects other than
            tensors and plain containers, or was not written by :func:`save_checkpoint`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist.")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # refused objects name a GLOBAL; bytes do not
            raise CheckpointError(
                f"Checkpoint {str(path)!r} is corrupted or truncated and cannot be read "
                "(it does not unpickle)."
            ) from None
        raise CheckpointError(
            f"Checkpoint {str(path)!r} holds objects that weights_only loading refuses "
            f"(only tensors and plain containers are allowed): {str(exc).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is corrupted or truncated and cannot be read "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})."
        ) from None
    if check_format and (not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT):
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is not a tunecraft training checkpoint "
            f"(format {found!r}, expected {CHECKPOINT_FORMAT!r})."
        )
    if not isinstance(data, dict):
        raise CheckpointError(f"Checkpoint {str(path)!r} does not hold a dict.")
    return data


def load_model_state(model: nn.Module, state: dict[str, Any], *, source: str) -> None:
    """``model.load_state_dict(state)`` with a one-line error naming what does not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}")
        if shapes:
            parts.append("shape mismatches " + "; ".join(shapes[:5]))
        raise CheckpointError(
            f"Checkpoint {source} does not fit this model: " + ", ".join(parts) + "."
        )
    model.load_state_dict(state)
