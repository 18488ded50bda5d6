"""The journal through the api: which uploads ``upload_async`` resumes, and which it does not.

Against FakeTusServer (no network); each test journals into its own file (conftest's
``private_journal`` sets ``TUSPIPE_JOURNAL``). The journal file's own format and locking are
``test_journal.py``'s subject.
"""

from __future__ import annotations

import io
import os
import pathlib
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import tuspipe
from tests.fakes import FakeTusServer
from tests.helpers import DATA, head_is_transient
from tuspipe import Journal, JournalEntry
from tuspipe._journal import decode_records
from tuspipe._types import JOURNAL_WRITE_INTERVAL


@pytest.fixture
def data_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


async def upload_to(server: FakeTusServer, source: Any, **kwargs: Any) -> tuspipe.UploadResult:
    """``upload_async(source, server.endpoint, chunk_size=100, **kwargs)`` through `server`."""
    arguments: dict[str, Any] = {"chunk_size": 100, **kwargs}
    async with server.client() as client:
        return await tuspipe.upload_async(source, server.endpoint, http_client=client, **arguments)


def methods_since(server: FakeTusServer, start: int) -> list[str]:
    return [request.method for request in server.requests[start:]]


def unfinished(path: pathlib.Path) -> list[JournalEntry]:
    return Journal(path).unfinished()


