"""TogetherHook: the Airflow connection and both transports, over the shared client core."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from together_provider._compat import HttpHook
from together_provider.client import requests as api
from together_provider.client import results
from together_provider.client.call import Flow, run_sync
from together_provider.client.cancel import cancel_flow
from together_provider.client.cancel import describe as describe_cancel
from together_provider.client.cost import Pricing
from together_provider.client.errors import TogetherError, TransportError
from together_provider.client.jsonl import sha256_of, sha256_of_stream
from together_provider.client.models import BatchJob, TogetherFile
from together_provider.client.settings import (
    DEFAULT_BASE_URL,
    ConnectionSettings,
    base_url_from,
    hide_passwords,
    without_userinfo,
)
from together_provider.connection_form import ui_field_behaviour
from together_provider.hooks import local_files
from together_provider.hooks.async_client import AsyncTogetherClient, connection_lookup, settings_from
from together_provider.hooks.deadline import watched_session
from together_provider.hooks.transports import send_sync

if TYPE_CHECKING:
    import requests

T = TypeVar("T")

_RAW_HTTP_REFUSED = (
    "TogetherHook.{name}() is not supported: HttpHook's raw requests would send no API key and bypass "
    "the provider's retry policy. Use get_batch, list_batches, create_batch, cancel_batch, upload_file, "
    "get_file, list_files, delete_file or download_file instead."
)


class TogetherHook(HttpHook):
    """Calls Together AI's Batch and Files API.

    The API key is the connection's password (or ``TOGETHER_API_KEY`` when the password is empty).
    The host defaults to ``https://api.together.ai``; ``https://api.together.xyz`` and either with
    ``/v1`` work too. Extras: ``timeout`` (read timeout, seconds, default 60), ``connect_timeout``
    (default 10), ``max_retries`` (retries after the first attempt, default 4) and ``console_url``
    (the batch page pattern for the extra link, with ``{batch_id}``; unset, a connection to Together's
    own API links to Together's console and any other host has no link), ``max_requests_per_second``
    (what all async waits on this connection in one triggerer may spend together, default 25),
    ``total_timeout`` (seconds one attempt of an API call may take in all, however slowly the answer
    arrives; default 120, or connect plus read timeout when more) and ``max_response_mb`` (the most an
    API answer may hold once decompressed, default 16 MiB). File transfers keep only the per-read
    timeouts and have no size cap: they stream, and a large file may rightly take long. ``prices``
    (``{model: {"input", "output"}}`` per million tokens) and ``batch_discount`` (default 0.5) give
    ``BatchResultsOperator`` its estimated cost.

    Sync methods serve workers; ``a``-prefixed ones serve triggers on the event loop. Call
    :meth:`aclose` when done with the async side.

    :param together_conn_id: the Airflow connection to use.
    """

    conn_name_attr = "together_conn_id"
    default_conn_name = "together_default"
    conn_type = "together"
    hook_name = "Together AI"
    default_host = DEFAULT_BASE_URL

    def __init__(self, together_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(method="GET", http_conn_id=together_conn_id, **kwargs)
        self.together_conn_id = together_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form for Airflow 2.11-3.1; 3.2+ reads the same data from the provider info instead."""
        return ui_field_behaviour()

    # ---- settings -------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> ConnectionSettings:
        conn = self.get_connection(self.together_conn_id)
        return settings_from(conn, conn.extra_dejson)

    @cached_property
    def pricing(self) -> Pricing:
        """Prices per model and the batch discount from the connection's extras ``prices`` and
        ``batch_discount`` (see :mod:`together_provider.client.cost`); a bad one is a ValueError naming it."""
        conn = self.get_connection(self.together_conn_id)
        return Pricing.from_extra(conn.extra_dejson)

    @cached_property
    def _async(self) -> AsyncTogetherClient:
        return AsyncTogetherClient(self.together_conn_id, connection_lookup(self))

    async def asettings(self) -> ConnectionSettings:
        """Resolved without blocking the event loop (the connection may live in the metadata DB)."""
        return await self._async.settings()

    # ---- sync transport -------------------------------------------------------------------------

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: Any = None) -> requests.Session:
        """A keep-alive session. Extras are settings here, never turned into HTTP headers."""

        # Its connections let each API call's total deadline (extra total_timeout) stop a dripped answer.
        session = watched_session()
        self.base_url = self.settings.base_url
        if headers:
            session.headers.update(headers)
        return session

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Not supported: HttpHook's raw requests would carry no API key and skip the retry policy."""
        raise NotImplementedError(_RAW_HTTP_REFUSED.format(name="run"))

    def run_and_check(self, *args: Any, **kwargs: Any) -> Any:
        """Not supported, as :meth:`run`."""
        raise NotImplementedError(_RAW_HTTP_REFUSED.format(name="run_and_check"))

    def run_with_advanced_retry(self, *args: Any, **kwargs: Any) -> Any:
        """Not supported, as :meth:`run`."""
        raise NotImplementedError(_RAW_HTTP_REFUSED.format(name="run_with_advanced_retry"))

    @cached_property
    def _session(self) -> requests.Session:
        return self.get_conn()

    def _run(self, request: api.ApiRequest[T] | Flow[T]) -> T:
        settings = self.settings
        session = self._session
        return run_sync(
            request, settings.retry, lambda req: send_sync(session, settings, req), secrets=settings.secrets
        )

    def get_batch(self, batch_id: str) -> BatchJob:
        """The batch as Together has it now."""
        return self._run(api.get_batch(batch_id))

    def list_batches(self) -> list[BatchJob]:
        """Every batch of the account (Together's list is not paginated)."""
        return self._run(api.list_batches())

    def create_batch(
        self,
        input_file_id: str,
        *,
        endpoint: str = "/v1/chat/completions",
        completion_window: str | None = None,
        priority: int | None = None,
        model_id: str | None = None,
    ) -> BatchJob:
        """Create a batch. Retried only where the request provably never reached Together."""
        created = self._run(
            api.create_batch(
                input_file_id,
                endpoint,
                completion_window=completion_window,
                priority=priority,
                model_id=model_id,
            )
        )
        if created.warning:
            self.log.warning("Together created batch %s with a warning: %s", created.job.id, created.warning)
        return created.job

    def cancel_batch(self, batch_id: str) -> BatchJob:
        """Cancel a validating or running batch; a batch that has already finished is left as it is
        (and logged as such), so a cancel is safe to repeat. Returns the batch as Together then has it."""
        outcome = self._run(cancel_flow(batch_id))
        self.log.info(describe_cancel(outcome))
        return outcome.batch

    def get_file(self, file_id: str) -> TogetherFile:
        """A file's metadata (name, size, purpose), not its content: see :meth:`download_file`."""
        return self._run(api.get_file(file_id))

    def list_files(self) -> list[TogetherFile]:
        """Every file of the account."""
        return self._run(api.list_files())

    def delete_file(self, file_id: str) -> bool:
        """Delete a file from Together; True when Together says it was deleted."""
        return self._run(api.delete_file(file_id))

    def upload_file(
        self,
        path: str | os.PathLike[str] | api.UploadBody,
        *,
        file_name: str | None = None,
        purpose: str = "batch-api",
        checksum: str | None = None,
    ) -> TogetherFile:
        """Upload a file the way Together's own SDK does: ask for a presigned URL, stream the bytes there,
        then ask Together to process it. The content goes from disk (or from a store, given an
        :class:`~together_provider.client.requests.UploadBody`) to the wire in chunks, and a file
        Together already holds (same SHA-256) is reused instead of sent again.

        :param file_name: the name Together records (defaults to the file's or object's name; must end
            in .jsonl).
        :param checksum: SHA-256 hex of the content when the caller has it already (saves a read).
        """
        content: str | api.UploadBody
        if isinstance(path, api.UploadBody):
            content, local, default_name = path, path.location, path.name
            if checksum is None:
                with path.open() as handle:
                    checksum = sha256_of_stream(handle)
        else:
            content = local = os.fspath(path)
            if not os.path.isfile(local):
                raise FileNotFoundError(f"file to upload not found: {local}")
            default_name = os.path.basename(local)
        target = self._run(
            api.start_upload(
                file_name or default_name,
                checksum=checksum or sha256_of(local),
                purpose=purpose,
                source=local,
            )
        )
        if target.already_uploaded:
            self.log.info(
                "Together already holds this content as file %s; not uploading it again", target.file_id
            )
            return self.get_file(target.file_id)
        assert target.url is not None
        self._run(api.put_upload(target.url, content))
        uploaded = self._run(api.finish_upload(target.file_id))
        self.log.info("Uploaded %s as Together file %s (%s bytes)", local, uploaded.id, uploaded.bytes)
        return uploaded

    def download_file(
        self, file_id: str, path: str | os.PathLike[str], *, temporary_copy: bool = False
    ) -> str:
        """Stream a file's content to ``path``: written to a temporary file beside it, checked against
        Content-Length, then renamed into place, so ``path`` never holds a partial file.

        If ``path`` is a symlink, the link itself is replaced by the downloaded file: the file it pointed
        at is never touched, and nothing is written outside ``path``'s folder. The file gets the mode a
        plain ``open(path, "w")`` would give (see :mod:`together_provider.hooks.local_files`).

        :param temporary_copy: ``path`` is a copy the caller reads and deletes (results merging, a
            staging copy for object storage): the download is then logged at debug level, as such, so a
            task log names only the places a user's data lands.
        :return: the absolute path written (``~`` expanded, links not resolved).
        """
        with local_files.replacing(path) as (tmp, dest):
            size = self._run(api.download_file(file_id, tmp))
        if temporary_copy:
            self.log.debug(
                "Fetched Together file %s (%d bytes) to a temporary copy at %s", file_id, size, dest
            )
        else:
            self.log.info("Downloaded Together file %s to %s (%d bytes)", file_id, dest, size)
        return dest

    def iter_results(self, batch_id: str | BatchJob) -> Iterator[dict[str, Any]]:
        """One record per request of a finished batch (see :mod:`together_provider.client.results`):
        the output file's, then the error file's, then a ``missing`` one for each request of the input
        file (read by ``input_file_id``) that came back in neither. FAILED, EXPIRED and CANCELLED
        batches give their partial files; with none, every request is missing.

        Each file is downloaded through :meth:`download_file` into a temporary folder (logged at debug
        level only) and read line by line, one file at a time, so memory holds one line and the set of
        custom ids seen.

        :param batch_id: the batch's id, or the batch as already fetched (saves a call).
        :raises ValueError: the batch has not finished yet.
        """

        job = self.get_batch(batch_id) if isinstance(batch_id, str) else batch_id
        if not job.status.is_terminal:
            raise ValueError(
                f"Together batch {job.id} is {job.raw_status}, not finished, so its results are not final: "
                f"wait for it first (BatchCompletionSensor, or SubmitBatchOperator(wait_for_completion=True))"
            )
        answered = [
            (fid, self.iter_file_lines(fid)) for fid in (job.output_file_id, job.error_file_id) if fid
        ]
        if job.input_file_id is None:
            self.log.warning("Together batch %s names no input file: missing requests cannot be told", job.id)
        inputs = (job.input_file_id, self.iter_file_lines(job.input_file_id)) if job.input_file_id else None
        return results.merge(answered, inputs)

    def iter_file_lines(self, file_id: str) -> Iterator[bytes]:
        """A Together file's lines, downloaded (to a temporary folder, removed after the last line) only
        when the first one is asked for: memory holds one line."""
        with tempfile.TemporaryDirectory(prefix="together-results-") as folder:
            local = self.download_file(file_id, Path(folder) / "content.jsonl", temporary_copy=True)
            with open(local, "rb") as handle:
                yield from handle

    def test_connection(self) -> tuple[bool, str]:
        """One ``GET /v1/batches`` with a short connect timeout and no retries (see ``for_check``): a
        person waits on the answer, so an unreachable host is reported in seconds, named.

        The answer is shown in the connection form whatever went wrong, so any ``user:password@`` in it
        (a host that holds one is refused, but an exception may still quote it) is masked."""
        try:
            settings = self.settings.for_check()
            session = self._session
            batches = run_sync(
                api.list_batches(),
                settings.retry,
                lambda req: send_sync(session, settings, req),
                secrets=settings.secrets,
            )
        except TransportError as exc:
            message = f"Could not reach the Together API at {self._safe_base_url()}: {exc}"
            return False, hide_passwords(message)
        except ValueError as exc:
            # The settings could not be built (no key, a bad extra): nothing was sent.
            message = f"The Together connection to {self._safe_base_url()} cannot be used: {exc}"
            return False, hide_passwords(message)
        except TogetherError as exc:
            return False, hide_passwords(f"Together API at {self._safe_base_url()} refused the check: {exc}")
        except Exception as exc:
            message = f"Could not check the Together connection: {type(exc).__name__}: {exc}"
            return False, hide_passwords(message)
        visible = f"{len(batches)} batch{'' if len(batches) == 1 else 'es'} visible"
        return True, f"Connected to {settings.base_url}: the API key works ({visible})."

    def _safe_base_url(self) -> str:
        """The base URL, named even when the settings cannot be built (no key, or a host with a user
        name or password in it: the host is still known, and shown without them)."""
        try:
            return self.settings.base_url
        except Exception:
            pass
        try:
            conn = self.get_connection(self.together_conn_id)
        except Exception:
            return "(unresolved base URL)"
        try:
            return base_url_from(conn.host, schema=conn.schema, port=conn.port, env=os.environ)
        except ValueError:
            return without_userinfo(conn.host or os.environ.get("TOGETHER_BASE_URL") or "")

    # ---- async transport: the same client the triggers use ------------------------------------

    async def aget_batch(self, batch_id: str, *, max_age: float = 0.0) -> BatchJob:
        """The batch, shared with every other wait on it in this event loop: concurrent calls make one
        request, and an answer at most ``max_age`` seconds old is reused."""
        return await self._async.get_batch(batch_id, max_age=max_age)

    async def alist_batches(self) -> list[BatchJob]:
        """:meth:`list_batches` for async code, on the event loop's shared session."""
        return await self._async.list_batches()

    async def acancel_batch(self, batch_id: str) -> BatchJob:
        """:meth:`cancel_batch` for async code, on the event loop's shared session."""
        return await self._async.cancel_batch(batch_id)

    async def aget_file(self, file_id: str) -> TogetherFile:
        """:meth:`get_file` for async code, on the event loop's shared session."""
        return await self._async.get_file(file_id)

    async def aclose(self) -> None:
        """Let go of the event loop's shared session (closed when its last user lets go)."""
        await self._async.close()
