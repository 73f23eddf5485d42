"""Files written atomically: a temporary file in the same folder, flushed, fsync'ed and renamed over the target.

A leaf module of ``nas`` (it imports nothing of ``nas`` but the errors), so that every folder writes its files
the same way: the run's derived files (``pareto.json``, ``trials.csv``, ``pareto.png``, ``models/``,
``data.json``, ``space.json``, ``timings.json``), the report (``report.html``, ``report.md``, its figures),
``sustainability.json`` and the checkpoints. A reader sees the old file or the new one, never a part of
either; a write that fails (disk full, an exception in the writer) leaves the old file as it was and removes
its temporary file. The temporary file is ``<name>.<pid>.tmp`` beside the target, so two processes writing the
same file never share one.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write_text(target, "hello")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('hello', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from nas._errors import RuntimeFailure

__all__ = ["atomic_replace", "atomic_write", "atomic_write_bytes", "atomic_write_text", "temporary_path"]


def temporary_path(path: Path) -> Path:
    """The temporary file this process writes ``path`` through: ``<name>.<pid>.tmp`` in the same folder."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def atomic_replace(
    path: str | os.PathLike[str],
    write_to: Callable[[Path], object],
    *,
    error: type[Exception] | None = RuntimeFailure,
) -> None:
    """Calls ``write_to(tmp)`` to write the temporary file (for writers that take a path: ``onnx.save_model``,
    ``torch.save``, ``Figure.savefig``), fsyncs it and renames it over ``path``, then fsyncs the folder.

    Args:
        error: the class an ``OSError`` is raised as, with a message naming ``path`` (``None``: raised as is).

    Raises:
        RuntimeFailure: (or ``error``) the file cannot be written; other exceptions of ``write_to`` pass through.
            Either way ``path`` is untouched and the temporary file removed.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        write_to(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError) and error is not None:
            raise error(f"cannot write {path}: {e.strerror or e}") from None
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash once the folder is synced
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[Any]], object],
    *,
    mode: str = "w",
    error: type[Exception] | None = RuntimeFailure,
    **open_kw: Any,
) -> None:
    """Writes ``path`` through ``write(file)``, ``file`` being the temporary file opened with ``mode`` and
    ``open_kw``; see :func:`atomic_replace`.

    Raises:
        RuntimeFailure: (or ``error``) the file cannot be written (disk full, read-only...).
    """

    def write_to(tmp: Path) -> None:
        with open(tmp, mode, **open_kw) as fh:
            write(fh)
            fh.flush()

    atomic_replace(path, write_to, error=error)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, error: type[Exception] | None = RuntimeFailure
) -> None:
    """:func:`atomic_write` of a text (UTF-8)."""
    atomic_write(path, lambda fh: fh.write(text), encoding="utf-8", error=error)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, error: type[Exception] | None = RuntimeFailure
) -> None:
    """:func:`atomic_write` of bytes."""
    atomic_write(path, lambda fh: fh.write(data), mode="wb", error=error)
