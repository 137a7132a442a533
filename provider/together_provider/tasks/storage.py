"""Where the provider's files live: a local path, or object storage through Airflow's ObjectStoragePath.

Operators hand what the user gave (a path, a URL such as ``file:///tmp/x.jsonl`` or
``s3://conn_id@bucket/key``, or an ``ObjectStoragePath``) to :func:`resolve` and get back either a local
path string, which keeps the local fast path unchanged, or an ``ObjectStoragePath`` whose filesystem is
known to be installed. Every refusal is a ValueError, which ``outcome.task_errors`` turns into a task that
fails at once: no retry installs a missing package, creates a bucket or grants a permission. The store's
own refusals (a missing object or bucket, a 403, a connection id that is not defined) are translated
here, at the boundary, by :func:`store_errors`; a store that is merely unreachable stays an error a retry
may cure.

An input in a store is read twice, each time streamed: once to validate and hash it
(:func:`validate_input`), once to upload it (:func:`upload_content`). Nothing is copied to local disk.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import unquote, urlsplit

from together_provider.client import split
from together_provider.client.errors import InputFileError
from together_provider.client.jsonl import validate_input_file, validate_input_stream
from together_provider.client.requests import UploadBody
from together_provider.client.settings import hide_passwords
from together_provider.hooks import local_files

if TYPE_CHECKING:
    from together_provider.client.jsonl import InputFileSummary
    from together_provider.client.requests import UploadBody
    from together_provider.client.split import Part, SplitPlan
    from together_provider.hooks.together import TogetherHook

LOCAL_SCHEMES = frozenset({"file", "local"})

# What to install so that Airflow has a filesystem for a scheme.
PACKAGE_FOR_SCHEME = {
    "s3": "apache-airflow-providers-amazon[s3fs]",
    "s3a": "apache-airflow-providers-amazon[s3fs]",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
    "az": "apache-airflow-providers-microsoft-azure",
    "adl": "apache-airflow-providers-microsoft-azure",
}

# The module each of those packages installs. Without it a connection named in the URL could not be used
# anyway, so a missing package is reported before a missing connection.
_MODULE_OF_PACKAGE = {
    "apache-airflow-providers-amazon[s3fs]": "airflow.providers.amazon",
    "apache-airflow-providers-google": "airflow.providers.google",
    "apache-airflow-providers-microsoft-azure": "airflow.providers.microsoft.azure",
}

# Big enough that the per-call overhead of a remote write is small, small enough to keep memory flat.
COPY_CHUNK = 8 * 1024 * 1024
# A store file's read-ahead block: fsspec filesystems default to large ones (s3fs: 50 MB). A read holds
# a few copies of one block at its peak (the HTTP body, the cache, the slice handed out), so this is what
# keeps memory flat; smaller blocks only add round trips (benchmarks/README.md, item 13).
READ_BLOCK = 4 * 1024 * 1024

# S3's error codes (and their HTTP statuses) for a request the store refused on its merits.
_DENIED_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "403", "401"}
)
_NO_BUCKET_CODES = frozenset({"NoSuchBucket"})
_NO_KEY_CODES = frozenset({"NoSuchKey", "404"})


def _object_storage_path_class() -> Any:
    from together_provider._compat import ObjectStoragePath

    return ObjectStoragePath


def _url_scheme(text: str) -> str:
    """The scheme of a URL, or "" for a plain path (a Windows drive letter is not a scheme)."""
    if "://" not in text:
        return ""
    scheme = urlsplit(text).scheme
    return scheme.lower() if len(scheme) > 1 else ""


def _unsupported(url: str, scheme: str, field: str, cause: BaseException | None = None) -> ValueError:
    package = PACKAGE_FOR_SCHEME.get(scheme)
    fix = (
        f"install {package} in every Airflow component that runs tasks"
        if package
        else "use a local path or a URL whose Airflow filesystem is installed (file://, s3://, gs://, abfs://)"
    )
    detail = f" ({hide_passwords(str(cause))})" if cause else ""
    return ValueError(
        f"{field}={hide_passwords(url)!r}: no filesystem for the {scheme}:// scheme is installed"
        f"{detail}; {fix}"
    )


def _local_from_file_url(url: str, field: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"{field}={hide_passwords(url)!r}: a file:// URL names a path on this machine; write "
            f"file:///path (three slashes), not a host"
        )
    return unquote(parts.path)


def resolve(value: Any, *, field: str) -> Any:
    """A local path string, or an ``ObjectStoragePath`` whose filesystem is installed.

    Plain paths come back as given (``os.fspath``), so the local code path is exactly today's.
    ``file://`` URLs and ``ObjectStoragePath`` objects on the local filesystem become local paths too.
    """
    plain_path = isinstance(value, PurePath) and not hasattr(value, "protocol")  # 2.11's is a PurePath
    if plain_path or (isinstance(value, str) and not _url_scheme(value)):
        # Checked before the import: a local path never loads Airflow's object storage machinery.
        return os.fspath(value)
    osp_class = _object_storage_path_class()
    if isinstance(value, osp_class):
        target = value
        url = str(value)
    else:
        text = os.fspath(value)
        scheme = _url_scheme(text)
        if not scheme:
            return text
        if scheme in LOCAL_SCHEMES:
            return _local_from_file_url(text, field)
        url = text
        try:
            target = osp_class(text)
        except (ValueError, ImportError) as exc:
            raise _unsupported(url, scheme, field, exc) from exc
    scheme = (target.protocol or "file").lower()
    if scheme in LOCAL_SCHEMES:
        return target.path
    if _provider_missing(scheme):
        raise _unsupported(url, scheme, field)
    _check_connection(target, url, field)
    try:
        target.fs  # noqa: B018 - resolving the filesystem is the check: it fails when none is installed
    except (ValueError, ImportError) as exc:
        raise _unsupported(url, scheme, field, exc) from exc
    return target


def _provider_missing(scheme: str) -> bool:
    module = _MODULE_OF_PACKAGE.get(PACKAGE_FOR_SCHEME.get(scheme, ""))
    if module is None:
        return False
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # a parent package is missing too (airflow.providers.microsoft)
        return True


def _check_connection(target: Any, url: str, field: str) -> None:
    """A connection named in the URL must exist: the amazon provider, not finding it, logs a warning and
    goes on with boto's default credentials, so the failure would come later and name the wrong cause."""
    # 3.x has the attribute; 2.11 keeps it among the storage options only.
    conn_id = getattr(target, "conn_id", None) or (getattr(target, "storage_options", None) or {}).get(
        "conn_id"
    )
    if not conn_id:
        return
    from together_provider._compat import AirflowNotFoundException, BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        # What stands before '@' is the connection id, but one holding ':' is likelier a password.
        shown_id = conn_id if ":" not in conn_id else conn_id.partition(":")[0] + ":***"
        raise ValueError(
            f"{field}={hide_passwords(url)!r}: the Airflow connection {shown_id!r} named in the URL does "
            f"not exist; create it (UI, `airflow connections add` or AIRFLOW_CONN_{shown_id.upper()}) with "
            f"the store's credentials, or name an existing one as scheme://conn_id@bucket/key"
        ) from None


