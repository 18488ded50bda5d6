"""A fault-injecting TCP proxy (trio) to put in front of a real tus server on loopback.

The proxy forwards bytes between a client and one configured upstream (a loopback address
only) and, on command, breaks the connection the way real networks do::

    async with FaultProxy("127.0.0.1", 1080) as proxy:
        fault = proxy.cut("up", after=100_000, once=True)  # reset the next PATCH mid-body
        ...  # talk to proxy.url_for("/files/")
        assert fault.hits == 1 and proxy.stats.faults["cut_up"] == 1

From blocking code (the soak script, tests/soak.py), the same controls on a proxy that runs in
its own thread::

    with ThreadedFaultProxy("127.0.0.1", 1080) as proxy:
        proxy.stall("both", seconds=2.0)
        httpx.head(proxy.url_for(upload_url), timeout=0.5)  # times out

From another process: ``python -m tests.faultproxy --upstream 127.0.0.1:1080 --port 0``
(``--max-body BYTES`` for a body limit) prints ``READY <port>``, then takes one JSON command
per line on stdin (``{"op": "cut", "direction": "up", "after": 100000, "once": true}``,
``{"op": "stats"}``, ...; see :func:`_command`) and answers each with one JSON line; it exits
when stdin closes.

Directions: ``"up"`` is client to server (the request), ``"down"`` server to client (the
answer), ``"both"`` either (stall and slow only).

Faults (each control returns a :class:`Fault` handle; ``proxy.remove(fault)`` ends it):

* :meth:`FaultProxy.cut` - once a connection has carried `after` bytes in `direction`, close
  both of its sockets (with a TCP reset unless ``reset=False``): a reset mid-PATCH ("up") or
  a lost answer ("down": the server did the work).
* :meth:`FaultProxy.stall` - stop forwarding (both sockets stay open, nothing is read) for
  `seconds` from when the stall hits the connection, or until :meth:`FaultProxy.release`.
  While stalled, neither end hears of the other's close (a network black hole).
* :meth:`FaultProxy.slow` - limit each affected connection to `rate` bytes per second.
* :meth:`FaultProxy.refuse` - for `seconds` from now (or until removed): accept new
  connections and reset them (``mode="reset"``) or close them (``"close"``) at once, or stop
  listening altogether (``"unlisten"``: connecting fails with ECONNREFUSED).

Where byte counts start: cut, stall and slow count `after` bytes per connection and
direction, from the later of the connection's start and the moment the fault was set, so a
fault applies to new connections and to live (pooled keep-alive) ones alike. With
``trigger=b"PATCH "`` the count starts instead at the first occurrence of those bytes in that
direction (after the fault was set): ``cut("up", after=1000, trigger=b"PATCH ")`` resets a
connection 1000 bytes into its next PATCH request, whatever came before on it. A fault hits
a given connection at most once (so a non-``once`` fault with a trigger takes the first
PATCH of each connection, not every one); a ``"both"`` fault acts on each direction as that
direction reaches it, and a stall ends for both directions at the same moment (`seconds`
after it first held the connection). ``once=True`` makes a fault hit only the first
connection it reaches - a live one may take it before a new one does (see
:meth:`FaultProxy.close_connections`); otherwise it stays until removed, hitting every
connection that reaches it. ``refuse(once=True)`` refuses only the next connection.

A body limit (``FaultProxy(..., max_body=1 << 20)``), like nginx's ``client_max_body_size``:
the proxy follows the client's HTTP/1.1 requests, and one whose body is longer than
`max_body` bytes (by its ``Content-Length``; a chunked body is held back until it ends or
passes the limit) is answered ``413 Request Entity Too Large`` (an HTML page, ``Connection:
close``) and never reaches the server. Then, as nginx's lingering close does, the proxy
half-closes and reads and discards what the client still sends (for at most
:data:`LINGER_TIME` seconds, :data:`LINGER_IDLE` without a byte) before it closes, so that a
client still sending its body reads the 413 rather than a broken pipe. Requests within the
limit pass untouched; a refusal counts as ``body_limit`` in the counters.

Counters: :attr:`FaultProxy.stats` (connections, bytes each way, faults applied by kind) and
:attr:`FaultProxy.history` (the last connections, each with its bytes and faults).

Bounded: every task belongs to the proxy's nursery and ends when the proxy closes; the proxy
only ever connects to its configured upstream, which must be a loopback address.
"""

from __future__ import annotations

import argparse
import email.utils
import fcntl
import ipaddress
import json
import math
import socket
import struct
import sys
import termios
from collections import Counter, deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

import trio

from .threaded import NurseryServer, ThreadedServer, listen

__all__ = [
    "ConnectionRecord",
    "Direction",
    "Fault",
    "FaultProxy",
    "ProxyStats",
    "RefuseMode",
    "ThreadedFaultProxy",
]

