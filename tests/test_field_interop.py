"""Servers as they are deployed (issue 14): what a server shows is enough, what it leaves out
is "unknown", and a URL that is no tus endpoint fails at once, saying so.

Against real servers where a real one behaves that way: a plain web server (the standard
library's http.server, which answers POST and OPTIONS with 501 and an HTML page), the Node tus
server spoken to with the wrong scheme, a TLS front spoken to in plain HTTP. httpx's
MockTransport plays the servers no package here behaves like (one that shows its tus headers
only to a request carrying Tus-Resumable, one answering 409 to a creation).
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio

import tuspipe
from tests.conftest import MakeFile, TusServer
from tests.tlsproxy import PKI, ThreadedTLSProxy

# A wrong URL must fail within this many seconds (the default retries would take 10 s or more).
PROMPT = 2.0


class _WebServer(http.server.ThreadingHTTPServer):
    requests: list[str]


@pytest.fixture
def web_server() -> Iterator[tuple[str, _WebServer]]:
    """A plain web server on loopback: http.server's own handler (501 to POST and OPTIONS,
    404 for missing paths), recording each request's method."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def parse_request(self) -> bool:
            ok = super().parse_request()
            server.requests.append(self.command)
            return ok

        def log_message(self, *args: Any) -> None:
            pass

    server = _WebServer(("127.0.0.1", 0), Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/files/", server
    finally:
        server.shutdown()
        server.server_close()


def timed(call: Any) -> tuple[BaseException, float]:
    began = time.monotonic()
    with pytest.raises(tuspipe.TusError) as caught:
        call()
    return caught.value, time.monotonic() - began


@pytest.mark.parametrize("options", [{}, {"checksum": "auto"}, {"parallel": 3}])
def test_a_plain_web_server_is_named_no_tus_endpoint_at_once(
    web_server: tuple[str, _WebServer], make_file: MakeFile, options: dict[str, Any]
) -> None:
    url, server = web_server
    error, seconds = timed(lambda: tuspipe.upload(make_file(1000), url, **options))
    assert seconds < PROMPT
    assert isinstance(error, tuspipe.ResponseError)
    assert error.status_code == 501
    text = str(error)
    assert "does not look like a tus endpoint" in text
    assert "501 Not Implemented, without Tus-Resumable" in text
    # The HTML page is quoted once, on one line, cut at 200 characters.
    assert text.count("<!DOCTYPE HTML>") == 1
    assert "\n" not in text
    assert len(text.split(": '", 1)[1]) <= 202
    # One POST, never retried (OPTIONS, asked first for a checksum or parts, is asked twice:
    # the second time with Tus-Resumable, since some servers show themselves only then).
    assert server.requests.count("POST") == 1
    assert server.requests.count("OPTIONS") == (0 if not options else 2)


def test_server_info_of_a_plain_web_server(web_server: tuple[str, _WebServer]) -> None:
    url, server = web_server
    error, seconds = timed(lambda: tuspipe.server_info(url))
    assert seconds < PROMPT
    assert "does not look like a tus endpoint, OPTIONS was answered 501" in str(error)
    assert server.requests == ["OPTIONS", "OPTIONS"]


def test_a_head_answered_400_without_tus_headers_is_no_tus_upload() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text="bad request")

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http_client:
            await tuspipe.upload_status_async("http://tus.test/files/x", http_client=http_client)

    with pytest.raises(tuspipe.ResponseError, match="does not look like a tus upload: HEAD was"):
        trio.run(run)


def test_https_to_a_plain_port_is_a_scheme_mismatch(
    node_server: TusServer, make_file: MakeFile
) -> None:
    wrong = node_server.url.replace("http://", "https://")
    error, seconds = timed(lambda: tuspipe.upload(make_file(100), wrong, journal=None))
    assert seconds < PROMPT
    assert type(error) is tuspipe.SchemeMismatchError
    assert isinstance(error, tuspipe.NetworkError)
    assert "does not speak TLS" in str(error)
    assert f"use {node_server.url}" in str(error)


