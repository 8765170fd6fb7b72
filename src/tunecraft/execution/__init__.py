"""Who runs trials: in process (Study.optimize), or a local pool of worker processes."""

from tunecraft.execution._local import run_in_processes

__all__ = ["run_in_processes"]
