"""Run the example DAG end to end with `airflow dags test` and print what the pipeline produced.

Without TOGETHER_API_KEY (or with TOGETHER_BASE_URL set), it starts the bundled emulator on a free
loopback port and points `together_default` at it. With TOGETHER_API_KEY set and TOGETHER_BASE_URL
unset, the same command runs against the real Together API (this costs a few cents of inference).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEMO_KEY = "demo-key-not-secret"


def start_emulator(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            str(BIN / "together-emulator"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--api-key",
            DEMO_KEY,
            "--data-dir",
            str(data_dir),
            "--validating-seconds",
            "1",
            "--processing-seconds",
            "3",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1]


def _message(line: str) -> str:
    """The message of a structlog line, without its timestamp, level and logger name."""
    found = re.search(r"\[\s*\w+\s*\] (.*?)(?: \[[\w.]+\].*)?$", line)
    return (found.group(1) if found else line).strip()


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="together-demo-"))
    real_key = os.environ.get("TOGETHER_API_KEY")
    use_real_api = bool(real_key) and not os.environ.get("TOGETHER_BASE_URL")
    emulator = None
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{work}/airflow.db",
        TOGETHER_EXAMPLE_RESULTS_URL=(work / "results").as_uri(),
    )
    try:
        if use_real_api:
            print("Running against the real Together API (TOGETHER_API_KEY is set).")
            conn = {"conn_type": "together", "host": "https://api.together.ai"}
        else:
            emulator, url = start_emulator(work / "emulator")
            print(f"Started the Together emulator at {url}")
            conn = {"conn_type": "together", "host": os.environ.get("TOGETHER_BASE_URL") or url}
            env["TOGETHER_API_KEY"] = (
                real_key if os.environ.get("TOGETHER_BASE_URL") and real_key else DEMO_KEY
            )
            env["TOGETHER_EXAMPLE_POLL_INTERVAL"] = "1"
        # The key travels in TOGETHER_API_KEY, never in the connection text printed below.
        env["AIRFLOW_CONN_TOGETHER_DEFAULT"] = json.dumps(conn)
        print(f"Connection together_default: {json.dumps(conn)}")

        airflow = str(BIN / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        log_path = work / "dags-test.log"
        with open(log_path, "w") as log:
            result = subprocess.run(
                [airflow, "dags", "test", "example_together_batch"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        produced = [
            line
            for line in log_path.read_text().splitlines()
            if "Together batch" in line or line.startswith(("  question-", "  failed "))
        ]
        print("\nWhat the pipeline produced:")
        for line in produced:
            # The summary's own lines under its headers keep their indent.
            print("  " + (line if line.startswith("  ") else _message(line)))
        landed = sorted((work / "results").glob("*/results.jsonl"))
        if landed:
            print(f"\nResults: {landed[0]} ({len(landed[0].read_text().splitlines())} rows, one per request)")
        if result.returncode != 0 or not landed:
            print(f"\nThe DAG run failed; the full log is at {log_path}")
            return 1
        print(f"\nDemo finished: DAG run succeeded. Full log: {log_path}")
        return 0
    finally:
        if emulator is not None:
            emulator.terminate()
            emulator.wait(timeout=10)
            print("Stopped the emulator.")


if __name__ == "__main__":
    sys.exit(main())
