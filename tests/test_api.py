"""``tuspipe.upload_async`` and ``tuspipe.upload``, against FakeTusServer (no network).

Creation, ``stop_at``, progress, one-pass sources (iterators and unseekable streams, uploaded
with a deferred length), resuming an ``upload_url`` (and retrying its HEAD), checksum
negotiation, and the arguments refused before any request. The journal's part in the api is
``test_journal_api.py``'s.
"""

from __future__ import annotations

import io
import itertools
import math
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import tuspipe
from tests.fakes import FakeTusServer
from tests.helpers import DATA, head_is_transient, patch_end, random_bytes
from tuspipe import (
    Journal,
    ResponseError,
    UnsupportedFeatureError,
    UploadNotFoundError,
    UploadTooLargeError,
    UsageError,
)
from tuspipe._journal import decode_records
from tuspipe._source import Source, open_source


async def test_upload_async_whole() -> None:
    server = FakeTusServer()
    urls: list[str] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA,
            server.endpoint,
            chunk_size=300,
            metadata={"filename": "a.txt"},
            headers={"Authorization": "Bearer t"},
            on_upload_url=urls.append,
            http_client=client,
        )
        assert not client.is_closed  # a shared client is the caller's to close
    assert result == tuspipe.UploadResult(
        url=result.url, size=1000, offset=1000, resumed_from=0, checksum=None
    )
    assert result.complete
    assert urls == [result.url]
    assert server.data_of(result.url) == DATA
    assert server.metadata_of(result.url) == "filename YS50eHQ="
    assert [r.method for r in server.requests] == ["POST", "PATCH", "PATCH", "PATCH", "PATCH"]
    assert server.requests[0].headers["upload-length"] == "1000"
    assert all(r.headers["authorization"] == "Bearer t" for r in server.requests)


async def test_upload_async_relative_location() -> None:
    server = FakeTusServer(relative_locations=True)
    async with server.client() as client:
        result = await tuspipe.upload_async(DATA, server.endpoint, http_client=client)
    assert result.url == server.endpoint + "u1"
    assert server.data_of(result.url) == DATA


@pytest.mark.parametrize("stop_at", [0, 1, 250, 300, 999, 1000])
async def test_upload_async_stop_at(stop_at: int) -> None:
    server = FakeTusServer()
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA, server.endpoint, chunk_size=100, stop_at=stop_at, http_client=client
        )
    assert result.offset == stop_at
    assert result.complete is (stop_at == len(DATA))
    assert server.data_of(result.url) == DATA[:stop_at]
    patches = server.seen("PATCH")
    assert len(patches) == math.ceil(stop_at / 100)
    assert all(patch_end(patch) <= stop_at for patch in patches)
    assert len(server.seen("POST")) == 1


async def test_upload_async_progress() -> None:
    server = FakeTusServer(store_fraction=0.5)
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        await tuspipe.upload_async(
            DATA,
            server.endpoint,
            chunk_size=256,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    offsets = [done for done, _ in progress]
    # The starting offset first, then acknowledged offsets (at most one per PATCH, perhaps
    # coalesced), strictly increasing, ending at the size.
    assert offsets[0] == 0
    assert offsets == sorted(set(offsets))
    assert offsets[-1] == len(DATA)
    assert 2 <= len(offsets) <= 1 + len(server.seen("PATCH"))
    # Each acknowledged offset is where the server said to go on: the next PATCH's offset.
    patches = server.seen("PATCH")
    assert set(offsets[1:]) <= {patch.offset for patch in patches[1:]} | {len(DATA)}
    assert {total for _, total in progress} == {len(DATA)}


async def test_upload_async_progress_of_a_journaled_file(tmp_path: pathlib.Path) -> None:
    # A path source is journaled: each acknowledged offset is written to the journal from a
    # worker thread, during which newer offsets may be coalesced.
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    server = FakeTusServer()
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            path,
            server.endpoint,
            chunk_size=10,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    assert result.complete
    offsets = [done for done, _ in progress]
    assert offsets[0] == 0
    assert offsets == sorted(set(offsets))
    assert offsets[-1] == len(DATA)
    assert len(offsets) <= 1 + len(server.seen("PATCH")) == 101
    assert all(offset % 10 == 0 for offset in offsets)
    assert {total for _, total in progress} == {len(DATA)}


async def test_upload_async_progress_is_strictly_increasing_after_a_patch_without_progress() -> (
    None
):
    # The server answers the first two PATCHes with its unchanged offset 0: that is no
    # progress, and the offset 0 was reported already.
    server = FakeTusServer()
    server.script(204, {"Tus-Resumable": "1.0.0", "Upload-Offset": "0"}, method="PATCH", times=2)
    progress: list[int] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA,
            server.endpoint,
            chunk_size=250,
            on_progress=lambda done, total: progress.append(done),
            http_client=client,
        )
    assert result.complete
    assert progress[0] == 0
    assert progress[-1] == len(DATA)
    assert progress == sorted(set(progress))


