"""``together-emulator``: run the emulator until SIGTERM or SIGINT.

Prints ``together-emulator listening on http://HOST:PORT`` once it accepts connections, so a script can wait
for that line and read the URL (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

from .server import start_site
from .state import EmulatorState


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="together-emulator", description="A Together-compatible Batch and Files API for tests."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TOGETHER_EMULATOR_API_KEY", "test-key"),
        help="the bearer key clients must send (default: $TOGETHER_EMULATOR_API_KEY or test-key)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where file contents are kept (default: a temporary directory, removed on exit)",
    )
    parser.add_argument("--validating-seconds", type=float, default=1.0)
    parser.add_argument("--processing-seconds", type=float, default=2.0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="fixed delay added to every /v1 answer")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of /v1 requests that get a random fault (0-1)"
    )
    parser.add_argument(
        "--fault-kinds",
        default="status",
        help="comma-separated kinds for random faults: status,drop,slow,malformed,html,truncate",
    )
    parser.add_argument("--fault-seed", type=int, default=None)
    parser.add_argument("--max-requests-per-batch", type=int, default=50_000)
    parser.add_argument("--max-bytes-per-batch", type=int, default=100 * 1024 * 1024)
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    own_dir = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="together-emulator-")) if own_dir else args.data_dir
    state = EmulatorState(
        args.api_key,
        data_dir,
        validating_seconds=args.validating_seconds,
        processing_seconds=args.processing_seconds,
        latency_ms=args.latency_ms,
        max_requests_per_batch=args.max_requests_per_batch,
        max_bytes_per_batch=args.max_bytes_per_batch,
    )
    if args.fault_rate > 0:
        kinds = [kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()]
        state.default_faults = {"rate": args.fault_rate, "kinds": kinds, "seed": args.fault_seed}
        state.set_faults(state.default_faults)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows has no loop signal handlers
            loop.add_signal_handler(signum, stop.set)
    runner, port = await start_site(state, args.host, args.port, access_log=args.access_log)
    try:
        print(f"together-emulator listening on http://{args.host}:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.access_log:
        import logging

        logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
