"""Calibration: temperature scaling, expected and maximum calibration error, reliability diagrams.

Binning convention (both strategies): a prediction's *confidence* is its largest class
probability. Equal-width (``"uniform"``) bins are the intervals ``[0, 1/B], (1/B, 2/B], ...,
((B-1)/B, 1]``, so a confidence of exactly 1.0 falls in the last bin (torchmetrics issue #3510
dropped it). Adaptive (``"quantile"``, equal-mass) bins sort the predictions by confidence and
split them into ``B`` groups of sizes differing by at most one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tunecraft._imports import require
from tunecraft._validation import check_choice, check_float, check_int
from tunecraft.exceptions import InvalidParameterError

__all__ = [
    "ReliabilityDiagram",
    "TemperatureScaler",
    "expected_calibration_error",
    "fit_temperature",
    "max_calibration_error",
    "plot_reliability_diagram",
    "reliability_diagram",
]

_STRATEGIES = ("uniform", "quantile")


def _as_array(value: Any, name: str, owner: str) -> np.ndarray:
    """A float array that keeps float32 input in float32, so bin edges compare at its precision
    (a float32 0.8 is slightly above the float64 0.8 and would change bins)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        dtype = (
            torch.float32
            if value.dtype in (torch.float32, torch.float16, torch.bfloat16)
            else torch.float64
        )
        return value.to(dtype).numpy()
    try:
        arr = np.asarray(value)
        return arr.astype(np.float32 if arr.dtype in (np.float32, np.float16) else np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"The '{name}' parameter of {owner} must be an array or tensor of numbers, "
            f"got {type(value).__name__}."
        ) from None


def _probs_labels(probs: Any, labels: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
    p = _as_array(probs, "probs", owner)
    y = _as_array(labels, "labels", owner)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise InvalidParameterError(
            f"The 'probs' parameter of {owner} must have shape (n_samples >= 1, n_classes >= 2), "
            f"got {p.shape}."
        )
    if y.shape != (p.shape[0],):
        raise InvalidParameterError(
            f"The 'labels' parameter of {owner} must have shape ({p.shape[0]},) to match "
            f"'probs', got {y.shape}."
        )
    if not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0 + 1e-6:
        raise InvalidParameterError(
            f"The 'probs' parameter of {owner} must hold probabilities in [0, 1] "
            "(apply softmax to logits first)."
        )
    if np.any(y != np.round(y)) or y.min() < 0 or y.max() >= p.shape[1]:
        raise InvalidParameterError(
            f"The 'labels' parameter of {owner} must hold class indices in [0, {p.shape[1] - 1}]."
        )
    return p, y.astype(np.int64)


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin calibration statistics (empty bins are kept, with count 0 and NaN means).

    Attributes:
        lower: Each bin's lower confidence edge.
        upper: Each bin's upper confidence edge.
        confidence: Mean confidence of the bin's predictions.
        accuracy: Fraction of the bin's predictions that are correct.
        count: Predictions in the bin.
        strategy: ``"uniform"`` or ``"quantile"``.
    """

    lower: np.ndarray
    upper: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    strategy: str

    @property
    def gaps(self) -> np.ndarray:
        """``|accuracy - confidence|`` per bin (NaN for empty bins)."""
        return np.abs(self.accuracy - self.confidence)

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean gap."""
        used = self.count > 0
        return float(np.sum(self.count[used] * self.gaps[used]) / np.sum(self.count))

    @property
    def mce(self) -> float:
        """Maximum calibration error: the largest gap over non-empty bins."""
        used = self.count > 0
        return float(np.max(self.gaps[used]))


def reliability_diagram(
    probs: Any, labels: Any, *, n_bins: int = 15, strategy: str = "uniform"
) -> ReliabilityDiagram:
    """Bin predictions by confidence; per bin, the mean confidence and the accuracy.

    Args:
        probs: Class probabilities, shape ``(n_samples, n_classes)`` (array or tensor).
        labels: True class indices, shape ``(n_samples,)``.
        n_bins: Number of bins.
        strategy: ``"uniform"`` (equal-width bins, ``(lo, hi]``, the first one closed) or
            ``"quantile"`` (adaptive, equal-mass bins).

    Returns:
        A :class:`ReliabilityDiagram`; its ``ece`` and ``mce`` properties give the errors.

    Example:
        >>> diagram = reliability_diagram([[1.0, 0.0], [0.6, 0.4]], [0, 1], n_bins=5)
        >>> diagram.count.tolist()
        [0, 0, 1, 0, 1]
        >>> round(diagram.ece, 3)
        0.3
    """
    owner = "reliability_diagram"
    check_int(n_bins, "n_bins", owner, low=1)
    check_choice(strategy, "strategy", owner, _STRATEGIES)
    p, y = _probs_labels(probs, labels, owner)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1, dtype=conf.dtype)
        # searchsorted(side="left") on the inner edges maps (lo, hi] to one bin; 1.0 -> last.
        index = np.searchsorted(edges[1:-1], conf, side="left")
        lower, upper = edges[:-1].astype(np.float64), edges[1:].astype(np.float64)
    else:
        order = np.argsort(conf, kind="stable")
        index = np.empty(len(conf), dtype=np.int64)
        for b, chunk in enumerate(np.array_split(order, n_bins)):
            index[chunk] = b
        lower = np.array(
            [conf[index == b].min() if np.any(index == b) else np.nan for b in range(n_bins)]
        )
        upper = np.array(
            [conf[index == b].max() if np.any(index == b) else np.nan for b in range(n_bins)]
        )
    conf = conf.astype(np.float64)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(index, weights=correct, minlength=n_bins) / count
    return ReliabilityDiagram(
        lower=lower,
        upper=upper,
        confidence=mean_conf,
        accuracy=mean_acc,
        count=count,
        strategy=strategy,
    )


