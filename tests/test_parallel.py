"""Parallel uploads (concatenation) against tuspyserver, the real server here that joins parts.

tuspyserver deletes the partial uploads once the final one exists; the journal must cope.
"""

from __future__ import annotations

import itertools
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import tuspipe
from tuspipe._fingerprint import fingerprint
from tuspipe._journal import Journal
from tuspipe._parallel import part_spans as _part_spans
from tuspipe._source import open_source

from .conftest import MakeFile, TusServer, sha256_file
from .waiting import settled

MiB = 1024 * 1024
METADATA = {"filename": "parallel.bin", "filetype": "application/octet-stream"}

CHILD = """
import json, sys, tuspipe
path, url, journal = sys.argv[1:4]
def say(**fields):
    print(json.dumps(fields), flush=True)
result = tuspipe.upload(
    path, url, journal=journal, parallel=4, chunk_size=1 << 20,
    metadata={"filename": "parallel.bin", "filetype": "application/octet-stream"},
    on_progress=lambda done, total: say(offset=done),
)
say(done=True, url=result.url, resumed_from=result.resumed_from)
"""


def _record_posts(posts: list[httpx.Headers]) -> httpx.AsyncClient:
    async def record(request: httpx.Request) -> None:
        if request.method == "POST":
            posts.append(request.headers)

    return httpx.AsyncClient(event_hooks={"request": [record]})


@pytest.mark.slow
async def test_parallel_upload_is_byte_identical(
    tuspyserver_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(256 * MiB + 3)
    posts: list[httpx.Headers] = []
    progress: list[int] = []
    async with _record_posts(posts) as client:
        result = await tuspipe.upload_async(
            path,
            tuspyserver_server.url,
            parallel=4,
            metadata=METADATA,
            http_client=client,
            on_progress=lambda done, total: progress.append(done),
        )
    assert (result.size, result.offset, result.resumed_from) == (256 * MiB + 3, 256 * MiB + 3, 0)
    assert tuspyserver_server.stored_sha256(result.url) == sha256_file(path)
    # four partial uploads of nearly equal length, then one final that lists them in order
    partials = [headers for headers in posts if headers.get("upload-concat") == "partial"]
    finals = [headers for headers in posts if headers.get("upload-concat", "").startswith("final;")]
    assert len(partials) == 4
    assert sorted(int(headers["upload-length"]) for headers in partials) == [
        64 * MiB,
        64 * MiB + 1,
        64 * MiB + 1,
        64 * MiB + 1,
    ]
    (final,) = finals
    assert "upload-length" not in final
    assert len(final["upload-concat"].removeprefix("final;").split(" ")) == 4
    assert progress[0] == 0
    assert progress[-1] == 256 * MiB + 3
    assert progress == sorted(progress)


async def test_server_without_concatenation_gets_one_upload(
    node_server: TusServer, make_file: MakeFile, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_file(3 * MiB)
    with caplog.at_level(logging.WARNING, logger="tuspipe"):
        result = await tuspipe.upload_async(path, node_server.url, parallel=4)
    assert "does not support concatenation" in caplog.text
    assert node_server.stored_sha256(result.url) == sha256_file(path)


@pytest.mark.slow
def test_sigkill_in_the_middle_resumes_every_part(
    tuspyserver_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    size = 256 * MiB
    path = make_file(size)
    journal = tmp_path / "journal"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), tuspyserver_server.url, str(journal)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        # kill once about a third of the bytes are acknowledged
        for line in child.stdout:
            if json.loads(line).get("offset", 0) >= size // 3:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    (entry,) = Journal(journal).unfinished()
    assert len(entry.parts) == 4
    assert entry.url == ""  # the final upload did not exist yet
    # (a PATCH of the killed child may still be landing: resume once the parts stand still)
    held = settled(lambda: [tuspipe.upload_status(part_url).offset for part_url in entry.parts])
    assert 0 < sum(held) < size

    result = tuspipe.upload(
        path, tuspyserver_server.url, journal=journal, parallel=4, metadata=METADATA
    )
    # every part continued from where the server had it
    assert result.resumed_from >= sum(held)
    assert result.offset == size
    assert tuspyserver_server.stored_sha256(result.url) == sha256_file(path)
    assert Journal(journal).unfinished() == []


async def test_final_upload_already_joined_is_not_redone(
    tuspyserver_server: TusServer, make_file: MakeFile, private_journal: Path
) -> None:
    """A crash after the final POST but before the journal said "finished": the parts are
    gone (tuspyserver deletes them), the final upload is complete, and nothing is resent."""
    path = make_file(4 * MiB + 1)
    first = await tuspipe.upload_async(
        path, tuspyserver_server.url, parallel=2, metadata=METADATA, resume=False
    )
    journal = Journal(private_journal)
    assert journal.unfinished() == []
    # make the journal look as it would after such a crash: the final URL, not finished
    source = open_source(path)
    try:
        identity = source.identity
        assert identity is not None
        key = fingerprint(source, endpoint=tuspyserver_server.url, identity=identity)
    finally:
        source.close()
    journal.record_created(
        tuspipe.JournalEntry(
            key=key,
            url=first.url,
            endpoint=tuspyserver_server.url,
            source=str(path),
            size=4 * MiB + 1,
            parts=("http://127.0.0.1:1/gone-a", "http://127.0.0.1:1/gone-b"),
        )
    )
    posts: list[httpx.Headers] = []
    async with _record_posts(posts) as client:
        again = await tuspipe.upload_async(
            path, tuspyserver_server.url, parallel=2, metadata=METADATA, http_client=client
        )
    assert (again.url, again.resumed_from, again.offset) == (first.url, 4 * MiB + 1, 4 * MiB + 1)
    assert posts == []
    assert journal.unfinished() == []


async def test_parallel_with_stop_at_is_refused(
    tuspyserver_server: TusServer, make_file: MakeFile
) -> None:
    with pytest.raises(tuspipe.UsageError, match="parallel"):
        await tuspipe.upload_async(
            make_file(10), tuspyserver_server.url, parallel=2, stop_at=5, metadata=METADATA
        )


def test_part_spans_cover_the_source_exactly() -> None:
    for size in (1, 2, 3, 7, 1000, 2**31 + 5):
        for parts in range(1, min(size, 9) + 1):
            spans = _part_spans(size, parts)
            assert len(spans) == parts
            assert spans[0][0] == 0
            assert all(length > 0 for _, length in spans)
            assert all(a + la == b for (a, la), (b, _) in itertools.pairwise(spans))
            assert spans[-1][0] + spans[-1][1] == size
            assert max(length for _, length in spans) - min(length for _, length in spans) <= 1
