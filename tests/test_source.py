"""Sources: what open_source accepts, what it refuses, and read_at's exactness."""

from __future__ import annotations

import array
import io
import os
import pathlib
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, BinaryIO, cast

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from tuspipe import SourceChangedError, TusError, UsageError
from tuspipe._source import (
    INLINE_READ_LIMIT,
    Source,
    SourceLike,
    open_source,
    read_bytes,
    slice_source,
)

DATA = bytes(range(256)) * 4 + b"tail"


@pytest.fixture
def data_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


def check_whole(source: Source, expected: bytes) -> None:
    assert source.size == len(expected)
    assert source.read_at(0, len(expected)) == expected
    assert source.read_at(len(expected), 0) == b""


def test_path_as_str(data_file: pathlib.Path) -> None:
    source = open_source(str(data_file))
    try:
        check_whole(source, DATA)
        assert source.name == str(data_file)
    finally:
        source.close()


def test_path_as_pathlib(data_file: pathlib.Path) -> None:
    source = open_source(data_file)
    try:
        check_whole(source, DATA)
        assert source.name == str(data_file)
    finally:
        source.close()


def test_empty_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    source = open_source(path)
    try:
        check_whole(source, b"")
    finally:
        source.close()


@pytest.mark.parametrize(
    "make",
    [bytes, bytearray, memoryview, lambda data: memoryview(bytearray(data))],
    ids=["bytes", "bytearray", "memoryview", "memoryview-of-bytearray"],
)
def test_bytes_like(make: Callable[[bytes], Any]) -> None:
    source = open_source(make(DATA))
    try:
        check_whole(source, DATA)
    finally:
        source.close()


def test_strided_memoryview() -> None:
    source = open_source(memoryview(b"a-b-c-d-")[::2])
    try:
        check_whole(source, b"abcd")
    finally:
        source.close()


def test_memoryview_with_wide_items_counts_bytes() -> None:
    numbers = array.array("I", [1, 2, 3])
    source = open_source(memoryview(numbers))
    try:
        assert source.size == 3 * numbers.itemsize
        assert source.read_at(0, source.size) == numbers.tobytes()
    finally:
        source.close()


def test_closing_a_bytes_source_releases_the_buffer() -> None:
    data = bytearray(b"abcdef")
    source = open_source(data)
    try:
        assert source.read_at(2, 3) == b"cde"
    finally:
        source.close()
    # Closing releases the view, so the caller may resize its buffer again.
    data.extend(b"gh")
    assert data == b"abcdefgh"


def test_seekable_binary_file_uploads_from_current_position(data_file: pathlib.Path) -> None:
    with data_file.open("rb") as stream:
        assert stream.read(3) == DATA[:3]
        source = open_source(stream)
        try:
            assert source.size == len(DATA) - 3
            assert source.read_at(0, 5) == DATA[3:8]
            assert source.read_at(10, 4) == DATA[13:17]
            check_whole(source, DATA[3:])
        finally:
            source.close()
        # The caller owns the stream: it stays open, and its position is its own business.
        assert not stream.closed
        stream.seek(0)
        assert stream.read(3) == DATA[:3]


def test_unbuffered_file(data_file: pathlib.Path) -> None:
    with open(data_file, "rb", buffering=0) as stream:
        stream.seek(100)
        source = open_source(stream)
        try:
            check_whole(source, DATA[100:])
        finally:
            source.close()


def test_bytesio_from_its_position() -> None:
    stream = io.BytesIO(DATA)
    stream.seek(7)
    source = open_source(stream)
    try:
        check_whole(source, DATA[7:])
        assert source.read_at(3, 2) == DATA[10:12]
    finally:
        source.close()
    assert not stream.closed


def test_bytesio_at_start() -> None:
    source = open_source(io.BytesIO(b"hello"))
    try:
        check_whole(source, b"hello")
    finally:
        source.close()


def test_text_mode_file_is_refused(data_file: pathlib.Path) -> None:
    with (
        data_file.open("r", encoding="latin-1") as stream,
        pytest.raises(UsageError, match="binary"),
    ):
        open_source(cast(BinaryIO, stream))


