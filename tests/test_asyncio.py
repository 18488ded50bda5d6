"""tuspipe under asyncio: the same trio code, in trio's guest mode on the asyncio loop.

The public coroutines, ``tuspipe.Client`` and compat's AsyncUploader run against the real
servers under both loops (``both_loops``, see tests/loops.py), with the stored bytes compared
by sha256. The asyncio-only cases are sync tests that call ``asyncio.run``: callbacks on the
loop's thread, fifty uploads in one ``asyncio.gather``, ``http_client=`` refused, blocking
calls from inside a running loop, an upload from an ``asyncio.start_server`` handler, tuspy's
own documentation example, what a Client pinned to one loop says elsewhere, and when the guest
run ends. Cancellation and Ctrl-C are in test_asyncio_cancel.py.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sniffio
import trio

import tuspipe
from tuspipe import _loops
from tuspipe.compat import client as compat_client
from tuspipe.compat.uploader import AsyncUploader

from .conftest import MakeFile, TusServer, sha256_file
from .loops import both_loops, run_on

KiB = 1024
MiB = 1024 * KiB
CHUNK = 256 * KiB
TIMEOUT = 60


def assert_stored(server: TusServer, url: str | None, path: Path) -> None:
    assert url is not None
    assert server.stored_sha256(url) == sha256_file(path)


# ---- the public coroutines, under trio and asyncio alike -------------------------------------


@both_loops
async def test_both_loops_really_runs_each_loop(loop_name: str) -> None:
    assert sniffio.current_async_library() == loop_name


@both_loops
async def test_every_public_coroutine(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(3 * CHUNK + 11)
    result = await tuspipe.upload_async(path, node_server.url, chunk_size=CHUNK)
    assert (result.offset, result.resumed_from, result.complete) == (path.stat().st_size, 0, True)
    assert_stored(node_server, result.url, path)

    info = await tuspipe.server_info_async(node_server.url)
    assert "1.0.0" in info.versions
    assert "creation" in info.extensions

    created = await tuspipe.create_upload_async(node_server.url, path.stat().st_size)
    assert (await tuspipe.upload_status_async(created)).offset == 0
    continued = await tuspipe.upload_async(path, upload_url=created, stop_at=CHUNK)
    assert (await tuspipe.upload_status_async(created)).offset == continued.offset == CHUNK
    await tuspipe.upload_async(path, upload_url=created)
    assert_stored(node_server, created, path)
    assert await tuspipe.terminate_async(created) is True
    assert await tuspipe.terminate_async(created) is False
    with pytest.raises(tuspipe.UploadNotFoundError):
        await tuspipe.upload_status_async(created)

    paths = [make_file(size) for size in (0, 1, CHUNK + 1, 50 * KiB)]
    outcomes = await tuspipe.upload_many_async(paths, node_server.url, concurrency=3)
    assert [outcome.index for outcome in outcomes] == [0, 1, 2, 3]
    for outcome, source in zip(outcomes, paths, strict=True):
        assert outcome.result is not None, outcome.error
        assert_stored(node_server, outcome.result.url, source)


@both_loops
async def test_a_client_and_all_its_methods(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(2 * CHUNK + 1)
    async with tuspipe.Client(retries=1) as client:
        info = await client.server_info(node_server.url)
        assert "termination" in info.extensions
        url = await client.create_upload(node_server.url, path.stat().st_size)
        first = await client.upload(path, upload_url=url, chunk_size=CHUNK, stop_at=CHUNK)
        assert first.offset == CHUNK
        assert (await client.upload_status(url)).offset == CHUNK
        second = await client.upload(path, upload_url=url, chunk_size=CHUNK)
        assert (second.resumed_from, second.offset) == (CHUNK, path.stat().st_size)
        assert_stored(node_server, url, path)
        others = [make_file(size) for size in (10, 20 * KiB)]
        outcomes = await client.upload_many(others, node_server.url)
        for outcome, source in zip(outcomes, others, strict=True):
            assert outcome.result is not None, outcome.error
            assert_stored(node_server, outcome.result.url, source)
        assert await client.terminate(url) is True
        await client.aclose()
    await client.aclose()  # closing again (here, and by `async with`) does nothing


@both_loops
async def test_the_async_uploader_and_all_its_methods(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(3 * CHUNK + 5)
    tus = compat_client.TusClient(node_server.url)
    uploader = tus.async_uploader(str(path), chunk_size=CHUNK)
    await uploader.upload(stop_at=CHUNK)
    assert uploader.offset == CHUNK
    assert await uploader.get_offset() == CHUNK
    uploader.stop_at = uploader.get_file_size()  # (upload() set it; upload_chunk() keeps it)
    await uploader.upload_chunk()
    assert uploader.offset == 2 * CHUNK
    await uploader.upload()
    assert await uploader.get_offset() == path.stat().st_size
    assert_stored(node_server, uploader.url, path)
    url = await tus.async_uploader(str(path)).create_url()
    assert url.startswith(node_server.url)
    assert await tuspipe.terminate_async(url) is True


@both_loops
async def test_errors_arrive_as_the_same_exceptions(
    node_server: TusServer, make_file: MakeFile
) -> None:
    missing = node_server.url + "0123456789abcdef0123456789abcdef"
    with pytest.raises(tuspipe.UploadNotFoundError) as not_found:
        await tuspipe.upload_status_async(missing)
    assert type(not_found.value) is tuspipe.UploadNotFoundError
    assert not_found.value.status_code == 404
    assert missing in str(not_found.value)

    with pytest.raises(
        tuspipe.NetworkError, match=re.escape("POST http://127.0.0.1:9/files/ failed")
    ) as down:
        await tuspipe.upload_async(make_file(10), "http://127.0.0.1:9/files/", retries=0)
    assert isinstance(down.value.__cause__, httpx.ConnectError)  # the chain crosses too

    with pytest.raises(tuspipe.UsageError, match="chunk_size"):
        await tuspipe.upload_async(make_file(10), node_server.url, chunk_size=0)
    async with tuspipe.Client() as client:
        with pytest.raises(tuspipe.UploadTooLargeError) as refused:
            await client.create_upload(node_server.url, 3 << 30)
        assert (refused.value.status_code, refused.value.body) == (413, b"Maximum size exceeded\n")


# ---- asyncio only ----------------------------------------------------------------------------


def test_callbacks_run_on_the_loops_thread_in_order(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(4 * CHUNK + 3)
    size = path.stat().st_size
    calls: list[tuple[int, int | None, int, bool]] = []
    totals: list[tuple[int, int | None, int]] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()

        def on_progress(done: int, total: int | None) -> None:
            calls.append((done, total, threading.get_ident(), asyncio.get_running_loop() is loop))

        await tuspipe.upload_async(path, node_server.url, chunk_size=CHUNK, on_progress=on_progress)
        await tuspipe.upload_many_async(
            [path, path.read_bytes()],
            node_server.url,
            chunk_size=CHUNK,
            on_total_progress=lambda done, total: totals.append(
                (done, total, threading.get_ident())
            ),
        )
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert [done for done, *_ in calls] == [0, CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK, size]
    assert {(total, thread, in_loop) for _, total, thread, in_loop in calls} == {
        (size, loop_thread, True)
    }
    assert {thread for *_, thread in totals} == {loop_thread}
    done_so_far = [done for done, *_ in totals]
    assert done_so_far == sorted(done_so_far)
    assert totals[-1][:2] == (2 * size, 2 * size)


def test_fifty_uploads_in_one_gather_share_one_guest_run(
    node_server: TusServer, make_file: MakeFile
) -> None:
    paths = [make_file(1 + index * 7 * KiB) for index in range(50)]
    runs: set[object] = set()

    def note_run(done: int, total: int | None) -> None:
        runs.add(trio.lowlevel.current_trio_token())

    async def main() -> list[tuspipe.UploadResult]:
        return await asyncio.gather(
            *(
                tuspipe.upload_async(
                    path, node_server.url, chunk_size=64 * KiB, on_progress=note_run
                )
                for path in paths
            )
        )

    results = asyncio.run(main())
    for result, path in zip(results, paths, strict=True):
        assert result.complete
        assert_stored(node_server, result.url, path)
    assert len(runs) == 1  # one trio guest run hosted all fifty
    assert len({result.url for result in results}) == 50


def test_the_async_uploaders_in_one_gather(node_server: TusServer, make_file: MakeFile) -> None:
    paths = [make_file(MiB + index) for index in range(3)]
    tus = compat_client.TusClient(node_server.url)
    uploaders = [tus.async_uploader(str(path), chunk_size=CHUNK) for path in paths]

    async def main() -> None:
        await asyncio.gather(*(uploader.upload() for uploader in uploaders))

    asyncio.run(main())
    for uploader, path in zip(uploaders, paths, strict=True):
        assert_stored(node_server, uploader.url, path)


def test_an_http_client_is_refused_under_asyncio(
    node_server: TusServer, make_file: MakeFile
) -> None:
    before = node_server.upload_count()

    async def main() -> None:
        async with httpx.AsyncClient() as http_client:
            with pytest.raises(tuspipe.UsageError, match="belong to the event loop") as refused:
                await tuspipe.upload_async(make_file(10), node_server.url, http_client=http_client)
            assert "http_client= cannot be used under asyncio" in str(refused.value)
            with pytest.raises(tuspipe.UsageError, match="http_client="):
                async with tuspipe.Client(http_client=http_client) as client:
                    await client.server_info(node_server.url)
            tus = compat_client.TusClient(node_server.url)
            tus.tuspipe_options["http_client"] = http_client
            with pytest.raises(tuspipe.UsageError, match="http_client="):
                await tus.async_uploader(str(make_file(10))).upload()

    asyncio.run(main())
    assert node_server.upload_count() == before  # refused before any request


def test_blocking_calls_inside_a_running_loop(node_server: TusServer, make_file: MakeFile) -> None:
    """A notebook cell without `await`: the blocking call runs trio in a worker thread."""
    path = make_file(2 * CHUNK + 1)
    threads: set[int] = set()

    async def main() -> tuple[tuspipe.UploadResult, int, int]:
        result = tuspipe.upload(
            path,
            node_server.url,
            chunk_size=CHUNK,
            on_progress=lambda done, total: threads.add(threading.get_ident()),
        )
        # with tuspipe's own guest run live on this loop (an open Client) as well
        async with tuspipe.Client() as client:
            await client.server_info(node_server.url)
            uploader = compat_client.TusClient(node_server.url).uploader(str(path), url=result.url)
            offset = uploader.offset  # the blocking constructor asked the server
            status = tuspipe.upload_status(result.url)
        return result, offset, status.offset

    result, offset, status_offset = asyncio.run(main())
    assert offset == status_offset == path.stat().st_size
    assert_stored(node_server, result.url, path)
    assert threading.get_ident() not in threads  # ran in the worker thread


def test_an_upload_from_an_asyncio_server_handler(
    node_server: TusServer, make_file: MakeFile
) -> None:
    """A plain asyncio server that uploads a file whenever a client connects."""
    path = make_file(MiB + 3)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = (await reader.readline()).decode().strip()
        result = await tuspipe.upload_async(Path(name), node_server.url, chunk_size=CHUNK)
        writer.write(result.url.encode() + b"\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> str:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"{path}\n".encode())
            await writer.drain()
            url = (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode().strip()
            writer.close()
            await writer.wait_closed()
            return url

    assert_stored(node_server, asyncio.run(main()), path)


def test_under_anyio_on_either_backend(node_server: TusServer, make_file: MakeFile) -> None:
    for backend in ("asyncio", "trio"):
        path = make_file(CHUNK + 1)

        async def main(source: Path = path) -> tuspipe.UploadResult:
            return await tuspipe.upload_async(source, node_server.url, chunk_size=CHUNK)

        assert_stored(node_server, anyio.run(main, backend=backend).url, path)


# tuspy's documentation, "Basic Asynchronous Upload", with tusclient replaced by tuspipe.compat
TUSPY_EXAMPLE = """\
import asyncio
from tuspipe.compat import client

