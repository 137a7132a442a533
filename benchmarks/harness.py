"""The orchestrator's state: one emulator process for the whole run, the batches made on it so far, and
the comparison servers started on first use. Every process started here is stopped in ``close``."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import Control, ServerProcess, bench_env, emulator_process
from benchmarks.seed import create_batches, upload_never_finish


@dataclass
class Table:
    """The one table `make bench` prints: a row per measurement, with its target and verdict."""

    rows: list[dict[str, str]] = field(default_factory=list)

    def add(
        self, item: str, case: str, subject: str, result: str, target: str = "", verdict: str = ""
    ) -> None:
        self.rows.append(
            {
                "item": item,
                "case": case,
                "subject": subject,
                "result": result,
                "target": target,
                "verdict": verdict,
            }
        )

    def render(self) -> str:
        header = {
            "item": "#",
            "case": "case",
            "subject": "subject",
            "result": "result",
            "target": "target",
            "verdict": "met?",
        }
        keys = list(header)
        widths = {k: max(len(row[k]) for row in [header, *self.rows]) for k in keys}
        lines = []
        for index, row in enumerate([header, *self.rows]):
            lines.append("| " + " | ".join(row[k].ljust(widths[k]) for k in keys) + " |")
            if index == 0:
                lines.append("|" + "|".join("-" * (widths[k] + 2) for k in keys) + "|")
        return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


class Harness:
    def __init__(self, out: Path, *, quick: bool, bench_python: Path | None) -> None:
        self.out = out
        self.quick = quick
        self.bench_python = bench_python if bench_python and bench_python.exists() else None
        self.table = Table()
        self.results: dict[str, Any] = {}
        self.notes: list[str] = []
        self._emulator: ServerProcess | None = None
        self._servers: list[ServerProcess] = []
        self._file_id = ""
        self.batch_ids: list[str] = []
        self.creation: list[dict[str, float]] = []

    # ---- the emulator and its batches -----------------------------------------------------------

    @property
    def emulator(self) -> ServerProcess:
        if self._emulator is None:
            self._emulator = emulator_process(self.out).start()
        return self._emulator

    @property
    def control(self) -> Control:
        return Control(self.emulator.url)

    def batches(self, count: int) -> list[str]:
        """The first ``count`` never-finishing batches, made now if there are fewer."""
        if not self._file_id:
            self._file_id = upload_never_finish(self.emulator.url)
        missing = count - len(self.batch_ids)
        if missing > 0:
            ids, seconds = create_batches(self.emulator.url, self._file_id, missing)
            self.batch_ids.extend(ids)
            self.creation.append({"created": missing, "seconds": seconds, "per_s": missing / seconds})
        return self.batch_ids[:count]

    # ---- other servers --------------------------------------------------------------------------

    def openai_stub(self) -> ServerProcess | None:
        """The OpenAI-shaped stub, run by .venv's python (it needs only aiohttp)."""
        for server in self._servers:
            if "openai_stub" in server.argv:
                return server
        argv = [sys.executable, "-m", "benchmarks.openai_stub", "--port", "0"]
        server = ServerProcess(argv, env=bench_env(self.out), log=self.out / "logs" / "openai-stub.log")
        self._servers.append(server.start())
        return server

    def rate_limit_proxy(self, rate: float) -> ServerProcess:
        argv = [sys.executable, "-m", "benchmarks.rate_limit_proxy", "--upstream", self.emulator.url]
        argv += ["--rate", str(rate)]
        server = ServerProcess(argv, env=bench_env(self.out), log=self.out / "logs" / "rate-limit-proxy.log")
        self._servers.append(server.start())
        return server

    def stop_server(self, server: ServerProcess) -> None:
        server.stop()
        if server in self._servers:
            self._servers.remove(server)

    def write_json(self, name: str, value: Any) -> Path:
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=2, default=str))
        return path

    def close(self) -> None:
        for server in list(self._servers):
            self.stop_server(server)
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        # The download benchmark leaves a 1 GB file in the emulator's data directory.
        shutil.rmtree(self.out / "emulator", ignore_errors=True)