def test_stringio_is_refused() -> None:
    with pytest.raises(UsageError):
        open_source(cast(BinaryIO, io.StringIO("text")))


def test_directory_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(IsADirectoryError):
        open_source(tmp_path)


def test_missing_path(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_source(tmp_path / "nope")


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)

    def give_up(signum: int, frame: object) -> None:
        raise TimeoutError("open_source blocked on a FIFO")

    # A guard, not a wait: an open() that blocks on the FIFO is interrupted after 5 s.
    previous = signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        with pytest.raises(UsageError, match="regular file"):
            open_source(path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_character_device_is_refused() -> None:
    with pytest.raises(UsageError, match="regular file"):
        open_source(os.devnull)


@pytest.mark.parametrize("value", [3, 1.5, None, object()])
def test_other_types_are_refused(value: object) -> None:
    name = type(value).__name__
    with pytest.raises(
        UsageError,
        match=rf"^cannot upload a {name}: pass a path, bytes, a binary file object, "
        r"or an iterable of bytes$",
    ):
        open_source(cast(SourceLike, value))


def test_a_dict_is_refused_though_it_is_iterable() -> None:
    with pytest.raises(UsageError, match="cannot upload a dict"):
        open_source(cast(SourceLike, {b"key": b"value"}))


# --------------------------------------------------------------------------------------------
# read_at
# --------------------------------------------------------------------------------------------


def _check_reads(source: Source, data: bytes, draw: st.DataObject) -> None:
    for _ in range(5):
        offset = draw.draw(st.integers(min_value=0, max_value=len(data)))
        length = draw.draw(st.integers(min_value=0, max_value=len(data) - offset))
        assert source.read_at(offset, length) == data[offset : offset + length]


@settings(max_examples=60)
@given(data=st.binary(max_size=2000), skip=st.integers(min_value=0, max_value=50), draw=st.data())
def test_read_at_is_exact_for_every_kind(data: bytes, skip: int, draw: st.DataObject) -> None:
    skip = min(skip, len(data))
    sources: list[tuple[Source, bytes]] = [
        (open_source(data), data),
        (open_source(bytearray(data)), data),
    ]
    stream = io.BytesIO(data)
    stream.seek(skip)
    sources.append((open_source(stream), data[skip:]))
    with tempfile.TemporaryFile() as file_stream:
        file_stream.write(data)
        file_stream.seek(skip)
        sources.append((open_source(cast(BinaryIO, file_stream)), data[skip:]))
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "data")
            with open(path, "wb") as out:
                out.write(data)
            sources.append((open_source(path), data))
            for source, expected in sources:
                try:
                    assert source.size == len(expected)
                    _check_reads(source, expected, draw)
                finally:
                    source.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda path: open_source(path),
        lambda path: open_source(io.BytesIO(path.read_bytes())),
        lambda path: open_source(DATA),
    ],
    ids=["path", "bytesio", "bytes"],
)
@pytest.mark.parametrize(("offset", "length"), [(len(DATA) - 1, 2), (len(DATA), 1), (0, 5000)])
def test_read_past_the_end_is_source_changed(
    data_file: pathlib.Path, make: Callable[[pathlib.Path], Source], offset: int, length: int
) -> None:
    source = make(data_file)
    try:
        with pytest.raises(SourceChangedError):
            source.read_at(offset, length)
    finally:
        source.close()


def test_truncated_file_is_source_changed(data_file: pathlib.Path) -> None:
    source = open_source(data_file)
    try:
        assert source.size == len(DATA)
        os.truncate(data_file, 40)
        # even the bytes still there are refused: they may belong to another version
        with pytest.raises(SourceChangedError, match="changed during the upload"):
            source.read_at(0, 40)
        with pytest.raises(SourceChangedError, match="shrink"):
            source.read_at(30, 20)
        with pytest.raises(SourceChangedError):
            source.read_at(100, 10)
    finally:
        source.close()


