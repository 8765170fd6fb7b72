"""Data-side helpers of fine-tuning: label smoothing, batch augmentation (noise, mixup),
few-shot selection, zero-shot evaluation with class prototypes, domain-shift evaluation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.optim import swa_utils

from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError
from tunecraft.finetune._forgetting import accuracy

__all__ = [
    "AugmentedData",
    "DomainShiftReport",
    "GaussianNoise",
    "Mixup",
    "PrototypeClassifier",
    "augment_batches",
    "evaluate_domain_shift",
    "few_shot_indices",
    "smoothed_cross_entropy",
]

Augmentation = Callable[[Any, Any], tuple[Any, Any]]


def smoothed_cross_entropy(
    smoothing: float = 0.1, *, weight: torch.Tensor | None = None, ignore_index: int = -100
) -> nn.CrossEntropyLoss:
    """Cross-entropy with label smoothing: ``torch.nn.CrossEntropyLoss(label_smoothing=...)``.

    The loss accepts class indices or class probabilities (the soft targets :class:`Mixup`
    makes), so one loss serves training with mixup and validation with plain labels.

    Args:
        smoothing: The smoothing in ``[0, 1)``: the target puts ``1 - smoothing`` on the label
            and spreads ``smoothing`` uniformly over all classes.
        weight: Per-class weights, as in ``CrossEntropyLoss``.
        ignore_index: Targets with this value are ignored (index targets only).

    Example:
        >>> import torch
        >>> loss = smoothed_cross_entropy(0.1)
        >>> round(float(loss(torch.tensor([[10.0, -10.0]]), torch.tensor([0]))), 3)
        1.0
    """
    value = check_float(smoothing, "smoothing", "smoothed_cross_entropy", low=0.0)
    if value is None or value >= 1.0:
        raise InvalidParameterError(
            "The 'smoothing' parameter of smoothed_cross_entropy must be a float in [0, 1), "
            f"got {smoothing!r}."
        )
    return nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index, label_smoothing=value)


class AugmentedData:
    """Re-iterable batches with augmentations applied to each ``(inputs, targets)`` batch.

    A wrapper of the training ``DataLoader`` for :func:`tunecraft.train.fit`: every batch fit
    draws passes through the augmentations in order; ``len()`` is the wrapped data's, so fit's
    schedules see the right number of steps. Wrap only the training data.

    Args:
        data: ``(inputs, targets)`` batches (a ``DataLoader``).
        augmentations: Functions ``(inputs, targets) -> (inputs, targets)``.
    """

    def __init__(self, data: Iterable[Any], augmentations: Sequence[Augmentation]) -> None:
        for i, fn in enumerate(augmentations):
            if not callable(fn):
                raise TypeError(
                    f"Augmentation {i} of augment_batches must be callable "
                    f"(inputs, targets) -> (inputs, targets), got {fn!r}."
                )
        self.data = data
        self.augmentations = list(augmentations)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for batch in self.data:
            if not (isinstance(batch, (list, tuple)) and len(batch) == 2):
                raise InvalidParameterError(
                    "augment_batches expects (inputs, targets) batches, "
                    f"got {type(batch).__name__}."
                )
            x, y = batch
            for fn in self.augmentations:
                x, y = fn(x, y)
            yield x, y

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]


def augment_batches(data: Iterable[Any], *augmentations: Augmentation) -> AugmentedData:
    """Apply ``augmentations`` to every training batch (see :class:`AugmentedData`).

    Example:
        >>> import torch
        >>> data = [(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]))]
        >>> noisy = augment_batches(data, GaussianNoise(0.1, seed=0))
        >>> x, y = next(iter(noisy))
        >>> bool(x.abs().sum() > 0), y.tolist()
        (True, [0, 1, 0, 1])
    """
    return AugmentedData(data, augmentations)


class _Seeded:
    def __init__(self, seed: int | None) -> None:
        check_int(seed, "seed", type(self).__name__, low=0, allow_none=True)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator()
        self.generator.manual_seed(int(self.rng.integers(2**62)))


class GaussianNoise(_Seeded):
    """Add ``N(0, std^2)`` noise to floating-point inputs; targets unchanged.

    Args:
        std: The noise's standard deviation (>= 0).
        seed: Seed of the noise generator (``None``: a random seed).
    """

    def __init__(self, std: float, *, seed: int | None = None) -> None:
        self.std = float(check_float(std, "std", "GaussianNoise", low=0.0))  # type: ignore[arg-type]
        super().__init__(seed)

    def __call__(self, x: torch.Tensor, y: Any) -> tuple[torch.Tensor, Any]:
        """The noisy batch."""
        if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
            raise TypeError(
                f"GaussianNoise needs floating-point tensor inputs, got {type(x).__name__}."
            )
        noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype)
        return x + self.std * noise.to(x.device), y


class Mixup(_Seeded):
    """Mixup (Zhang et al., 2018): convex combinations of pairs of examples and their labels.

    A batch's inputs become ``lam * x + (1 - lam) * x[perm]`` and its targets the matching
    mixture of one-hot labels, ``lam ~ Beta(alpha, alpha)`` drawn once per batch. Targets come
    out as class probabilities ``(n, num_classes)``: ``nn.CrossEntropyLoss`` (and
    :func:`smoothed_cross_entropy`) accepts them; ``fit`` weights accumulated micro-batches by
    their element count, proportional to the batch size, so accumulation stays correct.

    Args:
        alpha: The Beta distribution's parameter (> 0); 0.2 to 0.4 is usual.
        num_classes: Number of classes (for the one-hot targets).
        seed: Seed of the generator (``None``: a random seed).
    """

    def __init__(self, alpha: float = 0.2, *, num_classes: int, seed: int | None = None) -> None:
        self.alpha = float(
            check_float(alpha, "alpha", "Mixup", low=0.0, low_inclusive=False)  # type: ignore[arg-type]
        )
        self.num_classes = int(check_int(num_classes, "num_classes", "Mixup", low=2))  # type: ignore[arg-type]
        super().__init__(seed)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixed batch: inputs and soft targets."""
        if y.is_floating_point():
            soft = y
        else:
            dtype = x.dtype if x.is_floating_point() else torch.float32
            soft = F.one_hot(y.long(), self.num_classes).to(dtype)
        lam = float(self.rng.beta(self.alpha, self.alpha))
        perm = torch.from_numpy(self.rng.permutation(x.shape[0])).to(x.device)
        mixed_x = lam * x + (1.0 - lam) * x[perm]
        mixed_y = lam * soft + (1.0 - lam) * soft[perm]
        return mixed_x, mixed_y


