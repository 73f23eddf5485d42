"""The ``hwnas`` command line.

Usage errors print one line on stderr naming what is wrong and what is valid, and exit with status 2;
runtime failures (disk full, an output that cannot be written) print one line and exit with status 3; a search
in which no trial met the constraints ends with status 4. The codes are listed in ``nas/_errors.py``, and
:func:`_exit_code` maps every error to its code, in this one place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from nas._cli_commands import (
    _cmd_dashboard,
    _cmd_export,
    _cmd_pick,
    _cmd_profile_device,
    _cmd_profiles,
    _cmd_report,
    _cmd_search,
    _cmd_spaces,
    _Interrupted,
    _user_modules_importable,
)
from nas._cli_parser import build_parser
from nas._errors import EXIT_INTERRUPTED, EXIT_RUNTIME, EXIT_USAGE

__all__ = ["USAGE_ERROR", "main"]


USAGE_ERROR = EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hwnas`` console script."""
    # OpenMP threads that spin while waiting slow training 5-10x as soon as another process shares the
    # cores; passive waiting costs little when the machine is idle. Read once, when torch loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed in one line
        return e.code if isinstance(e.code, int) else USAGE_ERROR
    if args.command is None:
        parser.print_help()
        return USAGE_ERROR
    _user_modules_importable()
    handlers = {
        "search": _cmd_search,
        "export": _cmd_export,
        "profiles": _cmd_profiles,
        "spaces": _cmd_spaces,
        "profile-device": _cmd_profile_device,
        "report": _cmd_report,
        "pick": _cmd_pick,
        "dashboard": _cmd_dashboard,
    }
    try:
        return handlers[args.command](args)
    except _Interrupted as e:
        print(
            f"\nhwnas: interrupted; every finished trial is kept in {e.run_dir}/study.db. "
            f"Continue with: hwnas search --resume {e.run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\nhwnas: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # known errors become one line and their status; others re-raise
        code = _exit_code(e)
        if code is None:
            raise
        print(f"hwnas: error: {_one_line(e)}", file=sys.stderr)
        return code


def _exit_code(e: BaseException) -> int | None:
    """The exit status of an error, the one place where errors meet exit codes (see ``nas/_errors.py``):
    :class:`nas._errors.HwnasError` carries its own; the errors of the layers below ``nas`` (profiles,
    datasets, study storage, lookup tables, clusters) are usage errors; a failing file system or a full disk
    (``OSError``, SQLite's "disk is full", ``MemoryError``) is a runtime failure. None: a bug, left to raise."""
    import sqlite3

    from nas._errors import HwnasError

    if isinstance(e, HwnasError):
        return e.exit_code
    from hardware_profiles import ProfileError
    from nas.data import DatasetError
    from nas.run._locks import ClusterError
    from profilers import LutError
    from search import StorageError

    if isinstance(e, (ProfileError, DatasetError, StorageError, LutError, ClusterError)):
        return EXIT_USAGE
    if isinstance(e, (OSError, MemoryError, sqlite3.OperationalError)):
        return EXIT_RUNTIME
    return None


def _one_line(e: BaseException) -> str:
    """An error's message in one line; a file-system error as 'PATH: reason'."""
    if isinstance(e, OSError) and e.strerror:
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror}"
    if isinstance(e, MemoryError):
        return "out of memory; use a smaller population, batch size or fewer workers"
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