def test_http_to_a_tls_port_is_a_scheme_mismatch(
    node_server: TusServer, make_file: MakeFile
) -> None:
    port = int(node_server.url.split(":")[2].split("/")[0])
    with ThreadedTLSProxy(PKI(), upstream_port=port) as proxy:
        right = proxy.url_for("/files/")
        wrong = right.replace("https://", "http://")
        error, seconds = timed(lambda: tuspipe.upload(make_file(100), wrong, journal=None))
    assert seconds < PROMPT
    assert type(error) is tuspipe.SchemeMismatchError
    assert f"use {right}" in str(error)


def test_a_server_that_shows_itself_only_when_asked_with_tus_resumable() -> None:
    asked: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("tus-resumable"))
        if "tus-resumable" not in request.headers:
            return httpx.Response(200)
        return httpx.Response(
            204,
            headers={
                "Tus-Resumable": "1.0.0",
                "Tus-Version": "1.0.0",
                "Tus-Extension": "creation,checksum",
                "Tus-Checksum-Algorithm": "sha1,md5",
            },
        )

    async def run() -> tuspipe.ServerCapabilities:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http_client:
            return await tuspipe.server_info_async(
                "http://tus.test/files/", http_client=http_client
            )

    capabilities = trio.run(run)
    assert asked == [None, "1.0.0"]
    assert capabilities.checksum_algorithms == ("sha1", "md5")


@pytest.mark.parametrize(
    ("headers", "versions"),
    [
        ({"Tus-Resumable": "1.0.0", "Tus-Extension": "creation,termination"}, ("1.0.0",)),
        ({"Tus-Version": "1.0.0,0.2.2"}, ("1.0.0", "0.2.2")),
    ],
)
def test_tus_resumable_without_tus_version_means_1_0_0(
    headers: dict[str, str], versions: tuple[str, ...]
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204, headers=headers)

    async def run() -> tuspipe.ServerCapabilities:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http_client:
            return await tuspipe.server_info_async(
                "http://tus.test/files/", http_client=http_client
            )

    assert trio.run(run).versions == versions


def test_a_conflict_on_creation_is_not_an_offset_mismatch() -> None:
    posts = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal posts
        posts += 1
        return httpx.Response(409, headers={"Tus-Resumable": "1.0.0"}, text="name taken")

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http_client:
            await tuspipe.upload_async(b"x", "http://tus.test/files/", http_client=http_client)

    with pytest.raises(tuspipe.ResponseError) as caught:
        trio.run(run)
    assert type(caught.value) is tuspipe.ResponseError
    assert "conflicts with one the server holds" in str(caught.value)
    assert posts == 1


def test_terminate_says_whether_there_was_anything_to_delete(node_server: TusServer) -> None:
    url = tuspipe.create_upload(node_server.url, 10)
    assert tuspipe.terminate(url) is True
    assert tuspipe.terminate(url) is False
    with pytest.raises(tuspipe.UploadNotFoundError):
        tuspipe.upload_status(url)


def test_a_tus_server_failing_with_5xx_is_still_retried() -> None:
    statuses = iter([503, 502, 201])

    def answer(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        headers = {"Tus-Resumable": "1.0.0"}
        if status == 201:
            headers.update({"Location": "/files/a", "Upload-Offset": "0"})
        return httpx.Response(status, headers=headers)

    async def run() -> str:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http_client:
            return await tuspipe.create_upload_async(
                "http://tus.test/files/", 0, http_client=http_client, retry_delays=[0]
            )

    assert trio.run(run) == "http://tus.test/files/a"


def test_the_cli_pointed_at_a_plain_web_server_says_so_at_once(
    web_server: tuple[str, _WebServer], make_file: MakeFile
) -> None:
    url, server = web_server
    path = make_file(1000)
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tuspipe", "upload", str(path), url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    seconds = time.monotonic() - began
    assert seconds < PROMPT, done.stderr
    assert done.returncode == 4
    assert done.stderr.count("does not look like a tus endpoint") == 1
    assert done.stderr.count("<!DOCTYPE HTML>") == 1  # one excerpt of the page, not five
    assert done.stderr.startswith("tuspipe: error: ")
    assert "warning" not in done.stderr  # nothing was retried
    assert server.requests == ["POST"]
