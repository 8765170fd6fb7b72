"""Seeding, and RNG states a checkpoint can carry (tensors and lists: ``weights_only`` safe)."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from tunecraft._validation import check_int

__all__ = ["get_rng_state", "seed_everything", "set_rng_state"]


def seed_everything(seed: int, *, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU).

    Args:
        seed: An int in ``[0, 2**32 - 1]``.
        deterministic: Also ask torch for deterministic algorithms
            (``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN deterministic and
            not benchmarking, and ``CUBLAS_WORKSPACE_CONFIG`` set when unset). Slower on GPUs.
            ``False`` turns these settings back off.

    Returns:
        The seed, for logging.

    Example:
        >>> import torch
        >>> _ = seed_everything(0)
        >>> a = torch.rand(2)
        >>> _ = seed_everything(0)
        >>> torch.equal(a, torch.rand(2))
        True
    """
    check_int(seed, "seed", "seed_everything", low=0, high=2**32 - 1)
    if not isinstance(deterministic, bool):
        raise TypeError(
            "The 'deterministic' parameter of seed_everything must be a bool, "
            f"got {deterministic!r}."
        )
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False if deterministic else torch.backends.cudnn.benchmark
    return int(seed)


def get_rng_state() -> dict[str, Any]:
    """The state of every global generator, as tensors, ints and lists only.

    ``torch.load(..., weights_only=True)`` reads it back, unlike the tuples and arrays that
    ``random.getstate()`` and ``numpy.random.get_state()`` return.

    Example:
        >>> import random
        >>> state = get_rng_state()
        >>> a = random.random()
        >>> set_rng_state(state)
        >>> random.random() == a
        True
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {
            "version": int(version),
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators from :func:`get_rng_state`'s output.

    CUDA states are restored only when as many devices are visible as were saved.
    """
    py = state["python"]
    internal = tuple(int(v) for v in py["state"].tolist())
    random.setstate((py["version"], internal, py["gauss"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