async def test_journal_resumes_a_file_upload_to_the_same_endpoint(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(
        server, data_file, stop_at=300, headers={"Authorization": "Bearer s3cret"}
    )
    assert (first.offset, first.resumed_from) == (300, 0)
    [entry] = unfinished(private_journal)
    assert (entry.url, entry.size) == (first.url, len(DATA))
    assert entry.offset in {0, 100, 200, 300}  # a hint: the server is asked before resuming
    assert entry.endpoint == server.endpoint
    assert entry.source == str(data_file)
    assert b"s3cret" not in private_journal.read_bytes()  # headers are never journaled

    before = len(server.requests)
    progress: list[int] = []
    urls: list[str] = []
    second = await upload_to(
        server,
        data_file,
        on_progress=lambda done, total: progress.append(done),
        on_upload_url=urls.append,
    )
    assert second.url == first.url
    assert second.resumed_from == 300
    assert second.complete
    assert server.data_of(second.url) == DATA
    # The server is asked where the upload stands; nothing is created.
    assert methods_since(server, before) == ["HEAD"] + ["PATCH"] * 7
    assert [patch.offset for patch in server.seen("PATCH")[3:]] == list(range(300, 1000, 100))
    assert urls == [first.url]
    assert progress[0] == 300
    assert progress[-1] == len(DATA)
    assert unfinished(private_journal) == []  # finished: never to be resumed

    before = len(server.requests)
    third = await upload_to(server, data_file)
    assert third.url != first.url
    assert third.resumed_from == 0
    assert third.complete
    assert methods_since(server, before) == ["POST"] + ["PATCH"] * 10
    assert len(server.seen("POST")) == 2
    assert server.data_of(third.url) == DATA


async def test_journal_resumes_a_cancelled_upload(data_file: pathlib.Path) -> None:
    scope = trio.CancelScope()

    async def cancel_on_third_patch(request: httpx.Request) -> None:
        if request.method == "PATCH" and len(server.seen("PATCH")) == 2:
            scope.cancel()
            await trio.lowlevel.checkpoint()

    server = FakeTusServer(before_request=cancel_on_third_patch)
    with scope:
        await upload_to(server, data_file)
    assert scope.cancelled_caught
    url = server.endpoint + "u1"
    assert server.data_of(url) == DATA[:200]

    server.before_request = None
    before = len(server.requests)
    result = await upload_to(server, data_file)
    assert result.url == url
    assert result.resumed_from == 200
    assert methods_since(server, before) == ["HEAD"] + ["PATCH"] * 8
    assert server.data_of(url) == DATA


async def test_journal_resume_false_makes_a_new_upload(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    before = len(server.requests)
    second = await upload_to(server, data_file, resume=False)
    assert second.url != first.url
    assert second.resumed_from == 0
    assert second.complete
    assert methods_since(server, before) == ["POST"] + ["PATCH"] * 10
    assert server.data_of(first.url) == DATA[:300]  # left alone
    assert server.data_of(second.url) == DATA
    assert unfinished(private_journal) == []


async def test_journal_follows_the_servers_offset_not_its_own(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    # The journal may be ahead of the server or behind it; the server's offset is what counts.
    Journal(private_journal).record_offset(unfinished(private_journal)[0].key, 300)
    server.set_data(first.url, DATA[:50])  # the server lost what it had not made durable
    result = await upload_to(server, data_file)
    assert result.url == first.url
    assert result.resumed_from == 50
    assert server.seen("PATCH")[3].offset == 50
    assert server.data_of(first.url) == DATA


async def test_journaled_upload_the_server_completed_is_finished_without_patches(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    # The last PATCH arrived but the process died before journaling it.
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    server.set_data(first.url, DATA)
    before = len(server.requests)
    progress: list[tuple[int, int | None]] = []
    result = await upload_to(
        server, data_file, on_progress=lambda done, total: progress.append((done, total))
    )
    assert methods_since(server, before) == ["HEAD"]
    assert result.url == first.url
    assert result.resumed_from == result.offset == len(DATA)
    assert progress == [(len(DATA), len(DATA))]
    assert unfinished(private_journal) == []


async def test_journal_records_acknowledged_offsets_a_few_times_a_second(
    data_file: pathlib.Path, private_journal: pathlib.Path, mock_clock: trio.testing.MockClock
) -> None:
    # Virtual time stands still unless the test moves it: with no time passing, only the
    # first acknowledged offset is journaled ...
    server = FakeTusServer()
    await upload_to(server, data_file, stop_at=500)
    acks = [r for r in decode_records(private_journal.read_bytes())[0] if r["op"] == "ack"]
    assert len(acks) == 1
    assert 100 <= acks[0]["offset"] <= 500
    assert unfinished(private_journal)[0].offset == acks[0]["offset"]

    # ... and with JOURNAL_WRITE_INTERVAL passing before each, every offset handed on is,
    # the last one included.
    progress: list[int] = []

    def time_passes(done: int, total: int) -> None:
        progress.append(done)
        mock_clock.jump(JOURNAL_WRITE_INTERVAL)

    await upload_to(server, data_file, stop_at=800, on_progress=time_passes)
    acks = [r for r in decode_records(private_journal.read_bytes())[0] if r["op"] == "ack"]
    assert [ack["offset"] for ack in acks[1:]] == progress[1:]  # not the starting offset
    assert progress[0] == 500
    assert progress[-1] == 800
    assert unfinished(private_journal)[0].offset == 800


def _vanish(server: FakeTusServer, url: str) -> None:
    del server.uploads[url.rsplit("/", 1)[1]]


@pytest.mark.parametrize("answer", ["deleted", 410, 403])
async def test_journaled_upload_the_server_no_longer_has_is_dropped(
    answer: str | int, data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    if answer == "deleted":
        _vanish(server, first.url)
    else:
        server.script(int(answer), {"Tus-Resumable": "1.0.0"}, method="HEAD")
    before = len(server.requests)
    second = await upload_to(server, data_file, stop_at=500)
    assert methods_since(server, before) == ["HEAD", "POST"] + ["PATCH"] * 5
    assert server.requests[before].url == first.url
    assert second.url != first.url
    assert second.resumed_from == 0
    # The journal now remembers the new upload, and only it.
    assert [e.url for e in unfinished(private_journal)] == [second.url]


@pytest.mark.parametrize("length", [len(DATA) + 1, len(DATA) - 1, None])
async def test_journaled_upload_of_another_length_is_not_resumed(
    length: int | None, data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    server.set_length(first.url, length)
    before = len(server.requests)
    second = await upload_to(server, data_file)
    assert methods_since(server, before) == ["HEAD", "POST"] + ["PATCH"] * 10
    assert second.url != first.url
    assert second.resumed_from == 0
    assert server.data_of(second.url) == DATA
    assert server.data_of(first.url) == DATA[:300]  # nothing was sent to the other upload
    assert all(patch.url != first.url for patch in server.seen("PATCH")[3:])
    assert unfinished(private_journal) == []


async def test_journaled_upload_of_a_file_changed_since_is_not_resumed(
    data_file: pathlib.Path,
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    changed = DATA[:-1] + bytes([DATA[-1] ^ 0xFF])
    info = data_file.stat()
    data_file.write_bytes(changed)  # same size, same inode
    os.utime(data_file, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    before = len(server.requests)
    second = await upload_to(server, data_file)
    assert methods_since(server, before) == ["POST"] + ["PATCH"] * 10
    assert second.url != first.url
    assert server.data_of(second.url) == changed


async def test_journaled_upload_is_not_resumed_on_another_endpoint(
    data_file: pathlib.Path,
) -> None:
    here = FakeTusServer()
    there = FakeTusServer(endpoint="http://elsewhere.test/files/")
    first = await upload_to(here, data_file, stop_at=300)
    other = await upload_to(there, data_file)
    assert other.resumed_from == 0
    assert [r.method for r in there.requests][:1] == ["POST"]
    assert len(here.requests) == 4  # the first endpoint was not asked
    again = await upload_to(here, data_file)
    assert again.url == first.url
    assert again.resumed_from == 300


async def test_expired_journaled_upload_is_not_asked_about(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer(upload_expires="Mon, 01 Jan 2001 00:00:00 GMT")
    first = await upload_to(server, data_file, stop_at=300)
    assert unfinished(private_journal)[0].expires == "Mon, 01 Jan 2001 00:00:00 GMT"
    before = len(server.requests)
    second = await upload_to(server, data_file)
    assert methods_since(server, before) == ["POST"] + ["PATCH"] * 10
    assert second.url != first.url


async def test_unexpired_journaled_upload_is_resumed(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer(upload_expires="Fri, 01 Jan 2100 00:00:00 GMT")
    first = await upload_to(server, data_file, stop_at=300)
    assert unfinished(private_journal)[0].expires == "Fri, 01 Jan 2100 00:00:00 GMT"
    second = await upload_to(server, data_file)
    assert second.url == first.url
    assert second.resumed_from == 300


@pytest.mark.parametrize("status", [503, 423, None])
async def test_journaled_upload_head_is_retried(
    status: int | None, data_file: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300)
    head_is_transient(status)(server)
    start = trio.current_time()
    second = await upload_to(server, data_file)
    assert 0.75 <= trio.current_time() - start <= 1.5
    assert second.url == first.url
    assert second.resumed_from == 300
    assert len(server.seen("POST")) == 1
    assert server.data_of(first.url) == DATA


async def test_journaled_upload_resumes_with_a_checksum(data_file: pathlib.Path) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300, checksum="sha256")
    before = len(server.requests)
    second = await upload_to(server, data_file, checksum="sha256")
    assert methods_since(server, before) == ["OPTIONS", "HEAD"] + ["PATCH"] * 7
    assert second.url == first.url
    assert second.checksum == "sha256"
    assert all(patch.checksum_ok for patch in server.seen("PATCH"))
    assert server.data_of(first.url) == DATA


async def test_upload_url_does_not_consult_the_journal(
    data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    journaled = await upload_to(server, data_file, stop_at=300)
    other = server.create(len(DATA), DATA[:500])
    before = len(server.requests)
    journal_before = private_journal.read_bytes()
    async with server.client() as client:
        result = await tuspipe.upload_async(
            data_file, upload_url=other, chunk_size=100, http_client=client
        )
    assert result.url == other
    assert result.resumed_from == 500
    assert [r.url for r in server.requests[before:]] == [other] * 6
    # The journal was neither asked nor changed: its upload is still there to be resumed.
    assert private_journal.read_bytes() == journal_before
    assert [e.url for e in unfinished(private_journal)] == [journaled.url]


async def test_bytes_are_not_journaled_without_a_resume_key(
    private_journal: pathlib.Path,
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, DATA, stop_at=300)
    second = await upload_to(server, DATA)
    assert second.url != first.url
    assert second.resumed_from == 0
    assert len(server.seen("POST")) == 2
    assert "HEAD" not in [r.method for r in server.requests]
    assert not private_journal.exists()


async def test_bytes_with_a_resume_key_are_resumed(private_journal: pathlib.Path) -> None:
    server = FakeTusServer()
    first = await upload_to(server, DATA, stop_at=300, resume_key="backup-42")
    [entry] = unfinished(private_journal)
    assert (entry.url, entry.source) == (first.url, "<bytes>")

    # Another key is another source.
    before = len(server.requests)
    other = await upload_to(server, DATA, stop_at=100, resume_key="backup-43")
    assert methods_since(server, before) == ["POST", "PATCH"]
    # The same key over other bytes (of the same size) is not the same source either.
    changed = DATA[:-1] + bytes([DATA[-1] ^ 1])
    before = len(server.requests)
    third = await upload_to(server, changed, stop_at=100, resume_key="backup-42")
    assert methods_since(server, before) == ["POST", "PATCH"]
    assert len({first.url, other.url, third.url}) == 3

    before = len(server.requests)
    again = await upload_to(server, DATA, resume_key="backup-42")
    assert methods_since(server, before) == ["HEAD"] + ["PATCH"] * 7
    assert again.url == first.url
    assert again.resumed_from == 300
    assert server.data_of(first.url) == DATA


async def test_stream_with_a_resume_key_is_resumed() -> None:
    server = FakeTusServer()
    first = await upload_to(server, io.BytesIO(DATA), stop_at=300)
    second = await upload_to(server, io.BytesIO(DATA), stop_at=300)
    assert second.url != first.url  # a stream has no name of its own
    third = await upload_to(server, io.BytesIO(DATA), stop_at=300, resume_key="s")
    fourth = await upload_to(server, io.BytesIO(DATA), resume_key="s")
    assert fourth.url == third.url
    assert fourth.resumed_from == 300
    assert server.data_of(third.url) == DATA


@pytest.mark.parametrize("journal", [None, False])
async def test_journal_off_writes_nothing(
    journal: bool | None, data_file: pathlib.Path, private_journal: pathlib.Path
) -> None:
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300, journal=journal)
    second = await upload_to(server, data_file, journal=journal)
    assert second.url != first.url
    assert second.resumed_from == 0
    assert len(server.seen("POST")) == 2
    assert not private_journal.exists()
    assert not private_journal.with_name("journal.lock").exists()


@pytest.mark.parametrize("as_object", [False, True], ids=["path", "Journal"])
async def test_journal_at_a_path_of_ones_own(
    as_object: bool,
    data_file: pathlib.Path,
    private_journal: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    mine = tmp_path / "state" / "uploads.journal"
    option: str | Journal = Journal(mine) if as_object else str(mine)
    server = FakeTusServer()
    first = await upload_to(server, data_file, stop_at=300, journal=option)
    assert [entry.url for entry in unfinished(mine)] == [first.url]
    assert not private_journal.exists()
    # The default journal knows nothing of it ...
    other = await upload_to(server, data_file, stop_at=100)
    assert other.url != first.url
    # ... and the same journal resumes it.
    again = await upload_to(server, data_file, journal=option)
    assert again.url == first.url
    assert again.resumed_from == 300


def test_upload_blocking_resumes_from_the_journal(data_file: pathlib.Path) -> None:
    server = FakeTusServer()

    def blocking_upload(**kwargs: Any) -> tuspipe.UploadResult:
        client = server.client()
        try:
            return tuspipe.upload(
                data_file, server.endpoint, chunk_size=100, http_client=client, **kwargs
            )
        finally:
            trio.run(client.aclose)

    first = blocking_upload(stop_at=300)
    second = blocking_upload()
    assert second.url == first.url
    assert second.resumed_from == 300
    assert server.data_of(first.url) == DATA
