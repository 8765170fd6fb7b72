"""``tunecraft.finetune`` imports peft only when a PEFT strategy is used; clear missing extras."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")

LAZY = """
import sys
from torch import nn
import tunecraft.finetune._strategies as s
s.prepare(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), "full", lr=0.1)
print("peft" in sys.modules, "transformers" in sys.modules)
sys.modules["peft"] = None  # makes `import peft` raise ImportError
try:
    s.prepare(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), "lora", lr=0.1)
except ImportError as exc:
    print(type(exc).__name__, exc)
"""


def test_peft_is_imported_lazily_and_its_absence_names_the_extra() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LAZY], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert out[0] == "False False"
    assert out[1].startswith("MissingDependencyError")
    assert 'pip install "tunecraft[peft]"' in out[1]
