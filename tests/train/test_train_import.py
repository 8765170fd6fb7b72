"""``tunecraft.train`` names the extra to install when torch is missing."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import tunecraft  # the core must not need torch; imported first so that its own
                  # dependencies (scipy may probe for torch) are not affected
sys.modules["torch"] = None  # makes `import torch` raise ImportError
try:
    import tunecraft.train
except ImportError as exc:
    print(type(exc).__name__, exc)
"""


def test_missing_torch_names_the_extra() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.startswith("MissingDependencyError")
    assert 'pip install "tunecraft[torch]"' in out


def test_import_tunecraft_does_not_import_torch_or_train() -> None:
    code = "import sys, tunecraft; print('torch' in sys.modules, 'tunecraft.train' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.strip() == "False False"