Direction = Literal["up", "down", "both"]
FaultKind = Literal["cut", "stall", "slow", "refuse"]
RefuseMode = Literal["reset", "close", "unlisten"]
#: How a request's body is delimited: its length, "chunked", or None (not followed further).
Framing = int | Literal["chunked"] | None

#: Bytes read from a socket at a time.
READ_SIZE = 256 * 1024
#: Seconds allowed to connect to the upstream before the client's connection is reset.
CONNECT_TIMEOUT = 5.0
#: Longest trigger (bytes searched for across reads).
TRIGGER_MAX = 64
#: Connections kept in :attr:`FaultProxy.history`.
HISTORY = 1000
#: After refusing a body (max_body), what the client still sends is read and discarded for at
#: most this many seconds in all (nginx's lingering_time) ...
LINGER_TIME = 30.0
#: ... and at most this many seconds without a byte (nginx's lingering_timeout).
LINGER_IDLE = 5.0
#: The longest request head (or chunk-size line) followed under max_body; a longer one is
#: forwarded as it is and the connection no longer followed.
HEAD_MAX = 64 * 1024


def _loopback_host(host: str) -> str:
    """`host` as an IP literal, refusing anything but a loopback address."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (loopback only)") from None
    if not address.is_loopback:
        raise ValueError(f"{host} is not a loopback address; the proxy only works on loopback")
    return str(address)


def _non_negative(name: str, value: float | None) -> None:
    if value is not None and (math.isnan(value) or value < 0):
        raise ValueError(f"{name} must be >= 0, not {value!r}")


@dataclass(eq=False)
class Fault:
    """One fault set on a proxy. `hits` counts the connections it hit."""

    id: int
    kind: FaultKind
    direction: Direction
    after: int = 0
    once: bool = False
    trigger: bytes | None = None
    seconds: float | None = None
    rate: float | None = None
    mode: RefuseMode | None = None
    reset: bool = True
    hits: int = 0
    #: False once removed (by :meth:`FaultProxy.remove`, ``release``, ``clear`` or expiry).
    active: bool = True
    #: The connection a ``once`` fault hit first (the only one it may still hit).
    owner: int | None = None
    #: refuse: the trio time the window ends (None: until removed).
    until: float | None = None
    released: trio.Event = field(default_factory=trio.Event, repr=False)

    def applies_to(self, direction: Literal["up", "down"]) -> bool:
        return self.direction in (direction, "both")

    def describe(self) -> dict[str, Any]:
        """The fault as JSON-able fields."""
        return {
            "id": self.id,
            "kind": self.kind,
            "direction": self.direction,
            "after": self.after,
            "once": self.once,
            "trigger": None if self.trigger is None else self.trigger.decode("latin-1"),
            "seconds": self.seconds,
            "rate": self.rate,
            "mode": self.mode,
            "hits": self.hits,
            "active": self.active,
        }


@dataclass(frozen=True)
class ProxyStats:
    """Counters since the proxy started.

    Attributes:
        connections: connections accepted (refused ones included).
        active: connections open now.
        refused: connections reset or closed at once by ``refuse``.
        upstream_failures: connections reset because the upstream could not be reached.
        bytes_up, bytes_down: bytes forwarded client to server, server to client.
        faults: connections hit, by kind and the direction that first reached the fault:
            ``cut_up``, ``cut_down``, ``stall_up``, ``stall_down``, ``slow_up``,
            ``slow_down``, ``refuse_reset``, ``refuse_close``; ``refuse_unlisten``, one
            per time listening stopped; and ``body_limit``, one per request refused with 413
            (max_body).
    """

    connections: int
    active: int
    refused: int
    upstream_failures: int
    bytes_up: int
    bytes_down: int
    faults: Mapping[str, int]

    @property
    def faults_applied(self) -> int:
        return sum(self.faults.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "active": self.active,
            "refused": self.refused,
            "upstream_failures": self.upstream_failures,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "faults": dict(self.faults),
            "faults_applied": self.faults_applied,
        }


@dataclass(eq=False)
class ConnectionRecord:
    """One connection through the proxy: bytes each way, faults applied, how it ended."""

    id: int
    bytes_up: int = 0
    bytes_down: int = 0
    faults: list[str] = field(default_factory=list)
    closed: bool = False
    #: "eof" (both sides closed cleanly), "reset" (a side failed or was reset), "cut",
    #: "refused", "upstream-failed", "body-limit" (a request answered 413, see max_body),
    #: "closed-by-proxy"; None while open.
    outcome: str | None = None


@dataclass(eq=False)
class _Track:
    """Where a fault's byte count starts on one flow (None: its trigger not seen yet)."""

    watch_from: int
    start: int | None


@dataclass(eq=False)
class _Flow:
    """One direction of one connection."""

    direction: Literal["up", "down"]
    position: int = 0
    recent: bytes = b""
    tracks: dict[int, _Track] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    slows: list[Fault] = field(default_factory=list)
    next_send: float = 0.0
    #: the pump of this flow runs in it (a refused body stops the answers from the server)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    #: the client's requests, followed on the "up" flow when the proxy has a max_body
    requests: _Requests | None = None


