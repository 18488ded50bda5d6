"""Security (issue 9): TLS verified by default, client certificates, Location rules, credentials
kept to their origin, no secrets at rest or in logs, and defensive parsing of hostile answers.

The TLS tests run against the real Node server behind :class:`~tests.tlsproxy.TLSProxy`, a
TLS-terminating proxy with certificates made here (trustme); the proxy records what the Node
server received, so the credential tests look at the requests that actually arrived. Where an
upload succeeds, the bytes the Node server stored are compared with the source by sha256.
The hostile-answer tests use :class:`~tests.fakes.FakeTusServer` (scripted answers) under
trio's autojumping clock, and a tiny misbehaving server on a real socket.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import stat
import subprocess
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio.testing

import tuspipe
from tuspipe import cli as _cli
from tuspipe._journal import decode_records
from tuspipe._protocol import MAX_LOCATION_LENGTH
from tuspipe._retry import MAX_RETRY_AFTER
from tuspipe._transport import _shared_ssl_context, make_ssl_context
from tuspipe.compat import client as compat_client
from tuspipe.compat.exceptions import TusCommunicationError

from .commands import run_tuspipe
from .conftest import MakeFile, TusServer, sha256_file
from .fakes import FakeTusServer
from .tlsproxy import PKI, PKIFiles, ReceivedRequest, ThreadedTLSProxy, TLSProxy

KiB = 1024
TIMEOUT = 120

TOKEN = "s3cret-token"
COOKIE = "c00kie"
CREDENTIALS = {"Authorization": f"Bearer {TOKEN}", "Cookie": f"session={COOKIE}"}


# ---- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pki() -> PKI:
    return PKI()


@pytest.fixture(scope="session")
def pki_files(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> PKIFiles:
    return pki.write(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def node_port(node_server: TusServer) -> int:
    port = urlsplit(node_server.url).port
    assert port is not None
    return port


def assert_stored(node_server: TusServer, upload_url: str, source: Path) -> None:
    """The Node server holds exactly the source's bytes for the upload at `upload_url`."""
    assert node_server.stored_sha256(upload_url) == sha256_file(source)


def upload_url_of(done: subprocess.CompletedProcess[str]) -> str:
    """The upload URL a successful ``tuspipe upload --json`` printed."""
    [line] = [line for line in done.stdout.splitlines() if line.strip()]
    url = json.loads(line)["url"]
    assert isinstance(url, str)
    return url


# ---- 1. TLS: verified by default; a CA bundle; verify=False --------------------------------------


async def test_an_unknown_ca_is_refused_by_default_and_not_retried(
    pki: PKI, node_port: int, make_file: MakeFile
) -> None:
    retried: list[int] = []
    async with TLSProxy(pki, node_port) as proxy:
        with pytest.raises(tuspipe.TLSVerificationError) as caught:
            await tuspipe.upload_async(
                make_file(10 * KiB),
                proxy.url_for("/files/"),
                journal=False,
                on_retry=lambda error, attempt, wait: retried.append(attempt),
            )
        assert proxy.received() == []  # nothing reached the server
        assert proxy.connections == 1  # one try: never retried
    error = caught.value
    assert isinstance(error, tuspipe.TusError)
    assert not isinstance(error, (tuspipe.NetworkError, tuspipe.ResponseError))
    assert retried == []
    message = str(error)
    assert "certificate could not be verified" in message
    assert "verify='ca.pem'" in message
    assert "--cacert" in message


async def test_server_info_over_tls_is_refused_by_default(pki: PKI, node_port: int) -> None:
    async with TLSProxy(pki, node_port) as proxy:
        with pytest.raises(tuspipe.TLSVerificationError, match="could not be verified"):
            await tuspipe.server_info_async(proxy.url_for("/files/"))


async def test_a_ca_bundle_that_did_not_sign_the_server_is_refused(
    pki: PKI, pki_files: PKIFiles, node_port: int, make_file: MakeFile
) -> None:
    async with TLSProxy(pki, node_port) as proxy:
        with pytest.raises(tuspipe.TLSVerificationError):
            await tuspipe.upload_async(
                make_file(10), proxy.url_for("/files/"), verify=str(pki_files.client_ca)
            )


@pytest.mark.parametrize("form", ["str", "path", "ssl-context"])
async def test_a_ca_bundle_verifies_the_server(
    pki: PKI,
    pki_files: PKIFiles,
    node_server: TusServer,
    node_port: int,
    make_file: MakeFile,
    form: str,
) -> None:
    verify: str | Path | ssl.SSLContext = str(pki_files.ca)
    if form == "path":
        verify = pki_files.ca
    elif form == "ssl-context":
        verify = ssl.create_default_context(cafile=str(pki_files.ca))
    path = make_file(300 * KiB)
    async with TLSProxy(pki, node_port) as proxy:
        result = await tuspipe.upload_async(
            path, proxy.url_for("/files/"), verify=verify, chunk_size=100 * KiB
        )
        assert result.url.startswith(proxy.origin + "/files/")
        methods = [request.method for request in proxy.received()]
    assert methods[0] == "POST"
    assert "PATCH" in methods
    assert_stored(node_server, result.url, path)


