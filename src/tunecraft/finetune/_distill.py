"""Knowledge distillation (Hinton et al., 2015): a student learns from a teacher's
temperature-softened predictions as well as from the labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from tunecraft._validation import check_float
from tunecraft.exceptions import InvalidParameterError

__all__ = ["DistillationLoss", "Distiller", "distill", "distillation_loss"]


def _check_alpha(alpha: float, owner: str) -> float:
    value = check_float(alpha, "alpha", owner, low=0.0)
    if value is None or value > 1.0:
        raise InvalidParameterError(
            f"The 'alpha' parameter of {owner} must be a float in [0, 1], got {alpha!r}."
        )
    return value


def _check_temperature(temperature: float, owner: str) -> float:
    value = check_float(temperature, "temperature", owner, low=0.0, low_inclusive=False)
    assert value is not None
    return value


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, targets)``.

    ``p^T = softmax(logits / T)``; the KL divergence is averaged over the batch, and the factor
    ``T^2`` keeps the soft term's gradients on the scale of the label term's whatever the
    temperature (Hinton et al.). The teacher's logits are treated as constants.

    Args:
        student_logits: ``(n, n_classes)``.
        teacher_logits: ``(n, n_classes)``, same shape.
        targets: Class indices ``(n,)`` or class probabilities ``(n, n_classes)``; needed unless
            ``alpha == 1``.
        temperature: The softening temperature ``T > 0``.
        alpha: The weight of the soft (teacher) term, in ``[0, 1]``.
        label_smoothing: Label smoothing of the label term.

    Returns:
        The mean loss of the batch.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
        >>> float(distillation_loss(logits, logits, temperature=4.0, alpha=1.0))
        0.0
    """
    owner = "distillation_loss"
    t = _check_temperature(temperature, owner)
    a = _check_alpha(alpha, owner)
    if student_logits.shape != teacher_logits.shape:
        raise InvalidParameterError(
            f"distillation_loss needs student and teacher logits of one shape, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}."
        )
    loss = student_logits.new_zeros(())
    if a > 0.0:
        log_p_student = F.log_softmax(student_logits / t, dim=-1)
        log_p_teacher = F.log_softmax(teacher_logits.detach() / t, dim=-1)
        soft = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
        loss = loss + a * t * t * soft
    if a < 1.0:
        if targets is None:
            raise InvalidParameterError(
                f"distillation_loss needs 'targets' when alpha < 1 (got alpha={a})."
            )
        loss = loss + (1.0 - a) * F.cross_entropy(
            student_logits, targets, label_smoothing=label_smoothing
        )
    return loss


class DistillationLoss:
    """The loss of a :class:`Distiller` for :func:`tunecraft.train.fit`.

    Called as ``loss(outputs, labels)``: with ``outputs = (student_logits, teacher_logits)`` (a
    :class:`Distiller` in training mode) it is :func:`distillation_loss`; with plain logits (a
    :class:`Distiller` in eval mode returns the student's) it is the label cross-entropy, so
    ``fit``'s validation loss measures the student alone.

    Args:
        temperature: The softening temperature ``T > 0``.
        alpha: The weight of the soft term, in ``[0, 1]``.
        label_smoothing: Label smoothing of the label term.

    Example:
        >>> loss_fn = DistillationLoss(temperature=4.0, alpha=0.9)
    """

    def __init__(
        self, *, temperature: float = 2.0, alpha: float = 0.5, label_smoothing: float = 0.0
    ) -> None:
        self.temperature = _check_temperature(temperature, "DistillationLoss")
        self.alpha = _check_alpha(alpha, "DistillationLoss")
        self.label_smoothing = float(
            check_float(label_smoothing, "label_smoothing", "DistillationLoss", low=0.0)  # type: ignore[arg-type]
        )

    def __call__(self, outputs: Any, targets: torch.Tensor) -> torch.Tensor:
        """The loss of a batch."""
        if isinstance(outputs, (tuple, list)):
            student, teacher = outputs
            return distillation_loss(
                student,
                teacher,
                targets,
                temperature=self.temperature,
                alpha=self.alpha,
                label_smoothing=self.label_smoothing,
            )
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def __repr__(self) -> str:
        return f"DistillationLoss(temperature={self.temperature:g}, alpha={self.alpha:g})"


class Distiller(nn.Module):
    """A student and a frozen teacher in one module, trainable by :func:`tunecraft.train.fit`.

    In training mode ``forward(x)`` returns ``(student_logits, teacher_logits)``, the teacher run
    without gradients; in eval mode it returns the student's logits alone (so ``fit``'s metrics
    and validation see the student). The teacher's parameters are frozen (``requires_grad``
    off, so ``fit``'s optimizer leaves them out) and it stays in eval mode even when
    ``train()`` is called. Targets stay plain labels, so ``fit``'s gradient-accumulation
    weights (which count labels) apply unchanged.

    Args:
        student: The model to train.
        teacher: The trained model to learn from.

    Example:
        >>> import torch
        >>> distiller = Distiller(torch.nn.Linear(4, 3), torch.nn.Linear(4, 3))
        >>> student_logits, teacher_logits = distiller(torch.randn(2, 4))
        >>> distiller.eval()(torch.randn(2, 4)).shape
        torch.Size([2, 3])
    """

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        for name, value in (("student", student), ("teacher", teacher)):
            if not isinstance(value, nn.Module):
                raise TypeError(
                    f"The '{name}' parameter of Distiller must be a torch.nn.Module, "
                    f"got {type(value).__name__}."
                )
        super().__init__()
        self.student = student
        self.teacher = teacher
        self.teacher.requires_grad_(False)
        self.teacher.eval()

    def train(self, mode: bool = True) -> Distiller:
        """Set the student's mode; the teacher stays in eval mode."""
        self.training = mode
        self.student.train(mode)
        self.teacher.eval()
        return self

    def forward(self, x: Any) -> Any:
        """``(student_logits, teacher_logits)`` in training mode, the student's logits in eval."""
        student_logits = self.student(x)
        if not self.training:
            return student_logits
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        return student_logits, teacher_logits


def distill(
    student: nn.Module,
    teacher: nn.Module,
    train_data: Iterable[Any],
    val_data: Iterable[Any] | None = None,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    label_smoothing: float = 0.0,
    fit_options: Mapping[str, Any] | None = None,
) -> Any:
    """Train ``student`` on ``train_data`` with the distillation loss, through :func:`fit`.

    Args:
        student: The model to train (in place).
        teacher: The trained teacher (frozen during and after the call).
        train_data: ``(inputs, labels)`` batches.
        val_data: Validation batches: ``fit`` reports the student's label loss and metrics.
        temperature: The softening temperature ``T > 0``.
        alpha: The weight of the soft term, in ``[0, 1]``.
        label_smoothing: Label smoothing of the label term.
        fit_options: Keyword arguments of :func:`tunecraft.train.fit` (``epochs``, ``lr``,
            ``metrics``, ``callbacks``...); ``loss_fn`` is set here.

    Returns:
        The :class:`tunecraft.train.FitResult`.
    """
    from tunecraft.train import fit

    options = dict(fit_options or {})
    if "loss_fn" in options:
        raise InvalidParameterError(
            "The 'fit_options' parameter of distill must not set 'loss_fn'; "
            "use temperature, alpha and label_smoothing."
        )
    options.setdefault("epochs", 10)
    loss_fn = DistillationLoss(
        temperature=temperature, alpha=alpha, label_smoothing=label_smoothing
    )
    distiller = Distiller(student, teacher)
    return fit(distiller, train_data, val_data, loss_fn=loss_fn, **options)
