"""tuspipe's connection pool (tuspipe/_pool.py) and the bare request path over it
(ZeroCopyTransport.send_bare): a task keeps finding its own connection, the limits of httpx's
default transport hold, a place is given back whatever happens to the request, and the
requests leave with exactly the header lines httpx would have written.

The server is a small h11 server on loopback in the test's own nursery, so that each request's
connection is known, and an answer can be held back or end its connection on purpose.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from itertools import count

import h11
import httpcore
import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import tuspipe
from tuspipe._pool import ConnectionPool
from tuspipe._zerocopy import BareAnswer, ZeroCopyTransport, _SendfileBackend

TIMEOUTS = {"timeout": {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}}


@dataclass
class Server:
    """Answers every request 204 on loopback; notes which connection carried it."""

    port: int = 0
    seen: list[tuple[int, str]] = field(default_factory=list)  # (connection, target)
    hold: trio.Event | None = None  # answers wait for it when set
    close_after_answer: bool = False
    set_cookie: bool = False
    heads: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    _numbers: count[int] = field(default_factory=lambda: count(1))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/files/"

    async def serve(self, stream: trio.SocketStream) -> None:
        number = next(self._numbers)
        connection = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    connection.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    self.seen.append((number, event.target.decode()))
                    self.heads.append(list(event.headers.raw_items()))
                elif isinstance(event, h11.EndOfMessage):
                    if self.hold is not None:
                        await self.hold.wait()
                    headers = [
                        ("Tus-Resumable", "1.0.0"),
                        ("Upload-Offset", "0"),
                        ("Upload-Length", "10"),
                        ("Content-Length", "0"),
                    ]
                    if self.close_after_answer:
                        headers.append(("Connection", "close"))
                    if self.set_cookie:
                        headers.append(("Set-Cookie", "lane=1; Path=/"))
                    answer = h11.Response(status_code=204, headers=headers)
                    await stream.send_all(connection.send(answer) or b"")
                    await stream.send_all(connection.send(h11.EndOfMessage()) or b"")
                    if connection.our_state is h11.MUST_CLOSE:
                        return
                    connection.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return


@pytest.fixture
async def server(nursery: trio.Nursery) -> Server:
    server = Server()
    listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), server.serve, 0)
    server.port = listeners[0].socket.getsockname()[1]
    return server


def make_pool(**limits: float) -> ConnectionPool:
    return ConnectionPool(
        ssl_context=ssl.create_default_context(),
        network_backend=_SendfileBackend(),
        **limits,  # type: ignore[arg-type]
    )


async def ask(pool: ConnectionPool, url: str, read: bool = True) -> httpcore.Response:
    response = await pool.handle_async_request(
        httpcore.Request("OPTIONS", url, headers=[("Host", "127.0.0.1")], extensions=TIMEOUTS)
    )
    if read:
        await response.aread()
        await response.aclose()
    return response


async def test_one_task_keeps_its_connection(server: Server) -> None:
    pool = make_pool()
    for _ in range(20):
        await ask(pool, server.url)
    assert {number for number, _ in server.seen} == {1}
    assert len(pool.connections) == 1
    await pool.aclose()


async def test_concurrent_tasks_each_find_a_connection_and_keep_it(server: Server) -> None:
    pool = make_pool()

    async def task(number: int) -> None:
        for index in range(10):
            await ask(pool, f"{server.url}{number}-{index}")

    async with trio.open_nursery() as nursery:
        for number in range(8):
            nursery.start_soon(task, number)
    assert len(server.seen) == 80
    assert len({number for number, _ in server.seen}) <= 8
    assert len(pool.connections) <= 8
    await pool.aclose()


async def test_idle_connections_beyond_the_keepalive_limit_are_closed(server: Server) -> None:
    pool = make_pool(max_keepalive_connections=2)
    server.hold = trio.Event()
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(ask, pool, server.url)
        while len(server.seen) < 4:
            await trio.sleep(0.01)
        assert len(pool.connections) == 4
        server.hold.set()
    assert len(pool.connections) == 2
    await pool.aclose()
    assert pool.connections == []


async def test_a_request_waits_for_a_place_up_to_the_pool_timeout(server: Server) -> None:
    pool = make_pool(max_connections=1)
    held = await ask(pool, server.url, read=False)  # its place is held until it is closed
    request = httpcore.Request(
        "OPTIONS", server.url, headers=[("Host", "x")], extensions={"timeout": {"pool": 0.2}}
    )
    with pytest.raises(httpcore.PoolTimeout):
        await pool.handle_async_request(request)
    await held.aread()
    await held.aclose()
    await ask(pool, server.url)  # the place is free again
    await pool.aclose()


async def test_a_cancelled_request_gives_its_place_back(server: Server) -> None:
    pool = make_pool(max_connections=1)
    server.hold = trio.Event()
    with trio.move_on_after(0.2) as waited:
        await ask(pool, server.url)
    assert waited.cancelled_caught
    assert pool.connections == []  # a connection with an unanswered request is closed
    server.hold.set()
    await ask(pool, server.url)
    assert [number for number, _ in server.seen] == [1, 2]
    await pool.aclose()


async def test_a_connection_the_server_closed_is_not_reused(server: Server) -> None:
    pool = make_pool()
    server.close_after_answer = True
    await ask(pool, server.url)
    await ask(pool, server.url)
    assert [number for number, _ in server.seen] == [1, 2]
    assert pool.connections == []
    await pool.aclose()


async def test_an_expired_idle_connection_is_replaced(server: Server) -> None:
    pool = make_pool(keepalive_expiry=0.05)
    await ask(pool, server.url)
    await trio.sleep(0.1)
    await ask(pool, server.url)
    assert [number for number, _ in server.seen] == [1, 2]
    await pool.aclose()


async def test_uploads_through_tuspipe_use_one_connection_each(server: Server) -> None:
    # Sequential calls on one Client: every request rides the same connection.
    async with tuspipe.Client() as client:
        for _ in range(5):
            await client.server_info(server.url)
    assert {number for number, _ in server.seen} == {1}


# The bare path writes what httpx writes --------------------------------------------------


HEADER_NAMES = st.sampled_from(
    ["User-Agent", "Accept", "Content-Length", "Transfer-Encoding", "X-Thing", "accept-encoding"]
)
HEADER_VALUES = st.text(alphabet="abcdefghij0123456789 ,;=", max_size=12)


@given(
    method=st.sampled_from(["POST", "PATCH", "HEAD", "OPTIONS", "DELETE"]),
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5),
    has_body=st.booleans(),
    url=st.sampled_from(["http://127.0.0.1:1080/files/", "http://localhost/files/a?b=1"]),
)
def test_the_bare_head_is_httpx_s_head(
    method: str, headers: dict[str, str], has_body: bool, url: str
) -> None:
    client = httpx.AsyncClient()
    transport = ZeroCopyTransport(ssl.create_default_context())
    transport.default_headers = {
        name.decode().lower(): (name, value) for name, value in client.headers.raw
    }

    async def body() -> AsyncIterator[bytes]:
        yield b"x"

    built = client.build_request(
        method, url, headers=list(headers.items()), content=body() if has_body else None
    )
    bare = transport._head(method, httpx.URL(url).netloc, list(headers.items()), has_body)
    assert bare == built.headers.raw


async def test_answers_on_the_bare_path_read_as_httpx_reads_them() -> None:
    raw = [
        (b"Upload-Offset", b"5"),
        (b"X-Many", b"a"),
        (b"x-many", b"b"),
        (b"Location", "/files/\u00e9".encode()),
    ]
    answer = BareAnswer(httpcore.Response(204, headers=raw, content=b""))
    expected = {name.lower(): value for name, value in httpx.Headers(raw).items()}
    assert answer.headers() == expected
    assert answer.headers()["location"] == "/files/\u00e9"


async def test_a_cookie_moves_later_requests_to_httpx_s_path(server: Server) -> None:
    server.set_cookie = True
    async with tuspipe.Client() as client:
        await client.server_info(server.url)
        server.set_cookie = False
        await client.upload_status(server.url + "a")
    sent = [dict((name.lower(), value) for name, value in head) for head in server.heads]
    assert b"cookie" not in sent[0]
    assert sent[1][b"cookie"] == b"lane=1"
