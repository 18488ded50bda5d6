"""One benchmark run inside a fresh Python process: ``python -m benchmarks._worker SPEC RESULT``.

The harness starts this module once per run, so the process's peak resident memory (which the
parent reads from ``os.wait4``) belongs to one upload. SPEC is a JSON file saying which client
uploads what (see :func:`main`); RESULT is where the figures go, as JSON:

* ``seconds``: wall time of the upload call alone (interpreter start and imports excluded);
* ``cpu_user``, ``cpu_system``: CPU seconds of this process during the call, from
  ``getrusage(RUSAGE_SELF)`` deltas, so the work of every thread (trio's worker threads
  hashing and reading) is included;
* ``base_rss_kib``: peak RSS after importing the client, before uploading;
* ``peak_rss_kib``: peak RSS after the upload (the process's own ``VmHWM``, see
  :func:`peak_rss_kib`);
* ``urls``: the uploads made, for the parent to check (HEAD) and delete;
* ``channel_stats``: tuspipe's pipeline channel statistics (``UploadResult.channel_stats``),
  when the installed tuspipe reports them;
* ``error``: why the run failed, instead of the figures.

Only the standard library is imported before the client, so the base RSS is the client's.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import select
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    import tuspipe

__all__ = [
    "ITEM_SIZE",
    "LOOPS",
    "ChannelFigures",
    "Upload",
    "main",
    "make_items",
    "peak_rss_kib",
]

#: Bytes per block a generator source yields in the one-pass stream workload.
STREAM_BLOCK = 1024 * 1024
#: The filename one-pass streams are uploaded under.
STREAM_NAME = "stream.bin"
#: Bytes per item of the small-items rows: a short line, as of a log or a CSV writer.
ITEM_SIZE = 33
#: Uploads at once in the concurrent many-files rows when the spec does not say.
DEFAULT_CONCURRENCY = 8
#: The event loops tuspipe's calls run under (the spec's ``loop``; see :func:`_tuspipe_calls`).
LOOPS = ("trio", "asyncio")


def make_items(count: int) -> list[bytes]:
    """`count` distinct items of ``ITEM_SIZE`` bytes: a 32-digit line number and a newline."""
    return [b"%032d\n" % index for index in range(count)]


def _metadata(path: str) -> dict[str, str]:
    """The Upload-Metadata both clients send: the file's name.

    Sent by every client alike because tuspy without metadata sends an empty
    ``Upload-Metadata`` header, which @tus/server refuses with 400.
    """
    return {"filename": os.path.basename(path)}


@dataclass
class ChannelFigures:
    """One pipeline channel's statistics, as tuspipe reports them (summed over uploads)."""

    name: str
    items: int = 0
    send_wait: float = 0.0
    receive_wait: float = 0.0


@dataclass
class Upload:
    """What an upload call produced: the uploads' URLs and tuspipe's channel statistics."""

    urls: list[str]
    channels: list[ChannelFigures] = field(default_factory=list)


UploadCall = Callable[[], Upload]


def _channel_figures(results: list[Any]) -> list[ChannelFigures]:
    """Sum ``channel_stats`` over tuspipe results by channel name, in first-seen order.

    Read with getattr so the harness works with a tuspipe that does not report them yet.
    """
    by_name: dict[str, ChannelFigures] = {}
    for result in results:
        for stat in getattr(result, "channel_stats", ()) or ():
            name = str(getattr(stat, "name", "?"))
            figures = by_name.setdefault(name, ChannelFigures(name))
            figures.items += int(getattr(stat, "items", 0) or 0)
            figures.send_wait += float(getattr(stat, "send_wait", 0.0) or 0.0)
            figures.receive_wait += float(getattr(stat, "receive_wait", 0.0) or 0.0)
    return list(by_name.values())


def _tuspipe_result(result: Any, size: int) -> None:
    """A tuspipe result must hold every byte, and must not be a resumed earlier upload."""
    if result.offset != size:
        raise RuntimeError(f"tuspipe ended at offset {result.offset} of {size}")
    if result.resumed_from:
        raise RuntimeError(
            f"tuspipe resumed an earlier upload at {result.resumed_from} bytes; "
            "the run did not upload the whole file"
        )