def test_truncated_open_file_is_source_changed(data_file: pathlib.Path) -> None:
    with data_file.open("rb") as stream:
        stream.seek(10)
        source = open_source(stream)
        os.truncate(data_file, 20)
        with pytest.raises(SourceChangedError, match="changed during the upload"):
            source.read_at(0, 10)
        with pytest.raises(SourceChangedError):
            source.read_at(5, 10)


def test_truncated_bytesio_is_source_changed() -> None:
    stream = io.BytesIO(DATA)
    source = open_source(stream)
    stream.truncate(10)
    with pytest.raises(SourceChangedError):
        source.read_at(5, 10)


def test_source_changed_is_a_tus_error_not_an_os_error() -> None:
    assert issubclass(SourceChangedError, TusError)
    assert not issubclass(SourceChangedError, OSError)


# --------------------------------------------------------------------------------------------
# identity: what names a source across processes (the journal's fingerprint uses it)
# --------------------------------------------------------------------------------------------


def identity_of(source: SourceLike) -> str | None:
    opened = open_source(source)
    try:
        return opened.identity
    finally:
        opened.close()


def test_path_identity_names_the_file(data_file: pathlib.Path) -> None:
    identity = identity_of(data_file)
    assert identity is not None
    info = data_file.stat()
    assert os.path.abspath(data_file) in identity
    assert str(info.st_ino) in identity
    assert str(info.st_size) in identity
    assert str(info.st_mtime_ns) in identity
    # The same file opened again, by another spelling of its path, is the same source.
    assert identity_of(str(data_file)) == identity
    assert identity_of(data_file.parent / "." / data_file.name) == identity


