"""Where the provider's files live: a local path, or object storage through Airflow's ObjectStoragePath.

Operators hand what the user gave (a path, a URL such as ``file:///tmp/x.jsonl`` or
``s3://conn_id@bucket/key``, or an ``ObjectStoragePath``) to :func:`resolve` and get back either a local
path string, which keeps the local fast path unchanged, or an ``ObjectStoragePath`` whose filesystem is
known to be installed. Every refusal is a ValueError, which ``outcome.task_errors`` turns into a task that
fails at once: no retry installs a missing package.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
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

# Big enough that the per-call overhead of a remote write is small, small enough to keep memory flat.
COPY_CHUNK = 8 * 1024 * 1024


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
    detail = f" ({cause})" if cause else ""
    return ValueError(
        f"{field}={url!r}: no filesystem for the {scheme}:// scheme is installed{detail}; {fix}"
    )


def _local_from_file_url(url: str, field: str) -> str:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"{field}={url!r}: a file:// URL names a path on this machine; write file:///path (three "
            f"slashes), not a host"
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
    try:
        target.fs  # noqa: B018 - resolving the filesystem is the check: it fails when none is installed
    except (ValueError, ImportError) as exc:
        raise _unsupported(url, scheme, field, exc) from exc
    return target


def local_input(value: Any, *, field: str) -> str:
    """A local path to read, for callers that cannot read from object storage yet."""
    resolved = resolve(value, field=field)
    if not isinstance(resolved, str):
        raise ValueError(
            f"{field}={str(resolved)!r}: reading from object storage is not supported yet; copy the file "
            f"to a local path (or a file:// URL) on the worker"
        )
    return resolved


@contextmanager
def atomic_writer(value: Any, *, field: str) -> Iterator[tuple[BinaryIO, str]]:
    """A binary handle whose content appears at ``value`` only when the block ends without an error.

    Yields ``(handle, where)``, ``where`` being the final location as a string. Locally the bytes go to a
    temporary file beside the target, renamed into place. In a store they go to a temporary key beside
    the target, then moved onto it: fsspec's writers commit what they hold when closed, even on an error,
    so writing straight to the final key could leave a partial object there. On an error the temporary
    file or key is removed and the target is untouched.
    """
    target = resolve(value, field=field)
    if isinstance(target, str):
        dest = Path(target).expanduser().resolve()
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle, str(dest)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return
    part = target.parent / f".{target.name}.{uuid.uuid4().hex}.part"
    try:
        with part.open("wb") as handle:
            yield handle, str(target)
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
        local = hook.download_file(file_id, Path(folder) / "content")
        with open(local, "rb") as source, atomic_writer(target, field=field) as (sink, where):
            shutil.copyfileobj(source, sink, COPY_CHUNK)
    hook.log.info("Stored Together file %s at %s", file_id, where)
    return where


def _remove_quietly(path: Any) -> None:
    try:
        if path.exists():
            path.unlink()
    except Exception:
        pass
