"""A real S3-compatible server on loopback for tests, e2e and benchmarks: moto's server mode, a child process.

    with S3Server() as s3:                      # or S3Server(enforce_auth=True): every key is refused (403)
        s3.create_bucket("inputs")
        env = s3.connection_env("aws_s3")       # {"AIRFLOW_CONN_AWS_S3": '{"conn_type": "aws", ...}'}
        url = s3.url_for("aws_s3", "inputs", "x/in.jsonl")   # "s3://aws_s3@inputs/x/in.jsonl"

The server is a child process (``python -m moto.server``), not a thread of the caller: moto's auth switch is
one global of the process, so a server that refuses every key (``enforce_auth``) cannot share a process
with one that accepts any, and other processes (Celery workers of the e2e) reach it the same way as
this one, over HTTP. Connections are given as Airflow's ``AIRFLOW_CONN_<ID>`` JSON with the server's URL in
``extra.endpoint_url`` and dummy keys, the form a real S3-compatible store (MinIO, Ceph) is configured with.

Importing this module needs nothing beyond the standard library; starting a server needs moto[server].
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REGION = "us-east-1"
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class S3Server:
    """moto's S3 on 127.0.0.1 in a child process; ``url`` is its endpoint once started.

    :param enforce_auth: refuse every request whose key moto's IAM does not hold, which is every key
        the tests give: each call gets S3's 403 ``InvalidAccessKeyId``, as from a store that refuses the
        connection's credentials.
    :param log: where the server's output goes (default: discarded).
    """

    def __init__(self, *, enforce_auth: bool = False, log: Path | None = None) -> None:
        self.enforce_auth = enforce_auth
        self.log = log
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._sink: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> S3Server:
        env = {**os.environ, "AWS_DEFAULT_REGION": REGION}
        if self.enforce_auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        else:
            env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        sink: Any = subprocess.DEVNULL
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            sink = self._sink = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        # A free port can be taken by another process before the server binds it: try a few.
        for _attempt in range(5):
            self.port = _free_port()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            if self._wait_ready(timeout):
                return self
            self._end_process()
        self.stop()
        raise RuntimeError(f"moto's S3 server did not start on 127.0.0.1 (log: {self.log or 'discarded'})")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            try:
                # moto's own API answers whatever the auth setting, so readiness needs no key.
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2):
                    return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        self._end_process()
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()

    def _end_process(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    # ---- what a client needs ------------------------------------------------------------------------

    def connection(self) -> dict[str, Any]:
        """An Airflow AWS connection to this server, as the JSON form of ``AIRFLOW_CONN_<ID>`` holds it."""
        return {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {"endpoint_url": self.url, "region_name": REGION},
        }

    def connection_env(self, conn_id: str) -> dict[str, str]:
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.connection())}

    @staticmethod
    def url_for(conn_id: str, bucket: str, key: str) -> str:
        return f"s3://{conn_id}@{bucket}/{key.lstrip('/')}"

    def client(self) -> Any:
        """A boto3 S3 client on this server (to arrange and inspect buckets without Airflow)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        """Every key in ``bucket``, sorted."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def get(self, bucket: str, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=bucket, Key=key)["Body"].read())

    def put(self, bucket: str, key: str, body: bytes | Path) -> None:
        if isinstance(body, Path):
            self.client().upload_file(str(body), bucket, key)
        else:
            self.client().put_object(Bucket=bucket, Key=key, Body=body)