def test_path_identity_of_a_relative_path_is_absolute(
    data_file: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(data_file.parent)
    assert identity_of(data_file.name) == identity_of(data_file)


def test_path_identity_changes_with_the_modification_time(data_file: pathlib.Path) -> None:
    before = identity_of(data_file)
    info = data_file.stat()
    os.utime(data_file, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    assert identity_of(data_file) != before


def test_path_identity_changes_when_the_file_is_replaced(data_file: pathlib.Path) -> None:
    before = identity_of(data_file)
    info = data_file.stat()
    replacement = data_file.with_name("replacement")
    replacement.write_bytes(DATA)
    os.utime(replacement, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(replacement, data_file)  # same path, size and time; another inode
    assert data_file.stat().st_ino != info.st_ino
    assert identity_of(data_file) != before


def test_path_identity_differs_between_files(tmp_path: pathlib.Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_bytes(DATA)
    second.write_bytes(DATA)
    assert identity_of(first) != identity_of(second)


def test_sources_without_a_name_have_no_identity(data_file: pathlib.Path) -> None:
    assert identity_of(DATA) is None
    assert identity_of(bytearray(DATA)) is None
    assert identity_of(memoryview(DATA)) is None
    assert identity_of(io.BytesIO(DATA)) is None
    # An open file object may stand for anything from anywhere: only resume_key names it.
    with data_file.open("rb") as stream:
        assert identity_of(stream) is None


# --------------------------------------------------------------------------------------------
# one-pass sources: non-seekable streams, iterables and async iterables of bytes
# --------------------------------------------------------------------------------------------


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[offset : offset + size] for offset in range(0, len(data), size)]


class _NotSeekable(io.RawIOBase):
    """A readable binary stream that cannot seek; each read returns at most 7 bytes."""

    def __init__(self, data: bytes = DATA) -> None:
        self._data = data
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        piece = self._data[self._position : self._position + min(len(buffer), 7)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)


async def read_all(source: Source, step: int = 100) -> bytes:
    """Read a one-pass source to its end, releasing as it goes (as the sender does)."""
    parts = []
    offset = 0
    while True:
        end = await source.ensure(offset + step)
        if end == offset:
            break
        parts.append(source.read_at(offset, end - offset))
        source.release(end)
        offset = end
    assert source.size == offset
    return b"".join(parts)


async def test_non_seekable_object_is_a_one_pass_source() -> None:
    stream = _NotSeekable()
    source = open_source(cast(BinaryIO, stream))
    try:
        assert source.size is None  # unknown until its end is read
        assert source.identity is None
        assert source.name == "<_NotSeekable>"
        assert await read_all(source) == DATA
        assert source.size == len(DATA)
    finally:
        source.close()
    assert not stream.closed  # the caller's stream is left open


async def test_one_pass_ensure_read_at_and_release() -> None:
    source = open_source(iter(pieces(DATA, 10)), read_size=4, retention=1 << 20)
    assert await source.ensure(0) == 0
    assert await source.ensure(25) == 25
    assert source.size is None
    assert source.read_at(0, 25) == DATA[:25]
    assert source.read_at(7, 11) == DATA[7:18]  # across items
    assert source.read_at(25, 0) == b""
    # an iterator's item is read whole: bytes up to 30 are held, none beyond
    assert source.read_at(25, 5) == DATA[25:30]
    with pytest.raises(RuntimeError, match="not held"):
        source.read_at(29, 2)
    source.release(12)
    assert source.read_at(12, 10) == DATA[12:22]
    for offset, length in [(0, 1), (11, 1), (11, 5)]:
        with pytest.raises(RuntimeError, match="not held"):
            source.read_at(offset, length)  # released bytes are gone
    source.release(5)  # releasing less than before changes nothing
    with pytest.raises(RuntimeError, match="not held"):
        source.read_at(5, 1)
    # to the end: ensure says how many bytes exist, and the size becomes known
    assert await source.ensure(len(DATA) + 100) == len(DATA)
    assert source.size == len(DATA)
    assert await source.ensure(len(DATA) + 200) == len(DATA)
    assert source.read_at(len(DATA) - 4, 4) == DATA[-4:]
    source.release(len(DATA))
    with pytest.raises(RuntimeError, match="not held"):
        source.read_at(len(DATA) - 1, 1)
    source.close()


async def test_one_pass_release_drops_whole_blocks_only_when_passed() -> None:
    source = open_source(iter([b"abcdef", b"ghij"]), retention=1 << 20)
    assert await source.ensure(10) == 10
    source.release(4)  # inside the first block: its tail is still readable
    assert source.read_at(4, 6) == b"efghij"
    source.release(6)
    assert source.read_at(6, 4) == b"ghij"


async def test_one_pass_ensure_waits_for_release_at_the_retention_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pulled: list[int] = []

    async def counted() -> AsyncIterator[bytes]:
        # (async: read in this thread, so that waiting for all tasks to block is enough to
        # know a read is over; a worker thread's read would race the virtual clock)
        for index, piece in enumerate(pieces(DATA, 10)):
            pulled.append(index)
            yield piece

    source = open_source(counted(), retention=30)
    assert await source.ensure(30) == 30
    assert len(pulled) == 3
    # 30 bytes held beyond the acknowledged offset 0: reading on must wait for a release.
    with trio.move_on_after(3600) as waited:
        await source.ensure(45)
    assert waited.cancelled_caught  # an hour of (virtual) time passed, and it still waited
    assert len(pulled) == 3  # ... without reading a byte more
    done: list[int] = []

    async def ensure_45() -> None:
        done.append(await source.ensure(45))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ensure_45)
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(60)
        assert done == []
        assert len(pulled) == 3
        source.release(10)  # 20 held: one read more is allowed
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(60)
        assert done == []  # 40 read, 30 held again: still short of 45, it waits again
        assert len(pulled) == 4
        source.release(20)
        await trio.testing.wait_all_tasks_blocked()
        assert done == [45]
        assert len(pulled) == 5
    assert source.read_at(20, 25) == DATA[20:45]
    with pytest.raises(RuntimeError, match="not held"):
        source.read_at(19, 1)


async def test_one_pass_items_may_be_any_bytes_like_and_empty_ones_are_skipped() -> None:
    items: list[Any] = [b"", bytearray(b"ab"), memoryview(b"cd"), b"", b"e", b""]
    source = open_source(iter(items))
    assert await read_all(source) == b"abcde"


@pytest.mark.parametrize("bad", ["text", 5, None, ["b"]], ids=["str", "int", "None", "list"])
async def test_one_pass_items_that_are_not_bytes_are_usage_errors(bad: object) -> None:
    source = open_source(cast(SourceLike, [b"fine", bad]))  # refused when read, not before
    assert source.size is None
    with pytest.raises(UsageError, match=rf"yielded a {type(bad).__name__}; it must yield bytes"):
        await source.ensure(100)


async def test_a_list_of_text_is_refused_when_read() -> None:
    source = open_source(cast(SourceLike, ["a"]))
    with pytest.raises(UsageError, match="yielded a str"):
        await source.ensure(1)


async def test_async_generator_is_a_one_pass_source() -> None:
    async def generate() -> AsyncIterator[bytes]:
        for piece in pieces(DATA, 33):
            await trio.sleep(0)
            yield piece

    source = open_source(generate(), retention=100)
    assert source.size is None
    assert source.name == "<async_generator>"
    assert await read_all(source, step=50) == DATA


async def test_async_iterable_object_is_a_one_pass_source() -> None:
    class Chunks:
        """An async iterable that is not itself an iterator."""

        def __aiter__(self) -> AsyncIterator[bytes]:
            return self._generate()

        async def _generate(self) -> AsyncIterator[bytes]:
            for piece in pieces(DATA, 100):
                yield piece

    assert await read_all(open_source(cast(SourceLike, Chunks()))) == DATA


async def test_async_iterator_of_text_is_usage_error() -> None:
    async def generate() -> AsyncIterator[str]:
        yield "text"

    source = open_source(cast(SourceLike, generate()))
    with pytest.raises(UsageError, match="yielded a str"):
        await source.ensure(1)


async def test_pipe_is_a_one_pass_source() -> None:
    read_fd, write_fd = os.pipe()
    data = DATA * 100  # more than a pipe's buffer: the writer waits for the reader

    def write() -> None:
        with open(write_fd, "wb") as out:
            for piece in pieces(data, 999):
                out.write(piece)
                out.flush()

    with open(read_fd, "rb") as stream:
        source = open_source(stream, read_size=4096, retention=10_000)
        assert source.size is None
        assert source.name == str(read_fd)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.to_thread.run_sync, write))
            with trio.fail_after(10):
                assert await read_all(source, step=3000) == data
    assert source.size == len(data)


