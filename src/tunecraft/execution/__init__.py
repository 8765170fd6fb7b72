"""Who runs trials: in process (Study.optimize), a local pool of worker processes, or the
workers of a Dask cluster (``Study.optimize(executor=client)``)."""

from tunecraft.execution._dask import run_on_dask
from tunecraft.execution._local import run_in_processes

__all__ = ["run_in_processes", "run_on_dask"]