async def test_upload_async_empty_source() -> None:
    server = FakeTusServer()
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            b"",
            server.endpoint,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    assert [r.method for r in server.requests] == ["POST"]
    assert server.requests[0].headers["upload-length"] == "0"
    assert result.size == result.offset == 0
    assert result.complete
    assert progress == [(0, 0)]  # the starting offset, which is also the end


# ---- one-pass sources (deferred length) ----------------------------------------------------


def odd_pieces(data: bytes, sizes: tuple[int, ...] = (1, 7, 64, 3, 250)) -> Iterator[bytes]:
    """`data` in pieces of varying, odd sizes (cycling through `sizes`)."""
    offset = 0
    for size in itertools.cycle(sizes):
        if offset >= len(data):
            return
        yield data[offset : offset + size]
        offset += size


async def odd_pieces_async(data: bytes) -> AsyncIterator[bytes]:
    for piece in odd_pieces(data):
        await trio.lowlevel.checkpoint()
        yield piece


def check_deferred(server: FakeTusServer, url: str, data: bytes) -> None:
    """The upload was created with a deferred length, which only its last PATCH declared."""
    [post] = server.seen("POST")
    assert post.headers["upload-defer-length"] == "1"
    assert "upload-length" not in post.headers
    patches = server.seen("PATCH")
    assert patches, "a deferred upload needs PATCHes"
    assert patches[-1].headers["upload-length"] == str(len(data))
    assert patch_end(patches[-1]) == len(data)
    # Exactly the PATCHes carrying the last bytes declare it (a resend of them too).
    for patch in patches:
        if patch_end(patch) == len(data):
            assert patch.headers["upload-length"] == str(len(data))
        else:
            assert "upload-length" not in patch.headers
    assert server.length_of(url) == len(data)
    assert server.data_of(url) == data
    for patch in patches:
        assert patch.body == data[patch.offset : patch_end(patch)]


@pytest.mark.parametrize("size", [1000, 1007, 101], ids=["exact-multiple", "odd", "just-over"])
@pytest.mark.parametrize("kind", ["iterator", "async-iterator", "stream"])
async def test_upload_async_one_pass_source_defers_its_length(size: int, kind: str) -> None:
    data = random_bytes(size, seed=size)
    source: Any
    if kind == "iterator":
        source = odd_pieces(data)
    elif kind == "async-iterator":
        source = odd_pieces_async(data)
    else:
        source = _UnseekableStream(data)
    server = FakeTusServer()
    async with server.client() as client:
        result = await tuspipe.upload_async(
            source, server.endpoint, chunk_size=100, http_client=client
        )
    assert result == tuspipe.UploadResult(
        url=result.url, size=size, offset=size, resumed_from=0, checksum=None
    )
    # OPTIONS first: an upload of deferred length needs the server to offer it.
    assert [r.method for r in server.requests][:2] == ["OPTIONS", "POST"]
    assert len(server.seen("PATCH")) == math.ceil(size / 100)
    check_deferred(server, result.url, data)