def _code_of(exc: BaseException) -> str:
    """The store's error code carried by ``exc`` or its causes (botocore's ClientError), or ""."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            error = response.get("Error") or {}
            code = str(error.get("Code") or "")
            if code:
                return code
        seen = seen.__cause__ or seen.__context__
    return ""


def _bucket_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.hostname or parts.netloc.rpartition("@")[2]


def translate_store_error(exc: BaseException, url: str, field: str) -> ValueError | None:
    """The ValueError (URL and fix) for a refusal of the store that no retry cures, or None for anything
    else (a timeout, a dropped connection: worth a retry)."""
    code = _code_of(exc)
    text = str(exc)
    shown = hide_passwords(url)
    if code in _NO_BUCKET_CODES or (
        isinstance(exc, FileNotFoundError) and "bucket does not exist" in text.lower()
    ):
        return ValueError(
            f"{field}={shown!r}: the bucket {_bucket_of(url)!r} does not exist (or is not visible to the "
            f"connection); create it or correct the URL"
        )
    if isinstance(exc, FileNotFoundError) or code in _NO_KEY_CODES:
        return ValueError(
            f"{field}={shown!r}: no object at this URL; check the key, and that the task writing it ran first"
        )
    if isinstance(exc, PermissionError) or code in _DENIED_CODES:
        conn = urlsplit(url).username
        whose = f"connection {conn!r}" if conn else "the default connection of this scheme"
        return ValueError(
            f"{field}={shown!r}: the store refused access (403) with the credentials of {whose}; give it "
            f"keys allowed to read and write this bucket, or correct the URL"
        )
    return None


@contextmanager
def store_errors(url: str, *, field: str) -> Iterator[None]:
    """Turn the store's refusals inside the block into the ValueErrors of :func:`translate_store_error`."""
    try:
        yield
    except ValueError:
        raise
    except Exception as exc:
        translated = translate_store_error(exc, url, field)
        if translated is None:
            raise
        raise translated from exc