async def test_verify_false_uploads_and_logs_a_warning(
    pki: PKI,
    node_server: TusServer,
    node_port: int,
    make_file: MakeFile,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = make_file(200 * KiB)
    caplog.set_level(logging.WARNING, logger="tuspipe")
    async with TLSProxy(pki, node_port) as proxy:
        result = await tuspipe.upload_async(
            path, proxy.url_for("/files/"), verify=False, chunk_size=64 * KiB
        )
    assert_stored(node_server, result.url, path)
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name == "tuspipe" and record.levelno == logging.WARNING
    ]
    assert any("verification is off" in message for message in warnings), warnings


def test_the_blocking_facade_and_a_client_verify_with_a_ca_bundle(
    pki: PKI, pki_files: PKIFiles, node_server: TusServer, node_port: int, make_file: MakeFile
) -> None:
    path = make_file(150 * KiB)
    with ThreadedTLSProxy(pki, node_port) as proxy:
        with pytest.raises(tuspipe.TLSVerificationError):
            tuspipe.upload(path, proxy.url_for("/files/"), journal=False)
        result = tuspipe.upload(
            path, proxy.url_for("/files/"), verify=str(pki_files.ca), chunk_size=50 * KiB
        )
    assert_stored(node_server, result.url, path)


def test_cli_tls_refused_by_default_then_cacert_and_insecure(
    pki: PKI, pki_files: PKIFiles, node_server: TusServer, node_port: int, make_file: MakeFile
) -> None:
    path = make_file(120 * KiB)
    with ThreadedTLSProxy(pki, node_port) as proxy:
        url = proxy.url_for("/files/")
        refused = run_tuspipe("upload", "--json", "--no-journal", path, url)
        # TLSVerificationError is neither a refusal (4) nor a network failure (5): its own code
        assert refused.returncode == _cli.EXIT_TLS == 6, refused.stderr
        assert "certificate could not be verified" in refused.stderr
        assert "--cacert" in refused.stderr
        assert "run with --debug" not in refused.stderr  # a known failure, not a bug
        assert proxy.received() == []

        checked = run_tuspipe("upload", "--json", "--cacert", pki_files.ca, path, url)
        assert checked.returncode == 0, checked.stderr
        assert "verification is off" not in checked.stderr
        assert_stored(node_server, upload_url_of(checked), path)

        insecure = run_tuspipe("upload", "--json", "--no-journal", "--insecure", path, url)
        assert insecure.returncode == 0, insecure.stderr
        assert "verification is off" in insecure.stderr  # the warning reaches the terminal
        assert_stored(node_server, upload_url_of(insecure), path)


def test_the_tls_exit_code_is_documented() -> None:
    assert _cli.exit_code_for(tuspipe.TLSVerificationError("x")) == _cli.EXIT_TLS
    assert _cli.EXIT_TLS in _cli.EXIT_CODES
    assert _cli.__doc__ is not None
    assert "TLSVerificationError" in _cli.__doc__
    assert f"  {_cli.EXIT_TLS:<4} {_cli.EXIT_CODES[_cli.EXIT_TLS]}" in run_tuspipe("--help").stdout


# ---- 2. mutual TLS: a client certificate ---------------------------------------------------------


async def test_mtls_refuses_a_client_without_a_certificate(
    pki: PKI, pki_files: PKIFiles, node_port: int, make_file: MakeFile
) -> None:
    async with TLSProxy(pki, node_port, require_client_cert=True) as proxy:
        with pytest.raises(tuspipe.NetworkError) as caught:
            await tuspipe.upload_async(
                make_file(10), proxy.url_for("/files/"), verify=str(pki_files.ca), retries=0
            )
        assert proxy.received() == []
        assert any("certificate" in reason for reason in proxy.handshake_failures)
    message = str(caught.value)
    assert "certificate required" in message
    assert "cert=" in message
    assert "--cert" in message


async def test_mtls_refuses_a_certificate_from_an_unknown_ca(
    pki: PKI, pki_files: PKIFiles, node_port: int, make_file: MakeFile
) -> None:
    async with TLSProxy(pki, node_port, require_client_cert=True) as proxy:
        with pytest.raises(tuspipe.NetworkError, match="client certificate"):
            await tuspipe.upload_async(
                make_file(10),
                proxy.url_for("/files/"),
                verify=str(pki_files.ca),
                cert=str(pki_files.rogue_combined),
                retries=0,
            )
        assert proxy.received() == []
        assert not proxy.client_subjects


@pytest.mark.parametrize("form", ["combined-path", "pair"])
async def test_mtls_accepts_a_client_certificate(
    pki: PKI,
    pki_files: PKIFiles,
    node_server: TusServer,
    node_port: int,
    make_file: MakeFile,
    form: str,
) -> None:
    cert: str | tuple[str, str] = (
        str(pki_files.client_combined)
        if form == "combined-path"
        else (str(pki_files.client_cert), str(pki_files.client_key))
    )
    path = make_file(256 * KiB + 3)
    async with TLSProxy(pki, node_port, require_client_cert=True) as proxy:
        async with tuspipe.Client(verify=str(pki_files.ca), cert=cert) as client:
            result = await client.upload(path, proxy.url_for("/files/"), chunk_size=100 * KiB)
        assert list(proxy.client_subjects)
        assert set(proxy.client_subjects) == {"tuspipe test client"}
        assert not proxy.handshake_failures
    assert_stored(node_server, result.url, path)


