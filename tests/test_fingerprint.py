"""tuspipe._fingerprint: which bytes are sampled, and what makes two fingerprints differ."""

from __future__ import annotations

import hashlib
import itertools
import os
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuspipe._fingerprint import SAMPLE_BYTES, SAMPLES, fingerprint, sample_spans
from tuspipe._source import Source, open_source

ENDPOINT = "http://tus.test/files/"
KiB = 1024
SAMPLED_WHOLE = SAMPLE_BYTES * SAMPLES  # up to this size, every byte is digested
# The sizes the brief names, and the edges around them.
SIZES = [0, 1, 2, SAMPLE_BYTES, SAMPLED_WHOLE - 1, SAMPLED_WHOLE, SAMPLED_WHOLE + 1, 10**9]


class PatternSource:
    """`size` bytes of a fixed pattern, some of them changed (`changes`: offset -> byte),
    read without holding them: a 1 GB source costs nothing. Records every read."""

    _PATTERN = bytes((index * 151 + 7) % 256 for index in range(251))  # 251: a prime period
    in_memory = False  # (made as it is read)

    def __init__(self, size: int, changes: dict[int, int] | None = None) -> None:
        self.size = size
        self.name = f"<pattern of {size}>"
        self.identity: str | None = None
        self.changes = dict(changes or {})
        self.reads: list[tuple[int, int]] = []

    def read_at(self, offset: int, length: int) -> bytes:
        assert offset >= 0, offset
        assert offset + length <= self.size, (offset, length)
        self.reads.append((offset, length))
        start = offset % len(self._PATTERN)
        data = bytearray((self._PATTERN * (length // len(self._PATTERN) + 2))[start:][:length])
        for position, value in self.changes.items():
            if offset <= position < offset + length:
                data[position - offset] = value
        return bytes(data)

    async def ensure(self, end: int) -> int:
        return min(end, self.size)

    def release(self, offset: int) -> None:
        pass

    def span_at(self, offset: int, length: int) -> None:
        return None

    def read_now(self, offset: int, length: int) -> None:
        return None

    def close(self) -> None:
        pass

    def byte_at(self, position: int) -> int:
        return self.read_at(position, 1)[0]


def of(source: Source, *, endpoint: str = ENDPOINT, identity: str = "key:k") -> str:
    return fingerprint(source, endpoint=endpoint, identity=identity)


def of_bytes(data: bytes | bytearray, *, endpoint: str = ENDPOINT, identity: str = "key:k") -> str:
    source = open_source(data)
    try:
        return of(source, endpoint=endpoint, identity=identity)
    finally:
        source.close()


def of_path(path: pathlib.Path, *, endpoint: str = ENDPOINT) -> str:
    source = open_source(path)
    try:
        assert source.identity is not None
        return of(source, endpoint=endpoint, identity=source.identity)
    finally:
        source.close()


def changed(source: PatternSource, position: int) -> PatternSource:
    """The same source with the byte at `position` changed."""
    return PatternSource(source.size, {position: source.byte_at(position) ^ 0x5A})


def test_the_sample_is_eight_pieces_of_64_kib() -> None:
    assert (64 * KiB, 8) == (SAMPLE_BYTES, SAMPLES)


# --------------------------------------------------------------------------------------------
# sample_spans
# --------------------------------------------------------------------------------------------


def check_spans(size: int, spans: list[tuple[int, int]]) -> None:
    if size == 0:
        assert spans == []
        return
    assert spans[0][0] == 0  # covers the start ...
    assert spans[-1][0] + spans[-1][1] == size  # ... and the end
    for offset, length in spans:
        assert offset >= 0
        assert 0 < length <= max(SAMPLE_BYTES, size)
        assert offset + length <= size  # stays within the source
    for (offset, length), (next_offset, _) in itertools.pairwise(spans):
        assert offset + length <= next_offset  # in order, no byte read twice
    assert 1 <= len(spans) <= SAMPLES
    assert sum(length for _, length in spans) <= SAMPLED_WHOLE


@pytest.mark.parametrize("size", SIZES)
def test_sample_spans(size: int) -> None:
    spans = sample_spans(size)
    check_spans(size, spans)
    if size <= SAMPLED_WHOLE:
        assert spans == ([(0, size)] if size else [])  # a small source is digested whole
    else:
        assert len(spans) == SAMPLES
        assert all(length == SAMPLE_BYTES for _, length in spans)
        # Evenly spaced between the first and the last piece.
        gaps = [b - a for (a, _), (b, _) in itertools.pairwise(spans)]
        assert max(gaps) - min(gaps) <= 1


def test_sample_spans_of_a_gigabyte() -> None:
    spans = sample_spans(10**9)
    assert spans[0] == (0, SAMPLE_BYTES)
    assert spans[-1] == (10**9 - SAMPLE_BYTES, SAMPLE_BYTES)
    step = (10**9 - SAMPLE_BYTES) / (SAMPLES - 1)
    assert [offset for offset, _ in spans] == [round(step * index) for index in range(SAMPLES)]


def test_sample_spans_just_past_the_whole_size_touch_but_do_not_overlap() -> None:
    spans = sample_spans(SAMPLED_WHOLE + 1)
    assert sum(length for _, length in spans) == SAMPLED_WHOLE  # one byte is left out
    assert spans[0] == (0, SAMPLE_BYTES)
    assert spans[-1] == (SAMPLED_WHOLE + 1 - SAMPLE_BYTES, SAMPLE_BYTES)


@given(st.integers(min_value=0, max_value=2**50))
def test_sample_spans_property(size: int) -> None:
    check_spans(size, sample_spans(size))


# --------------------------------------------------------------------------------------------
# fingerprint
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_fingerprint_reads_exactly_the_sample(size: int) -> None:
    source = PatternSource(size)
    digest = of(source)
    assert source.reads == sample_spans(size)
    assert len(digest) == 64
    assert int(digest, 16) >= 0  # hex


def test_same_file_same_fingerprint(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(SAMPLED_WHOLE + 12345))
    assert of_path(path) == of_path(path)
    assert of_path(path) == of_path(tmp_path / "." / "data.bin")


def test_same_bytes_same_fingerprint() -> None:
    data = os.urandom(3000)
    assert of_bytes(data) == of_bytes(bytes(data)) == of_bytes(bytearray(data))
    assert of(PatternSource(10**9)) == of(PatternSource(10**9))


@pytest.mark.parametrize("size", [1, 1000, SAMPLED_WHOLE, SAMPLED_WHOLE + 1, 10**9])
def test_one_byte_changed_anywhere_in_a_sampled_span_changes_the_fingerprint(size: int) -> None:
    base = PatternSource(size)
    original = of(base)
    positions = {
        position
        for offset, length in sample_spans(size)
        for position in (offset, offset + 1, offset + length // 2, offset + length - 1)
        if position < size
    }
    digests = {of(changed(base, position)) for position in sorted(positions)}
    assert original not in digests
    assert len(digests) == len(positions)  # and each change makes its own fingerprint


def test_bytes_between_the_samples_are_not_read() -> None:
    # The price of reading 512 KiB of a large file: an edit between the samples goes unseen by
    # the bytes (a path's modification time sees it; see tests/test_source.py).
    size = 10**9
    first_gap = sample_spans(size)[0][1] + 10
    assert of(changed(PatternSource(size), first_gap)) == of(PatternSource(size))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"endpoint": ENDPOINT}, {"endpoint": "http://tus.test/other/"}),
        ({"endpoint": ENDPOINT}, {"endpoint": "https://tus.test/files/"}),
        ({"identity": "key:k"}, {"identity": "key:K"}),
        ({"identity": "key:k"}, {"identity": "file:/tmp/a:1:2:1000:3"}),
        # Fields are length-prefixed: moving a character across the boundary is a change.
        (
            {"endpoint": "http://h/ab", "identity": "c"},
            {"endpoint": "http://h/a", "identity": "bc"},
        ),
    ],
)
def test_different_endpoint_or_identity_different_fingerprint(
    one: dict[str, str], other: dict[str, str]
) -> None:
    data = os.urandom(2000)
    assert of_bytes(data, **one) != of_bytes(data, **other)