async def test_pipe_waits_for_its_writer() -> None:
    # A pipe whose writer is still there but silent: reading waits (as `cat` would), and a
    # cancelled wait abandons the blocked read.
    read_fd, write_fd = os.pipe()
    stream = open(read_fd, "rb")  # noqa: SIM115 - closed below, after the writer
    try:
        source = open_source(stream)
        with trio.move_on_after(0.2) as waited:
            await source.ensure(1)
        assert waited.cancelled_caught
        assert source.size is None
    finally:
        # The writer goes first: the abandoned read (which holds the stream's buffer lock)
        # then sees the end and returns, so that closing the stream does not wait forever.
        os.close(write_fd)
        stream.close()


def test_pipe_open_for_writing_is_refused() -> None:
    read_fd, write_fd = os.pipe()
    with (
        open(read_fd, "rb"),
        open(write_fd, "wb") as stream,
        pytest.raises(UsageError, match="not open for reading"),
    ):
        open_source(cast(BinaryIO, stream))


def test_pipe_in_text_mode_is_refused() -> None:
    read_fd, write_fd = os.pipe()
    with (
        open(read_fd, encoding="utf-8") as stream,
        open(write_fd, "wb"),
        pytest.raises(UsageError, match="text mode"),
    ):
        open_source(cast(BinaryIO, stream))


async def test_non_blocking_pipe_without_bytes_ready_is_usage_error_not_its_end() -> None:
    # A non-blocking read answers None when no bytes are ready: that is not the end of the
    # stream, and must not be taken for it (the upload would be declared complete, short).
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    try:
        with open(read_fd, "rb") as stream:
            os.write(write_fd, b"early")
            source = open_source(stream)
            with pytest.raises(UsageError, match="non-blocking"):
                await source.ensure(100)
            assert source.size is None
    finally:
        os.close(write_fd)


