"""How the provider writes a file a user gets (a download, a results file): the one decision, used by
the hook and by :mod:`together_provider.tasks.storage` alike. No Airflow imports.

- Whole or not at all: the bytes go to a temporary file beside the target, renamed onto it at the end.
- A symlink at the target is replaced by the file; the file it pointed at is never opened or changed,
  and nothing is written outside the target's folder (the path is made absolute, never resolved).
- The file gets the mode a plain ``open(path, "w")`` would: ``0o666`` less the process umask for a new
  file, the existing file's permission bits when a regular file is replaced. ``tempfile.mkstemp`` would
  make every file owner-only, unreadable to another user or a container running with another uid.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress

# As open(path, "xb"): O_EXCL fails on any name already there, a symlink planted at it included.
_CREATE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
_NAME_ATTEMPTS = 8


def target_path(path: str | os.PathLike[str]) -> str:
    """The absolute path a write lands at: ``~`` expanded, symlinks left as they are (not resolved), so
    the rename replaces a link itself rather than the file it points at."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _create_beside(dest: str) -> tuple[int, str]:
    folder, name = os.path.split(dest)
    for _ in range(_NAME_ATTEMPTS):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.part")
        try:
            # 0o666 through the umask (never os.umask(): it is process-wide, so reading it races threads).
            return os.open(tmp, _CREATE, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {dest} ({_NAME_ATTEMPTS} names taken)")


def _keep_mode_of_replaced(fd: int, dest: str) -> None:
    """A regular file being replaced keeps its permission bits, as ``open(dest, "w")`` would keep them:
    a file its owner made private stays private. A link or anything else is not looked through."""
    try:
        found = os.lstat(dest)
    except FileNotFoundError:
        return
    if stat.S_ISREG(found.st_mode):
        os.fchmod(fd, stat.S_IMODE(found.st_mode))


@contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[tuple[str, str]]:
    """Yields ``(tmp, dest)``: an empty temporary file beside the target to write (by path), and the
    absolute target. When the block ends without an error, ``tmp`` is renamed onto ``dest``; on an error
    it is removed and ``dest`` is as it was. The target's folder is created if missing."""
    dest = target_path(path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = _create_beside(dest)
    try:
        try:
            _keep_mode_of_replaced(fd, dest)
        finally:
            os.close(fd)
        yield tmp, dest
        os.replace(tmp, dest)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