class _TuspipeCalls(NamedTuple):
    """tuspipe's two calls of the harness, made blocking on one event loop."""

    upload: Callable[..., tuspipe.UploadResult]
    upload_many: Callable[..., list[tuspipe.UploadOutcome]]


def _tuspipe_calls(loop: str) -> _TuspipeCalls:
    """``upload`` and ``upload_many`` run to the end under `loop` (one of ``LOOPS``).

    trio: the blocking facade, ``trio.run`` over the async call (the rows as they always were).
    asyncio: ``asyncio.run`` over the same async call, which runs the trio code in trio's guest
    mode on the asyncio loop. Either way the timed call includes starting and closing its
    event loop, which an application would do once; it is a millisecond or two.
    """
    import tuspipe

    if loop == "trio":
        return _TuspipeCalls(tuspipe.upload, tuspipe.upload_many)
    if loop == "asyncio":
        import asyncio  # before the clock starts, as trio is

        def upload(*args: Any, **kwargs: Any) -> tuspipe.UploadResult:
            return asyncio.run(tuspipe.upload_async(*args, **kwargs))

        def upload_many(*args: Any, **kwargs: Any) -> list[tuspipe.UploadOutcome]:
            return asyncio.run(tuspipe.upload_many_async(*args, **kwargs))

        return _TuspipeCalls(upload, upload_many)
    raise ValueError(f"unknown event loop {loop!r}: choose from {', '.join(LOOPS)}")


def _prepare_tuspipe(spec: dict[str, Any]) -> UploadCall:
    url: str = spec["url"]
    paths: list[str] = spec["paths"]
    options: dict[str, Any] = spec["options"]
    size: int = spec["size"]
    mode: str = spec["mode"]
    calls = _tuspipe_calls(spec.get("loop", "trio"))

    if mode == "many":

        def upload_many() -> Upload:
            outcomes = calls.upload_many(
                paths, url, metadata=lambda source: _metadata(str(source)), **options
            )
            failed = [outcome for outcome in outcomes if not outcome.ok]
            if failed:
                raise RuntimeError(f"{len(failed)} tuspipe uploads failed: {failed[0].error}")
            results = [outcome.result for outcome in outcomes if outcome.result is not None]
            return Upload([r.url for r in results], _channel_figures(results))

        return upload_many

    if mode == "generator":

        def blocks() -> Iterator[bytes]:
            with open(paths[0], "rb", buffering=0) as stream:
                while block := stream.read(STREAM_BLOCK):
                    yield block

        def upload_generator() -> Upload:
            result = calls.upload(blocks(), url, metadata=_metadata(STREAM_NAME), **options)
            _tuspipe_result(result, size)
            return Upload([result.url], _channel_figures([result]))

        return upload_generator

    if mode in ("items", "bytes"):
        # Made before the clock starts, so the row measures the upload, not making lines.
        items = make_items(spec["items"])
        body = b"".join(items) if mode == "bytes" else b""

        def upload_items() -> Upload:
            # A real generator (tuspipe cannot know its length), or the same bytes at once.
            source = body if mode == "bytes" else (item for item in items)
            result = calls.upload(source, url, metadata=_metadata(STREAM_NAME), **options)
            _tuspipe_result(result, size)
            return Upload([result.url], _channel_figures([result]))

        return upload_items

    if mode == "pipe":

        def upload_pipe() -> Upload:
            # Standard input is the read end of a pipe the parent fills from the test file.
            result = calls.upload(sys.stdin.buffer, url, metadata=_metadata(STREAM_NAME), **options)
            _tuspipe_result(result, size)
            return Upload([result.url], _channel_figures([result]))

        return upload_pipe

    def upload_file() -> Upload:
        result = calls.upload(paths[0], url, metadata=_metadata(paths[0]), **options)
        _tuspipe_result(result, size)
        return Upload([result.url], _channel_figures([result]))

    return upload_file


