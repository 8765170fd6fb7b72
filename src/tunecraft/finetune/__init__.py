"""Fine-tuning: strategies as one tunable choice, PEFT (LoRA, IA3, prompt, prefix), adapters.

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
    "STRATEGIES",
    "AdaptedLayer",
    "BottleneckAdapter",
    "FineTuneSetup",
    "GradualUnfreezing",
    "LayerGroup",
    "TextClassifier",
    "add_adapters",
    "default_target_modules",
    "layer_groups",
    "load_adapter",
    "merge_adapter",
    "prepare",
    "save_adapter",
    "strategy_options",
]