def few_shot_indices(
    labels: Any, k: int, *, seed: int = 0, classes: Sequence[int] | None = None
) -> np.ndarray:
    """Indices of ``k`` examples of each class, drawn without replacement (seeded).

    Args:
        labels: The dataset's labels, shape ``(n,)`` (array, list or tensor).
        k: Examples per class (>= 1); every selected class must have at least ``k``.
        seed: Seed of the draw.
        classes: The classes to select; every class present by default.

    Returns:
        Sorted indices into the dataset (use ``torch.utils.data.Subset(dataset, indices)``).

    Example:
        >>> few_shot_indices([0, 0, 0, 1, 1, 2, 2, 2], k=2, seed=0).size
        6
    """
    owner = "few_shot_indices"
    check_int(k, "k", owner, low=1)
    check_int(seed, "seed", owner, low=0)
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise InvalidParameterError(
            f"The 'labels' parameter of {owner} must be a non-empty 1-d array, "
            f"got shape {y.shape}."
        )
    wanted = np.unique(y) if classes is None else np.asarray(list(classes))
    rng = np.random.default_rng(seed)
    chosen = []
    for c in wanted:
        pool = np.flatnonzero(y == c)
        if pool.size < k:
            raise InvalidParameterError(
                f"The 'k' parameter of {owner} is {k}, but class {c.item()!r} has only "
                f"{pool.size} examples."
            )
        chosen.append(rng.choice(pool, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


class PrototypeClassifier(nn.Module):
    """Zero-shot classification with a frozen encoder: similarity to one embedding per class.

    Build it from labelled support examples (:meth:`from_support`: each class's prototype is
    the mean embedding of its examples, no training) or, for text, from the embeddings of the
    label names (:meth:`from_label_names`). ``forward(x)`` returns similarities as logits:
    cosine similarity (``metric="cosine"``) or the negative squared Euclidean distance
    (``"euclidean"``). Evaluate it with :func:`tunecraft.finetune.accuracy`.

    Args:
        encoder: A module or a function mapping a batch of inputs to embeddings ``(n, d)``.
        prototypes: One embedding per class, ``(n_classes, d)``.
        metric: ``"cosine"`` or ``"euclidean"``.

    Example:
        >>> import torch
        >>> data = [(torch.tensor([[1.0, 0.1], [0.9, 0.0], [0.0, 1.0]]), torch.tensor([0, 0, 1]))]
        >>> clf = PrototypeClassifier.from_support(torch.nn.Identity(), data)
        >>> clf(torch.tensor([[0.2, 0.8]])).argmax(-1).tolist()
        [1]
    """

    prototypes: torch.Tensor

    def __init__(
        self,
        encoder: nn.Module | Callable[[Any], torch.Tensor],
        prototypes: torch.Tensor,
        *,
        metric: str = "cosine",
    ) -> None:
        check_choice(metric, "metric", "PrototypeClassifier", ("cosine", "euclidean"))
        if not callable(encoder):
            raise TypeError(
                "The 'encoder' parameter of PrototypeClassifier must be callable, "
                f"got {encoder!r}."
            )
        if not isinstance(prototypes, torch.Tensor) or prototypes.ndim != 2:
            raise InvalidParameterError(
                "The 'prototypes' parameter of PrototypeClassifier must be a 2-d tensor "
                "(n_classes, dim)."
            )
        super().__init__()
        self.encoder = encoder
        self.metric = metric
        self.register_buffer("prototypes", prototypes.detach().float())

    @classmethod
    @torch.no_grad()
    def from_support(
        cls,
        encoder: nn.Module | Callable[[Any], torch.Tensor],
        data: Iterable[Any],
        *,
        n_classes: int | None = None,
        metric: str = "cosine",
    ) -> PrototypeClassifier:
        """Prototypes as the mean embedding of each class's examples in ``data``.

        Args:
            encoder: The frozen encoder (put in eval mode).
            data: ``(inputs, labels)`` batches with at least one example of every class.
            n_classes: Number of classes; ``max(label) + 1`` by default.
            metric: ``"cosine"`` or ``"euclidean"``.
        """
        if isinstance(encoder, nn.Module):
            encoder.eval()
        sums: torch.Tensor | None = None
        counts: torch.Tensor | None = None
        embeddings, labels = [], []
        for x, y in data:
            embeddings.append(torch.as_tensor(encoder(x)).detach().float().cpu())
            labels.append(torch.as_tensor(y).cpu().long())
        if not embeddings:
            raise InvalidParameterError(
                "The 'data' parameter of PrototypeClassifier.from_support gave no batches."
            )
        emb, lab = torch.cat(embeddings), torch.cat(labels)
        if metric == "cosine":
            emb = F.normalize(emb, dim=-1)
        low, high = int(lab.min()), int(lab.max())
        k = high + 1 if n_classes is None else n_classes
        if low < 0 or high >= k:  # index_add_ would fail deep in torch, or count -1 as k-1
            raise InvalidParameterError(
                f"The 'data' parameter of PrototypeClassifier.from_support must hold labels in "
                f"[0, {k - 1}] (n_classes={k}), got labels from {low} to {high}."
            )
        sums = torch.zeros(k, emb.shape[1]).index_add_(0, lab, emb)
        counts = torch.bincount(lab, minlength=k)
        if (counts == 0).any():
            missing = torch.nonzero(counts == 0).flatten().tolist()
            raise InvalidParameterError(
                f"PrototypeClassifier.from_support: no support example of classes {missing}."
            )
        return cls(encoder, sums / counts.unsqueeze(1), metric=metric)

    @classmethod
    @torch.no_grad()
    def from_label_names(
        cls,
        embed: Callable[[list[str]], torch.Tensor],
        label_names: Sequence[str],
        *,
        template: str = "{}",
        metric: str = "cosine",
    ) -> PrototypeClassifier:
        """Prototypes as the embeddings of the label names (text zero-shot).

        Args:
            embed: A function mapping a list of strings to embeddings ``(n, d)``; it also
                encodes the inputs at prediction time.
            label_names: One name per class, in label order.
            template: A format string for each name (``"This text is about {}."``).
            metric: ``"cosine"`` or ``"euclidean"``.
        """
        names = [template.format(n) for n in label_names]
        if len(names) < 2:
            raise InvalidParameterError(
                "The 'label_names' parameter of PrototypeClassifier.from_label_names needs at "
                f"least two names, got {list(label_names)!r}."
            )
        return cls(embed, torch.as_tensor(embed(names)).detach().float().cpu(), metric=metric)

    def forward(self, x: Any) -> torch.Tensor:
        """Similarity logits ``(n, n_classes)``."""
        with torch.no_grad():
            emb = torch.as_tensor(self.encoder(x)).float().to(self.prototypes.device)
        if self.metric == "cosine":
            return F.normalize(emb, dim=-1) @ F.normalize(self.prototypes, dim=-1).T
        return -torch.cdist(emb, self.prototypes).pow(2)


@dataclass(frozen=True)
class DomainShiftReport:
    """What :func:`evaluate_domain_shift` returns.

    Attributes:
        source: The score on the source domain.
        target: The score on the target domain, model unchanged.
        target_adapted: The score on the target after re-estimating BatchNorm statistics on it
            (``None`` when the model has no BatchNorm or adaptation was off).
    """

    source: float
    target: float
    target_adapted: float | None = None

    @property
    def drop(self) -> float:
        """``source - target``: what the shift costs."""
        return self.source - self.target


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def evaluate_domain_shift(
    model: nn.Module,
    source: Iterable[Any],
    target: Iterable[Any],
    *,
    adapt_batchnorm: bool = True,
    adapt_data: Iterable[Any] | None = None,
    metric: Callable[[nn.Module, Iterable[Any]], float] | None = None,
) -> DomainShiftReport:
    """Score one model on source and target data; optionally adapt BatchNorm to the target.

    The simple adaptation (AdaBN, Li et al., 2016) re-estimates every BatchNorm layer's running
    statistics on target inputs (``torch.optim.swa_utils.update_bn`` on a copy of the model; the
    given model is not changed). No labels of the target are used for it.

    Args:
        model: The trained model.
        source: ``(inputs, labels)`` batches of the source domain.
        target: ``(inputs, labels)`` batches of the target domain.
        adapt_batchnorm: Also score a copy with BatchNorm statistics re-estimated on the target.
        adapt_data: Target batches to re-estimate the statistics on (labels ignored);
            ``target`` by default (transductive).
        metric: ``metric(model, data) -> float``; :func:`accuracy` by default.

    Returns:
        A :class:`DomainShiftReport`.
    """
    score = metric or (lambda m, data: accuracy(m, data))
    source_score = float(score(model, source))
    target_score = float(score(model, target))
    adapted: float | None = None
    if adapt_batchnorm and _has_batchnorm(model):
        copy_ = copy.deepcopy(model)
        device = next(copy_.parameters()).device
        swa_utils.update_bn(adapt_data if adapt_data is not None else target, copy_, device=device)
        copy_.eval()
        adapted = float(score(copy_, target))
    return DomainShiftReport(source=source_score, target=target_score, target_adapted=adapted)