@dataclass(frozen=True)
class StoreInput:
    """An input file in object storage, checked to exist, with the size its store reports."""

    target: Any  # an ObjectStoragePath
    url: str
    size: int
    field: str

    @property
    def name(self) -> str:
        return str(self.target.name)

    def open(self) -> BinaryIO:
        """A fresh binary stream from the first byte; the store's refusals come as ValueErrors."""
        with store_errors(self.url, field=self.field):
            handle: BinaryIO = self.target.open("rb", block_size=READ_BLOCK)
        # Its readers (validation, the upload body, a hash) only read and close it.
        return cast(BinaryIO, _TranslatedReader(handle, self.url, self.field))


class _TranslatedReader:
    """A store stream whose refusals while reading are ValueErrors too (a permission revoked mid-read)."""

    def __init__(self, handle: BinaryIO, url: str, field: str) -> None:
        self._handle = handle
        self._url = url
        self._field = field

    def read(self, size: int = -1) -> bytes:
        with store_errors(self._url, field=self._field):
            return self._handle.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        with store_errors(self._url, field=self._field):
            return self._handle.seek(offset, whence)

    # What a Parquet reader asks of a file besides read and seek.
    def tell(self) -> int:
        return self._handle.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return bool(self._handle.closed)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> _TranslatedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def input_file(value: Any, *, field: str) -> str | StoreInput:
    """What :func:`validate_input` and :func:`upload_content` take: a local path string as
    :func:`resolve` gives it, or a :class:`StoreInput` for an object that exists."""
    target = resolve(value, field=field)
    if isinstance(target, str):
        return target
    url = str(target)
    with store_errors(url, field=field):
        info = target.fs.info(target.path)
    if info.get("type") == "directory":
        raise ValueError(f"{field}={url!r}: this is a folder, not an object; name the .jsonl file in it")
    return StoreInput(target=target, url=url, size=int(info.get("size") or 0), field=field)


@contextmanager
def open_binary(value: Any, *, field: str) -> Iterator[tuple[BinaryIO, str]]:
    """A local file or an object open for reading, seekable (a Parquet reader starts at the footer), and
    its location as text; the store's refusals while reading are ValueErrors too."""
    source = input_file(value, field=field)
    if isinstance(source, str):
        with open(source, "rb") as handle:
            yield handle, source
        return
    with source.open() as stream:
        yield stream, source.url


@contextmanager
def read_lines(value: Any, *, field: str) -> Iterator[Iterator[bytes]]:
    """The lines of a local file or an object, read in blocks: memory holds one block and one line."""
    with open_binary(value, field=field) as (handle, _where):
        yield _lines_of(handle)


def _lines_of(handle: Any) -> Iterator[bytes]:
    rest = b""
    while chunk := handle.read(READ_BLOCK):
        *whole, rest = (rest + chunk).split(b"\n")
        for line in whole:
            yield line + b"\n"
    if rest:
        yield rest


def validate_input(source: str | StoreInput, *, endpoint: str | None) -> InputFileSummary:
    """Every Batch API rule and the SHA-256, in one streamed read of the file or object."""

    if isinstance(source, str):
        return validate_input_file(source, endpoint=endpoint)
    with source.open() as handle:
        return validate_input_stream(handle, name=source.url, size=source.size, endpoint=endpoint)


def upload_content(source: str | StoreInput) -> str | UploadBody:
    """What ``TogetherHook.upload_file`` streams: the local path, or the object re-opened per attempt."""
    if isinstance(source, str):
        return source

    return UploadBody(open=source.open, size=source.size, name=source.name, location=source.url)


