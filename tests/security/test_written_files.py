"""Issue 22, points 6 and 7: a download or results file written at a symlink replaces the link itself,
never the file it points at, and nothing is written outside the target's folder; the files the provider
writes get the mode a plain ``open(path, "w")`` gives under the umask (not mkstemp's owner-only)."""

from __future__ import annotations

import os
import socket
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest

from together_provider.hooks.together import TogetherHook
from together_provider.operators.batch import DownloadBatchFileOperator
from together_provider.operators.results import BatchResultsOperator

from ..helpers import RecordingTI, wait_terminal, write_requests
from .hostile import Seen, reply

CONTENT = b'{"custom_id": "r0", "response": {"status_code": 200}}\n' * 50


def serve_file(request: Seen, conn: socket.socket) -> None:
    reply(conn, 200, CONTENT, content_type="application/octet-stream")


# ---- 6. a symlink at the target ----------------------------------------------------------------------


@pytest.fixture
def linked_target(tmp_path):
    """``out/target.jsonl`` a symlink to ``elsewhere/precious.txt``: a file in another folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / "precious.txt"
    precious.write_bytes(b"keep me\n")
    out = tmp_path / "out"
    out.mkdir()
    link = out / "target.jsonl"
    link.symlink_to(precious)
    return link, precious


def assert_link_replaced(link: Path, precious: Path, written: str) -> None:
    assert written == str(link)
    assert not link.is_symlink(), "the link itself is replaced by the file"
    assert link.read_bytes() == CONTENT
    assert precious.read_bytes() == b"keep me\n", "the file the link pointed at is never touched"
    assert sorted(p.name for p in precious.parent.iterdir()) == ["precious.txt"]
    assert sorted(p.name for p in link.parent.iterdir()) == ["target.jsonl"], "no temporary file left"


def test_hook_download_replaces_a_symlink_not_its_target(hostile, hook, linked_target):
    link, precious = linked_target
    hostile(serve_file)
    assert_link_replaced(link, precious, hook.download_file("file-1", link))


def test_hook_download_cut_off_leaves_the_link_and_its_target_alone(hostile, hook, linked_target):
    """A cut-off download leaves both as they were; the next whole one replaces the link only."""
    link, precious = linked_target
    cut = hostile(
        lambda request, conn: conn.sendall(
            b"HTTP/1.1 200 X\r\nContent-Length: %d\r\n\r\n" % len(CONTENT) + CONTENT[:10]
        )
    )
    with pytest.raises(Exception, match="received 10 of"):
        hook.download_file("file-1", link)
    assert link.is_symlink() and precious.read_bytes() == b"keep me\n"
    assert sorted(p.name for p in link.parent.iterdir()) == ["target.jsonl"]
    cut.handler = serve_file
    assert_link_replaced(link, precious, hook.download_file("file-1", link))


def test_download_operator_replaces_a_symlink_not_its_target(hostile, linked_target):
    hostile(serve_file)
    link, precious = linked_target
    operator = DownloadBatchFileOperator(task_id="download", file_id="file-1", path=str(link))
    assert_link_replaced(link, precious, operator.execute({"ti": RecordingTI()}))


def test_download_operator_to_a_file_url_replaces_a_symlink_not_its_target(hostile, linked_target):
    hostile(serve_file)
    link, precious = linked_target
    operator = DownloadBatchFileOperator(task_id="download", file_id="file-1", path=f"file://{link}")
    assert_link_replaced(link, precious, operator.execute({"ti": RecordingTI()}))


def test_storage_atomic_writer_replaces_a_symlink_not_its_target(linked_target):
    from together_provider.tasks import storage

    link, precious = linked_target
    with storage.atomic_writer(str(link), field="result_path") as (sink, where):
        sink.write(CONTENT)
    assert_link_replaced(link, precious, where)


# ---- 7. file modes -----------------------------------------------------------------------------------


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def plain_open_mode(folder: Path) -> int:
    """The permission bits ``open(path, "w")`` gives a new file under the current umask."""
    probe = folder / "probe-open-w"
    with open(probe, "w") as handle:
        handle.write("x")
    mode = stat.S_IMODE(probe.stat().st_mode)
    probe.unlink()
    return mode


MASKS = pytest.mark.parametrize("mask", [0o022, 0o027], ids=["umask022", "umask027"])


@MASKS
def test_hook_download_gets_the_mode_of_a_plain_open(hostile, hook, tmp_path, mask):
    hostile(serve_file)
    with umask(mask):
        written = Path(hook.download_file("file-1", tmp_path / "out.jsonl"))
        expected = plain_open_mode(tmp_path)
    assert stat.S_IMODE(written.stat().st_mode) == expected == 0o666 & ~mask


@MASKS
def test_download_operator_gets_the_mode_of_a_plain_open(hostile, tmp_path, mask):
    hostile(serve_file)
    operator = DownloadBatchFileOperator(task_id="download", file_id="file-1", path=str(tmp_path / "o.jsonl"))
    with umask(mask):
        written = Path(operator.execute({"ti": RecordingTI()}))
        expected = plain_open_mode(tmp_path)
    assert stat.S_IMODE(written.stat().st_mode) == expected == 0o666 & ~mask


def test_replacing_a_private_file_keeps_it_private(hostile, hook, tmp_path):
    """As ``open(path, "w")`` keeps an existing file's mode: a file its owner made private stays so."""
    hostile(serve_file)
    target = tmp_path / "private.jsonl"
    target.write_bytes(b"old")
    target.chmod(0o640)
    with umask(0o022):
        hook.download_file("file-1", target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_bytes() == CONTENT


@MASKS
def test_results_file_gets_the_mode_of_a_plain_open(together_conn, tmp_path, mask):
    hook = TogetherHook()
    source = write_requests(tmp_path / "in.jsonl", n=2)
    batch = wait_terminal(hook, hook.create_batch(hook.upload_file(source).id).id)
    target = tmp_path / "rows" / "results.jsonl"
    operator = BatchResultsOperator(task_id="results", batch_id=batch.id, result_path=str(target))
    with umask(mask):
        operator.execute({"ti": RecordingTI()})
        expected = plain_open_mode(tmp_path)
    assert stat.S_IMODE(target.stat().st_mode) == expected == 0o666 & ~mask
    assert len(target.read_text().splitlines()) == 2
