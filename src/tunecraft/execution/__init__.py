"""Who runs trials: in process (Study.optimize), a local pool of worker processes, or the
workers of a Dask or Ray cluster (``Study.optimize(executor=...)``)."""

from tunecraft.execution._local import run_in_processes
from tunecraft.execution._tasks import run_as_tasks

__all__ = ["run_as_tasks", "run_in_processes"]
