"""The fault-injection harness tested on its own, with plain httpx requests to real servers.

Each fault of :mod:`tests.faultproxy` (TCP level) and :mod:`tests.faults` (HTTP level) is
shown to really happen, and what the server did about it is read back from the server (HEAD
straight to it, and the bytes it stored). tuspipe is not involved here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import trio
import trio.testing

from .conftest import TusServer
from .faultproxy import FaultProxy, ThreadedFaultProxy
from .faults import (
    Corrupt,
    Drift,
    Fail,
    FaultTransport,
    Forward,
    Replace,
    Respond,
    Rule,
    ShortBody,
    StallBody,
)

KiB = 1024
TUS = {"Tus-Resumable": "1.0.0"}
ROOT = Path(__file__).resolve().parent.parent


def _upstream(server: TusServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def _create(server: TusServer, size: int) -> str:
    """A new upload of `size` bytes, created straight at the server; its absolute URL."""
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.post(server.url, headers={**TUS, "Upload-Length": str(size)})
    assert answer.status_code == 201, answer.text
    return urljoin(server.url, answer.headers["location"])


async def _offset(upload_url: str) -> int:
    """The server's offset, asked straight (never through a fault), once it has settled: a
    busy server may still be storing the body of a request whose connection was cut."""
    previous = -1
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(40):
            answer = await client.head(upload_url, headers=TUS)
            assert answer.status_code in (200, 204), answer.status_code
            offset = int(answer.headers["upload-offset"])
            if offset == previous and offset > 0:
                break
            previous = offset
            await trio.sleep(0.05)
    return offset


async def _patch(
    client: httpx.AsyncClient,
    url: str,
    offset: int,
    body: bytes,
    *,
    timeout: float = 5.0,
    checksum: bool = False,
) -> httpx.Response:
    headers = {
        **TUS,
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    if checksum:
        digest = base64.b64encode(hashlib.sha1(body).digest()).decode()
        headers["Upload-Checksum"] = f"sha1 {digest}"
    return await client.patch(url, content=body, headers=headers, timeout=timeout)


# -- the TCP proxy ------------------------------------------------------------------------


async def test_proxy_cut_up_resets_a_patch_mid_body(node_server: TusServer) -> None:
    body = _data(1024 * KiB)
    url = await _create(node_server, len(body))
    async with FaultProxy(*_upstream(node_server)) as proxy:
        fault = proxy.cut("up", after=100_000, once=True)
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.TransportError):
                await _patch(client, proxy.url_for(url), 0, body)
            offset = await _offset(url)
            # the server got the headers and part of the body: exactly 100 000 bytes in all
            assert 0 < offset < 100_000
            assert node_server.stored_path(url).read_bytes() == body[:offset]
            (record,) = proxy.history
            assert (record.bytes_up, record.outcome, record.faults) == (100_000, "cut", ["cut_up"])
            assert fault.hits == 1
            assert not fault.active
            # once: the next connection passes untouched
            answer = await _patch(client, proxy.url_for(url), offset, body[offset:])
            assert answer.status_code == 204
            assert int(answer.headers["upload-offset"]) == len(body)
        assert proxy.stats.faults == {"cut_up": 1}
    assert node_server.stored_path(url).read_bytes() == body


async def test_proxy_cut_down_loses_the_answer(node_server: TusServer) -> None:
    body = _data(10 * KiB)
    url = await _create(node_server, len(body))
    async with FaultProxy(*_upstream(node_server)) as proxy:
        proxy.cut("down", once=True)
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.TransportError):
                await _patch(client, proxy.url_for(url), 0, body)
        # the server did the work; not one byte of its answer reached the client
        assert await _offset(url) == len(body)
        assert proxy.history[0].bytes_down == 0
        assert proxy.stats.faults == {"cut_down": 1}


async def test_proxy_trigger_cuts_a_live_keep_alive_connection(node_server: TusServer) -> None:
    body = _data(64 * KiB)
    url = await _create(node_server, len(body))
    async with FaultProxy(*_upstream(node_server)) as proxy:
        async with httpx.AsyncClient() as client:
            assert (await client.head(proxy.url_for(url), headers=TUS)).status_code == 200
            # set while the pooled connection is open; counted from the next PATCH's start
            proxy.cut("up", after=1000, trigger=b"PATCH ")
            with pytest.raises(httpx.TransportError):
                await _patch(client, proxy.url_for(url), 0, body)
        stats = proxy.stats
        assert stats.connections == 1
        assert stats.faults == {"cut_up": 1}
        head_bytes = stats.bytes_up - 1000
        assert 0 < head_bytes < 300  # the HEAD request went through whole before the PATCH
        assert 0 < await _offset(url) < 1000


async def test_proxy_stall_makes_requests_time_out(node_server: TusServer) -> None:
    body = _data(1024 * KiB)
    url = await _create(node_server, len(body))
    async with FaultProxy(*_upstream(node_server)) as proxy:
        async with httpx.AsyncClient() as client:
            # the answer never comes: a read timeout
            proxy.stall("down")
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await client.head(proxy.url_for(url), headers=TUS, timeout=0.5)
            assert 0.5 <= time.monotonic() - started < 2
            proxy.release()
            proxy.close_connections()  # else the released answer could take the next stall
            # a timed stall delays the request, which then succeeds
            proxy.stall(seconds=0.4, once=True)
            started = time.monotonic()
            assert (await client.head(proxy.url_for(url), headers=TUS)).status_code == 200
            assert time.monotonic() - started >= 0.4
            # a PATCH stalled mid-body times out too; its sockets stay open until the reset
            proxy.stall("up", after=200_000, trigger=b"PATCH ", once=True)
            with pytest.raises(httpx.TimeoutException):
                await _patch(client, proxy.url_for(url), 0, body, timeout=0.5)
        assert proxy.stats.active >= 1
        assert proxy.close_connections() >= 1
        assert 0 < await _offset(url) < 200_000
        assert proxy.stats.faults == {"stall_down": 1, "stall_up": 2}


async def test_proxy_refuse(node_server: TusServer) -> None:
    async with FaultProxy(*_upstream(node_server)) as proxy:
        endpoint = proxy.url_for(node_server.url)
        window = proxy.refuse(seconds=0.5, mode="unlisten")
        async with httpx.AsyncClient(timeout=5) as client:
            with pytest.raises(httpx.ConnectError):
                await client.options(endpoint)
        # The window ends at its trio time; then the proxy listens again before it waits.
        assert window.until is not None
        await trio.sleep_until(window.until)
        await trio.testing.wait_all_tasks_blocked()
        for mode in ("reset", "close"):
            proxy.refuse(mode=mode, once=True)
            async with httpx.AsyncClient(timeout=5) as client:
                with pytest.raises(httpx.TransportError):
                    await client.options(endpoint)
                # once: the next connection is served
                assert (await client.options(endpoint)).status_code == 204
        stats = proxy.stats
        assert stats.refused == 2
        assert stats.faults == {"refuse_unlisten": 1, "refuse_reset": 1, "refuse_close": 1}


async def test_proxy_slow_limits_throughput(node_server: TusServer) -> None:
    body = _data(800 * KiB)
    half = len(body) // 2
    url = await _create(node_server, len(body))
    async with FaultProxy(*_upstream(node_server)) as proxy:
        async with httpx.AsyncClient(timeout=10) as client:
            fault = proxy.slow(1_000_000, "up")
            started = time.monotonic()
            assert (await _patch(client, proxy.url_for(url), 0, body[:half])).status_code == 204
            elapsed = time.monotonic() - started
            assert half / elapsed < 1_200_000
            proxy.remove(fault)  # live connections speed up at once
            started = time.monotonic()
            answer = await _patch(client, proxy.url_for(url), half, body[half:])
            assert answer.status_code == 204
            assert time.monotonic() - started < elapsed / 2
        assert proxy.stats.faults == {"slow_up": 1}


async def test_proxy_counters(node_server: TusServer) -> None:
    body = _data(50 * KiB)
    url = await _create(node_server, len(body))
    async with FaultProxy(*_upstream(node_server)) as proxy:
        for offset in (0, 25 * KiB):
            async with httpx.AsyncClient(timeout=5) as client:  # a new connection each
                await _patch(client, proxy.url_for(url), offset, body[offset : offset + 25 * KiB])
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.head(proxy.url_for(url), headers=TUS)).status_code == 200
        with trio.fail_after(2):
            while proxy.stats.active:
                await trio.sleep(0.01)
        stats = proxy.stats
        history = proxy.history
    assert (stats.connections, stats.refused, stats.faults_applied) == (3, 0, 0)
    assert len(body) < stats.bytes_up == sum(record.bytes_up for record in history)
    assert 0 < stats.bytes_down == sum(record.bytes_down for record in history)
    assert [record.outcome for record in history] == ["eof"] * 3


def test_threaded_proxy_from_blocking_code(node_server: TusServer) -> None:
    endpoint = node_server.url
    with ThreadedFaultProxy(*_upstream(node_server)) as proxy, httpx.Client(timeout=5) as client:
        assert client.options(proxy.url_for(endpoint)).status_code == 204
        fault = proxy.cut("down", once=True)
        with pytest.raises(httpx.TransportError):
            client.options(proxy.url_for(endpoint))
        assert fault.hits == 1
        proxy.stall()
        with pytest.raises(httpx.ReadTimeout):
            client.options(proxy.url_for(endpoint), timeout=0.3)
        proxy.clear()
        assert client.options(proxy.url_for(endpoint)).status_code == 204
        stats = proxy.stats
        assert stats.connections == 3
        assert stats.faults == {"cut_down": 1, "stall_up": 1}
    # closed: nobody listens any more
    with pytest.raises(httpx.ConnectError):
        httpx.options(proxy.url_for(endpoint), timeout=2)


def test_proxy_command_line(node_server: TusServer) -> None:
    host, port = _upstream(node_server)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.faultproxy", "--upstream", f"{host}:{port}", "--port", "0"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        ready = child.stdout.readline().split()
        assert ready[0] == "READY"
        endpoint = f"http://127.0.0.1:{int(ready[1])}/files/"

        def command(**fields: object) -> dict[str, object]:
            assert child.stdin is not None
            assert child.stdout is not None
            child.stdin.write(json.dumps(fields) + "\n")
            child.stdin.flush()
            answer: dict[str, object] = json.loads(child.stdout.readline())
            return answer

        assert command(op="cut", direction="up", trigger="OPTIONS", once=True)["ok"] is True
        with pytest.raises(httpx.TransportError):
            httpx.options(endpoint, timeout=5)
        assert httpx.options(endpoint, timeout=5).status_code == 204
        stats = command(op="stats")
        assert (stats["connections"], stats["faults"]) == (2, {"cut_up": 1})
        assert command(op="nonsense")["ok"] is False
        child.stdin.close()  # the proxy ends with its stdin
        assert child.wait(timeout=5) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_proxy_is_loopback_only() -> None:
    for host in ("192.0.2.1", "example.com", "0.0.0.0"):
        with pytest.raises(ValueError, match="loopback"):
            FaultProxy(host, 80)
        with pytest.raises(ValueError, match="loopback"):
            FaultProxy("127.0.0.1", 80, host=host)


# -- the proxy's body limit (max_body, like nginx's client_max_body_size) ---------------------

MiB = 1024 * KiB
TOO_LARGE = "413 Request Entity Too Large"


def _check_too_large(answer: httpx.Response) -> None:
    """An answer of the proxy's own, like nginx's: 413, an HTML page, no tus headers."""
    assert answer.status_code == 413
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "text/html"
    assert f"<title>{TOO_LARGE}</title>" in answer.text
    assert "tus-resumable" not in answer.headers


async def test_proxy_max_body_refuses_a_larger_body_unforwarded(node_server: TusServer) -> None:
    body = _data(3 * MiB)
    url = await _create(node_server, len(body))
    async with FaultProxy(*_upstream(node_server), max_body=MiB) as proxy:
        async with httpx.AsyncClient(timeout=10) as client:
            # a body of exactly the limit passes, with a HEAD before and after it on the same
            # keep-alive connection: the proxy finds where each request ends
            assert (await client.head(proxy.url_for(url), headers=TUS)).status_code == 200
            answer = await _patch(client, proxy.url_for(url), 0, body[:MiB])
            assert answer.status_code == 204
            assert (await client.head(proxy.url_for(url), headers=TUS)).status_code == 200
            assert proxy.stats.connections == 1
            forwarded = proxy.stats.bytes_up
            # one byte more is refused: the client sends it all and reads the 413
            answer = await _patch(client, proxy.url_for(url), MiB, body[MiB : 2 * MiB + 1])
            _check_too_large(answer)
            # not a byte of it reached the server
            assert proxy.stats.bytes_up == forwarded
            assert await _offset(url) == MiB
            assert node_server.stored_path(url).read_bytes() == body[:MiB]
            # the proxy closed that connection; the client goes on with a new one
            for offset in (MiB, 2 * MiB):
                answer = await _patch(
                    client, proxy.url_for(url), offset, body[offset : offset + MiB]
                )
                assert answer.status_code == 204
        with trio.fail_after(2):
            while proxy.stats.active:
                await trio.sleep(0.01)
        assert proxy.stats.faults == {"body_limit": 1}
        first, *others = proxy.history
        assert (first.outcome, first.faults, first.bytes_up) == (
            "body-limit",
            ["body_limit"],
            forwarded,
        )
        assert [record.outcome for record in others] == ["eof"]
    assert node_server.stored_path(url).read_bytes() == body


async def test_proxy_max_body_lingers_so_a_large_body_reads_the_413(
    node_server: TusServer,
) -> None:
    # far more than the socket buffers hold: without the lingering close the client would
    # die on a reset or a broken pipe in mid-body instead of reading the answer
    body = _data(32 * MiB)
    url = await _create(node_server, len(body))
    async with FaultProxy(*_upstream(node_server), max_body=MiB) as proxy:
        async with httpx.AsyncClient(timeout=10) as client:
            _check_too_large(await _patch(client, proxy.url_for(url), 0, body, timeout=30))
            # creation-with-upload: a POST with a body is limited the same way
            answer = await client.post(
                proxy.url_for(node_server.url),
                content=body[: 2 * MiB],
                headers={
                    **TUS,
                    "Upload-Length": str(2 * MiB),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            _check_too_large(answer)
            assert "location" not in answer.headers
        assert proxy.stats.bytes_up == 0
        assert proxy.stats.faults == {"body_limit": 2}
    assert await _offset(url) == 0


async def test_proxy_max_body_drains_then_closes(
    node_server: TusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.faultproxy.LINGER_IDLE", 0.5)
    async with FaultProxy(*_upstream(node_server), max_body=MiB) as proxy:
        stream = await trio.open_tcp_stream(proxy.host, proxy.port)
        async with stream:
            head = (
                f"PATCH /files/nothing HTTP/1.1\r\nHost: {proxy.host}:{proxy.port}\r\n"
                f"Tus-Resumable: 1.0.0\r\nContent-Length: {8 * MiB}\r\n\r\n"
            )
            await stream.send_all(head.encode() + _data(MiB))
            # the 413 at once (not waiting for the body), then the proxy's half-close
            answer = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 " + TOO_LARGE.encode() + b"\r\n")
            assert b"\r\nConnection: close\r\n" in answer
            # what the client still sends is read and dropped while it keeps coming...
            for _ in range(4):
                await stream.send_all(_data(MiB))
                await trio.sleep(0.2)
            (record,) = proxy.history
            assert not record.closed
            # ... and the proxy closes once the client has been quiet for LINGER_IDLE
            with trio.fail_after(3):
                while not record.closed:
                    await trio.sleep(0.05)
            assert (record.outcome, record.bytes_up, record.bytes_down) == ("body-limit", 0, 0)


async def test_proxy_max_body_holds_back_a_chunked_body(node_server: TusServer) -> None:
    body = _data(2 * MiB)

    async def pieces(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 100 * KiB):
            yield data[start : start + 100 * KiB]

    url = await _create(node_server, len(body))
    async with FaultProxy(*_upstream(node_server), max_body=MiB) as proxy:
        headers = {
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        }
        async with httpx.AsyncClient(timeout=10) as client:
            # no Content-Length: httpx sends a chunked body, refused once it passes the limit
            answer = await client.patch(proxy.url_for(url), content=pieces(body), headers=headers)
            _check_too_large(answer)
            assert proxy.stats.bytes_up == 0
            assert await _offset(url) == 0
            # within the limit, it reaches the server whole, and the connection goes on
            answer = await client.patch(
                proxy.url_for(url), content=pieces(body[:MiB]), headers=headers
            )
            assert answer.status_code == 204
            assert int(answer.headers["upload-offset"]) == MiB
            assert (await client.head(proxy.url_for(url), headers=TUS)).status_code == 200
        assert proxy.stats.faults == {"body_limit": 1}
    assert node_server.stored_path(url).read_bytes() == body[:MiB]


def test_threaded_proxy_with_max_body(node_server: TusServer) -> None:
    with ThreadedFaultProxy(*_upstream(node_server), max_body=64 * KiB) as proxy:
        with httpx.Client(timeout=10) as client:
            answer = client.post(
                proxy.url_for(node_server.url),
                content=_data(4 * MiB),
                headers={
                    **TUS,
                    "Upload-Length": str(4 * MiB),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            _check_too_large(answer)
            assert client.options(proxy.url_for(node_server.url)).status_code == 204
        assert proxy.stats.faults == {"body_limit": 1}
    with pytest.raises(ValueError, match="max_body"):
        FaultProxy("127.0.0.1", 80, max_body=-1)


# -- the httpx transport ------------------------------------------------------------------


def _faulty(*rules: Rule) -> FaultTransport:
    return FaultTransport(httpx.AsyncHTTPTransport(), rules)


SCRIPTED = [500, 502, 503, 504, 423, 429, 409, 460]


async def test_transport_scripted_statuses_are_not_forwarded(node_server: TusServer) -> None:
    body = _data(16 * KiB)
    url = await _create(node_server, len(body))
    # the i-th PATCH gets SCRIPTED[i]; the one after them passes
    transport = _faulty(
        *(
            Rule("PATCH", Respond(status, retry_after=2 if status == 429 else None), nth=i + 1)
            for i, status in enumerate(SCRIPTED)
        )
    )
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        answers = [await _patch(client, url, 0, body) for _ in SCRIPTED]
        last = await _patch(client, url, 0, body)
    assert [answer.status_code for answer in answers] == SCRIPTED
    assert answers[SCRIPTED.index(429)].headers["retry-after"] == "2"
    assert all(answer.headers["tus-resumable"] == "1.0.0" for answer in answers)
    assert last.status_code == 204
    exchanges = transport.exchanges("PATCH")
    assert [exchange.status for exchange in exchanges] == [*SCRIPTED, 204]
    assert [exchange.server_status for exchange in exchanges] == [None] * len(SCRIPTED) + [204]
    assert [exchange.offset for exchange in exchanges] == [0] * (len(SCRIPTED) + 1)
    assert exchanges[-1].response_offset == len(body)


async def test_transport_replace_answers_after_the_server_worked(node_server: TusServer) -> None:
    body = _data(16 * KiB)
    url = await _create(node_server, len(body))
    transport = _faulty(Rule("PATCH", Replace(500, body=b"lost")))
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        answer = await _patch(client, url, 0, body)
    assert (answer.status_code, answer.content) == (500, b"lost")
    assert await _offset(url) == len(body)
    (exchange,) = transport.log
    assert (exchange.server_status, exchange.status, exchange.body_sent) == (204, 500, len(body))


async def test_transport_errors_before_and_after_forwarding(node_server: TusServer) -> None:
    body = _data(16 * KiB)
    url = await _create(node_server, 2 * len(body))
    transport = _faulty(
        Rule("PATCH", Fail(httpx.ConnectError)),
        Rule("PATCH", Fail(httpx.WriteTimeout), nth=2),
        Rule("PATCH", Fail(httpx.ReadError, after=True), nth=3),
    )
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        with pytest.raises(httpx.ConnectError):
            await _patch(client, url, 0, body)
        with pytest.raises(httpx.WriteTimeout):
            await _patch(client, url, 0, body)
        assert await _offset(url) == 0  # before: the server saw nothing
        with pytest.raises(httpx.ReadError):
            await _patch(client, url, 0, body)
        assert await _offset(url) == len(body)  # after: stored, the answer lost
        assert (await _patch(client, url, len(body), body)).status_code == 204
    assert [(e.error, e.server_status, e.status) for e in transport.log] == [
        ("ConnectError", None, None),
        ("WriteTimeout", None, None),
        ("ReadError", 204, None),
        (None, 204, 204),
    ]


async def test_transport_short_body(node_server: TusServer) -> None:
    body = _data(256 * KiB)
    url = await _create(node_server, len(body))
    keep = 64 * KiB
    transport = _faulty(
        Rule("PATCH", ShortBody(keep)),
        Rule("PATCH", ShortBody(keep, error=httpx.ReadError, mode="truncate"), nth=2),
    )
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        # abort: the request is cut after `keep` body bytes, Content-Length unmet
        with pytest.raises(httpx.WriteError):
            await _patch(client, url, 0, body)
        offset = await _offset(url)
        assert 0 < offset <= keep
        # truncate: a whole request of `keep` bytes, then the error
        with pytest.raises(httpx.ReadError):
            await _patch(client, url, offset, body[offset:])
        assert await _offset(url) == offset + keep
    assert node_server.stored_path(url).read_bytes() == body[: offset + keep]
    assert [exchange.body_sent for exchange in transport.log] == [keep, keep]
    assert transport.log[1].server_status == 204


async def test_transport_corruption(
    node_server: TusServer, asgitus_server: TusServer, tmp_path: Path
) -> None:
    body = _data(64 * KiB)
    # asgi-tus verifies the checksum, computed by the client over the true bytes: 460
    url = await _create(asgitus_server, len(body))
    transport = _faulty(Rule("PATCH", Corrupt()))
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        assert (await _patch(client, url, 0, body, checksum=True)).status_code == 460
        assert await _offset(url) == 0
        assert (await _patch(client, url, 0, body, checksum=True)).status_code == 204
    # the Node server checks nothing: it stores the flipped byte
    url = await _create(node_server, len(body))
    transport = _faulty(Rule("PATCH", Corrupt(at=1000, mask=0x01)))
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        assert (await _patch(client, url, 0, body)).status_code == 204
    stored = node_server.stored_path(url).read_bytes()
    assert [i for i in range(len(body)) if stored[i] != body[i]] == [1000]
    assert stored[1000] == body[1000] ^ 0x01


async def test_transport_drift_makes_the_patch_conflict(node_server: TusServer) -> None:
    body = _data(64 * KiB)
    url = await _create(node_server, len(body))
    transport = _faulty(Rule("PATCH", Drift(extra=10)))
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        assert (await _patch(client, url, 0, body)).status_code == 409
        assert await _offset(url) == 10
        assert (await _patch(client, url, 10, body[10:])).status_code == 204
    assert node_server.stored_path(url).read_bytes() == body
    (drift,) = transport.exchanges("PATCH", injected=True)
    assert (drift.offset, drift.body_sent, drift.status) == (0, 10, 204)
    assert transport.statuses("PATCH") == [409, 204]


async def test_transport_rules_by_method_and_occurrence(node_server: TusServer) -> None:
    chunk = 8 * KiB
    body = _data(3 * chunk)
    url = await _create(node_server, len(body))
    transport = _faulty(
        Rule("PATCH", Respond(503), nth=2, times=2),
        Rule("HEAD", Fail(httpx.ReadError)),
        # due from the 2nd PATCH on, but the first rule goes first while it lasts
        Rule("PATCH", Respond(500), nth=2),
    )
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        with pytest.raises(httpx.ReadError):
            await client.head(url, headers=TUS)
        assert (await client.head(url, headers=TUS)).status_code == 200
        statuses = []
        offset = 0
        while offset < len(body):
            answer = await _patch(client, url, offset, body[offset : offset + chunk])
            statuses.append(answer.status_code)
            if answer.status_code == 204:
                offset = int(answer.headers["upload-offset"])
    assert statuses == [204, 503, 503, 500, 204, 204]
    assert transport.statuses() == [None, 200, *statuses]
    offsets = [exchange.offset for exchange in transport.exchanges("PATCH")]
    assert offsets == [0, chunk, chunk, chunk, chunk, 2 * chunk]
    assert [(rule.seen, rule.fired) for rule in transport.rules] == [(6, 2), (2, 1), (6, 1)]


async def test_transport_delays_follow_the_trio_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    received: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request.content)
        return httpx.Response(204)

    transport = FaultTransport(
        httpx.MockTransport(handler),
        [
            Rule("HEAD", Forward(), delay=100),
            Rule("PATCH", StallBody(after=3, seconds=50)),
            Rule("DELETE", Forward(), delay=math.inf),
        ],
    )
    wall = time.monotonic()
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9") as client:
        start = trio.current_time()
        await client.head("/files/x")
        assert trio.current_time() - start == pytest.approx(100)
        await client.patch("/files/x", content=b"abcdef")
        assert trio.current_time() - start == pytest.approx(150)
        with trio.move_on_after(1000) as scope:
            await client.delete("/files/x")  # hangs until cancelled
        assert scope.cancelled_caught
    assert time.monotonic() - wall < 5
    assert received == [b"", b"abcdef"]


async def test_transport_truncate_mode_in_memory() -> None:
    seen: list[tuple[str | None, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("content-length"), request.content))
        return httpx.Response(204, headers={"Upload-Offset": str(len(request.content))})

    transport = FaultTransport(
        httpx.MockTransport(handler), [Rule("PATCH", ShortBody(4, mode="truncate"))]
    )

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"defgh"

    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9") as client:
        with pytest.raises(httpx.WriteError):
            await client.patch("/files/x", content=body(), headers={"Content-Length": "8"})
    assert seen == [("4", b"abcd")]
    assert transport.log[0].server_status == 204
