"""Elastic weight consolidation: Fisher and penalty against hand computations, online EWC, fit."""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.finetune._ewc import EWC, fisher_diagonal  # noqa: E402
from tunecraft.train import fit  # noqa: E402


def zero_linear() -> nn.Linear:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    return model


TWO_SAMPLES = [(torch.tensor([[1.0, 2.0], [2.0, 0.0]]), torch.tensor([0, 1]))]


def test_fisher_of_a_zero_linear_model_matches_the_hand_computation() -> None:
    # p = (0.5, 0.5) for both samples; d log p_y / dW = (e_y - p) x^T, d/db = e_y - p.
    # sample 1 (x=(1,2), y=0): dW = [[.5, 1], [-.5, -1]]
    # sample 2 (x=(2,0), y=1): dW = [[-1, 0], [1, 0]]
    fisher = fisher_diagonal(zero_linear(), TWO_SAMPLES)
    expected_w = torch.tensor([[(0.25 + 1.0) / 2, (1.0 + 0.0) / 2]] * 2)
    torch.testing.assert_close(fisher["weight"], expected_w)
    torch.testing.assert_close(fisher["bias"], torch.tensor([0.25, 0.25]))


@pytest.mark.parametrize("vectorize", [True, False])
def test_fisher_of_a_bfloat16_model_does_not_stall_over_many_batches(vectorize: bool) -> None:
    """Each sample adds 0.25 to each bias entry: a bfloat16 running sum drifts (4% low for
    40 batches of 13) and stops at 64 when it grows by 0.25."""
    model = zero_linear().to(torch.bfloat16)
    size, n_batches = (13, 40) if vectorize else (1, 300)
    batch = (torch.ones(size, 2, dtype=torch.bfloat16), torch.arange(size) % 2)
    fisher = fisher_diagonal(model, [batch] * n_batches, vectorize=vectorize)
    assert fisher["bias"].dtype == torch.bfloat16  # the parameter's dtype, as before
    torch.testing.assert_close(fisher["bias"].float(), torch.full((2,), 0.25))


