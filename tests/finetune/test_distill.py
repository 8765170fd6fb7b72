"""Knowledge distillation: the loss, its gradient, Distiller with fit (accumulation included)."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.finetune._distill import (  # noqa: E402
    DistillationLoss,
    Distiller,
    distill,
    distillation_loss,
)
from tunecraft.train import fit  # noqa: E402


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_loss_is_zero_when_student_equals_teacher(temperature: float) -> None:
    logits = torch.randn(8, 5)
    loss = distillation_loss(logits, logits.clone(), temperature=temperature, alpha=1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_soft_term_matches_the_hand_formula() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(6, 4), torch.randn(6, 4)
    temperature = 3.0
    p = torch.softmax(t / temperature, -1)
    q = torch.softmax(s / temperature, -1)
    kl = (p * (p.log() - q.log())).sum(-1).mean()
    loss = distillation_loss(s, t, temperature=temperature, alpha=1.0)
    torch.testing.assert_close(loss, temperature**2 * kl)


def test_mixture_with_the_label_loss() -> None:
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 4), torch.randn(6, 4), torch.randint(0, 4, (6,))
    soft = distillation_loss(s, t, temperature=2.0, alpha=1.0)
    hard = F.cross_entropy(s, y)
    mixed = distillation_loss(s, t, y, temperature=2.0, alpha=0.3)
    torch.testing.assert_close(mixed, 0.3 * soft + 0.7 * hard)
    torch.testing.assert_close(distillation_loss(s, t, y, alpha=0.0), hard)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_gradient_wrt_student_logits_is_t_times_the_probability_gap(temperature: float) -> None:
    # d/ds [T^2 KL(p_t || softmax(s/T))] / n = T (softmax(s/T) - p_t) / n
    torch.manual_seed(1)
    s = torch.randn(5, 3, requires_grad=True)
    t = torch.randn(5, 3, requires_grad=True)
    distillation_loss(s, t, temperature=temperature, alpha=1.0).backward()
    expected = (
        temperature
        * (
            torch.softmax(s.detach() / temperature, -1)
            - torch.softmax(t.detach() / temperature, -1)
        )
        / 5
    )
    torch.testing.assert_close(s.grad, expected)
    assert t.grad is None  # the teacher is a constant


def test_distiller_freezes_the_teacher_and_switches_outputs_by_mode() -> None:
    teacher = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    student = nn.Linear(4, 3)
    distiller = Distiller(student, teacher)
    assert not any(p.requires_grad for p in teacher.parameters())
    distiller.train()
    assert student.training and not teacher.training
    x = torch.randn(5, 4)
    _, t = distiller(x)
    torch.testing.assert_close(t, teacher(x))  # deterministic: teacher in eval mode
    assert not t.requires_grad
    distiller.eval()
    torch.testing.assert_close(distiller(x), student(x))


def make_task(seed: int = 0) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    train = DataLoader(TensorDataset(x[:192], y[:192]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))  # fmt: skip
    val = DataLoader(TensorDataset(x[192:], y[192:]), batch_size=64)
    return train, val


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(-1) == y).float().mean()


def test_distill_through_fit_moves_the_student_to_the_teacher() -> None:
    train, val = make_task()
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    fit(teacher, train, loss_fn=F.cross_entropy, lr=0.01, epochs=20, device="cpu")
    torch.manual_seed(1)
    student = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x_val = torch.cat([x for x, _ in val])
    before = F.kl_div(
        student(x_val).log_softmax(-1), teacher(x_val).log_softmax(-1), log_target=True,
        reduction="batchmean",
    ).item()  # fmt: skip
    result = distill(
        student, teacher, train, val, temperature=2.0, alpha=1.0,
        fit_options={"epochs": 15, "lr": 0.01, "device": "cpu", "metrics": {"acc": accuracy}},
    )  # fmt: skip
    after = F.kl_div(
        student(x_val).log_softmax(-1), teacher(x_val).log_softmax(-1), log_target=True,
        reduction="batchmean",
    ).item()  # fmt: skip
    assert after < before / 4
    # validation reports the student's label loss and metrics
    assert result.last["val_acc"] > 0.7
    assert not any(p.requires_grad for p in teacher.parameters())


def test_gradient_accumulation_normalization_holds_with_distiller() -> None:
    torch.manual_seed(0)
    teacher = nn.Linear(3, 4)
    student = nn.Linear(3, 4)
    x, y = torch.randn(8, 3), torch.randint(0, 4, (8,))
    loss_fn = DistillationLoss(temperature=2.0, alpha=0.5)

    def one_step(batches: list, accumulate: int) -> torch.Tensor:
        s = copy.deepcopy(student)
        model = Distiller(s, teacher)
        opt = torch.optim.SGD(s.parameters(), lr=0.1)
        fit(model, batches, loss_fn=loss_fn, optimizer=opt, epochs=1, accumulate=accumulate,
            device="cpu")  # fmt: skip
        return s.weight.detach()

    whole = one_step([(x, y)], 1)
    split = one_step([(x[:3], y[:3]), (x[3:], y[3:])], 2)  # unequal micro-batches
    torch.testing.assert_close(split, whole)


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_temperature_must_be_positive(temperature: float) -> None:
    with pytest.raises(
        InvalidParameterError, match="'temperature' parameter of distillation_loss"
    ):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), temperature=temperature)
    with pytest.raises(InvalidParameterError, match="'temperature' parameter of DistillationLoss"):
        DistillationLoss(temperature=temperature)


def test_bad_distillation_arguments() -> None:
    with pytest.raises(InvalidParameterError, match=r"'alpha' parameter of DistillationLoss"):
        DistillationLoss(alpha=1.5)
    with pytest.raises(InvalidParameterError, match="needs 'targets' when alpha < 1"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 2), alpha=0.5)
    with pytest.raises(InvalidParameterError, match="one shape"):
        distillation_loss(torch.zeros(1, 2), torch.zeros(1, 3), alpha=1.0)
    with pytest.raises(TypeError, match="'teacher' parameter of Distiller"):
        Distiller(nn.Linear(1, 1), "teacher")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="must not set 'loss_fn'"):
        distill(nn.Linear(1, 2), nn.Linear(1, 2), [], fit_options={"loss_fn": F.cross_entropy})
