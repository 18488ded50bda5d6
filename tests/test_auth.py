"""Credentials made per request (issue 18): ``auth=`` (an httpx.Auth flow, a pair, a function),
``on_request`` and ``request_id=``, against the in-memory tus server behind a token gate.

:class:`Gate` stands where an API gateway would: once it has issued a token, it accepts only
``Bearer <newest token>``, each token for `lifetime` requests (an expiring JWT) or until
request number `expire_at`, answers 401 otherwise (the request never reaches the tus
server), and hands out new tokens at ``POST http://auth.test/token``.
The real servers behind a real proxy are :mod:`tests.test_tokens`'s.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
import trio
import trio.testing

import tuspipe
from tuspipe import OutgoingRequest

from .fakes import FakeTusServer

KiB = 1024
REFRESH_URL = "http://auth.test/token"


@dataclass
class Seen:
    method: str
    url: str
    authorization: str | None
    request_id: str | None
    status: int


@dataclass
class Gate:
    """A token-checking gateway in front of `server` (see the module docstring)."""

    server: FakeTusServer = field(default_factory=FakeTusServer)
    lifetime: int | None = None  # requests a token is good for (None: forever)
    expire_at: set[int] = field(default_factory=set)  # the token expires at these requests
    tokens: list[str] = field(default_factory=list)
    uses: int = 0
    expired: bool = False
    log: list[Seen] = field(default_factory=list)

    def issue(self) -> str:
        self.tokens.append(f"tok-{len(self.tokens) + 1}-{os.urandom(4).hex()}")
        self.uses, self.expired = 0, False
        return self.tokens[-1]

    def _accepts(self, authorization: str | None) -> bool:
        if not self.tokens:
            return True  # open until the first token is issued
        if len(self.log) + 1 in self.expire_at or self.uses == self.lifetime:
            self.expired = True
        return authorization == f"Bearer {self.tokens[-1]}" and not self.expired

    @property
    def refused(self) -> list[Seen]:
        return [seen for seen in self.log if seen.status == 401]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        authorization = request.headers.get("authorization")
        if str(request.url) == REFRESH_URL:
            response = httpx.Response(200, json={"access_token": self.issue()})
        elif self._accepts(authorization):
            self.uses += 1
            response = await self.server.handle(request)
        else:
            await request.aread()  # a client sends its body whole before it reads the answer
            response = httpx.Response(
                401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}, text="expired"
            )
        self.log.append(
            Seen(
                request.method,
                str(request.url),
                authorization,
                request.headers.get("x-request-id"),
                response.status_code,
            )
        )
        return response

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


class Issuer(Protocol):
    """Where a caller gets tokens (a Gate here, the TokenProxy of tests.test_tokens)."""

    def issue(self) -> str: ...


class RefreshingAuth(httpx.Auth):
    """A caller's auth flow: a new token from the issuer when the server refuses one (unless
    another request took one meanwhile: requests run concurrently in parallel uploads)."""

    def __init__(self, gate: Issuer) -> None:
        self.gate = gate
        self.token = gate.issue()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sent = self.token
        request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code == 401:
            if self.token == sent:
                self.token = self.gate.issue()
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


class TokenEndpointAuth(httpx.Auth):
    """httpx's documented pattern: on 401, a refresh request of the flow's own, then the retry."""

    requires_response_body = True

    def __init__(self) -> None:
        self.token = "none-yet"
        self.refreshes = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401:
            refreshed = yield httpx.Request("POST", REFRESH_URL, json={"grant": "refresh"})
            self.token = json.loads(refreshed.text)["access_token"]
            self.refreshes += 1
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


async def upload(gate: Gate, data: bytes, **options: Any) -> tuspipe.UploadResult:
    async with gate.client() as http_client:
        return await tuspipe.upload_async(
            data, gate.server.endpoint, http_client=http_client, journal=None, **options
        )


# ---- auth= -------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [httpx.BasicAuth("ann", "pw"), ("ann", "pw")], ids=str)
async def test_basic_auth_goes_with_every_request(auth: Any) -> None:
    gate = Gate()
    data = os.urandom(200 * KiB)
    await upload(gate, data, auth=auth, chunk_size=64 * KiB, checksum="auto")
    expected = httpx.BasicAuth("ann", "pw")._auth_header
    assert {seen.method for seen in gate.log} == {"OPTIONS", "POST", "PATCH"}
    assert all(seen.authorization == expected for seen in gate.log)


async def test_a_refreshing_flow_carries_an_upload_past_expiring_tokens() -> None:
    gate = Gate(lifetime=4)
    auth = RefreshingAuth(gate)
    data = os.urandom(1024 * KiB)
    result = await upload(gate, data, auth=auth, chunk_size=64 * KiB)
    assert gate.server.data_of(result.url) == data
    assert len(gate.refused) >= 3
    assert all(seen.method == "PATCH" for seen in gate.refused)
    # each refused PATCH: the server is asked for its offset, and the PATCH goes again,
    # with the token the flow took (the flow sees the answer to the retry it asked for)
    for index, seen in enumerate(gate.log):
        if seen.status == 401:
            after = gate.log[index + 1 : index + 3]
            assert [(s.method, s.status) for s in after] == [("HEAD", 200), ("PATCH", 204)]
            assert after[0].authorization == after[1].authorization != seen.authorization
    patches = [seen for seen in gate.log if seen.method == "PATCH" and seen.status == 204]
    assert len(patches) == 16


async def test_a_flow_may_send_a_request_of_its_own() -> None:
    gate = Gate(lifetime=5)
    gate.issue()
    auth = TokenEndpointAuth()
    data = os.urandom(512 * KiB)
    result = await upload(gate, data, auth=auth, chunk_size=64 * KiB)
    assert gate.server.data_of(result.url) == data
    refreshes = [seen for seen in gate.log if seen.url == REFRESH_URL]
    assert len(refreshes) == auth.refreshes >= 2
    assert all(seen.method == "POST" for seen in refreshes)


async def test_a_bodyless_request_is_sent_again_in_place() -> None:
    gate = Gate()
    auth = RefreshingAuth(gate)
    url = gate.server.create(10, b"12345")
    gate.issue()  # the flow's token is stale now
    async with (
        gate.client() as http_client,
        tuspipe.Client(auth=auth, http_client=http_client, journal=None) as client,
    ):
        status = await client.upload_status(url)
        assert await client.terminate(url) is True
    assert status.offset == 5
    assert [(seen.method, seen.status) for seen in gate.log] == [
        ("HEAD", 401),
        ("HEAD", 200),
        ("DELETE", 204),
    ]


async def test_a_creation_post_with_a_body_is_posted_again() -> None:
    server = FakeTusServer(extensions=("creation", "creation-with-upload", "termination"))
    gate = Gate(server=server, expire_at={2})  # after OPTIONS, before the POST
    data = os.urandom(100 * KiB)
    async with (
        gate.client() as http_client,
        tuspipe.Client(auth=RefreshingAuth(gate), http_client=http_client, journal=None) as client,
    ):
        await client.server_info(server.endpoint)  # so that the first bytes go with the POST
        result = await client.upload(data, server.endpoint)
    assert server.data_of(result.url) == data
    assert server.seen("POST")[0].body == data
    posts = [(seen.method, seen.status) for seen in gate.log if seen.method == "POST"]
    assert posts == [("POST", 401), ("POST", 201)]


def test_a_flow_that_needs_the_body_is_refused_before_any_request() -> None:
    class Signing(httpx.Auth):
        requires_request_body = True

    with pytest.raises(tuspipe.UsageError, match=r"requires_request_body.*headers only"):
        tuspipe.upload(b"x", "http://127.0.0.1:9/files/", auth=Signing(), journal=None)


@pytest.mark.parametrize(
    ("auth", "words"),
    [
        (42, "auth must be an httpx.Auth"),
        (httpx.BasicAuth, "auth must be an httpx.Auth"),
        (("only-a-user",), r"\(username, password\)"),
        (lambda request: request, "called with no arguments"),
    ],
    ids=["int", "class", "1-tuple", "function-of-the-request"],
)
def test_bad_auth_values_are_usage_errors(auth: Any, words: str) -> None:
    for call in (
        lambda: tuspipe.upload(b"x", "http://127.0.0.1:9/files/", auth=auth),
        lambda: tuspipe.Client(auth=auth),
        lambda: tuspipe.upload_status("http://127.0.0.1:9/files/x", auth=auth),
    ):
        with pytest.raises(tuspipe.UsageError, match=words):
            call()


async def test_a_flow_may_not_change_tus_headers() -> None:
    class Meddling(httpx.Auth):
        def auth_flow(
            self, request: httpx.Request
        ) -> Generator[httpx.Request, httpx.Response, None]:
            request.headers["Authorization"] = "Bearer x"
            if request.method == "PATCH":
                request.headers["Upload-Offset"] = "0"
            yield request

    gate = Gate()
    gate.tokens.append("x")
    with pytest.raises(tuspipe.UsageError, match="changed upload-offset"):
        await upload(gate, os.urandom(100 * KiB), auth=Meddling(), chunk_size=64 * KiB)
    assert [seen.method for seen in gate.log] == ["POST", "PATCH"]


# ---- the function form, and on_request -----------------------------------------------------------


class Tokens:
    """A caller's token cache for the function form and on_request: a 401, seen through
    on_response, makes it take a new token before tuspipe asks again."""

    def __init__(self, gate: Issuer) -> None:
        self.gate = gate
        self.token = gate.issue()
        self.asked = 0

    def headers(self) -> dict[str, str]:
        self.asked += 1
        return {"Authorization": f"Bearer {self.token}"}

    async def headers_async(self) -> dict[str, str]:
        await trio.sleep(0)
        return self.headers()

    def on_request(self, request: OutgoingRequest) -> None:
        request.headers.update(self.headers())

    async def on_request_async(self, request: OutgoingRequest) -> None:
        await trio.sleep(0)
        self.on_request(request)

    def on_response(self, request: tuspipe.Request, response: tuspipe.Response) -> None:
        sent = dict(request.headers).get("Authorization")
        if response.status_code == 401 and sent == f"Bearer {self.token}":
            self.token = self.gate.issue()


@pytest.mark.parametrize(
    "form", ["auth-function", "auth-async-function", "on_request", "async-on_request"]
)
async def test_hooks_are_asked_again_after_a_401(form: str) -> None:
    gate = Gate(lifetime=4)
    tokens = Tokens(gate)
    hooks: dict[str, dict[str, Any]] = {
        "auth-function": {"auth": tokens.headers},
        "auth-async-function": {"auth": tokens.headers_async},
        "on_request": {"on_request": tokens.on_request},
        "async-on_request": {"on_request": tokens.on_request_async},
    }
    data = os.urandom(1024 * KiB)
    result = await upload(
        gate, data, chunk_size=64 * KiB, on_response=tokens.on_response, **hooks[form]
    )
    assert gate.server.data_of(result.url) == data
    assert len(gate.refused) >= 3
    assert tokens.asked == len(gate.log)  # asked before every request


async def test_on_request_sees_each_request_and_may_add_headers() -> None:
    gate = Gate()
    gate.tokens.append("t")
    seen: list[tuple[str, str, str]] = []

    def on_request(request: OutgoingRequest) -> None:
        seen.append((request.method, request.url, request.headers["tus-resumable"]))
        request.headers["authorization"] = "Bearer t"
        request.headers["X-Trace"] = "trace-1"
        assert "AUTHORIZATION" in request.headers
        assert "Bearer" not in repr(request.headers)  # values stay out of reprs

    result = await upload(gate, os.urandom(100 * KiB), chunk_size=64 * KiB, on_request=on_request)
    assert [method for method, _, _ in seen] == ["POST", "PATCH", "PATCH"]
    assert seen[1][1] == result.url
    assert all(version == "1.0.0" for _, _, version in seen)
    assert all(request.headers["x-trace"] == "trace-1" for request in gate.server.requests)


@pytest.mark.parametrize("name", ["Upload-Offset", "content-length", "Tus-Resumable", "Host"])
@pytest.mark.parametrize("change", ["set", "delete"])
async def test_on_request_may_not_touch_tus_headers(name: str, change: str) -> None:
    def on_request(request: OutgoingRequest) -> None:
        if change == "set":
            request.headers[name] = "1"
        else:
            del request.headers[name]

    gate = Gate()
    with pytest.raises(tuspipe.UsageError, match=f"header '{name}' is tus's own"):
        await upload(gate, b"abc", on_request=on_request)
    assert gate.log == []


async def test_on_request_may_not_set_what_http_cannot_carry() -> None:
    def on_request(request: OutgoingRequest) -> None:
        request.headers["X-Name"] = "line\r\nbreak"

    with pytest.raises(tuspipe.UsageError, match="line break"):
        await upload(Gate(), b"abc", on_request=on_request)


async def test_an_auth_function_may_not_return_tus_headers() -> None:
    with pytest.raises(tuspipe.UsageError, match=r"auth= returned.*'Upload-Offset'"):
        await upload(Gate(), b"abc", auth=lambda: {"Upload-Offset": "0"})


async def test_a_token_refused_even_when_fresh_fails_after_bounded_tries() -> None:
    gate = Gate()
    right = gate.issue()

    def on_request(request: OutgoingRequest) -> None:
        token = "wrong" if request.method == "PATCH" else right
        request.headers["Authorization"] = f"Bearer {token}"

    with pytest.raises(tuspipe.ResponseError, match="refused again after fresh") as caught:
        await upload(gate, os.urandom(100 * KiB), on_request=on_request)
    assert caught.value.status_code == 401
    assert "auth=" in str(caught.value)
    # the POST, then PATCH and HEAD in turn (the PATCH is sent 1 + 3 times)
    assert [seen.method for seen in gate.log] == ["POST", *["PATCH", "HEAD"] * 3, "PATCH"]


async def test_a_bodyless_request_asks_again_once() -> None:
    gate = Gate()
    gate.issue()
    url = gate.server.create(10)
    with pytest.raises(tuspipe.ResponseError, match="answered 401"):
        await upload(gate, os.urandom(10), upload_url=url, auth=lambda: {"Authorization": "x"})
    assert [(seen.method, seen.status) for seen in gate.log] == [("HEAD", 401)] * 2


async def test_without_auth_or_on_request_a_401_is_fatal_and_names_them() -> None:
    gate = Gate(lifetime=2)
    token = gate.issue()
    with pytest.raises(tuspipe.ResponseError) as caught:
        await upload(
            gate,
            os.urandom(300 * KiB),
            chunk_size=64 * KiB,
            headers={"Authorization": f"Bearer {token}"},
        )
    assert caught.value.status_code == 401
    message = str(caught.value)
    assert "auth=" in message
    assert "on_request=" in message
    assert token not in message
    assert [seen.status for seen in gate.log] == [201, 204, 401]


# ---- request_id= ---------------------------------------------------------------------------------


async def test_request_ids_are_fresh_for_every_request_and_named_in_errors() -> None:
    gate = Gate()
    gate.issue()
    sent: list[tuspipe.Request] = []
    await upload(
        gate,
        os.urandom(200 * KiB),
        chunk_size=64 * KiB,
        request_id=True,
        headers={"Authorization": f"Bearer {gate.tokens[-1]}", "X-Request-ID": "mine"},
        on_response=lambda request, response: sent.append(request),
    )
    ids = [seen.request_id for seen in gate.log]
    assert len(ids) == len(set(ids)) == 5
    assert all(str(uuid.UUID(str(value))) == value for value in ids)
    assert [dict(request.headers)["X-Request-ID"] for request in sent] == ids

    gate.issue()  # the token in headers= is stale now
    with pytest.raises(tuspipe.ResponseError) as caught:
        await upload(
            gate,
            b"abc",
            request_id=True,
            headers={"Authorization": f"Bearer {gate.tokens[0]}"},
        )
    assert caught.value.request_id == gate.log[-1].request_id
    assert f"answered 401, X-Request-ID {gate.log[-1].request_id})" in str(caught.value)


async def test_a_network_error_names_the_request_id(autojump_clock: trio.testing.MockClock) -> None:
    async def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    seen: list[str] = []

    def on_request(request: OutgoingRequest) -> None:
        seen.append(request.headers["X-Request-ID"])

    async with httpx.AsyncClient(transport=httpx.MockTransport(unreachable)) as http_client:
        with pytest.raises(tuspipe.NetworkError) as caught:
            await tuspipe.upload_status_async(
                "http://tus.test/files/u1",
                http_client=http_client,
                request_id=True,
                on_request=on_request,
                retries=0,
            )
    assert f"(X-Request-ID {seen[-1]}) failed" in str(caught.value)


async def test_without_the_options_requests_go_out_as_given() -> None:
    gate = Gate()
    gate.tokens.append("t")
    await upload(gate, b"abc", headers={"Authorization": "Bearer t"})
    assert all(seen.request_id is None for seen in gate.log)