def closed_form(model: nn.Linear, x: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """The weight Fisher of softmax regression written out: E[(e - p)^2 x^2] per entry."""
    p = torch.softmax(model(x), -1).detach()
    eye = torch.eye(p.shape[1])
    if kind == "empirical":
        g2 = (eye[y] - p) ** 2  # (n, c)
    else:  # sum_c p_c (e_c - p)^2
        g2 = torch.einsum("nc,ncd->nd", p, (eye.unsqueeze(0) - p.unsqueeze(1)) ** 2)
    return torch.einsum("nc,nd->cd", g2, x**2) / x.shape[0]


@pytest.mark.parametrize("kind", ["empirical", "true"])
def test_fisher_matches_the_closed_form_of_softmax_regression(kind: str) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    data = [(x[:7], y[:7]), (x[7:], y[7:])]  # unequal batches: a mean over samples
    fisher = fisher_diagonal(model, data, kind=kind)
    torch.testing.assert_close(fisher["weight"], closed_form(model, x, y, kind))


def test_true_and_empirical_fisher_differ_when_the_model_is_not_at_the_labels() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    data = [(torch.randn(32, 4), torch.zeros(32, dtype=torch.long))]
    emp = fisher_diagonal(model, data, kind="empirical")["weight"]
    true = fisher_diagonal(model, data, kind="true")["weight"]
    assert not torch.allclose(emp, true)


@pytest.mark.parametrize("kind", ["empirical", "true"])
def test_looped_fisher_equals_vectorized_with_batchnorm_and_dropout(kind: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Dropout(0.3), nn.Linear(5, 4)
    )
    model.train()
    data = [(torch.randn(6, 3), torch.randint(0, 4, (6,))) for _ in range(2)]
    a = fisher_diagonal(model, data, kind=kind)
    b = fisher_diagonal(model, data, kind=kind, vectorize=False)
    for name in a:
        torch.testing.assert_close(a[name], b[name])
    assert model.training  # mode restored


def test_penalty_is_zero_at_the_anchor_and_matches_the_hand_formula() -> None:
    model = zero_linear()
    ewc = EWC(model, strength=3.0)
    ewc.consolidate(TWO_SAMPLES)
    assert ewc.penalty().item() == 0.0
    delta = torch.tensor([[0.1, -0.2], [0.3, 0.0]])
    with torch.no_grad():
        model.weight.add_(delta)
        model.bias.add_(torch.tensor([1.0, -1.0]))
    fisher_w = torch.tensor([[0.625, 0.5], [0.625, 0.5]])
    by_hand = 0.5 * 3.0 * ((fisher_w * delta**2).sum() + 0.25 * 1.0 + 0.25 * 1.0)
    torch.testing.assert_close(ewc.penalty(), by_hand)


def test_penalty_grows_as_important_weights_move_and_has_the_right_gradient() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    data = [(torch.randn(32, 4), torch.randint(0, 3, (32,)))]
    ewc = EWC(model, strength=10.0)
    ewc.consolidate(data)
    fisher = ewc.fisher
    assert all(f.sum() > 0 for f in fisher.values())
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    direction = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    values = []
    for t in (0.0, 0.1, 0.5, 1.0, 2.0):
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(anchor[n] + t * direction[n])
        values.append(ewc.penalty().item())
    assert values[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(values))
    # quadratic in the displacement
    assert values[4] == pytest.approx(4 * values[3], rel=1e-5)
    model.zero_grad()
    ewc.penalty().backward()
    for n, p in model.named_parameters():
        expected = 10.0 * fisher[n] * (p.detach() - anchor[n])
        torch.testing.assert_close(p.grad, expected)


def test_moving_an_important_weight_costs_more_than_an_unimportant_one() -> None:
    model = zero_linear()
    ewc = EWC(model, strength=1.0)
    # feature 1 is always 0 in this data, so its weights have zero Fisher
    ewc.consolidate([(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.tensor([0, 1]))])
    with torch.no_grad():
        model.weight[0, 1] += 1.0
    unimportant = ewc.penalty().item()
    with torch.no_grad():
        model.weight[0, 1] -= 1.0
        model.weight[0, 0] += 1.0
    important = ewc.penalty().item()
    assert unimportant == 0.0
    assert important > 0.0


def test_online_ewc_accumulates_with_decay_and_anchors_at_the_latest_task() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    task_a = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
    task_b = [(torch.randn(16, 3) + 1.0, torch.randint(0, 2, (16,)))]
    online = EWC(model, strength=1.0, online=True, gamma=0.5)
    online.consolidate(task_a)
    fisher_a = fisher_diagonal(model, task_a)
    with torch.no_grad():
        model.weight.add_(0.3)
    online.consolidate(task_b)
    fisher_b = fisher_diagonal(model, task_b)
    assert len(online.tasks) == 1 and online.n_consolidated == 2
    torch.testing.assert_close(
        online.fisher["weight"], 0.5 * fisher_a["weight"] + fisher_b["weight"]
    )
    assert online.penalty().item() == 0.0  # anchored at the latest weights


def test_offline_ewc_keeps_one_penalty_per_task() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    task_a = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
    task_b = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
    ewc = EWC(model, strength=2.0)
    ewc.consolidate(task_a)
    anchor_a = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(0.3)
    ewc.consolidate(task_b)
    assert len(ewc.tasks) == 2
    # at task b's anchor only task a's term remains
    fisher_a = ewc.tasks[0][0]
    by_hand = 0.5 * 2.0 * (fisher_a["weight"] * (model.weight.detach() - anchor_a) ** 2).sum()
    torch.testing.assert_close(ewc.penalty(), by_hand)


def test_parameters_restrict_the_penalty_to_named_modules() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    ewc = EWC(model, parameters=["0"])
    assert ewc.parameters == ["0.weight", "0.bias"]
    ewc.consolidate([(torch.randn(8, 3), torch.randint(0, 2, (8,)))])
    with torch.no_grad():
        model[2].weight.add_(1.0)
    assert ewc.penalty().item() == 0.0
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert ewc.penalty().item() > 0.0


def test_wrap_with_fit_holds_the_weights_near_the_anchor() -> None:
    g = torch.Generator().manual_seed(0)
    xa, xb = torch.randn(64, 6, generator=g), torch.randn(64, 6, generator=g)
    ya, yb = (xa[:, 0] > 0).long(), (xb[:, 1] > 0).long()
    task_a = DataLoader(TensorDataset(xa, ya), batch_size=16)
    task_b = DataLoader(TensorDataset(xb, yb), batch_size=16)

    def train_b(strength: float) -> float:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
        fit(model, task_a, loss_fn=F.cross_entropy, lr=0.05, epochs=15, device="cpu")
        ewc = EWC(model, strength=strength)
        ewc.consolidate(task_a)
        loss = ewc.wrap(F.cross_entropy)
        result = fit(model, task_b, task_a, loss_fn=loss, lr=0.05, epochs=15, device="cpu")
        # validation reports the task loss alone (no penalty in eval mode)
        plain = F.cross_entropy(model.eval()(xa), ya).item()
        assert result.last["val_loss"] == pytest.approx(plain, rel=1e-5)
        return plain

    assert train_b(1000.0) < train_b(0.0)


def test_wrap_adds_the_penalty_once_per_step_under_accumulation() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ewc = EWC(model, strength=5.0)
    ewc.consolidate([(torch.randn(8, 3), torch.randint(0, 2, (8,)))])
    with torch.no_grad():
        model.weight.add_(0.5)
    zero_loss = ewc.wrap(lambda out, y: out.sum() * 0.0)
    data = [(torch.randn(3, 3), torch.zeros(3, dtype=torch.long)),
            (torch.randn(5, 3), torch.zeros(5, dtype=torch.long))]  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = model.weight.detach().clone()
    anchor = ewc.tasks[0][1]["weight"]
    expected_step = -0.01 * 5.0 * ewc.fisher["weight"] * (before - anchor)
    fit(model, data, loss_fn=zero_loss, optimizer=opt, epochs=1, accumulate=2, device="cpu")
    torch.testing.assert_close(model.weight.detach() - before, expected_step)


def test_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ewc = EWC(model, strength=4.0)
    ewc.consolidate([(torch.randn(8, 3), torch.randint(0, 2, (8,)))])
    with torch.no_grad():
        model.weight.add_(0.2)
    other = EWC(model)
    other.load_state_dict(ewc.state_dict())
    torch.testing.assert_close(other.penalty(), ewc.penalty())
    assert other.strength == 4.0


def test_penalty_before_consolidation_is_zero() -> None:
    assert EWC(nn.Linear(2, 2)).penalty().item() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strength": -1.0}, "'strength' parameter of EWC must be a finite number >= 0.0"),
        ({"gamma": 0.0}, "'gamma' parameter of EWC"),
        ({"gamma": 1.5}, r"'gamma' parameter of EWC must be a float in \(0, 1\]"),
        ({"fisher": "exact"}, "'fisher' parameter of EWC must be one of"),
        ({"parameters": ["nope"]}, "'parameters' parameter of EWC matches no parameter"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match) as info:
        EWC(nn.Linear(2, 2), **kwargs)
    assert "\n" not in str(info.value)


def test_bad_strength_assignment_and_empty_data() -> None:
    ewc = EWC(nn.Linear(2, 2))
    with pytest.raises(InvalidParameterError, match="'strength' parameter of EWC"):
        ewc.strength = -0.5
    with pytest.raises(InvalidParameterError, match="'data' parameter of fisher_diagonal gave no"):
        ewc.consolidate([])
    with pytest.raises(TypeError, match="'model' parameter of EWC"):
        EWC("model")  # type: ignore[arg-type]


def test_named_frozen_parameters_are_tracked_for_later_unfreezing() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    assert EWC(model).parameters == ["2.weight", "2.bias"]
    assert EWC(model, parameters=["0"]).parameters == ["0.weight", "0.bias"]
    model.requires_grad_(False)
    with pytest.raises(InvalidParameterError, match="no trainable parameter"):
        EWC(model)


def test_max_batches_and_bad_batches() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    first = (torch.randn(4, 3), torch.randint(0, 2, (4,)))
    second = (torch.randn(4, 3) * 5, torch.randint(0, 2, (4,)))
    limited = fisher_diagonal(model, [first, second], max_batches=1)
    torch.testing.assert_close(limited["weight"], fisher_diagonal(model, [first])["weight"])
    with pytest.raises(InvalidParameterError, match="expects batches of \\(inputs, targets\\)"):
        fisher_diagonal(model, [torch.randn(4, 3)])
    with pytest.raises(InvalidParameterError, match="'kind' parameter of fisher_diagonal"):
        fisher_diagonal(model, [first], kind="diag")