@pytest.mark.parametrize("form", ["combined-path", "pair"])
def test_compat_client_cert(
    pki: PKI,
    pki_files: PKIFiles,
    node_server: TusServer,
    node_port: int,
    make_file: MakeFile,
    form: str,
) -> None:
    cert: str | tuple[str, str] = (
        str(pki_files.client_combined)
        if form == "combined-path"
        else (str(pki_files.client_cert), str(pki_files.client_key))
    )
    path = make_file(200 * KiB)
    with ThreadedTLSProxy(pki, node_port, require_client_cert=True) as proxy:
        url = proxy.url_for("/files/")
        # without a certificate: refused, as tuspy's communication error
        bare = compat_client.TusClient(url).uploader(
            str(path), verify_tls_cert=str(pki_files.ca), chunk_size=64 * KiB
        )
        with pytest.raises(TusCommunicationError):
            bare.upload()
        assert proxy.received() == []
        # with one: created and uploaded over mutual TLS
        tus = compat_client.TusClient(url, client_cert=cert)
        uploader = tus.uploader(str(path), verify_tls_cert=str(pki_files.ca), chunk_size=64 * KiB)
        uploader.upload()
        assert uploader.url is not None
        assert uploader.url.startswith(proxy.origin)
        assert "tuspipe test client" in proxy.client_subjects
    assert_stored(node_server, uploader.url, path)


def test_compat_verify_tls_cert_default_refuses_an_unknown_ca(
    pki: PKI, pki_files: PKIFiles, node_port: int, make_file: MakeFile
) -> None:
    with ThreadedTLSProxy(pki, node_port) as proxy:
        uploader = compat_client.TusClient(proxy.url_for("/files/")).uploader(str(make_file(10)))
        with pytest.raises(TusCommunicationError, match="could not be verified"):
            uploader.upload()
        assert proxy.received() == []


@pytest.mark.parametrize("form", ["combined", "cert-and-key", "none"])
def test_cli_client_certificate(
    pki: PKI,
    pki_files: PKIFiles,
    node_server: TusServer,
    node_port: int,
    make_file: MakeFile,
    form: str,
) -> None:
    choices: dict[str, list[str | Path]] = {
        "combined": ["--cert", pki_files.client_combined],
        "cert-and-key": ["--cert", pki_files.client_cert, "--key", pki_files.client_key],
        "none": [],
    }
    options = choices[form]
    path = make_file(100 * KiB)
    with ThreadedTLSProxy(pki, node_port, require_client_cert=True) as proxy:
        done = run_tuspipe(
            "upload", "--json", "--retries", "0", "--cacert", pki_files.ca, *options, path,
            proxy.url_for("/files/"),
        )  # fmt: skip
        if form == "none":
            assert done.returncode == _cli.EXIT_NETWORK, done.stderr
            assert "certificate required" in done.stderr
            assert "--cert" in done.stderr
            assert proxy.received() == []
            return
        assert done.returncode == 0, done.stderr
        assert "tuspipe test client" in proxy.client_subjects
    assert_stored(node_server, upload_url_of(done), path)


# ---- 3. Location rules ---------------------------------------------------------------------------


async def test_an_https_endpoint_may_not_send_the_upload_to_plain_http(
    pki: PKI, pki_files: PKIFiles, node_server: TusServer, node_port: int, make_file: MakeFile
) -> None:
    path = make_file(200 * KiB)
    async with TLSProxy(pki, node_port) as proxy:
        proxy.rewrite_location = proxy.to_upstream  # https://proxy/... -> http://node/...
        url = proxy.url_for("/files/")
        with pytest.raises(tuspipe.ProtocolError) as caught:
            await tuspipe.upload_async(path, url, verify=str(pki_files.ca), chunk_size=64 * KiB)
        message = str(caught.value)
        assert "plain-http" in message
        assert "allow_insecure_location" in message
        assert [request.method for request in proxy.received()] == ["POST"]
        # with the caller's consent the upload goes on over plain http, straight to the server
        result = await tuspipe.upload_async(
            path,
            url,
            verify=str(pki_files.ca),
            chunk_size=64 * KiB,
            allow_insecure_location=True,
        )
        assert result.url.startswith(f"http://127.0.0.1:{node_port}/files/")
        assert [request.method for request in proxy.received()] == ["POST", "POST"]
    assert_stored(node_server, result.url, path)


@pytest.mark.parametrize(
    "location",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "ftp://127.0.0.1/files/x",
        "data:text/plain,hello",
        "https://127.0.0.1/" + "a" * (MAX_LOCATION_LENGTH + 100),
    ],
    ids=["javascript", "file", "ftp", "data", "too-long"],
)
async def test_a_location_that_is_not_an_http_url_is_refused(
    pki: PKI, pki_files: PKIFiles, node_port: int, make_file: MakeFile, location: str
) -> None:
    async with TLSProxy(pki, node_port, rewrite_location=lambda _: location) as proxy:
        with pytest.raises(tuspipe.ProtocolError, match="Location"):
            await tuspipe.upload_async(
                make_file(100 * KiB),
                proxy.url_for("/files/"),
                verify=str(pki_files.ca),
                chunk_size=32 * KiB,
            )
        assert [request.method for request in proxy.received()] == ["POST"]  # never followed
        assert proxy.received("POST")[0].location == location  # the client did receive it


