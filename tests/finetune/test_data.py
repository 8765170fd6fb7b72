"""Data helpers: label smoothing, augmentation with fit, few-shot, zero-shot, domain shift."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402, N812
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.finetune._data import (  # noqa: E402
    GaussianNoise,
    Mixup,
    PrototypeClassifier,
    augment_batches,
    evaluate_domain_shift,
    few_shot_indices,
    smoothed_cross_entropy,
)
from tunecraft.finetune._forgetting import accuracy  # noqa: E402
from tunecraft.train import fit  # noqa: E402


def test_smoothed_cross_entropy_matches_the_smoothed_target_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0]])
    loss = smoothed_cross_entropy(0.3)(logits, torch.tensor([0]))
    target = torch.tensor([[0.7 + 0.1, 0.1, 0.1]])
    by_hand = -(target * logits.log_softmax(-1)).sum()
    torch.testing.assert_close(loss, by_hand)
    assert smoothed_cross_entropy(0.0)(logits, torch.tensor([0])) == pytest.approx(
        F.cross_entropy(logits, torch.tensor([0])).item()
    )
    for bad in (-0.1, 1.0):
        with pytest.raises(InvalidParameterError, match="'smoothing' parameter"):
            smoothed_cross_entropy(bad)


def test_gaussian_noise_is_seeded_and_has_the_right_scale() -> None:
    x = torch.zeros(2000, 5)
    a, _ = GaussianNoise(0.5, seed=3)(x, None)
    b, _ = GaussianNoise(0.5, seed=3)(x, None)
    c, _ = GaussianNoise(0.5, seed=4)(x, None)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert a.std().item() == pytest.approx(0.5, rel=0.05)
    with pytest.raises(TypeError, match="floating-point"):
        GaussianNoise(0.1)(torch.zeros(2, dtype=torch.long), None)
    with pytest.raises(InvalidParameterError, match="'std' parameter of GaussianNoise"):
        GaussianNoise(-1.0)


def test_mixup_makes_consistent_soft_targets() -> None:
    x = torch.arange(8.0).reshape(8, 1)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    mix = Mixup(0.4, num_classes=3, seed=0)
    mx, my = mix(x, y)
    assert my.shape == (8, 3) and my.dtype == torch.float32
    torch.testing.assert_close(my.sum(1), torch.ones(8))
    # inputs and targets mixed with one lambda and one permutation: recover them
    onehot = F.one_hot(y, 3).float()
    found = False
    for lam in torch.linspace(0, 1, 10001):
        partner = (mx - lam * x) / (1 - lam) if lam < 1 else x
        idx = partner.round().long().squeeze(1).clamp(0, 7)
        if torch.allclose(lam * x + (1 - lam) * x[idx], mx, atol=1e-3) and torch.allclose(
            lam * onehot + (1 - lam) * onehot[idx], my, atol=1e-3
        ):
            found = True
            break
    assert found
    mx2, _ = Mixup(0.4, num_classes=3, seed=0)(x, y)
    torch.testing.assert_close(mx, mx2)
    with pytest.raises(InvalidParameterError, match="'alpha' parameter of Mixup"):
        Mixup(0.0, num_classes=3)


def test_augmentations_run_on_every_training_batch_through_fit() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] > 0).long()
    train = DataLoader(TensorDataset(x, y), batch_size=16)
    calls = []

    def spy(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(xb.shape[0])
        return xb, yb

    data = augment_batches(
        train, spy, GaussianNoise(0.05, seed=0), Mixup(0.2, num_classes=2, seed=0)
    )
    assert len(data) == len(train)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    loss = smoothed_cross_entropy(0.1)  # handles soft (mixup) and index (validation) targets
    result = fit(model, data, train, loss_fn=loss, lr=0.05, epochs=10, accumulate=2,
                 device="cpu")  # fmt: skip
    assert calls == [16] * 6 * 10
    assert result.steps == 30
    assert accuracy(model, train) > 0.9


def test_augment_batches_rejects_non_callables_and_bad_batches() -> None:
    with pytest.raises(TypeError, match="Augmentation 0 of augment_batches must be callable"):
        augment_batches([], "noise")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="expects \\(inputs, targets\\) batches"):
        list(augment_batches([torch.zeros(2)], GaussianNoise(0.1)))


def test_few_shot_indices_take_k_per_class_seeded() -> None:
    labels = np.repeat(np.arange(4), [5, 6, 7, 8])
    idx = few_shot_indices(labels, 3, seed=1)
    assert np.bincount(labels[idx]).tolist() == [3, 3, 3, 3]
    assert len(set(idx.tolist())) == 12
    assert np.array_equal(idx, few_shot_indices(torch.as_tensor(labels), 3, seed=1))
    assert not np.array_equal(idx, few_shot_indices(labels, 3, seed=2))
    only = few_shot_indices(labels, 2, seed=0, classes=[1, 3])
    assert sorted(set(labels[only].tolist())) == [1, 3]
    with pytest.raises(InvalidParameterError, match="class 0 has only 5 examples"):
        few_shot_indices(labels, 6)
    with pytest.raises(InvalidParameterError, match="'k' parameter of few_shot_indices"):
        few_shot_indices(labels, 0)


def test_prototype_classifier_from_a_frozen_encoder() -> None:
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, -4.0]])
    y = torch.arange(3).repeat_interleave(40)
    x = centers[y] + torch.randn(120, 2, generator=g)
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(2, 16), nn.Tanh())  # random, never trained
    support = DataLoader(TensorDataset(x[::4], y[::4]), batch_size=8)
    query = DataLoader(TensorDataset(x, y), batch_size=32)
    for metric in ("cosine", "euclidean"):
        clf = PrototypeClassifier.from_support(encoder, support, metric=metric)
        assert clf.prototypes.shape == (3, 16)
        assert accuracy(clf, query) > 0.9
    assert not clf(x).requires_grad  # the encoder is used frozen
    with pytest.raises(InvalidParameterError, match="no support example of classes \\[3\\]"):
        PrototypeClassifier.from_support(encoder, support, n_classes=4)
    # a label past n_classes failed deep in torch (index_add_), and -1 counted as the last
    with pytest.raises(InvalidParameterError, match=r"labels in \[0, 1\].*from 0 to 2"):
        PrototypeClassifier.from_support(encoder, support, n_classes=2)
    bad = DataLoader(TensorDataset(x[:8], torch.tensor([0, 1, 2, -1, 0, 1, 2, 0])), batch_size=8)
    with pytest.raises(InvalidParameterError, match="from -1 to 2"):
        PrototypeClassifier.from_support(encoder, bad)


def test_text_zero_shot_with_label_name_embeddings() -> None:
    vocab = ["ball", "goal", "match", "team", "stock", "market", "bank", "price"]

    def embed(texts: list[str]) -> torch.Tensor:  # a bag of words over a fixed vocabulary
        rows = [[float(w in t.split()) for w in vocab] for t in texts]
        return torch.tensor(rows) + 1e-3

    clf = PrototypeClassifier.from_label_names(
        embed, ["ball goal match team", "stock market bank price"], template="{}"
    )
    texts = ["the team scored a goal", "market price fell", "bank stock rose", "a long match"]
    data = DataLoader(list(zip(texts, [0, 1, 1, 0], strict=True)), batch_size=2)
    assert accuracy(clf, data) == 1.0
    with pytest.raises(InvalidParameterError, match="at least two names"):
        PrototypeClassifier.from_label_names(embed, ["only"])
    with pytest.raises(InvalidParameterError, match="'metric' parameter of PrototypeClassifier"):
        PrototypeClassifier(embed, torch.zeros(2, 8), metric="dot")


def test_domain_shift_with_batchnorm_adaptation() -> None:
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(400, 4, generator=g)
    ys = (xs[:, 0] + xs[:, 1] > 0).long()
    xt = torch.randn(400, 4, generator=g)
    yt = (xt[:, 0] + xt[:, 1] > 0).long()
    xt = 3.0 * xt + 5.0  # the target domain: shifted and scaled features
    source = DataLoader(TensorDataset(xs, ys), batch_size=50)
    target = DataLoader(TensorDataset(xt, yt), batch_size=50)
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(4, affine=False), nn.Linear(4, 16), nn.ReLU(),
                          nn.Linear(16, 2))  # fmt: skip
    fit(model, source, loss_fn=F.cross_entropy, lr=0.05, epochs=15, device="cpu")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = evaluate_domain_shift(model, source, target)
    assert report.source > 0.9
    assert report.target < 0.8
    assert report.target_adapted is not None and report.target_adapted > 0.9
    assert report.drop == pytest.approx(report.source - report.target)
    for k, v in model.state_dict().items():  # the given model is untouched
        assert torch.equal(v, state[k])
    no_bn = evaluate_domain_shift(nn.Linear(4, 2), source, target)
    assert no_bn.target_adapted is None


def test_text_zero_shot_with_minilm(minilm: dict) -> None:
    tokenizer, encoder = minilm["tokenizer"], minilm["encoder"]

    def embed(texts: list[str]) -> torch.Tensor:  # mean pooling over the tokens
        batch = tokenizer(list(texts), padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return (hidden * mask).sum(1) / mask.sum(1)

    clf = PrototypeClassifier.from_label_names(
        embed, ["sports", "finance", "cooking"], template="This text is about {}."
    )
    texts = [
        "the striker scored twice and the team won the football match",
        "the tennis player won the final in three sets",
        "shares and bonds fell as the central bank raised interest rates",
        "the company reported higher quarterly profits to its investors",
        "simmer the onions in butter, then add the garlic and the tomatoes",
        "bake the bread dough in a hot oven for forty minutes",
    ]
    data = DataLoader(list(zip(texts, [0, 0, 1, 1, 2, 2], strict=True)), batch_size=3)
    assert accuracy(clf, data) == 1.0
