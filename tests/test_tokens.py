"""Tokens that expire mid-upload (issue 18), against the real Node server behind
:class:`~tests.tokenproxy.TokenProxy`, a gateway that accepts only its newest bearer token,
for a number of requests or seconds.

A 256 MiB file in 8 MiB chunks outlives three tokens: with ``auth=`` (a refreshing
``httpx.Auth``), the function form of ``auth=``, or ``on_request``, it completes and the
stored bytes equal the source (sha256); every refused PATCH is followed by a HEAD (the server
says its offset) and the PATCH again. With ``headers=`` alone it fails with a message naming
``auth=`` and ``on_request``, and resumes once given them. No token reaches the journal file
or any log (tuspipe's, httpx's, httpcore's, at DEBUG). A 1 GiB upload with ``auth=``, its flow
refreshing from the gateway's token endpoint, still goes out with ``sendfile()`` and peaks
under 64 MiB of RSS (measured in a fork, reaped with ``os.wait4``: see tests/test_streams.py).
"""

from __future__ import annotations

import json
import logging
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio

import tuspipe

from .conftest import MakeFile, TusServer, sha256_file
from .test_auth import RefreshingAuth, Tokens
from .tokenproxy import TokenProxy

MiB = 1024 * 1024
SIZE = 256 * MiB
CHUNK = 8 * MiB
# A token is good for this many requests: 1 POST + 32 PATCHes + a HEAD per refusal take
# four tokens, so the upload sees three expiries.
LIFETIME = 10
EXPIRIES = 3


@pytest.fixture
async def gate(node_server: TusServer) -> AsyncIterator[TokenProxy]:
    port = urlsplit(node_server.url).port
    assert port is not None
    async with TokenProxy(port, lifetime_requests=LIFETIME) as proxy:
        yield proxy


