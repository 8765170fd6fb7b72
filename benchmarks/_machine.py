"""One line saying which CPU and numeric stack a benchmark ran on, and a switch that makes
results agree across CPUs.

Sequential searches amplify floating-point differences. The same code, seeds and package
versions gave different tunecraft results in two sessions (docs/benchmarks.md, multi-fidelity
section, "night" and "last session"). OpenBLAS (built with ``DYNAMIC_ARCH``), numpy's SIMD
dispatch and torch pick their kernels by CPU at run time, and that is the cause: forcing the
kernels reproduced the other CPU's numbers. The benchmarks print this line next to their
tables, so a reader compares only runs made on the same stack.

``--portable-numerics`` (``portable_numerics()``) takes the CPU out of that comparison: it
reruns the script with the kernels an AVX2 machine picks (OpenBLAS's Haswell kernels,
numpy's dispatch capped below AVX-512, torch's AVX2 kernels). On an AMD EPYC of family 25
model 17 (AVX-512) that gave back, to the last digit, the multi-fidelity and pipeline results
of a model 1 (AVX2), in numpy 1.26 and in numpy 2.4 with torch (docs/benchmarks.md,
multi-fidelity section, "this session").
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from importlib import metadata

#: Set in the rerun that ``portable_numerics`` starts (so it starts only one).
PORTABLE = "TUNECRAFT_PORTABLE_NUMERICS"
PORTABLE_HELP = (
    "rerun with AVX2 kernels (OpenBLAS, numpy, torch), so that an AVX-512 CPU gives the "
    "results of an AVX2 one (benchmarks/_machine.py)"
)


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


def _simd() -> tuple[list[str], str]:
    """numpy's dispatch targets, and the highest one this process uses."""
    import numpy

    # numpy 2 renamed numpy.core to numpy._core
    core = "numpy._core" if int(numpy.__version__.split(".")[0]) >= 2 else "numpy.core"
    umath = importlib.import_module(f"{core}._multiarray_umath")
    dispatch = list(umath.__cpu_dispatch__)
    used = [t for t in dispatch if umath.__cpu_features__.get(t)]
    return dispatch, used[-1] if used else "baseline"


def portable_numerics() -> None:
    """Rerun this script with AVX2 kernels for OpenBLAS, numpy and torch (see the module).

    The switches are environment variables read when the libraries load, so they need a new
    process: this replaces the current one (``os.execve``) with the same command line, unless
    it is already that rerun. Call it before any output.
    """
    if os.environ.get(PORTABLE) == "1":
        return
    dispatch, _ = _simd()
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell", ATEN_CPU_CAPABILITY="avx2")
    env[PORTABLE] = "1"
    wide = [t for t in dispatch if t.startswith("AVX512") or t == "X86_V4"]
    if wide:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(wide)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _torch_kernels() -> str:
    try:
        import torch
    except ImportError:
        return ""
    return f", torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})"


def machine() -> str:
    """``cpu ...; numpy ..., <blas> ...``: the facts that decide floating-point results."""
    import numpy  # noqa: F401  (loads the BLAS that threadpoolctl reports)

    portable = "; portable numerics" if os.environ.get(PORTABLE) == "1" else ""
    return (
        f"machine: {_cpu()}, {os.cpu_count()} cpus; python {platform.python_version()}, "
        f"numpy {_version('numpy')} ({_simd()[1]}) with {_blas()}, scipy {_version('scipy')}, "
        f"scikit-learn {_version('scikit-learn')}{_torch_kernels()}{portable}"
    )


if __name__ == "__main__":
    print(machine())
