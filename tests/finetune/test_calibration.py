"""Calibration: ECE/MCE by hand, the bin of confidence 1.0, temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tunecraft.exceptions import InvalidParameterError  # noqa: E402
from tunecraft.finetune._calibration import (  # noqa: E402
    ReliabilityDiagram,
    TemperatureScaler,
    expected_calibration_error,
    fit_temperature,
    max_calibration_error,
    plot_reliability_diagram,
    reliability_diagram,
)


def two_class(confidences: list[float], predicted: list[int]) -> np.ndarray:
    """Probabilities of a 2-class problem whose predicted class has the given confidence."""
    c = np.asarray(confidences)
    p = np.stack([c, 1 - c], axis=1)
    flip = np.asarray(predicted) == 1
    p[flip] = p[flip][:, ::-1]
    return p


def test_uniform_ece_and_mce_on_a_hand_worked_example() -> None:
    probs = np.array(
        [[0.7, 0.3], [0.4, 0.6], [0.6, 0.4], [0.7, 0.3], [0.3, 0.7], [0.9, 0.1], [1, 0], [0, 1]]
    )
    labels = np.array([0, 0, 0, 1, 1, 0, 0, 0])
    # confidence / correct: .7 y, .6 n, .6 y, .7 n, .7 y, .9 y, 1.0 y, 1.0 n
    # 4 bins of width 0.25:
    #   (0.5, 0.75]: 5 predictions, mean confidence 0.66, accuracy 3/5 -> gap 0.06
    #   (0.75, 1]:   3 predictions, mean confidence 29/30, accuracy 2/3 -> gap 0.3
    diagram = reliability_diagram(probs, labels, n_bins=4)
    assert diagram.count.tolist() == [0, 0, 5, 3]
    np.testing.assert_allclose(diagram.confidence[2:], [0.66, 29 / 30])
    np.testing.assert_allclose(diagram.accuracy[2:], [0.6, 2 / 3])
    assert np.isnan(diagram.confidence[0]) and np.isnan(diagram.accuracy[1])
    ece = 5 / 8 * 0.06 + 3 / 8 * 0.3  # 0.15
    assert diagram.ece == pytest.approx(ece)
    assert expected_calibration_error(probs, labels, n_bins=4) == pytest.approx(0.15)
    assert max_calibration_error(probs, labels, n_bins=4) == pytest.approx(0.3)
    np.testing.assert_allclose(diagram.lower, [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(diagram.upper, [0.25, 0.5, 0.75, 1.0])


def test_a_confidence_of_exactly_one_falls_in_the_last_bin() -> None:
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = np.array([0, 2])
    for n_bins in (1, 10, 15):
        diagram = reliability_diagram(probs, labels, n_bins=n_bins)
        assert diagram.count[-1] == 2
        assert diagram.count.sum() == 2
        assert diagram.ece == pytest.approx(0.5)  # conf 1.0, accuracy 0.5


def test_bin_edges_are_right_closed() -> None:
    # a confidence of exactly 0.5 belongs to (0.4, 0.5] with 10 bins, 0.6 to (0.5, 0.6]
    probs = np.array([[0.5, 0.5], [0.6, 0.4]])
    diagram = reliability_diagram(probs, [0, 0], n_bins=10)
    assert diagram.count[4] == 1 and diagram.count[5] == 1


def test_adaptive_bins_hold_equal_mass() -> None:
    # confidences 0.55..0.95 (8 values); 4 equal-mass bins of 2 each
    conf = [0.55, 0.6, 0.65, 0.7, 0.8, 0.85, 0.9, 0.95]
    probs = two_class(conf, [0] * 8)
    labels = np.array([0, 1, 0, 0, 0, 0, 1, 0])
    diagram = reliability_diagram(probs, labels, n_bins=4, strategy="quantile")
    assert diagram.count.tolist() == [2, 2, 2, 2]
    gaps = [abs(0.5 - 0.575), abs(1.0 - 0.675), abs(1.0 - 0.825), abs(0.5 - 0.925)]
    assert diagram.ece == pytest.approx(np.mean(gaps))
    assert diagram.mce == pytest.approx(max(gaps))
    assert diagram.lower.tolist() == [0.55, 0.65, 0.8, 0.9]


def test_a_perfectly_calibrated_bin_has_zero_error() -> None:
    probs = two_class([0.75] * 4, [0] * 4)
    assert expected_calibration_error(probs, [0, 0, 0, 1], n_bins=5) == pytest.approx(0.0)


def test_float32_tensors_are_binned_at_their_precision() -> None:
    # float32 0.8 is 0.800000012 in float64: it must still fall in (0.7, 0.8], not (0.8, 0.9]
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    assert expected_calibration_error(probs, torch.tensor([0, 0]), n_bins=10) == pytest.approx(
        0.5 * 0.1 + 0.5 * 0.8
    )


def calibrated_logits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, 4, generator=g)
    labels = torch.multinomial(logits.softmax(-1), 1, generator=g).squeeze(1)
    return logits, labels


@pytest.mark.parametrize("factor", [0.5, 2.0, 4.0])
def test_fit_temperature_recovers_the_scaling_of_calibrated_logits(factor: float) -> None:
    logits, labels = calibrated_logits(6000, seed=1)
    t = fit_temperature(factor * logits, labels)
    assert t == pytest.approx(factor, rel=0.1)


def test_fitted_temperature_minimizes_the_nll() -> None:
    logits, labels = calibrated_logits(500, seed=2)
    logits = 3.0 * logits
    t = fit_temperature(logits, labels)
    with torch.no_grad():  # evaluation code often runs under no_grad
        assert fit_temperature(logits, labels) == pytest.approx(t)

    def nll(temp: float) -> float:
        return torch.nn.functional.cross_entropy(logits / temp, labels).item()

    assert nll(t) <= min(nll(t * 0.98), nll(t * 1.02))


def test_temperature_scaling_reduces_the_ece_of_overconfident_logits() -> None:
    logits, labels = calibrated_logits(4000, seed=3)
    hot = 4.0 * logits
    scaler = TemperatureScaler().fit(hot[:2000], labels[:2000])
    before = expected_calibration_error(hot[2000:].softmax(-1), labels[2000:])
    after = expected_calibration_error(scaler(hot[2000:]).softmax(-1), labels[2000:])
    assert after < before / 2
    assert "temperature=" in repr(scaler)


def test_fitted_temperature_agrees_with_scikit_learn() -> None:
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV

    try:
        from sklearn.frozen import FrozenEstimator
    except ImportError:  # pragma: no cover - sklearn < 1.6
        pytest.skip(f"scikit-learn {sklearn.__version__} has no FrozenEstimator")

    class Logits(ClassifierMixin, BaseEstimator):  # the inputs are the logits
        def fit(self, x: np.ndarray, y: np.ndarray) -> Logits:
            self.classes_ = np.unique(y)
            return self

        def decision_function(self, x: np.ndarray) -> np.ndarray:
            return np.asarray(x)

        def predict(self, x: np.ndarray) -> np.ndarray:
            return np.asarray(x).argmax(1)

    logits, labels = calibrated_logits(3000, seed=4)
    logits = 2.5 * logits
    try:
        cal = CalibratedClassifierCV(
            FrozenEstimator(Logits().fit(logits.numpy(), labels.numpy())), method="temperature"
        ).fit(logits.numpy(), labels.numpy())
    except ValueError as exc:  # sklearn < 1.8: no "temperature" method
        pytest.skip(f"scikit-learn {sklearn.__version__} lacks temperature scaling: {exc}")
    beta = float(cal.calibrated_classifiers_[0].calibrators[0].beta_)
    assert fit_temperature(logits, labels) == pytest.approx(1.0 / beta, rel=1e-3)


def test_plot_reliability_diagram_draws() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logits, labels = calibrated_logits(200, seed=5)
    for strategy in ("uniform", "quantile"):
        diagram = reliability_diagram(logits.softmax(-1), labels, n_bins=5, strategy=strategy)
        ax = plot_reliability_diagram(diagram, title="t")
        assert ax.get_title() == "t"
        plt.close(ax.figure)
    with pytest.raises(TypeError, match="'diagram' parameter of plot_reliability_diagram"):
        plot_reliability_diagram("x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("probs", "labels", "kwargs", "match"),
    [
        ([[0.5, 0.5]], [0], {"n_bins": 0}, "'n_bins' parameter of reliability_diagram"),
        ([[0.5, 0.5]], [0], {"strategy": "equal"}, "'strategy' parameter"),
        ([0.5, 0.5], [0], {}, "'probs' parameter of reliability_diagram must have shape"),
        ([[0.5, 0.5]], [0, 1], {}, "'labels' parameter of reliability_diagram must have shape"),
        ([[2.0, -1.0]], [0], {}, "must hold probabilities"),
        ([[0.5, 0.5]], [2], {}, "class indices in"),
    ],
)
def test_bad_calibration_inputs(probs: list, labels: list, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        reliability_diagram(probs, labels, **kwargs)


def test_bad_temperature_inputs() -> None:
    with pytest.raises(
        InvalidParameterError, match="'temperature' parameter of TemperatureScaler"
    ):
        TemperatureScaler(0.0)
    with pytest.raises(
        InvalidParameterError, match="'temperature' parameter of TemperatureScaler"
    ):
        TemperatureScaler(-1.0)
    with pytest.raises(InvalidParameterError, match="'logits' parameter of fit_temperature"):
        fit_temperature(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(InvalidParameterError, match="'labels' parameter of fit_temperature"):
        fit_temperature(torch.zeros(3, 2), torch.zeros(3))
    assert isinstance(reliability_diagram([[0.5, 0.5]], [0]), ReliabilityDiagram)


@pytest.mark.parametrize("bad", [-100, -1, 3])
def test_fit_temperature_refuses_labels_outside_the_classes(bad: int) -> None:
    """cross_entropy silently skips -100 (its ignore_index) and fails deep on the others."""
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 1, 2, 0, 1, bad])
    with pytest.raises(
        InvalidParameterError, match=r"'labels' parameter of fit_temperature.*\[0, 2\]"
    ):
        fit_temperature(logits, labels)
    with pytest.raises(InvalidParameterError, match="'labels' parameter of fit_temperature"):
        TemperatureScaler().fit(logits, labels)