@dataclass(eq=False)
class _Connection:
    record: ConnectionRecord
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    #: held while bytes are sent to the client (under max_body, where the 413 is sent too)
    to_client: trio.Lock = field(default_factory=trio.Lock)
    up: _Flow = field(default_factory=lambda: _Flow("up"))
    down: _Flow = field(default_factory=lambda: _Flow("down"))
    reset: bool = False
    outcome: str | None = None
    #: faults that hit this connection: id -> when a stall of it ends (trio time)
    hit: dict[int, float] = field(default_factory=dict)


@dataclass(eq=False)
class _Chunked:
    """How far a chunked body held in a buffer has been read."""

    #: where reading goes on in the buffer
    at: int
    #: body bytes (framing left out) announced so far by chunk-size lines
    decoded: int = 0
    #: bytes of the current chunk's data and its CRLF still to come
    left: int = 0
    #: past the last chunk: trailer lines until an empty one
    trailers: bool = False


def _scan_chunked(state: _Chunked, buffer: bytearray) -> int | None:
    """Read `buffer` on from ``state.at``: the index just past the chunked body's end, or
    None while it has not ended. Raises ValueError on framing that is not chunked encoding."""
    while True:
        if state.left:
            step = min(state.left, len(buffer) - state.at)
            state.at += step
            state.left -= step
            if state.left:
                return None
            continue
        end = buffer.find(b"\r\n", state.at)
        if end < 0:
            if len(buffer) - state.at > HEAD_MAX:
                raise ValueError("a chunk-size or trailer line too long")
            return None
        line = bytes(buffer[state.at : end])
        state.at = end + 2
        if state.trailers:
            if not line:
                return state.at
            continue
        size = int(line.split(b";", 1)[0].strip() or b"x", 16)
        if size < 0:
            raise ValueError("a negative chunk size")
        if size == 0:
            state.trailers = True
        else:
            state.decoded += size
            state.left = size + 2


def _framing(head: bytes) -> Framing:
    """How the body of the request with this head is delimited: its Content-Length (0 if
    none), "chunked", or None where the proxy stops following the connection (CONNECT, an
    upgrade, a transfer coding other than chunked, unclear lengths)."""
    lines = head.split(b"\r\n")
    method = lines[0].split(b" ", 1)[0]
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    upgrade = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name = name.strip().lower()
        if name == b"content-length":
            lengths.add(value.strip())
        elif name == b"transfer-encoding":
            codings += [coding.strip().lower() for coding in value.split(b",")]
        elif name == b"upgrade":
            upgrade = True
    if method == b"CONNECT" or upgrade:
        return None
    if codings:
        return "chunked" if codings[-1] == b"chunked" else None
    if not lengths:
        return 0
    if len(lengths) != 1:
        return None  # differing Content-Length headers: a server would refuse them
    length = lengths.pop()
    return int(length) if length.isdigit() else None


class _BodyTooLarge(Exception):
    """A request's body is above max_body."""


@dataclass(eq=False)
class _Requests:
    """Where the client's bytes are in its HTTP/1.1 requests (followed under max_body)."""

    max_body: int
    #: bytes held back: a request head not complete yet, or a head and its chunked body
    pending: bytearray = field(default_factory=bytearray)
    #: how much of `pending` was searched for a head's end already
    searched: int = 0
    #: bytes of a Content-Length body still to forward as they come
    body_left: int = 0
    #: the chunked body held in `pending`, if any
    chunked: _Chunked | None = None
    #: no longer followed (an upgrade, framing not understood): bytes pass as they are
    opaque: bool = False

    def split(self) -> tuple[bytes, bytes] | None:
        """After bytes were added to `pending`: (bytes to forward now, bytes after them), or
        None while more bytes are needed. Raises _BodyTooLarge for a body above the limit."""
        pending = self.pending
        if self.chunked is None:
            end = pending.find(b"\r\n\r\n", max(0, self.searched - 3))
            if end < 0:
                self.searched = len(pending)
                if len(pending) > HEAD_MAX:
                    self.opaque = True
                    return self._take(len(pending))
                return None
            self.searched = 0
            head_end = end + 4
            framing = _framing(bytes(pending[:head_end]))
            if framing is None:
                self.opaque = True
                return self._take(len(pending))
            if framing != "chunked":
                if framing > self.max_body:
                    raise _BodyTooLarge
                self.body_left = framing
                return self._take(head_end)
            self.chunked = _Chunked(at=head_end)
        try:
            end_of_body = _scan_chunked(self.chunked, pending)
        except ValueError:
            self.chunked = None
            self.opaque = True
            return self._take(len(pending))
        # a body of many tiny chunks is mostly framing: bound what is held back all the same
        if self.chunked.decoded > self.max_body or len(pending) > 8 * self.max_body + HEAD_MAX:
            raise _BodyTooLarge
        if end_of_body is None:
            return None
        self.chunked = None
        return self._take(end_of_body)

    def _take(self, count: int) -> tuple[bytes, bytes]:
        ready, rest = bytes(self.pending[:count]), bytes(self.pending[count:])
        self.pending.clear()
        return ready, rest


