"""The journal's pure encode/decode (property tests) and its file writer."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuspipe._journal import (
    Journal,
    JournalEntry,
    decode_records,
    encode_record,
    public_endpoint,
    replay,
)

keys = st.text(alphabet="0123456789abcdef", min_size=1, max_size=8)


@st.composite
def entries(draw: st.DrawFn) -> JournalEntry:
    size = draw(st.integers(min_value=0, max_value=1 << 40))
    return JournalEntry(
        key=draw(keys),
        url="http://127.0.0.1:1080/files/" + draw(st.text(alphabet="abc123", max_size=12)),
        endpoint="http://127.0.0.1:1080/files/",
        source=draw(st.text(max_size=30)),
        size=size,
        offset=draw(st.integers(min_value=0, max_value=size)),
        created=draw(st.floats(min_value=0, max_value=2e9)),
        expires=draw(st.none() | st.just("Wed, 25 Jun 2031 16:00:00 GMT")),
        parts=tuple(draw(st.lists(st.text(max_size=10), max_size=3))),
    )


@st.composite
def record_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        kind = draw(st.sampled_from(["put", "ack", "done", "forget"]))
        if kind == "put":
            records.append(draw(entries()).to_record())
        elif kind == "ack":
            records.append(
                {"op": "ack", "key": draw(keys), "offset": draw(st.integers(0, 1 << 40))}
            )
        else:
            records.append({"op": kind, "key": draw(keys)})
    return records


def _frames(records: list[dict[str, Any]]) -> bytes:
    return b"".join(encode_record(record) for record in records)


@given(record_lists())
def test_round_trip(records: list[dict[str, Any]]) -> None:
    decoded, damaged = decode_records(_frames(records))
    assert damaged == 0
    assert decoded == records


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(record_lists())
def test_every_truncation_point_keeps_the_complete_records(
    records: list[dict[str, Any]],
) -> None:
    data = _frames(records)
    boundaries = []
    total = 0
    for record in records:
        total += len(encode_record(record))
        boundaries.append(total)
    for cut in range(len(data) + 1):
        decoded, damaged = decode_records(data[:cut])
        complete = sum(1 for end in boundaries if end <= cut)
        assert decoded == records[:complete]
        # a cut inside a frame is one torn tail; a cut on a boundary is clean
        assert damaged == (0 if cut in boundaries or cut == 0 else 1)


@settings(max_examples=200)
@given(record_lists(), st.data())
def test_random_corruption_loses_at_most_the_damaged_records(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    frames = [encode_record(record) for record in records]
    blob = bytearray(b"".join(frames))
    position = data.draw(st.integers(0, len(blob) - 1))
    count = data.draw(st.integers(1, 8))
    for index in range(position, min(len(blob), position + count)):
        blob[index] ^= data.draw(st.integers(1, 255))
    decoded, _ = decode_records(bytes(blob))
    # every frame the corruption did not touch survives, in order
    untouched = []
    start = 0
    for frame, record in zip(frames, records, strict=True):
        end = start + len(frame)
        if end <= position or start >= position + count:
            untouched.append(record)
        start = end
    assert all(record in decoded for record in untouched)
    # and nothing is invented: every decoded record is one that was written
    assert all(record in records for record in decoded)


@given(st.binary(max_size=2000))
def test_garbage_never_raises(garbage: bytes) -> None:
    records, _ = decode_records(garbage)
    assert records == []


@given(record_lists(), st.binary(max_size=200), record_lists())
def test_garbage_in_the_middle_keeps_both_sides(
    before: list[dict[str, Any]], garbage: bytes, after: list[dict[str, Any]]
) -> None:
    decoded, _ = decode_records(_frames(before) + garbage + _frames(after))
    assert decoded[: len(before)] == before
    assert decoded[-len(after) :] == after


def test_replay_applies_acks_done_and_forget() -> None:
    first = JournalEntry(key="a", url="http://h/files/1", endpoint="e", source="s", size=100)
    second = JournalEntry(key="b", url="http://h/files/2", endpoint="e", source="s", size=50)
    live = replay(
        [
            first.to_record(),
            second.to_record(),
            {"op": "ack", "key": "a", "offset": 40},
            {"op": "ack", "key": "a", "offset": 400},  # beyond the size: ignored
            {"op": "ack", "key": "zzz", "offset": 1},  # unknown upload: ignored
            {"op": "done", "key": "b"},
        ]
    )
    assert set(live) == {"a"}
    assert live["a"].offset == 40
    assert replay([first.to_record(), {"op": "forget", "key": "a"}]) == {}


def test_public_endpoint_strips_secrets() -> None:
    assert (
        public_endpoint("https://user:secret@tus.example:8443/files/?token=abc#x")
        == "https://tus.example:8443/files/"
    )


def _entry(key: str, size: int = 1000) -> JournalEntry:
    return JournalEntry(
        key=key,
        url=f"http://127.0.0.1:1080/files/{key}",
        endpoint="http://127.0.0.1:1080/files/",
        source="/tmp/x",
        size=size,
        created=1_700_000_000.0,
    )


def test_journal_file_life_cycle(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state" / "journal")
    journal.record_created(_entry("a"))
    journal.record_created(_entry("b"))
    journal.record_offset("a", 500)
    assert [entry.key for entry in journal.unfinished()] == ["a", "b"]
    assert journal.get("a") == dataclasses.replace(_entry("a"), offset=500)
    journal.record_finished("a")
    assert journal.get("a") is None
    assert journal.forget("b") is True
    assert journal.forget("b") is False
    assert journal.unfinished() == []
    # created private: the directory 0700, the file 0600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600


def test_torn_last_write_is_ignored(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.record_created(_entry("a"))
    journal.record_offset("a", 100)
    with journal.path.open("ab") as stream:
        stream.write(encode_record({"op": "ack", "key": "a", "offset": 900})[:-3])
    assert journal.get("a") is not None
    assert journal.get("a").offset == 100  # type: ignore[union-attr]
    journal.record_offset("a", 200)  # appending after a torn frame still works
    assert journal.get("a").offset == 200  # type: ignore[union-attr]


def test_compaction_keeps_live_records_and_shrinks_the_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.record_created(_entry("keep", size=10**9))
    for offset in range(1, 20_000):
        journal.record_offset("keep", offset)
    # the writer compacts on its own once the file passes the threshold
    assert journal.path.stat().st_size < 300 * 1024
    assert journal.get("keep") is not None
    journal.compact()
    assert journal.path.stat().st_size < 200
    assert journal.get("keep").offset == 19_999  # type: ignore[union-attr]
    assert not list(tmp_path.glob("*.tmp"))


def test_clear(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.record_created(_entry("fresh"))
    old = dataclasses.replace(_entry("old"), expires="Mon, 01 Jan 2001 00:00:00 GMT")
    journal.record_created(old)
    assert journal.clear(expired_only=True) == 1
    assert [entry.key for entry in journal.unfinished()] == ["fresh"]
    assert journal.clear() == 1
    assert journal.unfinished() == []


def test_two_processes_appending_at_once_lose_nothing(tmp_path: Path) -> None:
    journal_path = tmp_path / "journal"
    Journal(journal_path).record_created(_entry("shared", size=10**9))
    children = []
    for child in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                writer = Journal(journal_path)
                for index in range(500):
                    writer.record_created(_entry(f"c{child}-{index}"))
                    writer.record_offset(f"c{child}-{index}", 1)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    live = Journal(journal_path).load()
    assert len(live) == 1 + 2 * 500
    assert all(entry.offset == 1 for key, entry in live.items() if key != "shared")
    assert decode_records(journal_path.read_bytes())[1] == 0


@pytest.mark.parametrize("damage_at", [0, 10, 30])
def test_corrupt_middle_loses_one_record(tmp_path: Path, damage_at: int) -> None:
    journal = Journal(tmp_path / "journal")
    for key in "abc":
        journal.record_created(_entry(key))
    data = bytearray(journal.path.read_bytes())
    frame_length = len(encode_record(_entry("a").to_record()))
    data[frame_length + damage_at] ^= 0xFF  # inside the second frame
    journal.path.write_bytes(bytes(data))
    assert sorted(journal.load()) == ["a", "c"]