def expected_calibration_error(
    probs: Any, labels: Any, *, n_bins: int = 15, strategy: str = "uniform"
) -> float:
    """Expected calibration error: ``sum_b (n_b / n) |accuracy_b - confidence_b|``.

    See :func:`reliability_diagram` for the arguments and the binning.

    Example:
        >>> round(expected_calibration_error([[0.9, 0.1], [0.8, 0.2]], [0, 1], n_bins=10), 3)
        0.45
    """
    return reliability_diagram(probs, labels, n_bins=n_bins, strategy=strategy).ece


def max_calibration_error(
    probs: Any, labels: Any, *, n_bins: int = 15, strategy: str = "uniform"
) -> float:
    """Maximum calibration error: the largest ``|accuracy_b - confidence_b|`` over bins.

    See :func:`reliability_diagram` for the arguments and the binning.

    Example:
        >>> round(max_calibration_error([[0.9, 0.1], [0.8, 0.2]], [0, 1], n_bins=10), 3)
        0.8
    """
    return reliability_diagram(probs, labels, n_bins=n_bins, strategy=strategy).mce


def plot_reliability_diagram(
    diagram: ReliabilityDiagram, *, ax: Any = None, title: str | None = None
) -> Any:
    """Draw a reliability diagram with matplotlib (imported only here): per-bin accuracy
    against mean confidence, the diagonal of perfect calibration, and the ECE in the legend.

    Args:
        diagram: What :func:`reliability_diagram` returned.
        ax: A matplotlib ``Axes`` to draw on; a new figure when ``None``.
        title: The axes title.

    Returns:
        The matplotlib ``Axes``.
    """
    if not isinstance(diagram, ReliabilityDiagram):
        raise TypeError(
            "The 'diagram' parameter of plot_reliability_diagram must be a ReliabilityDiagram "
            f"(from reliability_diagram), got {type(diagram).__name__}."
        )
    plt = require("matplotlib.pyplot", "plot", purpose="plot_reliability_diagram")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    used = diagram.count > 0
    if diagram.strategy == "uniform":
        width = diagram.upper - diagram.lower
        ax.bar(
            diagram.lower[used],
            diagram.accuracy[used],
            width=width[used],
            align="edge",
            edgecolor="black",
            alpha=0.7,
            label=f"accuracy (ECE {diagram.ece:.3f})",
        )
    else:
        ax.plot(
            diagram.confidence[used],
            diagram.accuracy[used],
            marker="o",
            label=f"accuracy (ECE {diagram.ece:.3f})",
        )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    if title is not None:
        ax.set_title(title)
    ax.legend(loc="upper left")
    return ax