def _prepare_tuspy(spec: dict[str, Any]) -> UploadCall:
    from tusclient import client

    url: str = spec["url"]
    paths: list[str] = spec["paths"]
    options: dict[str, Any] = spec["options"]

    def upload() -> Upload:
        # The client and its uploaders are made inside the timed call, as tuspipe's are.
        tus = client.TusClient(url)
        urls = []
        for path in paths:
            uploader = tus.uploader(path, metadata=_metadata(path), **options)
            uploader.upload()
            size = os.path.getsize(path)
            if uploader.offset != size:
                raise RuntimeError(f"tuspy ended at offset {uploader.offset} of {size}")
            urls.append(str(uploader.url))
        return Upload(urls)

    return upload


# Bytes per sendfile() call of the ceiling: as tuspipe's spans of a file (DEFAULT_SPAN_SIZE).
_SENDFILE_COUNT = 8 * 1024 * 1024


def _prepare_sendfile(spec: dict[str, Any]) -> UploadCall:
    """The ceiling in Python: POST with http.client, then the PATCH body by ``sendfile()``."""
    url: str = spec["url"]
    path: str = spec["paths"][0]
    size: int = spec["size"]
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise RuntimeError("the sendfile ceiling speaks plain http only")
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tus = {"Tus-Resumable": "1.0.0"}

    def upload() -> Upload:
        creation = http.client.HTTPConnection(host, port, timeout=60)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            creation.request("POST", target, headers={**tus, "Upload-Length": str(size)})
            created = creation.getresponse()
            created.read()
            location = created.getheader("Location")
            if created.status != 201 or not location:
                raise RuntimeError(f"POST answered {created.status} without a Location")
        finally:
            creation.close()
        upload_url = urljoin(url, location)
        upload_parts = urlsplit(upload_url)
        head = (
            f"PATCH {upload_parts.path} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Tus-Resumable: 1.0.0\r\n"
            "Upload-Offset: 0\r\n"
            "Content-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {size}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("latin-1")
        with socket.create_connection((host, port), timeout=60) as sock:
            sock.sendall(head)
            # Non-blocking, a few MiB per sendfile() call, poll() when the socket is full: on
            # this machine that beats blocking calls (of any count).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as trio, httpx, curl
            sock.setblocking(False)
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
            sent = 0
            with open(path, "rb") as body:
                while sent < size:
                    count = min(size - sent, _SENDFILE_COUNT)
                    try:
                        moved = os.sendfile(sock.fileno(), body.fileno(), sent, count)
                    except BlockingIOError:
                        poller.poll(60_000)
                        continue
                    if moved == 0:
                        break
                    sent += moved
            sock.setblocking(True)
            if sent != size:
                raise RuntimeError(f"sendfile() sent {sent} of {size} bytes")
            answer = http.client.HTTPResponse(sock, method="PATCH")
            answer.begin()
            answer.read()
            offset = answer.getheader("Upload-Offset")
            if answer.status != 204 or offset != str(size):
                raise RuntimeError(f"PATCH answered {answer.status}, Upload-Offset {offset}")
        return Upload([upload_url])

    return upload


def _file_workers(
    paths: list[str], upload_one: Callable[[str], Awaitable[str]]
) -> tuple[list[str], Callable[[], Awaitable[None]]]:
    """The upload URLs (filled in file order) and a worker that uploads the next file no
    other worker took, until none is left; run `concurrency` of them at once."""
    urls = [""] * len(paths)
    queue = iter(range(len(paths)))  # shared: each worker takes the next file when free

    async def worker() -> None:
        for index in queue:
            urls[index] = await upload_one(paths[index])

    return urls, worker


def _prepare_httpx(spec: dict[str, Any]) -> UploadCall:
    """The floor under tuspipe's many-files figure: bare httpx under trio, no tus client at
    all. Each file is one POST carrying its bytes (creation-with-upload), `concurrency` at a
    time on one pooled client; what tuspipe adds per file is measured against this."""
    import httpx
    import trio

    url: str = spec["url"]
    concurrency: int = spec["options"].get("concurrency", DEFAULT_CONCURRENCY)

    async def upload_all() -> list[str]:
        async with httpx.AsyncClient() as client:

            async def post(path: str) -> str:
                with open(path, "rb") as stream:
                    body = stream.read()
                answer = await client.post(
                    url,
                    content=body,
                    headers={
                        "Tus-Resumable": "1.0.0",
                        "Upload-Length": str(len(body)),
                        "Content-Type": "application/offset+octet-stream",
                    },
                )
                offset = answer.headers.get("upload-offset")
                if answer.status_code != 201 or offset != str(len(body)):
                    raise RuntimeError(
                        f"POST answered {answer.status_code}, Upload-Offset {offset} "
                        "(creation-with-upload?)"
                    )
                return urljoin(url, answer.headers["location"])

            urls, worker = _file_workers(spec["paths"], post)
            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(worker)
        return urls

    def upload() -> Upload:
        return Upload(trio.run(upload_all))

    return upload


def _prepare_aiotus(spec: dict[str, Any]) -> UploadCall:
    """aiotus 1.1.0 (asyncio + aiohttp): ``aiotus.upload`` per file, `concurrency` at a time
    on one ``aiohttp.ClientSession``, with aiotus's default settings otherwise (its POST
    creates the upload, a HEAD asks the offset, a PATCH sends the bytes)."""
    import asyncio

    import aiohttp
    import aiotus

    url: str = spec["url"]
    concurrency: int = spec["options"].get("concurrency", DEFAULT_CONCURRENCY)

    async def upload_all() -> list[str]:
        async with aiohttp.ClientSession() as session:

            async def upload_one(path: str) -> str:
                with open(path, "rb") as stream:
                    name = os.path.basename(path).encode()
                    location = await aiotus.upload(
                        url, stream, {"filename": name}, client_session=session
                    )
                if location is None:  # aiotus logs the error and returns None
                    raise RuntimeError(f"aiotus could not upload {path} (see its log)")
                return str(location)

            urls, worker = _file_workers(spec["paths"], upload_one)
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return urls

    def upload() -> Upload:
        return Upload(asyncio.run(upload_all()))

    return upload


_PREPARE: dict[str, Callable[[dict[str, Any]], UploadCall]] = {
    "tuspipe": _prepare_tuspipe,
    "tuspy": _prepare_tuspy,
    "sendfile": _prepare_sendfile,
    "httpx": _prepare_httpx,
    "aiotus": _prepare_aiotus,
}


def peak_rss_kib(pid: int | str = "self") -> int | None:
    """The process's own peak RSS in KiB (``VmHWM``), or None where /proc has no such line.

    Not ``ru_maxrss``: Linux carries the parent's high-water mark into a child across
    fork/vfork + exec, so a child's ``ru_maxrss`` is never below its parent's RSS at the
    spawn. ``VmHWM`` belongs to the memory map made at exec, so it is the child's alone.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _own_peak_rss_kib() -> int:
    found = peak_rss_kib()
    return found if found is not None else int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str] | None = None) -> int:
    """Run the upload SPEC describes, write RESULT; exit 0 on success, 1 on failure.

    SPEC keys: ``client`` (tuspipe, tuspy, aiotus, sendfile, httpx), ``mode`` (file, many,
    generator, pipe, items, bytes), ``url``, ``paths``, ``size`` (total bytes), ``items``
    (how many small items the items and bytes modes make), ``options`` (keyword arguments of
    the call; ``concurrency`` for aiotus and httpx), ``loop`` (tuspipe only: trio, the default,
    or asyncio).
    """
    spec_path, result_path = (sys.argv[1:] if argv is None else argv)[:2]
    spec: dict[str, Any] = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    outcome: dict[str, Any]
    try:
        call = _PREPARE[spec["client"]](spec)
        base_rss_kib = _own_peak_rss_kib()
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        upload = call()
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        outcome = {
            "seconds": seconds,
            "cpu_user": after.ru_utime - before.ru_utime,
            "cpu_system": after.ru_stime - before.ru_stime,
            "base_rss_kib": base_rss_kib,
            "peak_rss_kib": _own_peak_rss_kib(),
            "urls": upload.urls,
            "channel_stats": [vars(channel) for channel in upload.channels],
        }
    except Exception as exc:
        traceback.print_exc()
        outcome = {"error": f"{type(exc).__name__}: {exc}"}
    Path(result_path).write_text(json.dumps(outcome), encoding="utf-8")
    return 1 if "error" in outcome else 0


if __name__ == "__main__":
    sys.exit(main())
