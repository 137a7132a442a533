"""The e2e deployment on loopback: PostgreSQL, Redis, the emulator, an S3 server (moto), and Airflow's
api-server, scheduler, dag-processor, two Celery workers (each with its own temp dir) and two triggerers,
each on a free port, all in temporary directories."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.e2e import airflow_local_settings
from tests.e2e.airflow_api import AirflowAPI
from tests.e2e.airflow_env import ROOT, airflow_environment, read_env_file
from tests.e2e.emulator_api import Emulator
from tests.e2e.processes import Service, free_port, stop_all
from tests.e2e.s3_api import REGION, S3

BIN = Path(sys.executable).parent
# Recognizable on purpose: after the run, every kept log is searched for it.
TEST_API_KEY = "tk-e2e-together-test-key-0123456789"
E2E_DAGS = Path(__file__).parent / "dags"
INITDB_FLAGS = ("-A", "scram-sha-256", "-E", "UTF8", "--no-sync")
S3_CONN_ID = "e2e_s3"
S3_BUCKET = "together-e2e"
# Each worker consumes the default queue and one of its own, which the e2e cluster policy routes to.
WORKER_QUEUES = (
    ("default", airflow_local_settings.RESULTS_QUEUE),
    ("default", airflow_local_settings.SUMMARIZE_QUEUE),
)


class StackError(RuntimeError):
    pass


def _wait(what: str, ready: Callable[[], object], timeout: float, services: list[Service]) -> object:
    deadline = time.monotonic() + timeout
    while True:
        for service in services:
            if not service.alive():
                tail = "\n".join(service.log_text().splitlines()[-30:])
                raise StackError(f"{service.name} exited while waiting for {what}:\n{tail}")
        try:
            value = ready()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def _postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise StackError("PostgreSQL's initdb not found: run tests/e2e/install_system_deps.sh")


class Stack:
    """Start with :meth:`start`; :meth:`stop` always tears down whatever did start."""

    def __init__(
        self,
        *,
        triggerers: int = 2,
        worker_queues: tuple[tuple[str, ...], ...] = WORKER_QUEUES,
        extra_env: Mapping[str, str] | None = None,
        extra_dags: Sequence[Path] = (),
        connection_extra: Mapping[str, Any] | None = None,
    ) -> None:
        """The defaults are the e2e deployment; the benchmarks pass fewer triggerers or workers, extra
        settings (e.g. ``AIRFLOW__TRIGGERER__CAPACITY``) for every Airflow process, and DAG files of
        their own, and extras of the ``together_default`` connection."""
        self.triggerer_count = triggerers
        self.worker_queue_sets = worker_queues
        self.extra_env = dict(extra_env or {})
        self.extra_dags = list(extra_dags)
        self.connection_extra = dict(connection_extra or {})
        self.work = Path(tempfile.mkdtemp(prefix="together-e2e-"))
        self.log_dir = self.work / "logs"
        self.log_dir.mkdir()
        self.pg_dir: Path | None = None
        self.infra: list[Service] = []
        self.airflow: dict[str, Service] = {}
        self.env: dict[str, str] = {}
        self.api: AirflowAPI
        self.emulator: Emulator
        self.s3: S3
        self.triggerer_jobs: dict[str, int] = {}
        self.worker_queues: dict[str, tuple[str, ...]] = {}
        self._worker_count = 0

    # -- infrastructure ---------------------------------------------------------------------------

    def _start_postgres(self) -> str:
        pg_bin = _postgres_bin()
        user = None
        self.pg_dir = Path(tempfile.mkdtemp(prefix="together-e2e-pg-"))
        password = secrets.token_hex(16)
        pwfile = self.pg_dir / "pwfile"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root; Debian's package creates this user.
            user = "postgres"
            try:
                pwd.getpwnam(user)
            except KeyError:
                raise StackError("running as root needs a 'postgres' user to run PostgreSQL as") from None
            shutil.chown(self.pg_dir, user)
            shutil.chown(pwfile, user)
        data = self.pg_dir / "data"
        with open(self.log_dir / "postgres-initdb.log", "wb") as log:
            initdb = [str(pg_bin / "initdb"), "-D", str(data), "-U", "airflow", f"--pwfile={pwfile}"]
            subprocess.run(
                [*initdb, *INITDB_FLAGS],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
                cwd=self.pg_dir,
            )
        pwfile.unlink()
        port = free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "max_connections": "300",
            # A throwaway database: durability costs time and buys nothing here.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [str(pg_bin / "postgres"), "-D", str(data), "-p", str(port), "-k", str(self.pg_dir)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for Airflow's connections to close.
        service = Service(
            "postgres", argv, env=os.environ, log_dir=self.log_dir, stop_signal=signal.SIGINT, user=user
        )
        self.infra.append(service.start())

        import psycopg2

        def connect() -> bool:
            conn = psycopg2.connect(
                host="127.0.0.1", port=port, user="airflow", password=password, dbname="postgres"
            )
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute("CREATE DATABASE airflow")
            conn.close()
            return True

        _wait("PostgreSQL", connect, 60, [service])
        return f"airflow:{password}@127.0.0.1:{port}/airflow"

    def _start_redis(self) -> str:
        port = free_port()
        (self.work / "redis").mkdir()
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.work / "redis")]
        service = Service("redis", argv, env=os.environ, log_dir=self.log_dir)
        self.infra.append(service.start())
        import redis

        _wait("Redis", lambda: redis.Redis(host="127.0.0.1", port=port).ping(), 30, [service])
        return f"redis://127.0.0.1:{port}/0"

    def _start_emulator(self) -> str:
        argv = [str(BIN / "together-emulator"), "--host", "127.0.0.1", "--port", "0"]
        argv += ["--data-dir", str(self.work / "emulator"), "--validating-seconds", "1"]
        argv += ["--processing-seconds", "2"]
        # The key goes in the environment, not argv, so it stays out of process listings.
        env = {**os.environ, "TOGETHER_EMULATOR_API_KEY": TEST_API_KEY}
        service = Service("emulator", argv, env=env, log_dir=self.log_dir)
        self.infra.append(service.start())

        def url() -> str | None:
            for line in service.log_text().splitlines():
                if "listening on " in line:
                    return line.rsplit(" ", 1)[-1]
            return None

        found = str(_wait("the emulator", url, 30, [service]))
        self.emulator = Emulator(found, TEST_API_KEY)
        _wait("the emulator's health", self.emulator.healthy, 30, [service])
        return found

    def _start_s3(self) -> S3:
        for module, package in (
            ("moto.server", "moto[server]"),
            ("s3fs", "apache-airflow-providers-amazon[s3fs]"),
        ):
            if importlib.util.find_spec(module.split(".")[0]) is None:
                raise StackError(
                    f"the e2e S3 server and its Airflow filesystem need {package}: pip install it"
                )
        port = free_port()
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        service = Service("s3", argv, env={**os.environ, "AWS_DEFAULT_REGION": REGION}, log_dir=self.log_dir)
        self.infra.append(service.start())
        s3 = S3(f"http://127.0.0.1:{port}", S3_BUCKET)
        _wait("the S3 server", s3.healthy, 60, [service])
        s3.create_bucket()
        return s3

    # -- Airflow ----------------------------------------------------------------------------------

    def _airflow_env(
        self, db: str, broker: str, emulator_url: str, api_port: int, s3: S3 | None = None
    ) -> dict[str, str]:
        dags = self.work / "dags"
        shutil.copytree(ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
        for dag_file in [*E2E_DAGS.glob("*.py"), *self.extra_dags]:
            shutil.copy(dag_file, dags / dag_file.name)
        (self.work / "inputs").mkdir()
        self.password = secrets.token_urlsafe(16)
        self.username = read_env_file()["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(":")[0]
        passwords = self.work / "passwords.json"
        # Known in advance, so Airflow neither generates one nor prints it.
        passwords.write_text(json.dumps({self.username: self.password}))
        connection: dict[str, Any] = {"conn_type": "together", "host": emulator_url, "password": TEST_API_KEY}
        if self.connection_extra:
            connection["extra"] = self.connection_extra
        deployment = {
            "AIRFLOW_HOME": str(self.work / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{db}",
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{db}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW_CONN_TOGETHER_DEFAULT": json.dumps(connection),
            "TOGETHER_EXAMPLE_POLL_INTERVAL": "1",
            "TOGETHER_EXAMPLE_OUTPUT_DIR": str(self.work / "output"),
        }
        if s3 is not None:
            # Every process gets it: the dag-processor builds the example's ObjectStoragePath at parse.
            deployment[f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"] = json.dumps(s3.connection())
            deployment["TOGETHER_EXAMPLE_RESULTS_URL"] = f"s3://{S3_CONN_ID}@{S3_BUCKET}/example"
        config = self.work / "airflow" / "config"
        config.mkdir(parents=True, exist_ok=True)
        shutil.copy(airflow_local_settings.__file__, config / "airflow_local_settings.py")
        return {**airflow_environment(os.environ, deployment), **self.extra_env}

    def _airflow_service(self, name: str, *args: str, env: dict[str, str] | None = None) -> Service:
        argv = [str(BIN / "airflow"), *args]
        service = Service(name, argv, env=env or self.env, log_dir=self.log_dir)
        self.airflow[name] = service.start()
        return service

    def start_worker(self, queues: tuple[str, ...] = ("default",)) -> Service:
        """A Celery worker on ``queues``; each start gets a new node name, as a replacement machine would,
        its own temp dir, as a separate machine has, and records its name as the hostname of its tasks."""
        self._worker_count += 1
        name = f"worker-{self._worker_count}"
        tmp = self.work / "tmp" / name
        tmp.mkdir(parents=True)
        env = {
            **self.env,
            "TMPDIR": str(tmp),
            airflow_local_settings.WORKER_NAME_ENV: self.worker_hostname(name),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_local_settings.e2e_hostname",
        }
        service = self._airflow_service(
            name,
            *("celery", "worker", "--skip-serve-logs", "--without-mingle", "--without-gossip"),
            *("--celery-hostname", f"{self.worker_hostname(name)}@%h", "--queues", ",".join(queues)),
            env=env,
        )
        self.worker_queues[name] = queues
        _wait(f"{name} to be ready", lambda: " ready." in service.log_text(), 120, [service])
        return service

    @staticmethod
    def worker_hostname(name: str) -> str:
        """The hostname the tasks a worker ran record (airflow_local_settings.e2e_hostname)."""
        return f"e2e-{name}"

    def _start_triggerer(self, name: str, env: Mapping[str, str] | None = None) -> None:
        """Started one at a time, so each triggerer's job id is known (jobs record no pid); ``env`` adds
        to the stack's environment for this one."""
        before = self.api.alive_triggerer_ids()
        service = self._airflow_service(
            name, "triggerer", "--skip-serve-logs", env={**self.env, **env} if env else None
        )
        new = _wait(f"{name}'s job", lambda: self.api.alive_triggerer_ids() - before, 120, [service])
        (self.triggerer_jobs[name],) = new  # type: ignore[misc]

    def start(self) -> None:
        db = self._start_postgres()
        broker = self._start_redis()
        emulator_url = self._start_emulator()
        self.s3 = self._start_s3()
        api_port = free_port()
        self.env = self._airflow_env(db, broker, emulator_url, api_port, self.s3)
        with open(self.log_dir / "db-migrate.log", "wb") as log:
            migrated = subprocess.run(
                [str(BIN / "airflow"), "db", "migrate"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=600,
            )
        if migrated.returncode != 0:
            raise StackError(f"airflow db migrate failed: see {self.log_dir / 'db-migrate.log'}")
        api_server = self._airflow_service(
            "api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port)
        )
        scheduler = self._airflow_service("scheduler", "scheduler", "--skip-serve-logs")
        dag_processor = self._airflow_service("dag-processor", "dag-processor")
        self.api = AirflowAPI(f"http://127.0.0.1:{api_port}", self.username, self.password)
        _wait("the api-server", self.api.health, 180, [api_server, scheduler, dag_processor])
        self.api.login()
        for queues in self.worker_queue_sets:
            self.start_worker(queues)
        for number in range(1, self.triggerer_count + 1):
            self._start_triggerer(f"triggerer-{number}")

        def all_healthy() -> bool:
            health = self.api.health()
            return all(part.get("status") == "healthy" for part in health.values())

        _wait("every component to report healthy", all_healthy, 120, list(self.airflow.values()))

    def wait_dags(self, dag_ids: set[str], timeout: float = 180) -> None:
        def parsed() -> bool:
            errors = self.api.import_errors()
            if errors:
                raise StackError(f"DAG import errors: {errors}")
            return dag_ids <= self.api.dag_ids()

        _wait(f"DAGs {sorted(dag_ids)}", parsed, timeout, list(self.airflow.values()))
        for dag_id in dag_ids:
            self.api.unpause(dag_id)

    def trigger_rows(self) -> list[dict]:
        """The trigger table with each trigger's deadline, read through Airflow's model."""
        done = subprocess.run(
            [sys.executable, "-m", "tests.e2e.trigger_rows"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for line in done.stdout.splitlines():
            if line.startswith("TRIGGER_ROWS "):
                return json.loads(line.removeprefix("TRIGGER_ROWS "))
        raise StackError(f"could not read the trigger table: {done.stderr[-2000:]}")

    # -- teardown ---------------------------------------------------------------------------------

    def stop(self) -> None:
        stop_all(list(self.airflow.values()), timeout=20)
        stop_all(self.infra, timeout=20)

    def collect(self, out: Path) -> Path:
        """Process logs, Airflow's task and trigger logs and the emulator's request log, under ``out``."""
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(self.log_dir, out)
        airflow_logs = self.work / "airflow" / "logs"
        if airflow_logs.exists():
            shutil.copytree(airflow_logs, out / "airflow", dirs_exist_ok=True)
        return out

    def remove(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        if self.pg_dir is not None:
            shutil.rmtree(self.pg_dir, ignore_errors=True)


def logs_holding(out: Path, text: str) -> list[Path]:
    needle = text.encode()
    return [path for path in sorted(out.rglob("*")) if path.is_file() and needle in path.read_bytes()]
