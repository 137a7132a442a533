"""What to send for every call, and how to read the answer: data only, no I/O.

Each builder returns an :class:`ApiRequest` whose ``parse`` turns a successful :class:`RawResponse`
into a model. The transports (sync and async) only move bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Generic, TypeVar

from together_provider.client.errors import InvalidResponseError, request_id_from
from together_provider.client.ids import checked_id, path_segment
from together_provider.client.models import (
    BatchJob,
    CreatedBatch,
    TogetherFile,
    checked_endpoint,
    parse_batch_list,
    parse_deleted,
    parse_file_list,
)

T = TypeVar("T")

UPLOAD_SUFFIXES = (".jsonl", ".parquet", ".csv")


@dataclass(frozen=True)
class RawResponse:
    """An HTTP answer as the transports hand it over. ``body`` is empty for streamed downloads,
    whose size is in ``bytes_written``."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    bytes_written: int | None = None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass(frozen=True)
class UploadBody:
    """Content to upload that is not a local file (an object in a store): opened anew for each attempt,
    so a retry starts from the first byte, and of a known ``size``, since a presigned PUT takes a
    Content-Length and refuses chunked encoding.

    :param name: the file name Together records by default.
    :param location: where the content lives (a URL), for logs.
    """

    open: Callable[[], BinaryIO]
    size: int
    name: str
    location: str


@dataclass(frozen=True)
class ApiRequest(Generic[T]):
    """One HTTP call to make, with everything the transports and the retry policy need to know.

    :param path: under the base URL (``/v1/...``), or an absolute URL (a presigned upload target).
    :param upload_path: stream this file as the raw request body.
    :param upload_body: or stream this re-openable content of known length.
    :param download_path: stream the answer's body into this file instead of memory.
    :param authenticated: send the API key; never for a presigned URL on another host.
    :param idempotent: whether repeating the call after it may have reached the server is harmless.
    :param accept: non-2xx statuses that carry an answer, not an error (302 and 409 of an upload).
    """

    operation: str
    method: str
    path: str
    parse: Callable[[RawResponse], T]
    params: Mapping[str, str] | None = None
    json: Any = None
    form: Mapping[str, str] | None = None
    upload_path: str | None = None
    upload_body: UploadBody | None = None
    download_path: str | None = None
    authenticated: bool = True
    idempotent: bool = True
    accept: frozenset[int] = field(default_factory=frozenset)


def json_body(response: RawResponse) -> Any:
    try:
        return json.loads(response.body)
    except ValueError as exc:
        snippet = response.body[:120].decode("utf-8", "replace")
        raise InvalidResponseError(
            f"Together answered {response.status} with a body that is not JSON: {snippet!r}",
            status_code=response.status,
            request_id=request_id_from(response.headers),
            transient=True,
        ) from exc


def _parsed(model: Callable[[Any], T]) -> Callable[[RawResponse], T]:
    def parse(response: RawResponse) -> T:
        try:
            return model(json_body(response))
        except InvalidResponseError as exc:
            if exc.request_id or not request_id_from(response.headers):
                raise
            raise InvalidResponseError(
                str(exc),
                status_code=response.status,
                request_id=request_id_from(response.headers),
                transient=exc.transient,
            ) from exc

    return parse


def get_batch(batch_id: str) -> ApiRequest[BatchJob]:
    seg = path_segment(batch_id, "batch_id")
    return ApiRequest(f"get batch {batch_id}", "GET", f"/v1/batches/{seg}", _parsed(BatchJob.from_api))


def list_batches() -> ApiRequest[list[BatchJob]]:
    return ApiRequest("list batches", "GET", "/v1/batches", _parsed(parse_batch_list))


def create_batch(
    input_file_id: str,
    endpoint: str = "/v1/chat/completions",
    *,
    completion_window: str | None = None,
    priority: int | None = None,
    model_id: str | None = None,
) -> ApiRequest[CreatedBatch]:
    input_file_id = checked_id(input_file_id, "input_file_id")
    checked_endpoint(endpoint)
    body: dict[str, Any] = {"endpoint": endpoint, "input_file_id": input_file_id}
    if completion_window is not None:
        body["completion_window"] = completion_window
    if priority is not None:
        body["priority"] = priority
    if model_id is not None:
        body["model_id"] = model_id
    return ApiRequest(
        f"create batch from {input_file_id}",
        "POST",
        "/v1/batches",
        _parsed(CreatedBatch.from_api),
        json=body,
        # No idempotency key exists server-side: a repeat may create a second, billed batch.
        idempotent=False,
    )


