"""Long-running processes of the e2e stack: each in its own session, its output in one log file, and
stopped with everything it forked (Airflow's task and trigger runners leave the parent's process group,
so a group signal alone would leak them)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces or parentheses: the fields start after the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(pid: int) -> list[int]:
    children = _children_map()
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class Service:
    """One process tree, started in a new session with output to ``<log_dir>/<name>.log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_dir: Path,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.stop_signal = stop_signal
        self.user = user
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Drop root's groups too, not only its uid.
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill_hard(self) -> None:
        """SIGKILL the whole tree at once, as a lost machine would: nothing gets to clean up."""
        if self.proc is None:
            return
        tree = [self.pid, *descendants(self.pid)]
        for pid in tree:
            _signal(pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 15.0) -> None:
        stop_all([self], timeout)


def stop_all(services: Sequence[Service], timeout: float = 15.0) -> None:
    """Signal every tree first and wait once, so teardown takes one timeout, not one per service."""
    trees = {}
    for service in services:
        if service.alive():
            trees[service] = [service.pid, *descendants(service.pid)]
            # Only the parent: it stops its own children in order, the snapshot catches leftovers.
            _signal(service.pid, service.stop_signal)
    deadline = time.monotonic() + timeout
    pending = [pid for tree in trees.values() for pid in tree]
    while time.monotonic() < deadline and pending:
        for service in trees:
            service.proc.poll()  # type: ignore[union-attr]
        pending = [pid for pid in pending if _exists(pid)]
        time.sleep(0.2)
    for pid in pending:
        _signal(pid, signal.SIGKILL)
    for service in trees:
        service.proc.wait()  # type: ignore[union-attr]


def _exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