def credential_options(form: str, gate: TokenProxy) -> dict[str, Any]:
    if form == "httpx.Auth":
        return {"auth": RefreshingAuth(gate)}
    tokens = Tokens(gate)
    if form == "auth-function":
        return {"auth": tokens.headers, "on_response": tokens.on_response}
    return {"on_request": tokens.on_request, "on_response": tokens.on_response}


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in ("tuspipe", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def delete(server: TusServer, upload_url: str) -> None:
    """Free the server's disk (straight to the server, past the gateway)."""
    path = urlsplit(upload_url).path
    await tuspipe.terminate_async(urlsplit(server.url)._replace(path=path).geturl())


@pytest.mark.slow
@pytest.mark.parametrize("form", ["httpx.Auth", "auth-function", "on_request"])
async def test_an_upload_outlives_three_tokens(
    form: str,
    gate: TokenProxy,
    node_server: TusServer,
    make_file: MakeFile,
    tmp_path: Path,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    path = make_file(SIZE)
    journal = tmp_path / "journal"
    result = await tuspipe.upload_async(
        path,
        gate.url_for("/files/"),
        chunk_size=CHUNK,
        journal=journal,
        request_id=True,
        **credential_options(form, gate),
    )
    assert result.complete
    assert node_server.stored_sha256(result.url) == sha256_file(path)

    received = gate.received()
    refused = gate.refused()
    assert len(gate.tokens) == EXPIRIES + 1
    assert [request.method for request in refused] == ["PATCH"] * EXPIRIES
    for request in refused:
        # the PATCH was refused with the old token; the server is asked for its offset and
        # the same bytes go again, with the new one
        index = received.index(request)
        head, patch = received[index + 1 : index + 3]
        assert (head.method, head.status, patch.method, patch.status) == (
            "HEAD",
            200,
            "PATCH",
            204,
        )
        assert patch.header("upload-offset") == request.header("upload-offset")
        assert head.header("authorization") == patch.header("authorization")
        assert patch.header("authorization") != request.header("authorization")
    patches = [r for r in received if r.method == "PATCH" and r.status == 204]
    assert len(patches) == SIZE // CHUNK
    # request_id=True: a fresh UUID on each request, refused ones included
    ids = [request.header("x-request-id") for request in received]
    assert len(set(ids)) == len(ids) == 1 + SIZE // CHUNK + 2 * EXPIRIES
    assert all(value is not None and uuid.UUID(value).version == 4 for value in ids)

    # never at rest, never in the logs
    raw = journal.read_bytes()
    assert raw
    assert any(record.name.startswith("httpcore") for record in debug_logs.records)
    for token in gate.tokens:
        assert token.encode() not in raw
        assert token not in debug_logs.text
        for record in debug_logs.records:
            assert token not in record.getMessage()
    assert b"Bearer" not in raw
    await delete(node_server, result.url)


@pytest.mark.slow
async def test_without_auth_the_expiry_is_fatal_and_named_then_auth_resumes(
    gate: TokenProxy, node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    path = make_file(SIZE)
    journal = tmp_path / "journal"
    token = gate.issue()
    with pytest.raises(tuspipe.ResponseError) as caught:
        await tuspipe.upload_async(
            path,
            gate.url_for("/files/"),
            chunk_size=CHUNK,
            journal=journal,
            headers={"Authorization": f"Bearer {token}"},
        )
    error = caught.value
    assert error.status_code == 401
    assert error.method == "PATCH"
    assert "auth=" in str(error)
    assert "on_request=" in str(error)
    assert token not in str(error)
    assert len(gate.refused()) == 1  # fatal at once: not retried
    # resumable: the journal knows the upload, and auth= carries it to the end
    result = await tuspipe.upload_async(
        path, gate.url_for("/files/"), chunk_size=CHUNK, journal=journal, auth=RefreshingAuth(gate)
    )
    assert result.resumed_from == (LIFETIME - 1) * CHUNK
    assert node_server.stored_sha256(result.url) == sha256_file(path)
    await delete(node_server, result.url)


@pytest.mark.parametrize("form", ["httpx.Auth", "on_request"])
async def test_a_parallel_upload_outlives_its_tokens(
    form: str, tuspyserver_server: TusServer, make_file: MakeFile
) -> None:
    """Three parts at once, each refused in turn: concurrent refreshes do not undo each
    other (each retry asks the flow or the hook afresh, after the HEAD)."""
    port = urlsplit(tuspyserver_server.url).port
    assert port is not None
    path = make_file(24 * MiB)
    async with TokenProxy(port, lifetime_requests=5) as proxy:
        result = await tuspipe.upload_async(
            path,
            proxy.url_for("/files/"),
            parallel=3,
            chunk_size=2 * MiB,
            journal=None,
            **credential_options(form, proxy),
        )
        refused = proxy.refused()
    assert len(refused) >= 3
    assert tuspyserver_server.stored_sha256(result.url) == sha256_file(path)


async def test_a_token_that_expires_by_time(node_server: TusServer, make_file: MakeFile) -> None:
    port = urlsplit(node_server.url).port
    assert port is not None
    path = make_file(12 * MiB)

    def slowly(request: tuspipe.Request, response: tuspipe.Response) -> None:
        time.sleep(0.05)  # each answer takes a while: the token's 0.3 s run out

    async with TokenProxy(port, lifetime_seconds=0.3) as proxy:
        result = await tuspipe.upload_async(
            path,
            proxy.url_for("/files/"),
            chunk_size=MiB,
            journal=None,
            auth=RefreshingAuth(proxy),
            on_response=slowly,
        )
        assert proxy.refused()
    assert node_server.stored_sha256(result.url) == sha256_file(path)
    await delete(node_server, result.url)


# ---- the zero-copy path with auth= ---------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, os, sys
    import httpx, tuspipe

    url, path = sys.argv[1], sys.argv[2]
    token_url = url.rsplit("/files/", 1)[0] + "/token"

    class TokenEndpointAuth(httpx.Auth):
        # httpx's documented pattern: on 401, ask the token endpoint, then send again
        requires_response_body = True
        token = "none-yet"

        def auth_flow(self, request):
            request.headers["Authorization"] = f"Bearer {self.token}"
            response = yield request
            if response.status_code == 401:
                answer = yield httpx.Request("POST", token_url)
                self.token = json.loads(answer.text)["access_token"]
                request.headers["Authorization"] = f"Bearer {self.token}"
                yield request

    pid = os.fork()
    if pid == 0:
        sent = 0
        real = os.sendfile

        def counting(*args):
            global sent
            moved = real(*args)
            sent += moved
            return moved

        os.sendfile = counting
        result = tuspipe.upload(path, url, journal=None, auth=TokenEndpointAuth())
        with open("/proc/self/status") as status:
            vmhwm = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))
        print(json.dumps({"url": result.url, "sendfile": sent, "vmhwm": vmhwm}), flush=True)
        os._exit(0)
    _, status, usage = os.wait4(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    print(json.dumps({"ru_maxrss": usage.ru_maxrss * 1024}))  # Linux: ru_maxrss is in KiB
    """
)


@pytest.mark.slow
async def test_a_1_gib_upload_with_auth_stays_zero_copy_and_small(
    node_server: TusServer, make_file: MakeFile
) -> None:
    size = 1024 * MiB
    path = make_file(size)
    port = urlsplit(node_server.url).port
    assert port is not None
    # 64 MiB PATCHes (the default) and tokens good for 6 requests: the flow's first request
    # has no token yet, and 3 of the 16 PATCHes meet an expired one
    async with TokenProxy(port, lifetime_requests=6) as proxy:
        done = await trio.run_process(
            [sys.executable, "-c", _CHILD, proxy.url_for("/files/"), str(path)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        refused = proxy.refused()
        issued = proxy.received("POST")
    report, usage = map(json.loads, done.stdout.decode().splitlines())
    assert [request.method for request in refused] == ["POST", "PATCH", "PATCH", "PATCH"]
    assert len([request for request in issued if request.target == "/token"]) == 4
    assert node_server.stored_sha256(report["url"]) == sha256_file(path)
    peak = usage["ru_maxrss"]
    print(f"1 GiB with auth=: peak RSS {peak / MiB:.1f} MiB, sendfile {report['sendfile']} bytes")
    assert peak < 64 * MiB
    assert report["vmhwm"] < 64 * MiB  # (the kernel's mark of the upload's own image agrees)
    # Every body byte left with sendfile(), the refused PATCHes' and their second sending's
    # too, bar the first 64 KiB of each PATCH (read to go with its head when the page cache
    # holds it) and the file's last block (2 MiB, read to check the file before the upload
    # completes), which went twice: the last PATCH was one of the refused.
    sent = size + 3 * 64 * MiB
    patches = size // (64 * MiB) + 3
    last_block = tuspipe.DEFAULT_READ_SIZE
    assert sent - patches * 64 * 1024 - 2 * last_block <= report["sendfile"] <= sent
    await delete(node_server, report["url"])
