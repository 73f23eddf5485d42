"""Errors shared by the layers of ``nas`` (a leaf module: it imports nothing of ``nas``).

Every error hwnas reports to a user is an :class:`HwnasError`; its ``exit_code`` is the status the command
line exits with (``nas/cli.py`` maps the errors of the other packages onto the same codes, in one place):

======  =================================================================================================
status  meaning
======  =================================================================================================
0       success
1       ``hwnas pick``: no model of the front meets the bounds
2       usage error: a flag, config value, profile or run directory that cannot be used as given
3       runtime failure: the environment failed the run (disk full, a path that cannot be written, ...)
4       the search ended without a feasible model: no trial met the constraints
130     interrupted (Ctrl-C, SIGTERM); every finished trial is kept
======  =================================================================================================
"""

__all__ = [
    "EXIT_INFEASIBLE",
    "EXIT_INTERRUPTED",
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "HwnasError",
    "RunError",
    "RunLockedError",
    "RuntimeFailure",
    "UsageError",
]

EXIT_USAGE = 2
EXIT_RUNTIME = 3
EXIT_INFEASIBLE = 4
EXIT_INTERRUPTED = 130


class HwnasError(Exception):
    """An error reported in one line, without a traceback; ``exit_code`` is the command's exit status."""

    exit_code = EXIT_RUNTIME


class UsageError(HwnasError):
    """A mistake in what the user asked for: one line naming what is wrong and what is valid, status 2."""

    exit_code = EXIT_USAGE


class RuntimeFailure(HwnasError, RuntimeError):
    """The environment failed a run that was asked for correctly (disk full, read-only output...): status 3."""

    exit_code = EXIT_RUNTIME


class RunError(UsageError, RuntimeError):
    """A run directory that cannot be used as asked (exists already, not writable, not a run...)."""


class RunLockedError(RunError):
    """Another process is writing the run directory (it holds the run's lock)."""

    def __init__(self, message: str, *, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid
