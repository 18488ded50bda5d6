"""Cancelling tuspipe from asyncio: a task's cancel, ``asyncio.timeout``, ``asyncio.wait_for``
and Ctrl-C (in ``asyncio.run``, and around a blocking call made inside a running loop).

Each upload goes through a fault proxy that slows it down, so the cancel lands mid-PATCH.
Every case must stop the upload promptly, raise asyncio's own exception in the caller, leave
the journal consistent with the server, and let the next call resume to byte-identical bytes.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import tuspipe
from tuspipe import _loops

from .conftest import MakeFile, TusServer, sha256_file
from .faultproxy import ThreadedFaultProxy

MiB = 1024 * 1024
SIZE = 16 * MiB
RATE = 4 * MiB  # bytes per second through the proxy: the upload would take about 4 s
TIMEOUT = 60


@pytest.fixture
def slow_proxy(node_server: TusServer) -> Iterator[ThreadedFaultProxy]:
    """A proxy in front of the Node server that forwards uploads at RATE."""
    parts = urlsplit(node_server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    with ThreadedFaultProxy(parts.hostname, parts.port) as proxy:
        proxy.slow(RATE, "up")
        yield proxy


def assert_resumable(node_server: TusServer, path: Path, endpoint: str, url: str) -> None:
    """The journal holds the interrupted upload at an offset the server has; the next call
    continues it from there and the server ends with the file's exact bytes."""
    [entry] = tuspipe.Journal().unfinished()
    assert entry.url == url
    assert 0 < entry.offset < SIZE
    assert tuspipe.upload_status(url).offset >= entry.offset  # the server is the authority
    result = asyncio.run(tuspipe.upload_async(path, endpoint, chunk_size=MiB))
    assert result.url == url
    assert entry.offset <= result.resumed_from < SIZE
    assert node_server.stored_sha256(url) == sha256_file(path)
    assert tuspipe.Journal().unfinished() == []


@pytest.mark.parametrize("how", ["task.cancel", "asyncio.timeout", "asyncio.wait_for"])
def test_cancelling_stops_promptly_and_the_upload_resumes(
    node_server: TusServer, slow_proxy: ThreadedFaultProxy, make_file: MakeFile, how: str
) -> None:
    path = make_file(SIZE)
    endpoint = slow_proxy.url_for(node_server.url)
    urls: list[str] = []
    caller_saw: list[BaseException] = []

    async def upload(progressed: asyncio.Event) -> None:
        def on_progress(done: int, total: int | None) -> None:
            if done >= MiB:
                progressed.set()

        try:
            await tuspipe.upload_async(
                path, endpoint, chunk_size=MiB, on_progress=on_progress, on_upload_url=urls.append
            )
        except BaseException as error:
            caller_saw.append(error)
            raise

    async def main() -> float:
        """Cancel once a chunk is acknowledged; the seconds until the caller got control."""
        progressed = asyncio.Event()
        if how == "task.cancel":
            task = asyncio.create_task(upload(progressed))
            await progressed.wait()
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        elif how == "asyncio.timeout":
            moments: list[float] = []

            async def until_progress() -> None:
                async with asyncio.timeout(None) as deadline:
                    task = asyncio.create_task(upload(progressed))
                    await progressed.wait()
                    moments.append(time.monotonic())
                    deadline.reschedule(asyncio.get_running_loop().time())
                    await task

            with pytest.raises(TimeoutError) as timed_out:
                await until_progress()
            assert isinstance(timed_out.value.__context__, asyncio.CancelledError)
            started = moments[0]
        else:
            limit = 1.5  # a few chunks in, at RATE
            started = time.monotonic() + limit
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(upload(progressed), limit)
            assert progressed.is_set()
        return time.monotonic() - started

    assert asyncio.run(main()) < 1.0  # (a few milliseconds, in practice)
    assert [type(error) for error in caller_saw] == [asyncio.CancelledError]
    assert _loops._guests == {}  # nothing left running
    (url,) = urls
    slow_proxy.clear()
    assert_resumable(node_server, path, endpoint, url)


# Run by a child interpreter: `path endpoint blocking|async`; prints its progress.
CHILD = """
import asyncio, signal, sys
import tuspipe

# Ctrl-C raises KeyboardInterrupt even when this process was started with SIGINT ignored (as
# a background job of a shell without job control is).
signal.signal(signal.SIGINT, signal.default_int_handler)

path, endpoint, mode = sys.argv[1:4]

def on_progress(done, total):
    print("progress", done, flush=True)

async def main():
    try:
        if mode == "blocking":  # a notebook cell without await: blocks the running loop
            tuspipe.upload(path, endpoint, chunk_size=1 << 20, on_progress=on_progress)
        else:
            await tuspipe.upload_async(path, endpoint, chunk_size=1 << 20, on_progress=on_progress)
    except asyncio.CancelledError:
        print("cancelled", flush=True)
        raise
    print("finished", flush=True)

try:
    asyncio.run(main())
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(130)
"""


@pytest.mark.parametrize("mode", ["async", "blocking"])
def test_ctrl_c_in_asyncio_run_stops_the_upload_resumably(
    node_server: TusServer, slow_proxy: ThreadedFaultProxy, make_file: MakeFile, mode: str
) -> None:
    path = make_file(SIZE)
    endpoint = slow_proxy.url_for(node_server.url)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), endpoint, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        for line in child.stdout:
            if line.startswith("progress") and int(line.split()[1]) >= MiB:
                break
        else:
            pytest.fail("the child reported no progress")
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=TIMEOUT)
        stopped = time.monotonic() - interrupted
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, stderr
    assert "KeyboardInterrupt" in stdout
    assert "finished" not in stdout
    if mode == "async":
        assert "cancelled" in stdout  # asyncio.run's Ctrl-C cancelled the upload's task
    assert "Traceback" not in stderr
    assert stopped < 5.0  # (the child's exit included)
    [entry] = tuspipe.Journal().unfinished()
    slow_proxy.clear()
    assert_resumable(node_server, path, endpoint, entry.url)
