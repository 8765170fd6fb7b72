"""One line saying which CPU and numeric stack a benchmark ran on.

Sequential searches amplify floating-point differences. The same code, seeds and package
versions gave different tunecraft results in two sessions (docs/benchmarks.md, multi-fidelity
section, "night" and "last session"). OpenBLAS (built with ``DYNAMIC_ARCH``) and torch pick
their kernels by CPU at run time, which is the likely cause. The benchmarks print this line
next to their tables, so a reader compares only runs made on the same stack.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata


def _cpu() -> str:
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break  # the first processor is enough
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.machine())
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info  # a dependency of scikit-learn
    except ImportError:
        return "blas ?"
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return f"{pool.get('internal_api')} {pool.get('version')} ({pool.get('architecture')})"
    return "blas ?"


def _torch_kernels() -> str:
    try:
        import torch
    except ImportError:
        return ""
    return f", torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})"


def machine() -> str:
    """``cpu ...; numpy ..., <blas> ...``: the facts that decide floating-point results."""
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl reports)

    return (
        f"machine: {_cpu()}, {os.cpu_count()} cpus; python {platform.python_version()}, "
        f"numpy {_version('numpy')} with {_blas()}, scipy {_version('scipy')}, "
        f"scikit-learn {_version('scikit-learn')}{_torch_kernels()}"
    )


if __name__ == "__main__":
    print(machine())