async def upload_file():
    my_client = client.TusClient('http://127.0.0.1:1080/files/')
    uploader = my_client.async_uploader('/path/to/file.ext', chunk_size=1024*1024)
    await uploader.upload()

asyncio.run(upload_file())
"""
# ... and the same with tuspipe's own call
TUSPIPE_EXAMPLE = """\
import asyncio
import tuspipe

async def upload_file():
    result = await tuspipe.upload_async('/path/to/file.ext', 'http://127.0.0.1:1080/files/')
    print(result.url)

asyncio.run(upload_file())
"""


@pytest.mark.parametrize("example", [TUSPY_EXAMPLE, TUSPIPE_EXAMPLE], ids=["tuspy", "tuspipe"])
def test_the_issue_examples_run_unchanged_in_a_fresh_interpreter(
    node_server: TusServer, make_file: MakeFile, example: str
) -> None:
    path = make_file(3 * MiB + 7)  # random bytes: its digest names the new upload
    before = {entry.name for entry in node_server.data_dir.iterdir()}
    code = example.replace("http://127.0.0.1:1080/files/", node_server.url).replace(
        "/path/to/file.ext", str(path)
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr
    new = [entry for entry in node_server.data_dir.iterdir() if entry.name not in before]
    digest = sha256_file(path)
    assert [entry for entry in new if entry.is_file() and sha256_file(entry) == digest]


# ---- one Client, one loop ------------------------------------------------------------------


def test_a_client_used_under_two_loops_is_refused(node_server: TusServer) -> None:
    """A Client's pool belongs to the run that first used it; elsewhere it is a UsageError
    (each other loop runs in a thread of its own here, as a thread hosts one trio run)."""
    client = tuspipe.Client()

    async def use() -> None:
        await client.server_info(node_server.url)

    def in_a_thread(run: Callable[[], object]) -> BaseException | None:
        failures: list[BaseException] = []

        def target() -> None:
            try:
                run()
            except BaseException as failure:
                failures.append(failure)

        thread = threading.Thread(target=target)
        thread.start()
        thread.join(TIMEOUT)
        return failures[0] if failures else None

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(use())  # pinned to this loop, which stays open
        refused = in_a_thread(lambda: asyncio.run(use()))
        assert isinstance(refused, tuspipe.UsageError)
        assert "first used in an asyncio event loop and cannot be used in another asyncio " in (
            str(refused)
        )
        refused = in_a_thread(lambda: trio.run(use))
        assert isinstance(refused, tuspipe.UsageError)
        assert "cannot be used in a trio run" in str(refused)
        loop.run_until_complete(client.aclose())  # at home, it closes
        loop.run_until_complete(asyncio.sleep(0.05))
        assert _loops._guests == {}  # and its guest run ended with it
    finally:
        loop.close()

    async def trio_main() -> None:
        async with tuspipe.Client() as trio_client:

            async def use_there() -> None:
                await trio_client.server_info(node_server.url)

            await use_there()
            refused = await trio.to_thread.run_sync(
                in_a_thread, lambda: run_on("asyncio", use_there)
            )
            assert isinstance(refused, tuspipe.UsageError)
            assert "first used in a trio run and cannot be used in an asyncio event loop" in str(
                refused
            )
            refused = await trio.to_thread.run_sync(in_a_thread, lambda: trio.run(use_there))
            assert isinstance(refused, tuspipe.UsageError)
            assert "cannot be used in another trio run" in str(refused)

    trio.run(trio_main)


def test_the_guest_run_lives_while_needed(node_server: TusServer, make_file: MakeFile) -> None:
    """One run per busy period; an open Client keeps it; the loop's end ends it, and closes
    what the run held."""
    runs: list[object] = []

    def note_run(*_: object) -> None:
        runs.append(trio.lowlevel.current_trio_token())

    async def main() -> tuspipe.Client:
        loop = asyncio.get_running_loop()
        for _ in range(2):
            await tuspipe.server_info_async(node_server.url, on_response=note_run)
            while loop in _loops._guests:  # idle: the run ends by itself
                await asyncio.sleep(0.01)
        client = tuspipe.Client(on_response=note_run)
        for _ in range(2):
            await client.server_info(node_server.url)
            await asyncio.sleep(0.05)
            assert loop in _loops._guests  # held by the open client
        # left open on purpose: asyncio.run's end must end the run anyway, and close it

        return client

    client = asyncio.run(main())
    assert client._home.closed  # closed as the run ended with the loop
    assert len(runs) == 4
    assert runs[0] is not runs[1]  # a new run after the idle one ended
    assert runs[2] is runs[3]
    assert _loops._guests == {}
    assert trio.run(trio.sleep, 0) is None  # no run left behind in this thread


def test_unsupported_event_loops_are_named() -> None:
    outside = tuspipe.server_info_async("http://127.0.0.1:9/files/")
    with pytest.raises(tuspipe.UsageError, match="with no event loop running") as refused:
        outside.send(None)
    assert "server_info_async() was awaited" in str(refused.value)
    assert "under trio or asyncio" in str(refused.value)

    token = sniffio.current_async_library_cvar.set("curio")
    try:
        coroutines: list[Coroutine[Any, Any, object]] = [
            tuspipe.upload_async(b"x", "http://127.0.0.1:9/files/"),
            tuspipe.Client().server_info("http://127.0.0.1:9/files/"),
            AsyncUploader(file_path=__file__, url="http://127.0.0.1:9/files/1").upload(),
        ]
        for coroutine in coroutines:
            with pytest.raises(tuspipe.UsageError, match=r"under curio; .* trio or asyncio"):
                coroutine.send(None)
    finally:
        sniffio.current_async_library_cvar.reset(token)


def test_a_blocking_call_beside_a_parked_guest_run(node_server: TusServer) -> None:
    """A Client left open on a loop that is not running keeps its trio run in this thread;
    a blocking call then runs trio in a worker thread instead of failing."""
    loop = asyncio.new_event_loop()
    client = tuspipe.Client()
    try:
        loop.run_until_complete(client.server_info(node_server.url))  # pinned, still open
        assert "1.0.0" in tuspipe.server_info(node_server.url).versions
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        loop.close()
    assert _loops._guests == {}
