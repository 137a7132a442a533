"""File routes: both upload flows (one-shot multipart and the SDK's presigned PUT), list, get, delete,
content.

Every body is streamed to or from disk so a file of any size costs no memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import uuid
from pathlib import Path

from aiohttp import BodyPartReader, web

from .errors import FILE_FAMILY, api_error, error_body
from .keys import STATE_KEY, TRUNCATE_AT_KEY, TRUNCATED_KEY
from .records import FileRecord
from .state import EmulatorState, MultipartUpload

# The spec's FilePurpose enum, plus "calibration" which SDK 3.x also sends.
PURPOSES = (
    "fine-tune",
    "eval",
    "eval-sample",
    "eval-output",
    "eval-summary",
    "batch-generated",
    "batch-api",
    "calibration",
)
FILE_TYPES = ("jsonl", "parquet", "csv")
CHUNK = 1 << 20
CONTENT_TYPE = "text/plain"  # what the spec declares for /files/{id}/content
MAX_PARTS = 10_000


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/files/multipart/initiate", multipart_initiate)
    app.router.add_post("/v1/files/multipart/complete", multipart_complete)
    app.router.add_post("/v1/files/multipart/abort", multipart_abort)
    app.router.add_post("/v1/files", upload_or_presign)
    app.router.add_post("/v1/files/upload", upload_one_shot)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{id}", retrieve_file)
    app.router.add_delete("/v1/files/{id}", delete_file)
    app.router.add_get("/v1/files/{id}/content", file_content)
    app.router.add_post("/v1/files/{id}/preprocess", preprocess_file)
    app.router.add_put("/_emulator/uploads/{id}", put_upload)
    app.router.add_put("/_emulator/uploads/{id}/parts/{part}", put_part)


def _state(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]


def _check_fields(fields: dict[str, str]) -> tuple[str | None, str | None, str]:
    """Returns (error message, offending param, file type)."""
    purpose = fields.get("purpose")
    file_name = fields.get("file_name")
    if not purpose:
        return "purpose is required", "purpose", ""
    if purpose not in PURPOSES:
        return f"purpose must be one of: {', '.join(PURPOSES)}", "purpose", ""
    if not file_name:
        return "file_name is required", "file_name", ""
    extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if extension not in FILE_TYPES:
        return "file_name must end in .jsonl, .parquet or .csv", "file_name", ""
    file_type = fields.get("file_type") or extension
    if file_type not in FILE_TYPES:
        return f"file_type must be one of: {', '.join(FILE_TYPES)}", "file_type", ""
    return None, None, file_type


async def _stream_to(path: Path, chunks) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "wb") as out:
        async for chunk in chunks:
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


async def _part_chunks(part: BodyPartReader):
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


async def _read_form(request: web.Request, file_path: Path) -> tuple[dict[str, str], tuple[int, str] | None]:
    """Form fields, and (size, sha256) of the ``file`` part written to ``file_path`` if one came."""
    fields: dict[str, str] = {}
    received = None
    if request.content_type == "multipart/form-data":
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise web.HTTPBadRequest(reason="nested multipart bodies are not supported")
            if part.name == "file":
                received = await _stream_to(file_path, _part_chunks(part))
            elif part.filename is not None or not part.name:
                await part.release()  # a stray attachment: drained, never buffered
            else:
                fields[part.name] = (await part.read(decode=True)).decode("utf-8", "replace")
    else:
        form = await request.post()
        fields = {key: str(value) for key, value in form.items()}
    return fields, received


def _upload_url(request: web.Request, record: FileRecord, suffix: str = "", query: str = "") -> str:
    return f"{request.scheme}://{request.host}/_emulator/uploads/{record.id}{suffix}?token={record.upload_token}{query}"


def _conflict(existing: FileRecord) -> web.Response:
    # SDK 3.x reads "file_id" from a 409 to learn the file it already uploaded.
    body = error_body(
        FILE_FAMILY, 409, f"a file with this checksum already exists: {existing.id}", "file_exists"
    )
    assert isinstance(body, dict)
    body["file_id"] = existing.id
    return web.json_response(body, status=409)


async def upload_one_shot(request: web.Request) -> web.Response:
    return await _receive_upload(request, allow_presign=False)


async def upload_or_presign(request: web.Request) -> web.Response:
    """SDK flow without a ``file`` part: answer 302 to a PUT URL; with one, behave like /files/upload."""
    return await _receive_upload(request, allow_presign=True)


async def _receive_upload(request: web.Request, *, allow_presign: bool) -> web.Response:
    state = _state(request)
    record = state.new_file("", "", "jsonl")
    try:
        fields, received = await _read_form(request, record.path)
    except ValueError as exc:
        state.discard_file(record.id)
        return api_error(request, 400, f"could not read the form: {exc}")
    message, param, file_type = _check_fields(fields)
    if message is not None:
        state.discard_file(record.id)
        return api_error(request, 400, message, param=param)
    record.filename, record.purpose, record.file_type = fields["file_name"], fields["purpose"], file_type
    if received is None:
        if not allow_presign:
            state.discard_file(record.id)
            return api_error(request, 400, "file is required", param="file")
        existing = state.find_duplicate(fields.get("checksum", ""), record.purpose)
        if existing is not None:
            state.discard_file(record.id)
            return _conflict(existing)
        headers = {"Location": _upload_url(request, record), "X-Together-File-Id": record.id}
        return web.Response(status=302, headers=headers)
    size, checksum = received
    if size == 0:
        state.discard_file(record.id)
        return api_error(request, 400, "file is empty", param="file")
    state.mark_uploaded(record, size, checksum, processed=True)
    return web.json_response(record.to_api())


def _token_ok(request: web.Request, record: FileRecord | None) -> bool:
    token = request.query.get("token", "")
    return (
        record is not None
        and record.upload_token is not None
        and secrets.compare_digest(token.encode(), record.upload_token.encode())
    )


async def put_upload(request: web.Request) -> web.Response:
    """The presigned URL: no API key, only the token it was issued with, like object storage."""
    state = _state(request)
    record = state.files.get(request.match_info["id"])
    if not _token_ok(request, record):
        return web.Response(status=403, text="AccessDenied: bad or expired upload URL")
    assert record is not None
    size, checksum = await _stream_to(record.path, request.content.iter_chunked(CHUNK))
    state.mark_uploaded(record, size, checksum, processed=False)
    return web.Response(status=200, headers={"ETag": f'"{checksum[:32]}"'})


async def preprocess_file(request: web.Request) -> web.Response:
    state = _state(request)
    record = state.files.get(request.match_info["id"])
    if record is None:
        return api_error(request, 404, f"file not found: {request.match_info['id']}", param="id")
    if not record.uploaded:
        return api_error(
            request, 400, "the file content has not been uploaded yet: PUT it to the upload URL first"
        )
    record.processed = True
    return web.json_response(record.to_api())


async def list_files(request: web.Request) -> web.Response:
    return web.json_response({"data": [record.to_api() for record in _state(request).visible_files()]})


def _visible(request: web.Request) -> FileRecord | web.Response:
    record = _state(request).get_file(request.match_info["id"])
    if record is None:
        return api_error(request, 404, f"file not found: {request.match_info['id']}", param="id")
    return record


async def retrieve_file(request: web.Request) -> web.Response:
    record = _visible(request)
    return record if isinstance(record, web.Response) else web.json_response(record.to_api())


async def delete_file(request: web.Request) -> web.Response:
    record = _visible(request)
    if isinstance(record, web.Response):
        return record
    _state(request).discard_file(record.id)
    return web.json_response({"id": record.id, "object": "file", "deleted": True})


async def file_content(request: web.Request) -> web.StreamResponse:
    record = _visible(request)
    if isinstance(record, web.Response):
        return record
    headers = {
        "Content-Type": CONTENT_TYPE,
        "Content-Disposition": f'attachment; filename="{record.filename}"',
    }
    if TRUNCATE_AT_KEY not in request:
        # FileResponse streams with sendfile and honours Range, for clients that resume a download.
        return web.FileResponse(record.path, chunk_size=CHUNK, headers=headers)
    return await _truncated_content(request, record, headers, request[TRUNCATE_AT_KEY])


async def _truncated_content(
    request: web.Request, record: FileRecord, headers: dict[str, str], cut: int | None
) -> web.StreamResponse:
    size = record.path.stat().st_size
    limit = size // 2 if cut is None else max(0, min(cut, size - 1))
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = size
    await response.prepare(request)
    sent = 0
    with open(record.path, "rb") as src:
        while sent < limit:
            chunk = src.read(min(CHUNK, limit - sent))
            if not chunk:
                break
            await response.write(chunk)
            sent += len(chunk)
    request[TRUNCATED_KEY] = True
    if request.transport is not None:
        request.transport.close()
    return response


# Multipart flow: SDK 3.x switches to it above 5 GB.


async def _json_body(request: web.Request) -> dict | web.Response:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return api_error(request, 400, "the request body must be JSON")
    if not isinstance(body, dict):
        return api_error(request, 400, "the request body must be a JSON object")
    return body


async def multipart_initiate(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    fields = {key: str(value) for key, value in body.items() if value is not None}
    message, param, file_type = _check_fields(fields)
    num_parts = body.get("num_parts")
    if message is None and (not isinstance(num_parts, int) or not 1 <= num_parts <= MAX_PARTS):
        message, param = f"num_parts must be an integer from 1 to {MAX_PARTS}", "num_parts"
    if message is not None or not isinstance(num_parts, int):
        return api_error(request, 400, message, param=param)
    existing = state.find_duplicate(fields.get("checksum", ""), fields["purpose"])
    if existing is not None:
        return _conflict(existing)
    record = state.new_file(fields["file_name"], fields["purpose"], file_type)
    upload = MultipartUpload(upload_id=str(uuid.uuid4()), file_id=record.id, num_parts=num_parts)
    state.multipart[upload.upload_id] = upload
    parts = [
        {
            "PartNumber": n,
            "URL": _upload_url(request, record, f"/parts/{n}", f"&upload_id={upload.upload_id}"),
            "Headers": {},
        }
        for n in range(1, num_parts + 1)
    ]
    return web.json_response({"upload_id": upload.upload_id, "file_id": record.id, "parts": parts})


async def put_part(request: web.Request) -> web.Response:
    state = _state(request)
    record = state.files.get(request.match_info["id"])
    upload = state.multipart.get(request.query.get("upload_id", ""))
    if not _token_ok(request, record) or upload is None or upload.file_id != request.match_info["id"]:
        return web.Response(status=403, text="AccessDenied: bad or expired upload URL")
    try:
        number = int(request.match_info["part"])
    except ValueError:
        number = 0
    if not 1 <= number <= upload.num_parts:
        return web.Response(status=400, text="InvalidPart")
    path = state.files_dir / f"{upload.file_id}.part{number}"
    _, checksum = await _stream_to(path, request.content.iter_chunked(CHUNK))
    upload.parts[number] = path
    return web.Response(status=200, headers={"ETag": f'"{checksum[:32]}"'})


def _concatenate(parts: list[Path], target: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
    return size, digest.hexdigest()


async def multipart_complete(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    upload = state.multipart.get(str(body.get("upload_id", "")))
    if upload is None or upload.file_id != body.get("file_id"):
        return api_error(request, 404, "multipart upload not found", param="upload_id")
    missing = [n for n in range(1, upload.num_parts + 1) if n not in upload.parts]
    if missing:
        return api_error(request, 400, f"parts not uploaded: {json.dumps(missing[:20])}", param="parts")
    record = state.files[upload.file_id]
    ordered = [upload.parts[n] for n in range(1, upload.num_parts + 1)]
    size, checksum = await asyncio.to_thread(_concatenate, ordered, record.path)
    state.cleanup_multipart(upload)
    state.mark_uploaded(record, size, checksum, processed=True)
    return web.json_response(record.to_api())


async def multipart_abort(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    upload = state.multipart.get(str(body.get("upload_id", "")))
    if upload is None:
        return api_error(request, 404, "multipart upload not found", param="upload_id")
    state.cleanup_multipart(upload)
    state.discard_file(upload.file_id)
    return web.json_response({"upload_id": upload.upload_id, "aborted": True})