async def test_a_relative_location_stays_on_the_endpoint(
    pki: PKI, pki_files: PKIFiles, node_server: TusServer, node_port: int, make_file: MakeFile
) -> None:
    path = make_file(100 * KiB)
    relative = TLSProxy(pki, node_port, rewrite_location=lambda url: urlsplit(url).path)
    async with relative as proxy:
        result = await tuspipe.upload_async(
            path, proxy.url_for("/files/"), verify=str(pki_files.ca), chunk_size=40 * KiB
        )
        assert result.url.startswith(proxy.origin + "/files/")
    assert_stored(node_server, result.url, path)


# ---- credentials and origins ---------------------------------------------------------------------


@asynccontextmanager
async def two_origins(pki: PKI, node_port: int) -> AsyncIterator[tuple[TLSProxy, TLSProxy]]:
    """Proxy A (the endpoint) places every upload on proxy B: another origin, same server."""
    async with TLSProxy(pki, node_port) as uploads, TLSProxy(pki, node_port) as endpoint:
        endpoint.rewrite_location = endpoint.moved_to(uploads)
        yield endpoint, uploads


def credential_values(request: ReceivedRequest) -> dict[str, str | None]:
    return {name: request.header(name) for name in ("authorization", "cookie")}


async def test_credentials_reach_the_endpoint_but_not_another_origin(
    pki: PKI,
    pki_files: PKIFiles,
    node_server: TusServer,
    node_port: int,
    make_file: MakeFile,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = make_file(300 * KiB)
    caplog.set_level(logging.WARNING, logger="tuspipe")
    headers = {**CREDENTIALS, "Proxy-Authorization": "Basic cHJveHk6cHc=", "X-Trace": "t-1"}
    sent = {"authorization": CREDENTIALS["Authorization"], "cookie": CREDENTIALS["Cookie"]}
    async with two_origins(pki, node_port) as (endpoint, uploads):
        async with tuspipe.Client(headers=headers, verify=str(pki_files.ca)) as client:
            # stop half-way, then resume from the journal: HEAD and PATCH go to the other origin
            first = await client.upload(
                path, endpoint.url_for("/files/"), chunk_size=100 * KiB, stop_at=100 * KiB
            )
            result = await client.upload(path, endpoint.url_for("/files/"), chunk_size=100 * KiB)
        assert result.url == first.url
        assert result.url.startswith(uploads.origin)
        assert result.resumed_from == 100 * KiB
        at_endpoint = endpoint.received()
        assert [request.method for request in at_endpoint if request.method != "OPTIONS"] == [
            "POST"
        ]
        for request in at_endpoint:
            assert credential_values(request) == sent
            assert request.header("proxy-authorization") == "Basic cHJveHk6cHc="
        elsewhere = uploads.received()
        assert {request.method for request in elsewhere} >= {"HEAD", "PATCH"}
        for request in elsewhere:
            assert credential_values(request) == {"authorization": None, "cookie": None}
            assert request.header("proxy-authorization") is None
            assert request.header("x-trace") == "t-1"  # other headers still go along
    assert_stored(node_server, result.url, path)
    assert any("another origin" in record.getMessage() for record in caplog.records)
    assert TOKEN not in caplog.text
    assert COOKIE not in caplog.text


async def test_allow_cross_origin_credentials_sends_them(
    pki: PKI, pki_files: PKIFiles, node_server: TusServer, node_port: int, make_file: MakeFile
) -> None:
    path = make_file(200 * KiB)
    sent = {"authorization": CREDENTIALS["Authorization"], "cookie": CREDENTIALS["Cookie"]}
    async with two_origins(pki, node_port) as (endpoint, uploads):
        result = await tuspipe.upload_async(
            path,
            endpoint.url_for("/files/"),
            headers=CREDENTIALS,
            verify=str(pki_files.ca),
            chunk_size=64 * KiB,
            allow_cross_origin_credentials=True,
        )
        patches = uploads.received("PATCH")
        assert patches
        assert all(credential_values(request) == sent for request in patches)
        assert credential_values(endpoint.received("POST")[0]) == sent
    assert_stored(node_server, result.url, path)


async def test_credentials_go_along_on_the_same_origin(
    pki: PKI, pki_files: PKIFiles, node_server: TusServer, node_port: int, make_file: MakeFile
) -> None:
    path = make_file(200 * KiB)
    sent = {"authorization": CREDENTIALS["Authorization"], "cookie": CREDENTIALS["Cookie"]}
    async with TLSProxy(pki, node_port) as proxy:
        result = await tuspipe.upload_async(
            path,
            proxy.url_for("/files/"),
            headers=CREDENTIALS,
            verify=str(pki_files.ca),
            chunk_size=64 * KiB,
        )
        requests = proxy.received()
        assert {request.method for request in requests} >= {"POST", "PATCH"}
        assert all(credential_values(request) == sent for request in requests)
    assert_stored(node_server, result.url, path)


class BearerAuth(httpx.Auth):
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = CREDENTIALS["Authorization"]
        yield request


def with_cookie(request: tuspipe.OutgoingRequest) -> None:
    request.headers["Cookie"] = CREDENTIALS["Cookie"]
    request.headers["X-Trace"] = "t-2"


@pytest.mark.parametrize("form", ["httpx.Auth", "function"])
@pytest.mark.parametrize("allow", [False, True], ids=["same-origin-only", "allowed"])
async def test_refreshed_credentials_follow_the_same_origin_rule(
    form: str,
    allow: bool,
    pki: PKI,
    pki_files: PKIFiles,
    node_server: TusServer,
    node_port: int,
    make_file: MakeFile,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """auth= and the credential headers of on_request go where headers= would: to the
    endpoint's origin, and elsewhere only with allow_cross_origin_credentials."""
    path = make_file(300 * KiB)
    caplog.set_level(logging.WARNING, logger="tuspipe")
    auth: Any = BearerAuth() if form == "httpx.Auth" else lambda: dict(CREDENTIALS)
    sent = {"authorization": CREDENTIALS["Authorization"], "cookie": CREDENTIALS["Cookie"]}
    async with two_origins(pki, node_port) as (endpoint, uploads):
        async with tuspipe.Client(
            auth=auth,
            on_request=with_cookie,
            verify=str(pki_files.ca),
            allow_cross_origin_credentials=allow,
        ) as client:
            first = await client.upload(
                path, endpoint.url_for("/files/"), chunk_size=100 * KiB, stop_at=100 * KiB
            )
            result = await client.upload(path, endpoint.url_for("/files/"), chunk_size=100 * KiB)
            # a single operation on a URL the caller names takes the credentials there
            await client.upload_status(result.url)
        assert result.url == first.url
        assert result.url.startswith(uploads.origin)
        for request in endpoint.received():
            assert credential_values(request) == sent
        elsewhere = uploads.received()
        assert {request.method for request in elsewhere} >= {"HEAD", "PATCH"}
        for request in elsewhere[:-1]:
            assert credential_values(request) == (
                sent if allow else {"authorization": None, "cookie": None}
            )
            assert request.header("x-trace") == "t-2"  # other headers go everywhere
        assert credential_values(elsewhere[-1]) == sent  # the upload_status HEAD
    assert_stored(node_server, result.url, path)
    warned = any("another origin" in record.getMessage() for record in caplog.records)
    assert warned is not allow
    assert TOKEN not in caplog.text


# ---- 4. at rest: the journal, and logs -----------------------------------------------------------


async def test_the_journal_is_private_and_holds_no_secrets(
    pki: PKI,
    pki_files: PKIFiles,
    node_server: TusServer,
    node_port: int,
    make_file: MakeFile,
    tmp_path: Path,
) -> None:
    path = make_file(300 * KiB)
    journal = tmp_path / "fresh" / "journal"  # its directory does not exist yet
    query_token = "qu3ry-t0ken"
    previous_umask = os.umask(0)  # the modes must come from tuspipe, not from a umask
    try:
        async with TLSProxy(pki, node_port) as proxy:
            endpoint = proxy.url_for("/files/") + f"?token={query_token}"
            options: dict[str, Any] = {
                "headers": CREDENTIALS,
                "verify": str(pki_files.ca),
                "journal": journal,
                "chunk_size": 100 * KiB,
            }
            first = await tuspipe.upload_async(path, endpoint, stop_at=100 * KiB, **options)
            assert proxy.received("POST")[0].target == f"/files/?token={query_token}"
            # what an interrupted upload leaves on disk
            assert stat.S_IMODE(journal.parent.stat().st_mode) == 0o700
            assert stat.S_IMODE(journal.stat().st_mode) == 0o600
            lock = journal.with_name(journal.name + ".lock")
            if lock.exists():
                assert stat.S_IMODE(lock.stat().st_mode) == 0o600
            raw = journal.read_bytes()
            for secret in (TOKEN, COOKIE, query_token, "token=", "Bearer", "session="):
                assert secret.encode() not in raw, secret
            assert b"uthorization" not in raw
            assert b"ookie" not in raw
            records, damaged = decode_records(raw)
            assert damaged == 0
            assert records
            allowed = {"op", "v", "key", "url", "endpoint", "source", "size", "offset"}
            allowed |= {"created", "expires", "parts"}
            for record in records:
                assert set(record) <= allowed, record
                if "endpoint" in record:
                    assert record["endpoint"] == proxy.url_for("/files/")  # no query string
            # the journal resumes the upload without having kept the headers
            result = await tuspipe.upload_async(path, endpoint, **options)
    finally:
        os.umask(previous_umask)
    assert result.url == first.url
    assert result.resumed_from == 100 * KiB
    assert_stored(node_server, result.url, path)


async def test_the_journal_keeps_no_userinfo_of_the_endpoint(
    pki: PKI, pki_files: PKIFiles, node_port: int, make_file: MakeFile, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    async with TLSProxy(pki, node_port) as proxy:
        endpoint = f"https://uploader:pa55word@127.0.0.1:{proxy.port}/files/"
        await tuspipe.upload_async(
            make_file(200 * KiB),
            endpoint,
            verify=str(pki_files.ca),
            journal=journal,
            chunk_size=100 * KiB,
            stop_at=100 * KiB,
        )
        # the URL's user info was used (httpx sends it as Basic credentials) ...
        assert (proxy.received("POST")[0].header("authorization") or "").startswith("Basic ")
    # ... but is not kept on disk
    raw = journal.read_bytes()
    assert b"pa55word" not in raw
    assert b"uploader" not in raw
    [entry] = tuspipe.Journal(journal).unfinished()
    assert entry.endpoint == f"https://127.0.0.1:{proxy.port}/files/"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything tuspipe, httpx and httpcore log, down to DEBUG."""
    for name in ("tuspipe", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records
    for secret in (TOKEN, COOKIE):
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()
            assert secret not in repr(record.args)
            assert secret not in (record.exc_text or "")


async def test_debug_logs_of_an_upload_hold_no_credentials(
    pki: PKI,
    pki_files: PKIFiles,
    node_server: TusServer,
    node_port: int,
    make_file: MakeFile,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    path = make_file(300 * KiB)
    async with TLSProxy(pki, node_port) as proxy:
        url = proxy.url_for("/files/")
        async with tuspipe.Client(headers=CREDENTIALS, verify=str(pki_files.ca)) as client:
            await client.server_info(url)
            half = await client.upload(path, url, chunk_size=100 * KiB, stop_at=100 * KiB)
            result = await client.upload(path, url, chunk_size=100 * KiB)  # HEAD, resume
            await client.upload_status(result.url)
        # the secrets were really sent
        assert {request.header("authorization") for request in proxy.received()} == {
            CREDENTIALS["Authorization"]
        }
    assert result.url == half.url
    assert_stored(node_server, result.url, path)
    names = {record.name for record in debug_logs.records}
    assert "tuspipe" in names, names
    assert any(name.startswith("httpcore") for name in names), names
    assert_no_secret_logged(debug_logs)


async def test_logs_of_retries_and_failures_hold_no_credentials(
    debug_logs: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    server.script(503, {"Retry-After": "1"}, b"busy", method="POST")
    server.script(500, {}, b"oops", method="PATCH")
    data = os.urandom(50 * KiB)
    async with server.client() as http_client:
        result = await tuspipe.upload_async(
            data, server.endpoint, headers=CREDENTIALS, http_client=http_client, journal=False
        )
        assert server.data_of(result.url) == data
        server.script(401, {}, b"who are you?", method="POST")
        with pytest.raises(tuspipe.ResponseError) as caught:
            await tuspipe.upload_async(
                data, server.endpoint, headers=CREDENTIALS, http_client=http_client, journal=False
            )
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in server.requests)
    assert TOKEN not in str(caught.value)
    assert COOKIE not in str(caught.value)
    assert any(record.levelno == logging.WARNING for record in debug_logs.records)
    assert_no_secret_logged(debug_logs)


def test_cli_debug_output_holds_no_credentials(
    pki: PKI, pki_files: PKIFiles, node_server: TusServer, node_port: int, make_file: MakeFile
) -> None:
    path = make_file(150 * KiB)
    with ThreadedTLSProxy(pki, node_port) as proxy:
        done = run_tuspipe(
            "upload", "--json", "--debug", "--chunk-size", "64KiB", "--cacert", pki_files.ca,
            "-H", f"Authorization: Bearer {TOKEN}", "-H", f"Cookie: session={COOKIE}",
            path, proxy.url_for("/files/"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "tuspipe: debug: " in done.stderr
        assert proxy.received("POST")[0].header("authorization") == f"Bearer {TOKEN}"
    assert TOKEN not in done.stderr + done.stdout
    assert COOKIE not in done.stderr + done.stdout
    assert_stored(node_server, upload_url_of(done), path)


# ---- 5. untrusted servers: hostile answers -------------------------------------------------------

HOSTILE_COUNTS = [
    pytest.param("9" * (1 << 20), id="1MB-of-digits"),
    pytest.param("9" * 40, id="40-digits"),
    pytest.param("-1", id="negative"),
    pytest.param("+5", id="plus-sign"),
    pytest.param("1_000", id="underscore"),
    pytest.param("0x10", id="hex"),
    pytest.param("", id="empty"),
    pytest.param("12 34", id="two-numbers"),
]


@pytest.mark.parametrize("value", HOSTILE_COUNTS)
@pytest.mark.parametrize("method", ["PATCH", "HEAD"])
async def test_a_hostile_upload_offset_is_a_clear_protocol_error(
    value: str, method: str, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    data = os.urandom(10 * KiB)
    status = 204 if method == "PATCH" else 200
    server.script(
        status, {"Tus-Resumable": "1.0.0", "Upload-Offset": value, "Upload-Length": "10240"},
        method=method,
    )  # fmt: skip
    options: dict[str, Any] = {"journal": False, "retries": 3, "retry_delays": [1.0]}
    if method == "HEAD":
        options["upload_url"] = server.create(len(data))
    else:
        options["url"] = server.endpoint
    async with server.client() as http_client:
        with pytest.raises(tuspipe.ProtocolError) as caught:
            await tuspipe.upload_async(data, http_client=http_client, **options)
    message = str(caught.value)
    assert "malformed upload-offset" in message
    assert len(message) < 1000  # quotes a bounded part of the value, not a megabyte
    assert len(server.seen(method)) == 1  # a broken answer is not asked for again


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Upload-Length", "9" * 40),
        ("Upload-Length", "-1"),
        ("Upload-Length", "1" * (1 << 20)),
    ],
)
async def test_a_hostile_upload_length_is_a_clear_protocol_error(
    header: str, value: str, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    url = server.create(10)
    server.script(200, {"Tus-Resumable": "1.0.0", "Upload-Offset": "0", header: value})
    async with server.client() as http_client:
        with pytest.raises(tuspipe.ProtocolError, match="malformed upload-length"):
            await tuspipe.upload_async(b"x" * 10, upload_url=url, http_client=http_client)


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("https://tus.test/" + "a" * (20 * KiB), id="20KB"),
        pytest.param("x" * (1 << 20), id="1MB"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("mailto:a@b.c", id="mailto"),
        pytest.param("http://[::1", id="broken-ipv6"),
        pytest.param("http://tus.test:99999/files/1", id="bad-port"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
    ],
)
async def test_a_hostile_location_is_a_clear_protocol_error(
    location: str, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    server.script(201, {"Tus-Resumable": "1.0.0", "Location": location}, method="POST")
    async with server.client() as http_client:
        with pytest.raises(tuspipe.ProtocolError, match="Location") as caught:
            await tuspipe.upload_async(
                b"data", server.endpoint, http_client=http_client, journal=False
            )
    assert len(str(caught.value)) < 1000
    assert server.seen("PATCH") == []
    assert len(server.seen("POST")) == 1


async def test_an_https_location_downgrade_is_refused_by_the_protocol_layer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeTusServer(endpoint="https://tus.test/files/")
    server.script(
        201, {"Tus-Resumable": "1.0.0", "Location": "http://tus.test/files/u9"}, method="POST"
    )
    async with server.client() as http_client:
        with pytest.raises(tuspipe.ProtocolError, match="plain-http"):
            await tuspipe.upload_async(b"data", server.endpoint, http_client=http_client)
    assert server.seen("PATCH") == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_redirects_are_not_followed(
    status: int, method: str, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    elsewhere = "http://elsewhere.test/files/"
    server.script(status, {"Location": elsewhere}, method=method)
    async with server.client() as http_client:
        with pytest.raises(tuspipe.ResponseError) as caught:
            await tuspipe.upload_async(
                b"data",
                server.endpoint,
                headers=CREDENTIALS,
                http_client=http_client,
                journal=False,
            )
    assert caught.value.status_code == status
    assert not any(request.url.startswith(elsewhere) for request in server.requests)


RETRY_AFTER_CAPPED = ["99999999999", "9" * 64, "Fri, 31 Dec 9999 23:59:59 GMT", "301"]
RETRY_AFTER_GARBAGE = [
    "soon",
    "-5",
    "1e9",
    "1.5",
    "0x10",
    "inf",
    "nan",
    "9" * 65,
    "Thu, 99 Foo 2020 99:99:99 GMT",
    "",
    " ",
    "x" * (100 * KiB),
]


def retry_recorder() -> tuple[list[float], Callable[[tuspipe.TusError, int, float], None]]:
    waits: list[float] = []

    def on_retry(error: tuspipe.TusError, attempt: int, wait: float) -> None:
        waits.append(wait)

    return waits, on_retry


@pytest.mark.parametrize("value", RETRY_AFTER_CAPPED)
@pytest.mark.parametrize(("method", "status"), [("PATCH", 503), ("POST", 429), ("HEAD", 503)])
async def test_retry_after_is_capped(
    value: str, method: str, status: int, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    data = os.urandom(20 * KiB)
    options: dict[str, Any] = {"url": server.endpoint}
    if method == "HEAD":
        options = {"upload_url": server.create(len(data))}
    server.script(status, {"Retry-After": value}, b"later", method=method)
    waits, on_retry = retry_recorder()
    start = trio.current_time()
    async with server.client() as http_client:
        result = await tuspipe.upload_async(
            data,
            http_client=http_client,
            journal=False,
            retries=2,
            retry_delays=[1.0],
            on_retry=on_retry,
            **options,
        )
    elapsed = trio.current_time() - start
    assert server.data_of(result.url) == data
    assert waits == [MAX_RETRY_AFTER]
    assert MAX_RETRY_AFTER <= elapsed <= MAX_RETRY_AFTER + 1


@pytest.mark.parametrize("value", RETRY_AFTER_GARBAGE)
async def test_garbage_retry_after_falls_back_to_the_policy(
    value: str, autojump_clock: trio.testing.MockClock
) -> None:
    server = FakeTusServer()
    data = os.urandom(20 * KiB)
    server.script(503, {"Retry-After": value}, b"later", method="PATCH")
    waits, on_retry = retry_recorder()
    async with server.client() as http_client:
        result = await tuspipe.upload_async(
            data,
            server.endpoint,
            http_client=http_client,
            journal=False,
            retries=2,
            retry_delays=[1.5],
            on_retry=on_retry,
        )
    assert server.data_of(result.url) == data
    assert waits == [1.5]


async def test_a_retry_after_date_in_the_past_retries_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = FakeTusServer()
    server.script(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, method="PATCH")
    waits, on_retry = retry_recorder()
    async with server.client() as http_client:
        await tuspipe.upload_async(
            b"abc", server.endpoint, http_client=http_client, journal=False, on_retry=on_retry
        )
    assert waits == [0.0]


# ---- hostile answers on a real socket ------------------------------------------------------------


@asynccontextmanager
async def hostile_server(answer: Callable[[trio.SocketStream], Any]) -> AsyncIterator[str]:
    """A loopback server that reads one request head per connection and lets `answer` reply;
    yields its creation URL."""

    async def serve(stream: trio.SocketStream) -> None:
        received = b""
        with trio.move_on_after(10):
            while b"\r\n\r\n" not in received and len(received) < 64 * KiB:
                chunk = await stream.receive_some(16 * KiB)
                if not chunk:
                    return
                received += chunk
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await answer(stream)
        await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}/files/"
        nursery.cancel_scope.cancel()


async def test_a_megabyte_of_headers_is_a_network_error_not_a_crash() -> None:
    async def answer(stream: trio.SocketStream) -> None:
        await stream.send_all(b"HTTP/1.1 201 Created\r\nTus-Resumable: 1.0.0\r\nLocation: /")
        for _ in range(16):
            await stream.send_all(b"a" * (64 * KiB))
        await stream.send_all(b"\r\nContent-Length: 0\r\n\r\n")

    with trio.fail_after(30):
        async with hostile_server(answer) as url:
            with pytest.raises(tuspipe.NetworkError) as caught:
                await tuspipe.upload_async(b"data", url, journal=False, retries=1,
                                           retry_delays=[0])  # fmt: skip
    assert len(str(caught.value)) < 1000


async def test_a_long_location_on_a_real_socket_is_a_protocol_error() -> None:
    async def answer(stream: trio.SocketStream) -> None:
        location = b"/files/" + b"a" * (20 * KiB)
        await stream.send_all(
            b"HTTP/1.1 201 Created\r\nTus-Resumable: 1.0.0\r\nLocation: "
            + location
            + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )

    with trio.fail_after(30):
        async with hostile_server(answer) as url:
            with pytest.raises(tuspipe.ProtocolError, match="Location of"):
                await tuspipe.upload_async(b"data", url, journal=False)


async def test_a_server_that_stops_mid_answer_times_out() -> None:
    async def answer(stream: trio.SocketStream) -> None:
        await stream.send_all(b"HTTP/1.1 201 Created\r\nTus-Resumable: 1.0.0\r\n")
        await trio.sleep_forever()

    with trio.fail_after(30):
        async with hostile_server(answer) as url:
            with pytest.raises(tuspipe.NetworkTimeoutError):
                await tuspipe.upload_async(
                    b"data", url, journal=False, retries=0, stall_timeout=0.5
                )


# ---- the proxy itself ----------------------------------------------------------------------------


def test_the_proxy_is_loopback_only(pki: PKI) -> None:
    with pytest.raises(ValueError, match="loopback"):
        TLSProxy(pki, 1080, upstream_host="192.0.2.1")
    with pytest.raises(ValueError, match="loopback"):
        TLSProxy(pki, 1080, host="0.0.0.0")


def test_the_threaded_proxy_serves_plain_httpx(
    pki: PKI, pki_files: PKIFiles, node_port: int
) -> None:
    with ThreadedTLSProxy(pki, node_port) as proxy:
        context = ssl.create_default_context(cafile=str(pki_files.ca))
        answer = httpx.options(proxy.url_for("/files/"), verify=context, timeout=10)
        assert answer.status_code == 204
        assert answer.headers["tus-version"]
        [options] = proxy.received()
        assert (options.method, options.target, options.status) == ("OPTIONS", "/files/", 204)


def test_the_ca_bundle_is_loaded_once_per_process_and_follows_ssl_cert_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    first, second = make_ssl_context(), make_ssl_context()
    assert first is second  # the bundle is not loaded again for each call or Client
    assert make_ssl_context(False) is not first
    assert make_ssl_context(False).verify_mode == ssl.CERT_NONE
    pki = PKI()
    ca = tmp_path / "ca.pem"
    pki.ca.cert_pem.write_to_path(str(ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    own = make_ssl_context()
    assert own is not first
    assert len(own.get_ca_certs()) == 1  # only the file's CA, as httpx reads SSL_CERT_FILE


def test_plain_http_uploads_never_load_the_ca_bundle(
    node_server: TusServer, make_file: MakeFile
) -> None:
    _shared_ssl_context.cache_clear()
    path = make_file(1000)
    result = tuspipe.upload(path, node_server.url, journal=None)
    assert node_server.stored_sha256(result.url) == sha256_file(path)
    assert _shared_ssl_context.cache_info().currsize == 0  # made only for https
