"""From a finished run to a model in use: reading its front, picking a model within bounds, loading it.

Example:
    >>> import nas
    >>> run = nas.load_run("runs/demo")  # doctest: +SKIP
    >>> best = run.pick(max={"latency_ms": 5}, by="error")  # doctest: +SKIP
    >>> net = run.load_model(best.id)  # doctest: +SKIP
"""

from nas.deploy._pick import FrontModel, NoModelMeetsBounds, PickError, parse_bound
from nas.deploy._run import LoadedRun, load_run

__all__ = ["FrontModel", "LoadedRun", "NoModelMeetsBounds", "PickError", "load_run", "parse_bound"]