async def test_closing_a_one_pass_source_drops_what_it_holds() -> None:
    source = open_source(iter(pieces(DATA, 10)))
    await source.ensure(50)
    assert vars(source)["_blocks"]  # 50 bytes held
    source.close()
    assert not vars(source)["_blocks"]  # none any more


# --------------------------------------------------------------------------------------------
# read_now: reads that cannot block, done without a worker thread
# --------------------------------------------------------------------------------------------


def test_read_now_of_a_cached_file_equals_read_at(tmp_path: pathlib.Path) -> None:
    data = os.urandom(100_000)
    path = tmp_path / "cached.bin"
    path.write_bytes(data)
    source = open_source(path)
    try:
        source.read_at(0, len(data))  # now surely in the page cache
        assert source.read_now(10, 5000) == data[10:5010]
        assert source.read_now(99_000, 5000) is None  # past the end: read_at must explain
    finally:
        source.close()


def test_read_now_notices_a_changed_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "changing.bin"
    path.write_bytes(b"x" * 1000)
    source = open_source(path)
    try:
        with path.open("ab") as stream:
            stream.write(b"more")
        with pytest.raises(SourceChangedError):
            source.read_now(0, 100)
    finally:
        source.close()


def test_read_now_of_bytes_and_streams_is_read_at() -> None:
    assert open_source(b"abcdef").read_now(2, 3) == b"cde"
    assert open_source(io.BytesIO(b"abcdef")).read_now(2, 3) is None  # a caller's stream


async def test_small_reads_skip_the_worker_thread(
    tmp_path: pathlib.Path, thread_calls: list[object]
) -> None:
    data = os.urandom(3 * INLINE_READ_LIMIT)
    path = tmp_path / "small.bin"
    path.write_bytes(data)
    source = open_source(path)
    threads = thread_calls
    try:
        assert await read_bytes(source, 5, INLINE_READ_LIMIT) == data[5 : 5 + INLINE_READ_LIMIT]
        assert threads == []
        assert await read_bytes(source, 0, 2 * INLINE_READ_LIMIT) == data[: 2 * INLINE_READ_LIMIT]
        assert len(threads) == 1  # a large read still goes to a worker thread
    finally:
        source.close()


async def test_reads_of_bytes_in_memory_skip_the_worker_thread(
    thread_calls: list[object],
) -> None:
    # Bytes in memory are copied, holding the GIL: a worker thread would only add its trip.
    data = os.urandom(2 * 1024 * 1024 + 7)
    held = open_source(data)
    stream = open_source(iter([data[:1000], data[1000:]]), read_size=1 << 20, retention=4 << 20)
    part = slice_source(held, 7, 2 * 1024 * 1024)
    assert all(source.in_memory for source in (held, stream, part))
    assert await stream.ensure(len(data)) == len(data)
    thread_calls.clear()  # (the stream's own pulls run in worker threads)
    assert await read_bytes(held, 3, 2 * 1024 * 1024) == data[3 : 3 + 2 * 1024 * 1024]
    assert await read_bytes(stream, 5, 2 * 1024 * 1024) == data[5 : 5 + 2 * 1024 * 1024]
    assert await read_bytes(part, 0, 2 * 1024 * 1024) == data[7:]
    assert thread_calls == []


def test_files_and_callers_streams_are_not_in_memory(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc")
    for source in (open_source(path), open_source(io.BytesIO(b"abc"))):
        assert not source.in_memory
        assert not slice_source(source, 1, 2).in_memory
        source.close()


def test_a_slice_of_a_file_gives_spans_and_reads_of_the_file(tmp_path: pathlib.Path) -> None:
    data = os.urandom(10_000)
    path = tmp_path / "whole.bin"
    path.write_bytes(data)
    whole = open_source(path)
    try:
        part = slice_source(whole, 4000, 3000)
        span = part.span_at(100, 500)
        assert span is not None
        assert (span.file_offset, span.length) == (4100, 500)
        assert span.read() == data[4100:4600]
        assert part.read_now(0, 3000) == data[4000:7000]
        with pytest.raises(ValueError, match="beyond the slice"):
            part.span_at(2900, 200)
    finally:
        whole.close()