def cancel_batch(batch_id: str) -> ApiRequest[BatchJob]:
    seg = path_segment(batch_id, "batch_id")
    return ApiRequest(
        f"cancel batch {batch_id}", "POST", f"/v1/batches/{seg}/cancel", _parsed(BatchJob.from_api)
    )


def get_file(file_id: str) -> ApiRequest[TogetherFile]:
    seg = path_segment(file_id, "file_id")
    return ApiRequest(f"get file {file_id}", "GET", f"/v1/files/{seg}", _parsed(TogetherFile.from_api))


def list_files() -> ApiRequest[list[TogetherFile]]:
    return ApiRequest("list files", "GET", "/v1/files", _parsed(parse_file_list))


def delete_file(file_id: str) -> ApiRequest[bool]:
    seg = path_segment(file_id, "file_id")
    return ApiRequest(f"delete file {file_id}", "DELETE", f"/v1/files/{seg}", _parsed(parse_deleted))


def download_file(file_id: str, tmp_path: str) -> ApiRequest[int]:
    """Stream a file's content into ``tmp_path``; parses to the byte count, checked by the caller's flow."""
    seg = path_segment(file_id, "file_id")
    return ApiRequest(
        f"download file {file_id}",
        "GET",
        f"/v1/files/{seg}/content",
        lambda response: response.bytes_written or 0,
        download_path=tmp_path,
    )


@dataclass(frozen=True)
class UploadTarget:
    """Where to PUT the bytes, or the id of an identical file the server already has."""

    file_id: str
    url: str | None
    already_uploaded: bool = False


def _parse_upload_target(response: RawResponse) -> UploadTarget:
    if response.status == 409:
        data = json_body(response)
        file_id = data.get("file_id") if isinstance(data, Mapping) else None
        if not file_id:
            raise InvalidResponseError("Together answered 409 to an upload without naming the existing file")
        return UploadTarget(file_id=str(file_id), url=None, already_uploaded=True)
    location = response.header("Location")
    file_id = response.header("X-Together-File-Id")
    if response.status != 302 or not location or not file_id:
        raise InvalidResponseError(
            f"Together answered {response.status} to an upload request without the expected "
            f"redirect (Location and X-Together-File-Id headers)",
            status_code=response.status,
            request_id=request_id_from(response.headers),
            # Usually a proxy's or a cut-off answer; asking again only reserves another upload slot.
            transient=True,
        )
    return UploadTarget(file_id=file_id, url=location)


def start_upload(
    file_name: str, *, checksum: str, purpose: str = "batch-api", source: str | None = None
) -> ApiRequest[UploadTarget]:
    """Ask for a presigned URL (the flow of Together's own SDK), sending the SHA-256 of the content so
    that an identical file already on the server is recognized (409) instead of uploaded twice.

    :param source: the path or URL the content comes from, which errors name: the user knows it, and
        not the name the file is recorded under (the submit operator adds a run key to it).
    """
    if not file_name.endswith(UPLOAD_SUFFIXES):
        raise ValueError(f"file name {file_name!r} must end in one of {UPLOAD_SUFFIXES}")
    return ApiRequest(
        f"start upload of {source or file_name}",
        "POST",
        "/v1/files",
        _parse_upload_target,
        form={
            "purpose": purpose,
            "file_name": file_name,
            "file_type": file_name.rsplit(".", 1)[-1],
            "checksum": checksum,
        },
        accept=frozenset({302, 409}),
    )


def put_upload(url: str, content: str | UploadBody) -> ApiRequest[None]:
    """PUT the content to the presigned URL: a local file's path, or an :class:`UploadBody`."""
    if isinstance(content, UploadBody):
        return ApiRequest(
            "upload file content", "PUT", url, lambda response: None, upload_body=content, authenticated=False
        )
    return ApiRequest(
        "upload file content", "PUT", url, lambda response: None, upload_path=content, authenticated=False
    )


def finish_upload(file_id: str) -> ApiRequest[TogetherFile]:
    seg = path_segment(file_id, "file_id")
    return ApiRequest(
        f"preprocess file {file_id}", "POST", f"/v1/files/{seg}/preprocess", _parsed(TogetherFile.from_api)
    )
