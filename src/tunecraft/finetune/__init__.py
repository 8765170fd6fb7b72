"""Fine-tuning: strategies as one tunable choice, PEFT, EWC, distillation, calibration.

Strategies (``prepare``), PEFT (LoRA, IA3, prompt, prefix) and bottleneck adapters; forgetting
and elastic weight consolidation; knowledge distillation; temperature scaling and calibration
errors; checkpoint averaging and ensembles; data helpers (augmentation, mixup, few-shot
selection, zero-shot prototypes, domain-shift evaluation).

Needs the ``torch`` extra (``pip install "tunecraft[torch]"``); the PEFT strategies also need
the ``peft`` extra (``pip install "tunecraft[peft]"``), imported only when used.

Example:
    >>> from torch import nn
    >>> from tunecraft.finetune import prepare
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> setup = prepare(net, "feature_extraction", lr=1e-3)
    >>> [g["name"] for g in setup.param_groups], setup.trainable_parameters()
    (['2'], 18)
"""

from __future__ import annotations

from tunecraft._imports import require

require("torch", "torch", purpose="tunecraft.finetune")

from tunecraft.finetune._adapters import (  # noqa: E402
    AdaptedLayer,
    BottleneckAdapter,
    add_adapters,
)
from tunecraft.finetune._averaging import (  # noqa: E402
    EMA,
    SWA,
    CheckpointAverage,
    Ensemble,
    average_checkpoints,
    average_weights,
)
from tunecraft.finetune._calibration import (  # noqa: E402
    ReliabilityDiagram,
    TemperatureScaler,
    expected_calibration_error,
    fit_temperature,
    max_calibration_error,
    plot_reliability_diagram,
    reliability_diagram,
)
from tunecraft.finetune._data import (  # noqa: E402
    AugmentedData,
    DomainShiftReport,
    GaussianNoise,
    Mixup,
    PrototypeClassifier,
    augment_batches,
    evaluate_domain_shift,
    few_shot_indices,
    smoothed_cross_entropy,
)
from tunecraft.finetune._distill import (  # noqa: E402
    DistillationLoss,
    Distiller,
    distill,
    distillation_loss,
)
from tunecraft.finetune._ewc import EWC, fisher_diagonal  # noqa: E402
from tunecraft.finetune._forgetting import (  # noqa: E402
    ForgettingReport,
    ForgettingTracker,
    accuracy,
    average_accuracy,
    average_forgetting,
    backward_transfer,
    measure_forgetting,
)
from tunecraft.finetune._groups import LayerGroup, layer_groups  # noqa: E402
from tunecraft.finetune._peft import (  # noqa: E402
    TextClassifier,
    default_target_modules,
    load_adapter,
    merge_adapter,
    save_adapter,
)
from tunecraft.finetune._strategies import (  # noqa: E402
    STRATEGIES,
    FineTuneSetup,
    GradualUnfreezing,
    prepare,
    strategy_options,
)

__all__ = [
    "EMA",
    "EWC",
    "STRATEGIES",
    "SWA",
    "AdaptedLayer",
    "AugmentedData",
    "BottleneckAdapter",
    "CheckpointAverage",
    "DistillationLoss",
    "Distiller",
    "DomainShiftReport",
    "Ensemble",
    "FineTuneSetup",
    "ForgettingReport",
    "ForgettingTracker",
    "GaussianNoise",
    "GradualUnfreezing",
    "LayerGroup",
    "Mixup",
    "PrototypeClassifier",
    "ReliabilityDiagram",
    "TemperatureScaler",
    "TextClassifier",
    "accuracy",
    "add_adapters",
    "augment_batches",
    "average_accuracy",
    "average_checkpoints",
    "average_forgetting",
    "average_weights",
    "backward_transfer",
    "default_target_modules",
    "distill",
    "distillation_loss",
    "evaluate_domain_shift",
    "expected_calibration_error",
    "few_shot_indices",
    "fisher_diagonal",
    "fit_temperature",
    "layer_groups",
    "load_adapter",
    "max_calibration_error",
    "measure_forgetting",
    "merge_adapter",
    "plot_reliability_diagram",
    "prepare",
    "reliability_diagram",
    "save_adapter",
    "smoothed_cross_entropy",
    "strategy_options",
]
