"""Resumption through the journal, against the real Node server.

The central test kills (SIGKILL) a child process uploading 256 MiB at ten points and checks
that every rerun continues exactly where the server stopped, and that the stored bytes equal
the source in the end.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

import tuspipe
from tuspipe._journal import Journal

from .conftest import MakeFile, TusServer, sha256_file
from .uploads import read_event, resume_counting_patches, settled_offset, start_upload_child

MiB = 1024 * 1024
CHUNK = 256 * 1024


@pytest.mark.slow
def test_sigkill_at_ten_points_then_resume(
    node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    size = 256 * MiB
    chunk_size = 4 * MiB
    path = make_file(size)
    journal = tmp_path / "kill-journal"
    kill_points = [size * point // 11 for point in range(1, 11)]
    upload_url: str | None = None
    server_offset = 0
    starts: list[int] = []
    for kill_at in kill_points:
        child = start_upload_child(path, node_server.url, journal, chunk_size)
        try:
            url_event = read_event(child)
            start_event = read_event(child)
            if upload_url is None:
                upload_url = str(url_event["url"])
            # the same upload every time, continued from exactly where the server stopped
            assert url_event["url"] == upload_url
            assert start_event["offset"] == server_offset
            starts.append(server_offset)
            stored = node_server.stored_path(upload_url)
            while stored.stat().st_size < kill_at:
                assert child.poll() is None, "the upload finished before its kill point"
                time.sleep(0.002)
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        server_offset = settled_offset(upload_url)
        assert server_offset >= kill_at
        # the journal remembers the unfinished upload and an offset the server acknowledged
        (entry,) = Journal(journal).unfinished()
        assert entry.url == upload_url
        assert 0 <= entry.offset <= server_offset
    assert upload_url is not None
    # every rerun resumed (resumed_from > 0 whenever the server had bytes)
    assert all(start > 0 for start in starts[1:])

    # the last run, in this process: count the PATCH bytes it sends
    result, sent = resume_counting_patches(path, node_server.url, journal, chunk_size)
    assert (result.url, result.resumed_from, result.offset) == (upload_url, server_offset, size)
    # nothing the server already had was sent again
    assert sum(sent) == size - server_offset
    assert node_server.stored_sha256(upload_url) == sha256_file(path)
    assert Journal(journal).unfinished() == []


def test_ctrl_c_then_rerun_resumes(
    node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    path = make_file(64 * MiB)
    journal = tmp_path / "journal"
    child = start_upload_child(path, node_server.url, journal, CHUNK)
    url = str(read_event(child)["url"])
    read_event(child)  # the starting offset
    while read_event(child).get("offset", 0) < 8 * MiB:
        pass
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode != 0
    assert "KeyboardInterrupt" in stderr
    held = settled_offset(url)
    assert 8 * MiB <= held < 64 * MiB
    result = tuspipe.upload(path, node_server.url, journal=journal, chunk_size=CHUNK)
    assert (result.url, result.resumed_from) == (url, held)
    assert node_server.stored_sha256(url) == sha256_file(path)


def test_finished_upload_is_not_reused(
    node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    path = make_file(3 * CHUNK)
    first = tuspipe.upload(path, node_server.url, chunk_size=CHUNK)
    second = tuspipe.upload(path, node_server.url, chunk_size=CHUNK)
    assert second.url != first.url
    assert second.resumed_from == 0
    assert node_server.stored_sha256(second.url) == sha256_file(path)


def test_resume_false_makes_a_new_upload(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(3 * CHUNK)
    first = tuspipe.upload(path, node_server.url, chunk_size=CHUNK, stop_at=CHUNK)
    second = tuspipe.upload(path, node_server.url, chunk_size=CHUNK, resume=False)
    assert second.url != first.url
    assert second.resumed_from == 0
    assert node_server.stored_sha256(second.url) == sha256_file(path)
    # the journal now points at the newer upload; the old one is left alone
    third = tuspipe.upload(path, node_server.url, chunk_size=CHUNK)
    assert third.url != first.url


def test_changed_file_never_resumes_the_old_upload(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(3 * CHUNK)
    first = tuspipe.upload(path, node_server.url, chunk_size=CHUNK, stop_at=CHUNK)
    data = bytearray(path.read_bytes())
    data[2 * CHUNK] ^= 0xFF  # same size, one byte changed after the uploaded part
    path.write_bytes(bytes(data))
    second = tuspipe.upload(path, node_server.url, chunk_size=CHUNK)
    assert second.url != first.url
    assert second.resumed_from == 0
    assert node_server.stored_sha256(second.url) == sha256_file(path)


def test_tuspy_collision_case_uploads_both_files_correctly(
    node_server: TusServer, tmp_path: Path
) -> None:
    """Two files of equal size and equal first 64 KiB: tuspy resumes one with the other."""
    prefix = os.urandom(64 * 1024)
    first = tmp_path / "first.bin"
    second = tmp_path / "second.bin"
    first.write_bytes(prefix + os.urandom(3 * CHUNK))
    second.write_bytes(prefix + os.urandom(3 * CHUNK))
    partial = tuspipe.upload(first, node_server.url, chunk_size=CHUNK, stop_at=CHUNK)
    other = tuspipe.upload(second, node_server.url, chunk_size=CHUNK)
    assert other.url != partial.url
    assert other.resumed_from == 0
    resumed = tuspipe.upload(first, node_server.url, chunk_size=CHUNK)
    assert (resumed.url, resumed.resumed_from) == (partial.url, CHUNK)
    assert node_server.stored_sha256(other.url) == sha256_file(second)
    assert node_server.stored_sha256(partial.url) == sha256_file(first)


def test_upload_deleted_on_the_server_starts_over(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(3 * CHUNK)
    first = tuspipe.upload(path, node_server.url, chunk_size=CHUNK, stop_at=CHUNK)
    gone = httpx.delete(first.url, headers={"Tus-Resumable": "1.0.0"})
    assert gone.status_code == 204
    second = tuspipe.upload(path, node_server.url, chunk_size=CHUNK)
    assert second.url != first.url
    assert second.resumed_from == 0
    assert node_server.stored_sha256(second.url) == sha256_file(path)


def test_bytes_resume_with_resume_key(node_server: TusServer) -> None:
    data = os.urandom(3 * CHUNK)
    first = tuspipe.upload(data, node_server.url, chunk_size=CHUNK, stop_at=CHUNK, resume_key="k")
    second = tuspipe.upload(data, node_server.url, chunk_size=CHUNK, resume_key="k")
    assert (second.url, second.resumed_from) == (first.url, CHUNK)
    stored = node_server.stored_path(first.url).read_bytes()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()


def test_journal_file_is_private_and_holds_no_headers(
    node_server: TusServer, make_file: MakeFile, private_journal: Path
) -> None:
    path = make_file(CHUNK)
    tuspipe.upload(
        path,
        node_server.url + "?token=query-secret",
        chunk_size=CHUNK,
        stop_at=10,
        headers={"Authorization": "Bearer header-secret"},
    )
    raw = private_journal.read_bytes()
    assert b"header-secret" not in raw
    assert b"query-secret" not in raw
    assert private_journal.stat().st_mode & 0o777 == 0o600