def _too_large_answer() -> bytes:
    """nginx's answer to a body above client_max_body_size (its page, our name)."""
    body = (
        b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
        b"<center><h1>413 Request Entity Too Large</h1></center>\r\n"
        b"<hr><center>faultproxy</center>\r\n</body>\r\n</html>\r\n"
    )
    head = (
        "HTTP/1.1 413 Request Entity Too Large\r\n"
        "Server: faultproxy\r\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
        "Content-Type: text/html\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _abortive(stream: trio.SocketStream) -> None:
    """Make the next close of `stream` send a TCP reset instead of a FIN."""
    with suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def _drain(stream: trio.SocketStream, limit: float = 0.5) -> None:
    """Wait (at most `limit` seconds) until the peer has acknowledged all we sent."""
    with trio.move_on_after(limit):
        while True:
            try:
                queued = fcntl.ioctl(stream.socket.fileno(), termios.TIOCOUTQ, b"\0" * 4)
            except OSError:
                return
            if struct.unpack("i", queued)[0] == 0:
                return
            await trio.sleep(0.002)


class FaultProxy(NurseryServer):
    """A trio TCP proxy from ``host:port`` (loopback) to ``upstream_host:upstream_port``.

    Use it as ``async with FaultProxy(...) as proxy:`` (it runs in a nursery of its own until
    the block ends), or start it in your nursery: ``port = await nursery.start(proxy.run)``
    and stop it with :meth:`close`. `port` 0 picks a free port (see :attr:`port`).

    Every control method is synchronous and must be called from the trio thread that runs
    the proxy (:class:`ThreadedFaultProxy` does that for other threads).

    `max_body` (bytes, None: no limit) refuses, with 413 and without forwarding, every
    request whose body is longer (see the module's description).
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body: int | None = None,
    ) -> None:
        if max_body is not None and (isinstance(max_body, bool) or max_body < 0):
            raise ValueError(f"max_body must be a number of bytes >= 0, not {max_body!r}")
        #: the body limit in bytes (None: none), fixed for the proxy's life
        self.max_body = max_body
        self.upstream_host = _loopback_host(upstream_host)
        self.upstream_port = int(upstream_port)
        self.host = _loopback_host(host)
        self._port = int(port)
        self._faults: list[Fault] = []
        self._next_fault = 1
        self._next_connection = 1
        self._live: dict[int, _Connection] = {}
        self._history: deque[ConnectionRecord] = deque(maxlen=HISTORY)
        self._fault_counts: Counter[str] = Counter()
        self._connections = 0
        self._refused = 0
        self._upstream_failures = 0
        self._bytes = {"up": 0, "down": 0}
        self._changed = trio.Event()
        self._accept_scope: trio.CancelScope | None = None
        self._run_scope: trio.CancelScope | None = None
        self._started = False

    # -- lifetime ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the proxy listens on (known once it runs)."""
        if not self._port:
            raise RuntimeError("the proxy is not running yet")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy."""
        return f"http://{self.host}:{self.port}"

    def url_for(self, path_or_url: str) -> str:
        """The proxy URL for a path (``/files/``) or for an upstream URL (its path kept)."""
        parts = urlsplit(path_or_url)
        path = parts.path or "/"
        return urlunsplit(("http", f"{self.host}:{self.port}", path, parts.query, ""))

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until :meth:`close` or cancellation; reports the port at start."""
        if self._started:
            raise RuntimeError("a FaultProxy runs once")
        self._started = True
        with trio.CancelScope() as run_scope:
            self._run_scope = run_scope
            async with trio.open_nursery() as nursery:
                listener = await self._listen()
                task_status.started(self.port)
                try:
                    while True:
                        with trio.CancelScope() as accept_scope:
                            self._accept_scope = accept_scope
                            if not self._unlistening():
                                while True:
                                    stream = await listener.accept()
                                    nursery.start_soon(self._handle, stream)
                        self._accept_scope = None
                        # refuse(mode="unlisten"): nobody listens until the window ends
                        await listener.aclose()
                        self._fault_counts["refuse_unlisten"] += 1
                        await self._wait_listening_allowed()
                        listener = await self._listen()
                finally:
                    await trio.aclose_forcefully(listener)
                    nursery.cancel_scope.cancel()

    def close(self) -> None:
        """Stop the proxy: close the listener and every connection (they are reset)."""
        if self._run_scope is not None:
            self._run_scope.cancel()

    async def _listen(self) -> trio.SocketListener:
        listener = await listen(self.host, self._port)
        self._port = listener.socket.getsockname()[1]
        return listener

    # -- controls ------------------------------------------------------------------------

    def cut(
        self,
        direction: Literal["up", "down"],
        *,
        after: int = 0,
        once: bool = False,
        trigger: bytes | None = None,
        reset: bool = True,
    ) -> Fault:
        """Close both sockets of a connection when it would carry byte ``after + 1``.

        ``cut("up", after=100_000)`` delivers exactly 100 000 bytes of the request to the
        server, then resets both ends (``reset=False``: a clean close). ``cut("down")``
        loses the whole answer: the server has done the work, the client sees an error.
        """
        if direction not in ("up", "down"):
            raise ValueError("cut needs direction 'up' or 'down'")
        return self._add(
            Fault(self._fault_id(), "cut", direction, after, once, trigger, reset=reset)
        )

    def stall(
        self,
        direction: Direction = "both",
        *,
        seconds: float | None = None,
        after: int = 0,
        once: bool = False,
        trigger: bytes | None = None,
    ) -> Fault:
        """Stop forwarding at byte ``after`` of a connection, for `seconds` from then on
        (None: until :meth:`release` or :meth:`remove`), keeping its sockets open."""
        _non_negative("seconds", seconds)
        return self._add(
            Fault(self._fault_id(), "stall", direction, after, once, trigger, seconds=seconds)
        )

    def slow(
        self,
        rate: float,
        direction: Direction = "both",
        *,
        after: int = 0,
        once: bool = False,
        trigger: bytes | None = None,
    ) -> Fault:
        """Forward at most `rate` bytes per second per connection and direction, from byte
        ``after`` on, until the fault is removed."""
        if not rate > 0:
            raise ValueError(f"rate must be > 0 bytes per second, not {rate!r}")
        return self._add(
            Fault(self._fault_id(), "slow", direction, after, once, trigger, rate=float(rate))
        )

    def refuse(
        self, *, seconds: float | None = None, mode: RefuseMode = "reset", once: bool = False
    ) -> Fault:
        """Refuse new connections for `seconds` from now (None: until removed).

        ``mode="reset"`` accepts and resets them at once, ``"close"`` accepts and closes them
        (the client reads EOF before any answer), ``"unlisten"`` closes the listening socket
        so that connecting fails (ECONNREFUSED); live connections are not touched.
        ``once=True`` (reset/close only) refuses just the next connection.
        """
        _non_negative("seconds", seconds)
        if mode not in ("reset", "close", "unlisten"):
            raise ValueError(f"unknown refuse mode {mode!r}")
        if once and mode == "unlisten":
            raise ValueError("refuse(mode='unlisten') cannot be once; give seconds")
        fault = Fault(self._fault_id(), "refuse", "up", once=once, seconds=seconds, mode=mode)
        if seconds is not None:
            fault.until = trio.current_time() + seconds
        self._add(fault)
        if mode == "unlisten" and self._accept_scope is not None:
            self._accept_scope.cancel()
        return fault

    def remove(self, fault: Fault) -> None:
        """End `fault`: stalls it holds resume, slow connections speed up, refusals end."""
        self._deactivate(fault)
        self._touch()

    def release(self) -> None:
        """End every stall (stalled connections resume forwarding)."""
        for fault in list(self._faults):
            if fault.kind == "stall":
                self._deactivate(fault)
        self._touch()

    def clear(self) -> None:
        """Remove every fault (stalls resume, rates and refusals end). Counters stay."""
        for fault in list(self._faults):
            self._deactivate(fault)
        self._touch()

    def close_connections(self) -> int:
        """Reset every open connection now; returns how many."""
        live = list(self._live.values())
        for connection in live:
            connection.reset = True
            connection.outcome = "closed-by-proxy"
            connection.scope.cancel()
        return len(live)

    @property
    def faults(self) -> list[Fault]:
        """The faults in force."""
        return list(self._faults)

    @property
    def stats(self) -> ProxyStats:
        return ProxyStats(
            connections=self._connections,
            active=len(self._live),
            refused=self._refused,
            upstream_failures=self._upstream_failures,
            bytes_up=self._bytes["up"],
            bytes_down=self._bytes["down"],
            faults=dict(self._fault_counts),
        )

    @property
    def history(self) -> list[ConnectionRecord]:
        """The last connections (at most HISTORY), oldest first, open ones included."""
        return list(self._history)

    # -- internals -----------------------------------------------------------------------

    def _fault_id(self) -> int:
        self._next_fault += 1
        return self._next_fault - 1

    def _add(self, fault: Fault) -> Fault:
        if fault.after < 0:
            raise ValueError(f"after must be >= 0, not {fault.after}")
        if fault.trigger is not None and not 0 < len(fault.trigger) <= TRIGGER_MAX:
            raise ValueError(f"a trigger has 1 to {TRIGGER_MAX} bytes")
        self._faults.append(fault)
        self._touch()
        return fault

    def _deactivate(self, fault: Fault) -> None:
        fault.active = False
        fault.released.set()
        with suppress(ValueError):
            self._faults.remove(fault)

    def _touch(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _expire_refusals(self) -> None:
        now = trio.current_time()
        for fault in list(self._faults):
            if fault.kind == "refuse" and fault.until is not None and fault.until <= now:
                self._deactivate(fault)

    def _unlistening(self) -> bool:
        self._expire_refusals()
        return any(f.kind == "refuse" and f.mode == "unlisten" for f in self._faults)

    async def _wait_listening_allowed(self) -> None:
        while self._unlistening():
            deadlines = [
                f.until for f in self._faults if f.mode == "unlisten" and f.until is not None
            ]
            with trio.move_on_at(min(deadlines, default=math.inf)):
                await self._changed.wait()

    def _take_refusal(self) -> Fault | None:
        self._expire_refusals()
        for fault in self._faults:
            if fault.kind == "refuse" and fault.mode in ("reset", "close"):
                fault.hits += 1
                if fault.once:
                    self._deactivate(fault)
                return fault
        return None

    async def _handle(self, client: trio.SocketStream) -> None:
        record = ConnectionRecord(id=self._next_connection)
        self._next_connection += 1
        self._connections += 1
        self._history.append(record)
        connection = _Connection(record)
        if self.max_body is not None:
            connection.up.requests = _Requests(self.max_body)
        self._live[record.id] = connection
        upstream: trio.SocketStream | None = None
        try:
            with connection.scope:
                refusal = self._take_refusal()
                if refusal is not None:
                    self._refused += 1
                    name = f"refuse_{refusal.mode}"
                    self._fault_counts[name] += 1
                    record.faults.append(name)
                    connection.reset = refusal.mode == "reset"
                    connection.outcome = "refused"
                    return
                try:
                    with trio.fail_after(CONNECT_TIMEOUT):
                        upstream = await trio.open_tcp_stream(
                            self.upstream_host, self.upstream_port
                        )
                except (OSError, trio.TooSlowError):
                    self._upstream_failures += 1
                    connection.reset = True
                    connection.outcome = "upstream-failed"
                    return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, connection, connection.up, client, upstream)
                    nursery.start_soon(self._pump, connection, connection.down, upstream, client)
                connection.outcome = connection.outcome or "eof"
        except BaseException:
            # the proxy is closing (or a bug): reset both ends rather than leave them waiting
            connection.reset = True
            raise
        finally:
            del self._live[record.id]
            for stream in (client, upstream):
                if stream is not None:
                    if connection.reset:
                        _abortive(stream)
                    await trio.aclose_forcefully(stream)
            for fault in list(self._faults):
                if fault.owner == record.id:
                    self._deactivate(fault)
            record.closed = True
            record.outcome = connection.outcome or "closed-by-proxy"

    async def _pump(
        self,
        connection: _Connection,
        flow: _Flow,
        source: trio.SocketStream,
        sink: trio.SocketStream,
    ) -> None:
        with flow.scope:
            try:
                while True:
                    data = await source.receive_some(READ_SIZE)
                    if not data:
                        with suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                            await sink.send_eof()
                        return
                    if flow.requests is not None:
                        going = await self._forward_requests(connection, flow, data, source, sink)
                    else:
                        going = await self._forward(connection, flow, data, sink)
                    if not going:
                        return
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                # One end failed (a reset, say): fail the other end the same way.
                connection.reset = True
                connection.outcome = connection.outcome or "reset"
                connection.scope.cancel()

    async def _forward_requests(
        self,
        connection: _Connection,
        flow: _Flow,
        data: bytes,
        client: trio.SocketStream,
        upstream: trio.SocketStream,
    ) -> bool:
        """Forward one read of the client's, request by request, refusing a body above
        max_body; False when the connection ends."""
        requests = flow.requests
        assert requests is not None
        while data:
            if requests.opaque:
                return await self._forward(connection, flow, data, upstream)
            if requests.body_left:
                # a body within the limit passes as it comes, never held back
                step = min(requests.body_left, len(data))
                requests.body_left -= step
                if not await self._forward(connection, flow, data[:step], upstream):
                    return False
                data = data[step:]
                continue
            requests.pending += data
            try:
                verdict = requests.split()
            except _BodyTooLarge:
                await self._refuse_body(connection, client)
                return False
            if verdict is None:
                return True
            ready, data = verdict
            if not await self._forward(connection, flow, ready, upstream):
                return False
        return True

    async def _refuse_body(self, connection: _Connection, client: trio.SocketStream) -> None:
        """Answer 413 for a request the server never sees, and close as nginx does."""
        self._fault_counts["body_limit"] += 1
        connection.record.faults.append("body_limit")
        connection.outcome = "body-limit"
        # nothing more from the server reaches the client (the lock: not in mid-send)
        async with connection.to_client:
            connection.down.scope.cancel()
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await client.send_all(_too_large_answer())
            await client.send_eof()
            # lingering close: a client still sending its body gets it read (and dropped),
            # so it can go on to read the 413; its EOF or silence ends the wait
            with trio.move_on_after(LINGER_TIME):
                while True:
                    with trio.move_on_after(LINGER_IDLE):
                        if await client.receive_some(READ_SIZE):
                            continue
                    break

    def _next_hit(
        self, connection: _Connection, flow: _Flow, data: bytes, done: int
    ) -> tuple[int, Fault] | None:
        """The first fault due in ``data[done:]`` (its index in `data`), or None."""
        base = flow.position
        window: bytes | None = None  # the last bytes forwarded, then `data`: made on demand
        window_start = base - len(flow.recent)
        best: tuple[int, int, Fault] | None = None
        live_ids = set()
        for fault in self._faults:
            if fault.kind == "refuse" or not fault.applies_to(flow.direction):
                continue
            live_ids.add(fault.id)
            if fault.id in flow.done or fault.owner not in (None, connection.record.id):
                continue
            track = flow.tracks.get(fault.id)
            if track is None:
                here = base + done
                track = _Track(watch_from=here, start=None if fault.trigger else here)
                flow.tracks[fault.id] = track
            if track.start is None:
                assert fault.trigger is not None
                if window is None:
                    window = flow.recent + data
                found = window.find(fault.trigger, max(0, track.watch_from - window_start))
                if found < 0:
                    continue
                track.start = window_start + found
            index = max(track.start + fault.after - base, done)
            if index < len(data):
                rank = {"cut": 0, "stall": 1, "slow": 2}[fault.kind]
                if best is None or (index, rank) < (best[0], best[1]):
                    best = (index, rank, fault)
        # forget faults that are gone
        for stale in [key for key in flow.tracks if key not in live_ids]:
            del flow.tracks[stale]
        flow.done &= live_ids
        return None if best is None else (best[0], best[2])

    async def _forward(
        self, connection: _Connection, flow: _Flow, data: bytes, sink: trio.SocketStream
    ) -> bool:
        """Forward one read, applying the faults due in it; False when the connection ends."""
        done = 0
        try:
            while True:
                hit = self._next_hit(connection, flow, data, done)
                if hit is None:
                    await self._send(connection, flow, sink, data[done:])
                    done = len(data)
                    return True
                index, fault = hit
                await self._send(connection, flow, sink, data[done:index])
                done = index
                if connection.scope.cancel_called:
                    return False  # the connection is going down: let others have the fault
                if not fault.active or fault.owner not in (None, connection.record.id):
                    continue  # removed, or claimed by another connection, while we sent
                if fault.once:
                    fault.owner = connection.record.id
                flow.done.add(fault.id)
                if fault.id not in connection.hit:
                    # counted once per connection, however many directions it affects
                    connection.hit[fault.id] = trio.current_time() + (
                        math.inf if fault.seconds is None else fault.seconds
                    )
                    fault.hits += 1
                    name = f"{fault.kind}_{flow.direction}"
                    self._fault_counts[name] += 1
                    connection.record.faults.append(name)
                if fault.kind == "cut":
                    # let the bytes before the cut reach the peer before the reset, which
                    # would otherwise discard what is still in the send queue
                    await _drain(sink)
                    connection.reset = fault.reset
                    connection.outcome = "cut"
                    connection.scope.cancel()
                    return False
                if fault.kind == "stall":
                    # both directions of a connection stall until the same moment
                    with trio.move_on_at(connection.hit[fault.id]):
                        await fault.released.wait()
                else:
                    flow.slows.append(fault)
        finally:
            flow.position += done
            flow.recent = (flow.recent + data[:done])[-TRIGGER_MAX:]

    async def _send(
        self, connection: _Connection, flow: _Flow, sink: trio.SocketStream, data: bytes
    ) -> None:
        view = memoryview(data)
        while view:
            flow.slows = [fault for fault in flow.slows if fault.active]
            rate = min((cast(float, fault.rate) for fault in flow.slows), default=None)
            if rate is None:
                part, view = view, view[len(view) :]
            else:
                # pieces of about 1/20 s, paced so that the average stays at `rate`
                step = max(1, int(rate / 20))
                part, view = view[:step], view[step:]
                now = trio.current_time()
                if flow.next_send > now:
                    await trio.sleep_until(flow.next_send)
                flow.next_send = max(flow.next_send, now) + len(part) / rate
            if flow.direction == "down" and self.max_body is not None:
                async with connection.to_client:
                    await sink.send_all(part)
            else:
                await sink.send_all(part)
            self._bytes[flow.direction] += len(part)
            if flow.direction == "up":
                connection.record.bytes_up += len(part)
            else:
                connection.record.bytes_down += len(part)


class ThreadedFaultProxy(ThreadedServer):
    """A :class:`FaultProxy` running in a thread of its own, for blocking code.

    ``with ThreadedFaultProxy("127.0.0.1", 1080) as proxy:`` starts it (or call
    :meth:`start` / :meth:`close`). The controls are those of :class:`FaultProxy`, blocking
    and safe to call from any thread; each runs in the proxy's trio thread.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body: int | None = None,
    ) -> None:
        self.proxy = FaultProxy(
            upstream_host, upstream_port, host=host, port=port, max_body=max_body
        )
        super().__init__(self.proxy, "faultproxy")

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def url(self) -> str:
        return self.proxy.url

    def url_for(self, path_or_url: str) -> str:
        return self.proxy.url_for(path_or_url)

    def cut(
        self,
        direction: Literal["up", "down"],
        *,
        after: int = 0,
        once: bool = False,
        trigger: bytes | None = None,
        reset: bool = True,
    ) -> Fault:
        return self._call(
            self.proxy.cut, direction, after=after, once=once, trigger=trigger, reset=reset
        )

    def stall(
        self,
        direction: Direction = "both",
        *,
        seconds: float | None = None,
        after: int = 0,
        once: bool = False,
        trigger: bytes | None = None,
    ) -> Fault:
        return self._call(
            self.proxy.stall, direction, seconds=seconds, after=after, once=once, trigger=trigger
        )

    def slow(
        self,
        rate: float,
        direction: Direction = "both",
        *,
        after: int = 0,
        once: bool = False,
        trigger: bytes | None = None,
    ) -> Fault:
        return self._call(self.proxy.slow, rate, direction, after=after, once=once, trigger=trigger)

    def refuse(
        self, *, seconds: float | None = None, mode: RefuseMode = "reset", once: bool = False
    ) -> Fault:
        return self._call(self.proxy.refuse, seconds=seconds, mode=mode, once=once)

    def remove(self, fault: Fault) -> None:
        self._call(self.proxy.remove, fault)

    def release(self) -> None:
        self._call(self.proxy.release)

    def clear(self) -> None:
        self._call(self.proxy.clear)

    def close_connections(self) -> int:
        return self._call(self.proxy.close_connections)

    @property
    def faults(self) -> list[Fault]:
        return self._call(lambda: self.proxy.faults)

    @property
    def stats(self) -> ProxyStats:
        return self._call(lambda: self.proxy.stats)

    @property
    def history(self) -> list[ConnectionRecord]:
        return self._call(lambda: self.proxy.history)


# -- command line: python -m tests.faultproxy --upstream 127.0.0.1:1080 --port 0 -------------


def _command(proxy: FaultProxy, faults: dict[int, Fault], line: str) -> dict[str, Any]:
    """Run one JSON command line against `proxy`; the answer to print.

    ``{"op": OP, ...}`` with OP one of: cut, stall, slow, refuse (keyword arguments as the
    methods take them; ``trigger`` a latin-1 string) - answers ``{"ok": true, "fault": id}``;
    remove (``"fault": id``), release, clear, close_connections, faults, stats, quit.
    """
    request = json.loads(line)
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        raise ValueError('a command is a JSON object with "op"')
    op = request.pop("op")
    if isinstance(request.get("trigger"), str):
        request["trigger"] = request["trigger"].encode("latin-1")
    if op in ("cut", "stall", "slow", "refuse"):
        fault = cast(Callable[..., Fault], getattr(proxy, op))(**request)
        faults[fault.id] = fault
        return {"ok": True, "fault": fault.id}
    if op == "remove":
        proxy.remove(faults.pop(int(request["fault"])))
        return {"ok": True}
    if op in ("release", "clear"):
        getattr(proxy, op)()
        return {"ok": True}
    if op == "close_connections":
        return {"ok": True, "closed": proxy.close_connections()}
    if op == "faults":
        return {"ok": True, "faults": [fault.describe() for fault in proxy.faults]}
    if op == "stats":
        return {"ok": True, **proxy.stats.as_dict()}
    raise ValueError(f"unknown op {op!r}")


async def _main(upstream: str, host: str, port: int, max_body: int | None = None) -> None:
    upstream_host, _, upstream_port = upstream.rpartition(":")
    proxy = FaultProxy(
        upstream_host.strip("[]"), int(upstream_port), host=host, port=port, max_body=max_body
    )
    faults: dict[int, Fault] = {}
    async with proxy:
        print(f"READY {proxy.port}", flush=True)
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                return  # stdin closed: the parent is gone or done
            if not line.strip():
                continue
            try:
                if json.loads(line).get("op") == "quit":
                    print(json.dumps({"ok": True}), flush=True)
                    return
                answer = _command(proxy, faults, line)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faultproxy", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--upstream", required=True, help="loopback HOST:PORT to forward to")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument(
        "--max-body", type=int, default=None, help="refuse request bodies above BYTES with 413"
    )
    options = parser.parse_args(argv)
    trio.run(_main, options.upstream, options.host, options.port, options.max_body)


if __name__ == "__main__":
    main()