def _logits_labels(logits: Any, labels: Any, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.as_tensor(logits).detach().to("cpu", torch.float64)
    y = torch.as_tensor(labels).detach().to("cpu")
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise InvalidParameterError(
            f"The 'logits' parameter of {owner} must have shape (n_samples >= 1, "
            f"n_classes >= 2), got {tuple(z.shape)}."
        )
    if y.shape != (z.shape[0],) or y.is_floating_point():
        raise InvalidParameterError(
            f"The 'labels' parameter of {owner} must be integer class indices of shape "
            f"({z.shape[0]},), got {y.dtype} of shape {tuple(y.shape)}."
        )
    if not torch.isfinite(z).all():
        raise InvalidParameterError(f"The 'logits' parameter of {owner} must be finite.")
    y = y.long()
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= z.shape[1]:  # cross_entropy would skip -100 and fail deep on others
        raise InvalidParameterError(
            f"The 'labels' parameter of {owner} must hold class indices in "
            f"[0, {z.shape[1] - 1}], got values from {low} to {high}."
        )
    return z, y


def fit_temperature(logits: Any, labels: Any, *, max_iter: int = 100) -> float:
    """The temperature ``T > 0`` minimizing the negative log-likelihood of ``softmax(logits / T)``.

    One parameter, fitted with L-BFGS (strong-Wolfe line search) on ``log T``, so ``T`` stays
    positive without constraints. Fit it on held-out logits (a validation split), never on the
    training data, where the network is overconfident by construction.

    Args:
        logits: Uncalibrated logits, shape ``(n_samples, n_classes)``.
        labels: True class indices, shape ``(n_samples,)``.
        max_iter: L-BFGS iterations.

    Returns:
        The fitted temperature.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> calibrated = 2.0 * torch.randn(4000, 3)  # labels drawn from softmax(calibrated)
        >>> labels = torch.multinomial(calibrated.softmax(-1), 1).squeeze(1)
        >>> t = fit_temperature(3.0 * calibrated, labels)  # overconfident by a factor 3
        >>> 2.7 < t < 3.3
        True
    """
    owner = "fit_temperature"
    check_int(max_iter, "max_iter", owner, low=1)
    z, y = _logits_labels(logits, labels, owner)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():  # also when called under torch.no_grad()
        opt.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):  # pragma: no cover - L-BFGS diverged
        raise RuntimeError("fit_temperature: L-BFGS did not converge to a finite temperature.")
    return temperature


class TemperatureScaler(nn.Module):
    """Divides logits by a fitted temperature: ``forward(logits) = logits / T``.

    Args:
        temperature: The initial temperature (> 0); :meth:`fit` replaces it.

    Example:
        >>> import torch
        >>> scaler = TemperatureScaler(2.0)
        >>> scaler(torch.tensor([[2.0, 0.0]]))
        tensor([[1., 0.]])
    """

    log_temperature: torch.Tensor

    def __init__(self, temperature: float = 1.0) -> None:
        check_float(temperature, "temperature", "TemperatureScaler", low=0.0, low_inclusive=False)
        super().__init__()
        self.register_buffer("log_temperature", torch.tensor(math.log(temperature)))

    @property
    def temperature(self) -> float:
        """The current temperature."""
        return float(self.log_temperature.exp())

    def fit(self, logits: Any, labels: Any, *, max_iter: int = 100) -> TemperatureScaler:
        """Fit the temperature on held-out logits (see :func:`fit_temperature`); returns self."""
        t = fit_temperature(logits, labels, max_iter=max_iter)
        self.log_temperature.fill_(math.log(t))
        return self

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits / T``."""
        return logits / self.log_temperature.exp().to(logits.dtype)

    def extra_repr(self) -> str:
        """Show the temperature."""
        return f"temperature={self.temperature:.4g}"
