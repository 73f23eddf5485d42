"""One writer per run directory: an exclusive ``flock`` on ``RUN/.lock``, held for the whole search.

The operating system releases the lock when its holder exits, however it exits (``kill -9`` included), so a
lock is never stale: the file itself stays, and only the lock on it counts. The file holds the pid of the
process that last took it, which a refused process names.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> run = Path(tempfile.mkdtemp())
    >>> with RunLock(run):
    ...     (run / ".lock").is_file()
    True
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from nas._errors import RunError, RunLockedError

__all__ = ["LOCK_NAME", "RunLock", "lock_holder"]

#: the lock file inside a run directory (not a result: it never counts as content of the run)
LOCK_NAME = ".lock"


class RunLock:
    """An exclusive, non-blocking lock on a run directory; :meth:`acquire` refuses at once when held.

    Raises:
        RunLockedError: another process holds the lock; the message names its pid.
        RunError: the directory cannot hold a lock file (missing, read-only).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise RunError(f"cannot lock {self.run_dir}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunError(f"cannot lock {self.run_dir}: {e.strerror or e}") from None
            pid = lock_holder(self.run_dir)
            who = f"process {pid}" if pid is not None else "another process"
            raise RunLockedError(
                f"{self.run_dir} is being written by {who} (it holds {self.path}); wait for it to end or stop "
                "it, then resume; one process writes a run at a time",
                pid=pid,
            ) from None
        try:  # the holder's pid, for the message of whoever is refused; the lock, not the text, is what counts
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.fsync(fd)
        except OSError:
            pass  # a full disk must not stop a lock that is already held from working
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def lock_holder(run_dir: str | Path) -> int | None:
    """The pid written in a run's lock file (the last process that held it), or None."""
    try:
        text = (Path(run_dir) / LOCK_NAME).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
