"""The feature matrix against tus-node-server 0.9.0, and a default upload through a body limit.

tus-node-server 0.9.0 (npm ``tus-node-server``, the Node server most deployments ran before
@tus/server) supports creation, creation-with-upload, creation-defer-length and termination,
and leaves things out that the other servers here send: its OPTIONS answer has
``Tus-Resumable`` and ``Tus-Extension`` but no ``Tus-Version``, and its ``Location`` is
protocol-relative (``//127.0.0.1:PORT/files/ID``). It announces no checksum and no
concatenation, so tuspipe's documented fallbacks apply: ``checksum="auto"`` uploads without
one, ``parallel`` uploads in one piece with a warning.

The last test puts the fault proxy with a 1 MiB body limit (nginx's default
``client_max_body_size``) in front of the Node server: an upload with default settings must
find a chunk size that passes and end byte-identical.

Every test compares the bytes the server stored with the source by sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

import tuspipe
from tuspipe._journal import Journal

from .conftest import MakeFile, TusServer, sha256_file
from .faultproxy import FaultProxy
from .uploads import (
    Seen,
    read_event,
    recording_client,
    resume_counting_patches,
    settled_offset,
    start_upload_child,
)

KiB = 1024
MiB = 1024 * KiB
CHUNK = 1 * MiB
TIMEOUT = 120
#: What the server's OPTIONS answer lists in Tus-Extension.
EXTENSIONS = ["creation", "creation-defer-length", "creation-with-upload", "termination"]


def _check_stored(server: TusServer, result: tuspipe.UploadResult, expected_sha256: str) -> None:
    """The upload is complete, its URL absolute on the server, and the stored bytes right."""
    assert result.complete
    assert result.offset == result.size
    # the protocol-relative Location was resolved against the endpoint
    assert result.url.startswith(server.url), result.url
    assert server.stored_sha256(result.url) == expected_sha256


def _pieces(data: bytes, sizes: tuple[int, ...] = (1, 4093, 65537, 7, 300_001)) -> Iterator[bytes]:
    """`data` in pieces of odd sizes, cycling through `sizes`: a stream of unknown length."""
    offset = 0
    index = 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        yield data[offset : offset + size]
        offset += size
        index += 1


# ---- uploads ---------------------------------------------------------------------------------


async def test_plain_upload_in_several_chunks(
    node09_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(3 * MiB + 12_345)
    seen = Seen()
    result = await tuspipe.upload_async(
        path, node09_server.url, chunk_size=CHUNK, journal=None, on_response=seen
    )
    size = path.stat().st_size
    assert (result.size, result.resumed_from) == (size, 0)
    _check_stored(node09_server, result, sha256_file(path))
    # one upload; its bytes in chunks of at most chunk_size
    assert len(seen.of("POST")) == 1
    sent = [int(patch["content-length"]) for patch in seen.of("PATCH")]
    assert len(sent) >= 4
    assert max(sent) <= CHUNK
    status = await tuspipe.upload_status_async(result.url)
    assert (status.offset, status.length) == (size, size)


async def test_checksum_auto_uploads_without_one(
    node09_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(2 * MiB + 3)
    seen = Seen()
    result = await tuspipe.upload_async(
        path, node09_server.url, chunk_size=CHUNK, checksum="auto", on_response=seen
    )
    _check_stored(node09_server, result, sha256_file(path))
    # the server lists no checksum algorithm: "auto" means none, and none is sent
    assert result.checksum is None
    assert all("upload-checksum" not in headers for _, headers in seen.requests)


async def test_parallel_falls_back_to_one_upload(
    node09_server: TusServer, make_file: MakeFile, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_file(3 * MiB + 1)
    seen = Seen()
    with caplog.at_level(logging.WARNING, logger="tuspipe"):
        result = await tuspipe.upload_async(
            path, node09_server.url, parallel=4, chunk_size=CHUNK, on_response=seen
        )
    assert "does not support concatenation" in caplog.text
    _check_stored(node09_server, result, sha256_file(path))
    # one upload, no part of a concatenation
    [post] = seen.of("POST")
    assert "upload-concat" not in post
    assert post["upload-length"] == str(3 * MiB + 1)


async def test_upload_many_small_files_in_one_request_each(
    node09_server: TusServer, make_file: MakeFile
) -> None:
    paths = [make_file(size) for size in [0, 1, *(1000 * n + n for n in range(1, 18)), 100 * KiB]]
    assert len(paths) == 20
    seen: list[tuple[str, httpx.Headers]] = []
    async with recording_client(seen) as client:
        outcomes = await tuspipe.upload_many_async(
            paths, node09_server.url, concurrency=4, http_client=client
        )
    assert [outcome.error for outcome in outcomes] == [None] * 20
    urls = set()
    for path, outcome in zip(paths, outcomes, strict=True):
        assert outcome.result is not None
        _check_stored(node09_server, outcome.result, sha256_file(path))
        urls.add(outcome.result.url)
    assert len(urls) == 20
    # creation-with-upload: each file's bytes ride on its POST, no PATCH is needed
    methods = [method for method, _ in seen]
    assert methods.count("POST") == 20
    assert "PATCH" not in methods
    with_body = [h for method, h in seen if method == "POST" and int(h["upload-length"]) > 0]
    assert len(with_body) == 19
    assert all(h["content-type"] == "application/offset+octet-stream" for h in with_body)


@pytest.mark.parametrize(
    "size", [5 * CHUNK + 777, 4 * CHUNK], ids=["odd-size", "exact-multiple-of-the-chunk"]
)
async def test_deferred_length_stream(node09_server: TusServer, size: int) -> None:
    data = os.urandom(size)
    seen = Seen()
    result = await tuspipe.upload_async(
        _pieces(data), node09_server.url, chunk_size=CHUNK, on_response=seen
    )
    assert (result.size, result.offset) == (size, size)
    _check_stored(node09_server, result, hashlib.sha256(data).hexdigest())
    # created with a deferred length, declared by the PATCH that carries (or ends at) the
    # last byte and by no other
    [post] = seen.of("POST")
    assert post["upload-defer-length"] == "1"
    assert "upload-length" not in post
    patches = seen.of("PATCH")
    assert patches[-1]["upload-length"] == str(size)
    assert int(patches[-1]["upload-offset"]) + int(patches[-1]["content-length"]) == size
    assert all("upload-length" not in patch for patch in patches[:-1])
    status = await tuspipe.upload_status_async(result.url)
    assert (status.offset, status.length) == (size, size)


async def test_terminate_then_the_upload_is_gone(
    node09_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(3 * MiB)
    result = await tuspipe.upload_async(
        path, node09_server.url, chunk_size=CHUNK, stop_at=MiB, journal=None
    )
    assert (result.offset, result.complete) == (MiB, False)
    stored = node09_server.stored_path(result.url)
    assert stored.read_bytes() == path.read_bytes()[:MiB]
    await tuspipe.terminate_async(result.url)
    assert not stored.exists()
    with pytest.raises(tuspipe.UploadNotFoundError):
        await tuspipe.upload_status_async(result.url)


def test_kill_9_then_resume_from_the_journal(
    node09_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    size = 64 * MiB
    path = make_file(size)
    journal = tmp_path / "kill-journal"
    kill_at = size // 3
    child = start_upload_child(path, node09_server.url, journal, CHUNK)
    try:
        upload_url = str(read_event(child)["url"])
        read_event(child)  # the starting offset: the upload exists and has started
        stored = node09_server.stored_path(upload_url)
        deadline = time.monotonic() + TIMEOUT
        while not stored.exists() or stored.stat().st_size < kill_at:
            assert child.poll() is None, "the upload finished before its kill point"
            assert time.monotonic() < deadline, "the upload did not reach its kill point"
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    held = settled_offset(upload_url)
    assert kill_at <= held < size
    # the journal remembers the upload and an offset the server acknowledged
    (entry,) = Journal(journal).unfinished()
    assert entry.url == upload_url
    assert 0 <= entry.offset <= held

    result, sent = resume_counting_patches(path, node09_server.url, journal, CHUNK)
    assert (result.url, result.resumed_from, result.offset) == (upload_url, held, size)
    assert sum(sent) == size - held  # nothing the server had was sent again
    _check_stored(node09_server, result, sha256_file(path))
    assert Journal(journal).unfinished() == []


def test_cli_info_shows_the_extensions(node09_server: TusServer) -> None:
    command = [sys.executable, "-m", "tuspipe", "info"]
    done = subprocess.run(
        [*command, node09_server.url], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"extensions:   {', '.join(EXTENSIONS)}" in done.stdout
    assert "checksums:    none offered" in done.stdout
    done = subprocess.run(
        [*command, "--json", node09_server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [info] = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert info["extensions"] == EXTENSIONS
    assert info["checksum_algorithms"] == []


# ---- a body limit in front of the server -----------------------------------------------------


@pytest.mark.slow
async def test_default_upload_through_a_1_mib_body_limit(
    node_server: TusServer, make_file: MakeFile, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_file(100 * MiB)
    upstream = urlsplit(node_server.url)
    assert upstream.hostname is not None
    assert upstream.port is not None
    async with FaultProxy(upstream.hostname, upstream.port, max_body=MiB) as proxy:
        with caplog.at_level(logging.WARNING, logger="tuspipe"):
            result = await tuspipe.upload_async(path, proxy.url_for(node_server.url))
        # the limit was met (413) and the upload adapted to it
        assert proxy.stats.faults.get("body_limit", 0) >= 1
    assert (result.size, result.offset) == (100 * MiB, 100 * MiB)
    assert result.complete
    assert node_server.stored_sha256(result.url) == sha256_file(path)
    direct_url = urljoin(node_server.url, urlsplit(result.url).path)  # the proxy is gone
    # one warning says what happened and which chunk_size avoids it
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    assert "chunk_size" in warnings[0].getMessage()
    await tuspipe.terminate_async(direct_url)  # frees the server's disk