class _UnseekableStream(io.RawIOBase):
    """A binary stream that cannot seek (like a pipe), returning at most 37 bytes a read."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        piece = self._data[self._position : self._position + min(len(buffer), 37)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)


@pytest.mark.parametrize("size", [0, 1, 99, 100], ids=["empty", "one-byte", "odd", "one-chunk"])
async def test_upload_async_one_pass_source_ending_in_the_first_chunk_has_a_known_length(
    size: int,
) -> None:
    data = random_bytes(size, seed=5)
    server = FakeTusServer()
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            odd_pieces(data),
            server.endpoint,
            chunk_size=100,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    # An ordinary upload: no OPTIONS, a POST with the length, nothing declared later.
    assert [r.method for r in server.requests] == ["POST"] + ["PATCH"] * (size > 0)
    assert server.requests[0].headers["upload-length"] == str(size)
    assert "upload-defer-length" not in server.requests[0].headers
    assert all("upload-length" not in patch.headers for patch in server.seen("PATCH"))
    assert server.data_of(result.url) == data
    assert (result.size, result.offset) == (size, size)
    assert {total for _, total in progress} == {size}


@pytest.mark.parametrize("algorithm", [None, "sha256"])
async def test_upload_async_one_pass_source_resends_from_the_retained_bytes(
    algorithm: str | None,
) -> None:
    # The server keeps half of each PATCH: every chunk is continued from the middle, from the
    # bytes the source still holds (a partial resend needs a fresh digest of them).
    data = random_bytes(2345, seed=6)
    server = FakeTusServer(store_fraction=0.5)
    async with server.client() as client:
        result = await tuspipe.upload_async(
            odd_pieces(data),
            server.endpoint,
            chunk_size=256,
            read_size=50,
            checksum=algorithm,
            http_client=client,
        )
    assert result.complete
    assert result.checksum == algorithm
    check_deferred(server, result.url, data)
    if algorithm is not None:
        assert all(patch.checksum_ok for patch in server.seen("PATCH"))


async def test_upload_async_one_pass_source_progress_has_no_total_until_the_end() -> None:
    data = random_bytes(1000, seed=7)
    server = FakeTusServer()
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        await tuspipe.upload_async(
            odd_pieces(data),
            server.endpoint,
            chunk_size=100,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    offsets = [done for done, _ in progress]
    assert offsets[0] == 0
    assert offsets == sorted(set(offsets))
    assert progress[0] == (0, None)  # the size is not known when the upload begins
    assert progress[-1] == (1000, 1000)  # ... and it is at the end
    totals = [total for _, total in progress]
    # once known, it stays known
    first_known = next(index for index, total in enumerate(totals) if total is not None)
    assert set(totals[first_known:]) == {1000}
    assert set(totals[:first_known]) == {None}


async def test_upload_async_one_pass_source_is_not_journaled(
    private_journal: pathlib.Path,
) -> None:
    server = FakeTusServer()
    async with server.client() as client:
        result = await tuspipe.upload_async(
            odd_pieces(random_bytes(500)), server.endpoint, chunk_size=100, http_client=client
        )
    assert result.complete
    assert Journal(private_journal).unfinished() == []
    assert not private_journal.exists() or decode_records(private_journal.read_bytes())[0] == []


async def test_upload_async_one_pass_source_holds_at_most_a_chunk_and_a_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At each PATCH, once everything else waits, the test looks at what the source holds.
    chunk_size, read_size = 100, 10
    data = random_bytes(3000, seed=8)
    opened: list[Source] = []
    held: list[int] = []

    def spy(source: Any, **options: Any) -> Source:
        opened.append(open_source(source, **options))
        return opened[-1]

    async def measure(request: httpx.Request) -> None:
        if request.method == "PATCH":
            await trio.testing.wait_all_tasks_blocked()
            [source] = opened
            held.append(vars(source)["_filled"] - vars(source)["_floor"])

    monkeypatch.setattr("tuspipe._upload.open_source", spy)
    server = FakeTusServer(before_request=measure)
    async with server.client() as client:
        result = await tuspipe.upload_async(
            odd_pieces(data, (1, 3, 5)),
            server.endpoint,
            chunk_size=chunk_size,
            read_size=read_size,
            http_client=client,
        )
    assert result.complete
    assert len(held) == 30
    # One chunk and one read, and an item may overshoot a read (by 4 bytes at most here).
    assert max(held) <= chunk_size + read_size + 4
    assert max(held) > chunk_size  # it does read ahead of the chunk being sent
    check_deferred(server, result.url, data)


@pytest.mark.parametrize("piece", [str, list])
async def test_upload_async_iterator_of_non_bytes_is_usage_error(piece: type) -> None:
    server = FakeTusServer()
    items = [b"ok", piece("not bytes")]
    async with server.client() as client:
        with pytest.raises(UsageError, match=f"yielded a {piece.__name__}; it must yield bytes"):
            await tuspipe.upload_async(iter(items), server.endpoint, http_client=client)
    assert server.requests == []


@pytest.mark.parametrize(
    "options",
    [{"stop_at": 100}, {"upload_url": "http://tus.test/files/u9"}, {"resume_key": "k"}],
    ids=["stop_at", "upload_url", "resume_key"],
)
async def test_upload_async_one_pass_source_refuses_what_needs_a_second_reading(
    options: dict[str, Any],
) -> None:
    server = FakeTusServer()
    given: dict[str, Any] = {"url": server.endpoint, **options}
    if "upload_url" in options:
        given["url"] = None
    async with server.client() as client:
        with pytest.raises(UsageError, match=r"stop_at=|upload_url=|resume_key="):
            await tuspipe.upload_async(
                odd_pieces(random_bytes(500)), chunk_size=100, http_client=client, **given
            )
    assert server.requests == []


async def test_upload_async_one_pass_source_needs_creation_defer_length() -> None:
    server = FakeTusServer(extensions=("creation", "termination"))
    async with server.client() as client:
        with pytest.raises(UnsupportedFeatureError, match="creation-defer-length"):
            await tuspipe.upload_async(
                odd_pieces(random_bytes(500)), server.endpoint, chunk_size=100, http_client=client
            )
    assert [r.method for r in server.requests] == ["OPTIONS"]


@pytest.mark.parametrize("algorithm", ["sha1", "auto"])
async def test_upload_async_one_pass_source_with_checksums(algorithm: str) -> None:
    # The checksum's OPTIONS answers the deferred-length question too: it is asked once.
    data = random_bytes(777, seed=9)
    server = FakeTusServer(checksum_algorithms=("sha1",))
    async with server.client() as client:
        result = await tuspipe.upload_async(
            odd_pieces(data),
            server.endpoint,
            chunk_size=100,
            checksum=algorithm,
            http_client=client,
        )
    assert result.checksum == "sha1"
    assert [r.method for r in server.requests].count("OPTIONS") == 1
    assert all(patch.checksum_ok for patch in server.seen("PATCH"))
    check_deferred(server, result.url, data)


@pytest.mark.parametrize("already", [1, 300, 999])
async def test_upload_async_resumes_from_head_offset(already: int) -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA[:already])
    progress: list[int] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA,
            upload_url=url,
            chunk_size=256,
            on_progress=lambda done, total: progress.append(done),
            http_client=client,
        )
    assert result.resumed_from == already
    assert result.offset == len(DATA)
    assert result.url == url
    assert server.data_of(url) == DATA
    methods = [r.method for r in server.requests]
    assert methods[0] == "HEAD"
    assert "POST" not in methods
    patches = server.seen("PATCH")
    assert patches[0].offset == already
    assert sum(len(patch.body) for patch in patches) == len(DATA) - already
    assert progress[0] == already  # the starting offset, before any PATCH
    assert progress[1] > already
    assert progress == sorted(set(progress))
    assert progress[-1] == len(DATA)


async def test_upload_async_resume_of_complete_upload_sends_nothing() -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA)
    progress: list[tuple[int, int | None]] = []
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA,
            upload_url=url,
            on_progress=lambda done, total: progress.append((done, total)),
            http_client=client,
        )
    assert [r.method for r in server.requests] == ["HEAD"]
    assert result.resumed_from == result.offset == len(DATA)
    assert result.complete
    assert progress == [(len(DATA), len(DATA))]


@pytest.mark.parametrize("length", [len(DATA) - 1, len(DATA) + 1, None])
async def test_upload_async_resume_of_a_different_upload(length: int | None) -> None:
    server = FakeTusServer()
    url = server.create(length)
    progress: list[int] = []
    async with server.client() as client:
        with pytest.raises(UsageError, match="not an upload of this source") as info:
            await tuspipe.upload_async(
                DATA,
                upload_url=url,
                on_progress=lambda done, total: progress.append(done),
                http_client=client,
            )
    assert not isinstance(info.value, ResponseError)
    assert str(length) in str(info.value)
    assert [r.method for r in server.requests] == ["HEAD"]
    assert progress == []
    assert server.data_of(url) == b""


@pytest.mark.parametrize("status", [404, 410, 403])
async def test_upload_async_resume_of_a_missing_upload(
    status: int, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    url = server.endpoint + "gone"
    if status != 404:
        server.script(status, {"Tus-Resumable": "1.0.0"}, method="HEAD")
    start = trio.current_time()
    async with server.client() as client:
        with pytest.raises(UploadNotFoundError) as info:
            await tuspipe.upload_async(DATA, upload_url=url, http_client=client)
    assert info.value.status_code == status
    # Not worth another try: one HEAD, no waiting, nothing else.
    assert [r.method for r in server.requests] == ["HEAD"]
    assert trio.current_time() == start


@pytest.mark.parametrize("status", [503, 500, 502, 504, 408, 423, 429, None])
async def test_upload_async_head_is_retried_on_transient_failures(
    status: int | None, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA[:300])
    head_is_transient(status)(server)
    progress: list[int] = []
    start = trio.current_time()
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA,
            upload_url=url,
            chunk_size=400,
            on_progress=lambda done, total: progress.append(done),
            http_client=client,
        )
    elapsed = trio.current_time() - start
    assert result.resumed_from == 300
    assert result.complete
    assert server.data_of(url) == DATA
    methods = [r.method for r in server.requests]
    assert "POST" not in methods
    if status is not None:
        assert methods[:3] == ["HEAD", "HEAD", "HEAD"]
    assert methods[-2:] == ["PATCH", "PATCH"]
    assert progress == [300, 700, 1000]
    # Two waits of the default policy: [0.25, 0.5] then [0.5, 1] seconds, in virtual time.
    assert 0.75 <= elapsed <= 1.5


async def test_upload_async_head_honours_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA[:300])
    server.script(429, {"Tus-Resumable": "1.0.0", "Retry-After": "7"}, method="HEAD")
    start = trio.current_time()
    async with server.client() as client:
        result = await tuspipe.upload_async(DATA, upload_url=url, http_client=client)
    assert trio.current_time() - start == pytest.approx(7)
    assert result.resumed_from == 300
    assert server.data_of(url) == DATA


async def test_upload_async_head_gives_up_after_the_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA[:300])
    server.script(503, {"Tus-Resumable": "1.0.0"}, b"down", method="HEAD", times=10)
    start = trio.current_time()
    async with server.client() as client:
        with pytest.raises(ResponseError) as info:
            await tuspipe.upload_async(DATA, upload_url=url, http_client=client)
    elapsed = trio.current_time() - start
    assert info.value.status_code == 503
    assert info.value.body == b"down"
    # The default policy: 5 retries after the first try, waits of [0.5, 1] x 0.5 * 2**n.
    assert [r.method for r in server.requests] == ["HEAD"] * 6
    assert sum(0.25 * 2**n for n in range(5)) <= elapsed <= sum(0.5 * 2**n for n in range(5))
    assert server.data_of(url) == DATA[:300]


@pytest.mark.parametrize("status", [400, 401])
async def test_upload_async_head_refusal_is_not_retried(
    status: int, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    url = server.create(len(DATA), DATA[:300])
    server.script(status, {"Tus-Resumable": "1.0.0"}, method="HEAD", times=2)
    start = trio.current_time()
    async with server.client() as client:
        with pytest.raises(ResponseError) as info:
            await tuspipe.upload_async(DATA, upload_url=url, http_client=client)
    assert info.value.status_code == status
    assert [r.method for r in server.requests] == ["HEAD"]
    assert trio.current_time() == start


async def test_upload_async_checksum_auto_uses_the_strongest_offered() -> None:
    server = FakeTusServer(checksum_algorithms=("sha1", "sha256", "md5"))
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA, server.endpoint, chunk_size=400, checksum="auto", http_client=client
        )
    assert result.checksum == "sha256"
    assert server.requests[0].method == "OPTIONS"
    assert "tus-resumable" not in server.requests[0].headers
    patches = server.seen("PATCH")
    assert len(patches) == 3
    assert all(patch.headers["upload-checksum"].startswith("sha256 ") for patch in patches)
    assert all(patch.checksum_ok for patch in patches)
    assert server.data_of(result.url) == DATA


async def test_upload_async_checksum_auto_without_checksum_extension() -> None:
    server = FakeTusServer(extensions=("creation",))
    async with server.client() as client:
        result = await tuspipe.upload_async(
            DATA, server.endpoint, checksum="auto", http_client=client
        )
    assert result.checksum is None
    assert all("upload-checksum" not in patch.headers for patch in server.seen("PATCH"))
    assert server.data_of(result.url) == DATA


async def test_upload_async_explicit_checksum_not_offered() -> None:
    server = FakeTusServer(checksum_algorithms=("sha1",))
    async with server.client() as client:
        with pytest.raises(UnsupportedFeatureError):
            await tuspipe.upload_async(DATA, server.endpoint, checksum="sha512", http_client=client)
    assert [r.method for r in server.requests] == ["OPTIONS"]


async def test_upload_async_server_error_on_creation() -> None:
    server = FakeTusServer(max_size=10)
    async with server.client() as client:
        with pytest.raises(UploadTooLargeError) as info:
            await tuspipe.upload_async(DATA, server.endpoint, http_client=client)
    assert info.value.status_code == 413
    assert info.value.body == b"upload too large"


async def test_upload_blocking_call_inside_trio_is_usage_error() -> None:
    server = FakeTusServer()
    async with server.client() as client:
        with pytest.raises(UsageError, match="upload_async"):
            tuspipe.upload(DATA, server.endpoint, http_client=client)
    assert server.requests == []


def test_upload_blocking_outside_trio() -> None:
    server = FakeTusServer()
    client = server.client()
    try:
        result = tuspipe.upload(DATA, server.endpoint, chunk_size=512, http_client=client)
    finally:
        trio.run(client.aclose)
    assert result.complete
    assert server.data_of(result.url) == DATA
    assert len(server.seen("PATCH")) == 2


BAD_ARGUMENTS: list[tuple[str, dict[str, Any]]] = [
    ("chunk_size=0", {"chunk_size": 0}),
    ("chunk_size=-1", {"chunk_size": -1}),
    ("chunk_size=True", {"chunk_size": True}),
    ("chunk_size=1.5", {"chunk_size": 1.5}),
    ("chunk_size='1'", {"chunk_size": "1"}),
    ("read_size=0", {"read_size": 0}),
    ("read_ahead=0", {"read_ahead": 0}),
    ("stop_at=-1", {"stop_at": -1}),
    ("stop_at>size", {"stop_at": len(DATA) + 1}),
    ("stop_at=1.0", {"stop_at": 1.0}),
    ("url=ftp", {"url": "ftp://x"}),
    ("url=relative", {"url": "files/"}),
    ("no-url", {"url": None}),
    ("upload_url=relative", {"url": None, "upload_url": "files/abc"}),
    ("checksum=nope", {"checksum": "nope"}),
    ("metadata-key-space", {"metadata": {"a b": "x"}}),
    ("metadata-value-int", {"metadata": {"a": 1}}),
    ("reserved-header", {"headers": {"Upload-Offset": "0"}}),
    ("header-newline", {"headers": {"X-A": "a\r\nb"}}),
    ("on_progress-not-callable", {"on_progress": "print"}),
    ("on_upload_url-not-callable", {"on_upload_url": "print"}),
    ("journal=3", {"journal": 3}),
    ("journal=bytes", {"journal": b"/tmp/journal"}),
    ("resume_key=''", {"resume_key": ""}),
    ("resume_key=5", {"resume_key": 5}),
    ("timeout=0", {"timeout": 0}),
    ("source=int", {"source": 12}),
]


@pytest.mark.parametrize(
    "kwargs", [kw for _, kw in BAD_ARGUMENTS], ids=[i for i, _ in BAD_ARGUMENTS]
)
async def test_upload_async_bad_arguments_fail_before_any_request(kwargs: dict[str, Any]) -> None:
    server = FakeTusServer()
    arguments: dict[str, Any] = {"source": DATA, "url": server.endpoint, **kwargs}
    async with server.client() as client:
        with pytest.raises(UsageError) as info:
            await tuspipe.upload_async(http_client=client, **arguments)
    assert isinstance(info.value, ValueError)
    assert server.requests == []


async def test_upload_async_missing_file_fails_before_any_request(tmp_path: pathlib.Path) -> None:
    server = FakeTusServer()
    async with server.client() as client:
        with pytest.raises(FileNotFoundError):
            await tuspipe.upload_async(tmp_path / "nope", server.endpoint, http_client=client)
    assert server.requests == []


async def test_upload_async_from_a_file_object(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    server = FakeTusServer()
    with path.open("rb") as stream:
        stream.seek(100)
        async with server.client() as client:
            result = await tuspipe.upload_async(
                stream, server.endpoint, chunk_size=256, http_client=client
            )
        assert not stream.closed
    assert result.size == len(DATA) - 100
    assert server.data_of(result.url) == DATA[100:]