def plan_split(
    source: str | StoreInput, *, endpoint: str | None, max_requests: int, max_bytes: int
) -> SplitPlan:
    """Every Batch API rule on the whole input and its cut into parts (see :mod:`.client.split`), in
    one streamed read of the file or object."""

    if isinstance(source, str):
        try:
            size = os.path.getsize(source)
        except FileNotFoundError:
            raise InputFileError(
                "file not found; check the path (it is read on the worker)", path=source
            ) from None
        handle: BinaryIO = open(source, "rb")  # noqa: SIM115 - closed by the with below
        name = source
    else:
        handle, size, name = source.open(), source.size, source.url
    with handle:
        return split.plan_split(
            handle, name=name, size=size, endpoint=endpoint, max_requests=max_requests, max_bytes=max_bytes
        )


def upload_part(source: str | StoreInput, part: Part) -> UploadBody:
    """What ``TogetherHook.upload_file`` streams for one part: its byte range, read straight from the
    file or object (seeked to, re-opened per attempt), never copied."""

    def open_range() -> BinaryIO:
        handle = open(source, "rb") if isinstance(source, str) else source.open()  # noqa: SIM115
        try:
            handle.seek(part.offset)
        except BaseException:
            handle.close()
            raise
        return cast(BinaryIO, _RangeReader(handle, part.length))

    where = source if isinstance(source, str) else source.url
    name = os.path.basename(source) if isinstance(source, str) else source.name
    return UploadBody(
        open=open_range,
        size=part.length,
        name=name,
        location=f"{where} (part {part.number}, bytes {part.offset:,}-{part.offset + part.length - 1:,})",
    )


class _RangeReader:
    """At most ``length`` bytes of ``handle`` from where it stands: one part of the input."""

    def __init__(self, handle: Any, length: int) -> None:
        self._handle = handle
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._handle.read(self._left if size is None or size < 0 else min(size, self._left))
        self._left -= len(data)
        return cast(bytes, data)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> _RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def atomic_writer(value: Any, *, field: str) -> Iterator[tuple[BinaryIO, str]]:
    """A binary handle whose content appears at ``value`` only when the block ends without an error.

    Yields ``(handle, where)``, ``where`` being the final location as a string. Locally the bytes go to a
    temporary file beside the target, renamed into place. In a store they go to a temporary key beside
    the target, then moved onto it: fsspec's writers commit what they hold when closed, even on an error,
    so writing straight to the final key could leave a partial object there. On an error the temporary
    file or key is removed and the target is untouched. A local target that is a symlink is replaced by
    the file, never followed, and the file gets the mode a plain ``open(path, "w")`` would give (see
    :mod:`together_provider.hooks.local_files`).
    """
    target = resolve(value, field=field)
    if isinstance(target, str):
        with local_files.replacing(target) as (tmp, dest), open(tmp, "wb") as handle:
            yield handle, dest
        return
    where = str(target)
    part = target.parent / f".{target.name}.{uuid.uuid4().hex}.part"
    try:
        with store_errors(where, field=field):
            with part.open("wb", block_size=COPY_CHUNK) as handle:
                yield handle, where
            part.move(target)
    except BaseException:
        _remove_quietly(part)
        raise


def download(hook: TogetherHook, file_id: str, value: Any, *, field: str = "path") -> str:
    """Download a Together file to a local path or object storage, and return where it landed.

    Into object storage the download first goes to a local temporary file through the hook's one HTTP
    path (streamed in chunks, checked against Content-Length, retried), so a cut-off download never
    touches the store. Memory stays flat; the cost is the file's size in the worker's temp dir. The copy
    then goes through :func:`atomic_writer`, so the target never holds a partial object.
    """
    target = resolve(value, field=field)
    if isinstance(target, str):
        return hook.download_file(file_id, target)
    with tempfile.TemporaryDirectory(prefix="together-download-") as folder:
        local = hook.download_file(file_id, Path(folder) / "content", temporary_copy=True)
        with open(local, "rb") as source, atomic_writer(target, field=field) as (sink, where):
            shutil.copyfileobj(source, sink, COPY_CHUNK)
    hook.log.info("Stored Together file %s at %s", file_id, hide_passwords(where))
    return where


def _remove_quietly(path: Any) -> None:
    try:
        if path.exists():
            path.unlink()
    except Exception:
        pass
