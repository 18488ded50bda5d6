"""``run_pipeline``: the stages wired together, against FakeTusServer (no network).

What the whole upload does (every byte, in order, with or without checksums, from bytes or a
file), that the sender never waits for a slow progress callback, how a failure surfaces (one
error of its own type), and that a cancelled pipeline leaves no task behind.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio
import trio.testing

from tests.fakes import FakeTusServer
from tests.helpers import random_bytes
from tuspipe import ChecksumMismatchError, SourceChangedError, TusError
from tuspipe._pipeline import PipelineSettings, run_pipeline
from tuspipe._source import Source, open_source
from tuspipe._stages import MAX_CHECKSUM_RESENDS
from tuspipe._transport import Transport


class TaskTracker(trio.abc.Instrument):
    """Counts the tasks spawned while installed, and which of them have not exited."""

    def __init__(self) -> None:
        self.spawned = 0
        self.alive: set[trio.lowlevel.Task] = set()

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned += 1
        self.alive.add(task)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.alive.discard(task)


async def pipeline_upload(
    server: FakeTusServer,
    source: Source,
    *,
    chunk_size: int = 100,
    read_size: int = 30,
    read_ahead: int = 2,
    algorithm: str | None = None,
    on_acknowledged: Callable[[int], Awaitable[None]] | None = None,
) -> tuple[str, int, list[int]]:
    url = server.create(source.size)
    acknowledged: list[int] = []

    async def record(offset: int) -> None:
        acknowledged.append(offset)
        if on_acknowledged is not None:
            await on_acknowledged(offset)

    async with server.client() as client:
        final = await run_pipeline(
            transport=Transport(client=client),
            url=url,
            headers=(),
            source=source,
            start=0,
            stop=source.size,
            algorithm=algorithm,
            settings=PipelineSettings(
                chunk_size=chunk_size, read_size=read_size, read_ahead=read_ahead
            ),
            on_acknowledged=record,
        )
    return url, final, acknowledged


@pytest.mark.parametrize("algorithm", [None, "sha1", "sha256", "crc32"])
@pytest.mark.parametrize("store_fraction", [1.0, 0.5])
@pytest.mark.parametrize(
    ("chunk_size", "read_size", "read_ahead"), [(100, 30, 2), (256, 1000, 1), (1000, 64, 4)]
)
async def test_pipeline_uploads_everything(
    algorithm: str | None, store_fraction: float, chunk_size: int, read_size: int, read_ahead: int
) -> None:
    server = FakeTusServer(store_fraction=store_fraction)
    data = random_bytes(1000, seed=3)
    url, final, acknowledged = await pipeline_upload(
        server,
        open_source(data),
        chunk_size=chunk_size,
        read_size=read_size,
        read_ahead=read_ahead,
        algorithm=algorithm,
    )
    assert final == len(data)
    assert server.data_of(url) == data
    assert acknowledged == sorted(set(acknowledged))
    assert acknowledged[-1] == len(data)
    for patch in server.seen("PATCH"):
        if algorithm is None:
            assert "upload-checksum" not in patch.headers
        else:
            assert patch.checksum_ok is True


async def test_pipeline_sender_never_waits_for_a_slow_callback() -> None:
    # The callback's first call blocks until the last PATCH is on its way: the sender must
    # carry on meanwhile, and the offsets that queued up are handed on as the newest one.
    data = random_bytes(1000, seed=9)
    last_patch_sent = trio.Event()
    calls: list[int] = []

    async def note_last_patch(request: httpx.Request) -> None:
        if request.method == "PATCH" and request.headers["upload-offset"] == "900":
            last_patch_sent.set()

    async def blocked_at_first(offset: int) -> None:
        calls.append(offset)
        await last_patch_sent.wait()

    server = FakeTusServer(before_request=note_last_patch)
    with trio.fail_after(10):
        url, final, acknowledged = await pipeline_upload(
            server, open_source(data), chunk_size=100, on_acknowledged=blocked_at_first
        )
    assert final == len(data)
    assert server.data_of(url) == data
    assert len(server.seen("PATCH")) == 10
    assert acknowledged == calls
    assert calls[0] == 100
    assert calls[-1] == len(data)
    assert calls == sorted(set(calls))
    assert len(calls) <= 3  # 100, perhaps 900, then 1000: not one call per PATCH


async def test_pipeline_from_a_file(tmp_path: pathlib.Path) -> None:
    data = random_bytes(5000, seed=4)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    source = open_source(path)
    server = FakeTusServer()
    try:
        url, final, _ = await pipeline_upload(
            server, source, chunk_size=1024, read_size=100, algorithm="sha256"
        )
    finally:
        source.close()
    assert final == 5000
    assert server.data_of(url) == data


async def test_pipeline_failure_is_one_error_of_the_original_type() -> None:
    server = FakeTusServer()
    server.script(
        460,
        {"Tus-Resumable": "1.0.0"},
        b"checksum mismatch",
        method="PATCH",
        times=MAX_CHECKSUM_RESENDS + 1,
    )
    with pytest.raises(ChecksumMismatchError) as info:
        await pipeline_upload(server, open_source(random_bytes(500)), algorithm="sha1")
    error = info.value
    assert type(error) is ChecksumMismatchError
    assert error.status_code == 460
    assert error.body == b"checksum mismatch"
    assert error.method == "PATCH"
    cause = error.__cause__
    assert isinstance(cause, BaseExceptionGroup)
    matched, _ = cause.split(ChecksumMismatchError)
    assert matched is not None


async def test_pipeline_source_that_shrinks_is_source_changed(tmp_path: pathlib.Path) -> None:
    data = random_bytes(1000, seed=5)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    source = open_source(path)

    async def truncate_on_first_patch(request: httpx.Request) -> None:
        if request.method == "PATCH":
            os.truncate(path, 150)

    server = FakeTusServer(before_request=truncate_on_first_patch)
    try:
        with pytest.raises(SourceChangedError) as info:
            await pipeline_upload(server, source, chunk_size=100, read_size=10, read_ahead=1)
    finally:
        source.close()
    assert isinstance(info.value.__cause__, BaseExceptionGroup)
    # What the server holds is still a prefix of the original source.
    stored = server.data_of(server.endpoint + "u1")
    assert stored == data[: len(stored)]


async def test_pipeline_foreign_error_becomes_tus_error() -> None:
    async def explode(offset: int) -> None:
        raise ZeroDivisionError("callback bug")

    server = FakeTusServer()
    with pytest.raises(TusError, match="ZeroDivisionError") as info:
        await pipeline_upload(server, open_source(random_bytes(300)), on_acknowledged=explode)
    assert type(info.value) is TusError
    cause = info.value.__cause__
    assert isinstance(cause, BaseExceptionGroup)
    assert cause.split(ZeroDivisionError)[0] is not None


async def test_pipeline_cancelled_by_cancel_scope_returns_cleanly() -> None:
    data = random_bytes(1000, seed=6)
    scope = trio.CancelScope()
    patches = 0

    async def cancel_on_second_patch(request: httpx.Request) -> None:
        nonlocal patches
        if request.method == "PATCH":
            patches += 1
            if patches == 2:
                scope.cancel()
                await trio.lowlevel.checkpoint()  # raises Cancelled

    server = FakeTusServer(before_request=cancel_on_second_patch)
    tracker = TaskTracker()
    trio.lowlevel.add_instrument(tracker)
    acknowledged: list[int] = []

    async def record(offset: int) -> None:
        acknowledged.append(offset)

    try:
        with scope:
            await pipeline_upload(server, open_source(data), chunk_size=100, on_acknowledged=record)
    finally:
        trio.lowlevel.remove_instrument(tracker)
    assert scope.cancelled_caught
    assert tracker.spawned >= 4  # the stages ran as tasks ...
    assert tracker.alive == set()  # ... and none outlived the call
    assert acknowledged == [100]
    assert server.data_of(server.endpoint + "u1") == data[:100]


async def test_pipeline_cancelled_by_timeout_returns_cleanly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    data = random_bytes(1000, seed=7)
    scope = trio.CancelScope()
    hung_at: list[float] = []

    async def hang_on_second_patch(request: httpx.Request) -> None:
        if request.method == "PATCH" and len(server.seen("PATCH")) == 1:
            # The timeout starts here, so virtual time cannot run out while worker threads
            # hash or read (the autojump clock counts those as idle).
            hung_at.append(trio.current_time())
            scope.deadline = trio.current_time() + 30
            await trio.sleep_forever()

    server = FakeTusServer(before_request=hang_on_second_patch)
    tracker = TaskTracker()
    trio.lowlevel.add_instrument(tracker)
    try:
        with scope:
            await pipeline_upload(server, open_source(data), chunk_size=100, algorithm="sha1")
    finally:
        trio.lowlevel.remove_instrument(tracker)
    assert scope.cancelled_caught
    assert trio.current_time() - hung_at[0] == pytest.approx(30)
    assert tracker.alive == set()
    assert server.data_of(server.endpoint + "u1") == data[:100]