def test_different_size_with_the_same_prefix_different_fingerprint() -> None:
    assert of(PatternSource(10**9)) != of(PatternSource(10**9 + 1))
    assert of_bytes(b"abc") != of_bytes(b"abc\0")
    assert of_bytes(b"") != of_bytes(b"\0")


def test_paths_of_equal_content_differ(tmp_path: pathlib.Path) -> None:
    data = os.urandom(5000)
    (tmp_path / "a").write_bytes(data)
    (tmp_path / "b").write_bytes(data)
    assert of_path(tmp_path / "a") != of_path(tmp_path / "b")


def tuspy_fingerprint(data: bytes) -> str:
    """tuspy 1.x's fingerprint: md5 of the first 64 KiB, and the size."""
    return f"size:{len(data)}--md5:{hashlib.md5(data[: 64 * KiB]).hexdigest()}"


@pytest.mark.parametrize("size", [64 * KiB + 1, SAMPLED_WHOLE + 1, 3 * 1024 * KiB])
def test_equal_size_and_first_64_kib_but_another_last_byte_differ(size: int) -> None:
    # tuspy takes these two for the same file, and would resume one's upload with the other.
    one = os.urandom(size)
    other = one[:-1] + bytes([one[-1] ^ 1])
    assert tuspy_fingerprint(one) == tuspy_fingerprint(other)
    assert of_bytes(one) != of_bytes(other)


def test_a_file_rewritten_in_place_with_its_old_modification_time_differs(
    tmp_path: pathlib.Path,
) -> None:
    # The same path, inode, size and mtime: everything that names the file is unchanged, and
    # only the sampled bytes (here its last byte) tell the two contents apart.
    path = tmp_path / "data.bin"
    one = os.urandom(SAMPLED_WHOLE + 100 * KiB)
    path.write_bytes(one)
    info = path.stat()
    before = of_path(path)
    with path.open("r+b") as stream:
        stream.seek(len(one) - 1)
        stream.write(bytes([one[-1] ^ 1]))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    after_info = path.stat()
    assert (after_info.st_ino, after_info.st_size, after_info.st_mtime_ns) == (
        info.st_ino,
        info.st_size,
        info.st_mtime_ns,
    )
    assert of_path(path) != before
