"""Sources: what open_source accepts, what it refuses, and read_at's exactness."""

from __future__ import annotations

import array
import io
import os
import pathlib
import signal
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuspipe import SourceChangedError, TusError, UsageError
from tuspipe._source import Source, SourceLike, open_source

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


class _NotSeekable(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def test_non_seekable_object_is_refused() -> None:
    with pytest.raises(UsageError, match="seekable"):
        open_source(cast(BinaryIO, _NotSeekable()))


def test_pipe_is_refused() -> None:
    read_fd, write_fd = os.pipe()
    with (
        open(read_fd, "rb") as stream,
        open(write_fd, "wb"),
        pytest.raises(UsageError, match="seekable"),
    ):
        open_source(stream)


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


@pytest.mark.parametrize("value", [3, 1.5, None, ["a"], object()])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(UsageError):
        open_source(cast(SourceLike, value))


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
