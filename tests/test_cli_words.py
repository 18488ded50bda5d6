"""The CLI speaks CLI (issue 16): library advice that names a Python argument is reworded at
the command line's boundary (tuspipe/cli/_words.py, one mapping) to name the flag.

Each case makes the library say its advice for real (against a real server where one gives the
answer, httpx's MockTransport where none does on demand), and checks that the command line's
words name the flag and no longer the argument. Two cases run the command itself, to show the
mapping is applied to its errors and to its warnings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import trio

import tuspipe
from tests.commands import run_tuspipe
from tests.conftest import MakeFile, TusServer
from tests.faultproxy import ThreadedFaultProxy
from tests.tlsproxy import PKI, ThreadedTLSProxy
from tuspipe._bodylimits import BodyLimits
from tuspipe.cli._words import REWORDINGS, in_cli_words

MiB = 1 << 20


def failure_of(call: Callable[[], object]) -> str:
    with pytest.raises(tuspipe.TusError) as caught:
        call()
    return str(caught.value)


def through(answer: Callable[[httpx.Request], httpx.Response], **options: object) -> str:
    """The message of an upload against a MockTransport server answering with `answer`."""

    async def run() -> None:
        transport = httpx.MockTransport(answer)
        async with httpx.AsyncClient(transport=transport) as http_client:
            await tuspipe.upload_async(
                b"12345",
                str(options.pop("url", "http://tus.test/files/")),
                http_client=http_client,
                journal=None,
                **options,  # type: ignore[arg-type]
            )

    return failure_of(lambda: trio.run(run))


def created_at(location: str, then: int = 204) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        tus = {"Tus-Resumable": "1.0.0"}
        if request.method == "POST":
            return httpx.Response(201, headers={**tus, "Location": location})
        return httpx.Response(then, headers={**tus, "Upload-Offset": "5"})

    return answer


def check(library: str, argument: str, flag: str) -> None:
    assert argument in library, library  # the library's own words name the argument...
    cli = in_cli_words(library)
    assert flag in cli, cli  # ... the command line's name the flag
    assert argument not in cli, cli


def test_checksum(node_server: TusServer, make_file: MakeFile) -> None:
    said = failure_of(lambda: tuspipe.upload(make_file(10), node_server.url, checksum="sha256"))
    check(said, "checksum=None or 'auto'", "--checksum none or --checksum auto")
    check(said, "checksum='sha256'", "--checksum sha256")


def test_verify_and_insecure(node_server: TusServer, caplog: pytest.LogCaptureFixture) -> None:
    port = urlsplit(node_server.url).port
    assert port is not None
    with ThreadedTLSProxy(PKI(), upstream_port=port) as proxy:
        said = failure_of(lambda: tuspipe.server_info(proxy.url_for("/files/")))
    check(said, "verify='ca.pem'", "--cacert ca.pem, or --insecure")
    with caplog.at_level(logging.WARNING, logger="tuspipe"):
        tuspipe.Client(verify=False)
    (warning,) = [record.getMessage() for record in caplog.records]
    check(warning, "(verify=False)", "(--insecure)")


def test_client_certificate(node_server: TusServer, tmp_path: Path) -> None:
    port = urlsplit(node_server.url).port
    assert port is not None
    pki = PKI()
    ca = tmp_path / "ca.pem"
    pki.ca.cert_pem.write_to_path(str(ca))
    with ThreadedTLSProxy(pki, upstream_port=port, require_client_cert=True) as proxy:
        said = failure_of(lambda: tuspipe.server_info(proxy.url_for("/files/"), verify=str(ca)))
    check(said, "cert='client.pem'", "--cert client.pem, or --cert cert.pem --key key.pem")


def test_chunk_size(caplog: pytest.LogCaptureFixture) -> None:
    limits = BodyLimits()
    with caplog.at_level(logging.WARNING, logger="tuspipe"):
        limits.refused("http://tus.test/files/a", 2 * MiB, tuspipe.TusError("413"))
        limits.accepted("http://tus.test/files/a", MiB)
    (warning,) = [record.getMessage() for record in caplog.records]
    check(warning, f"chunk_size={MiB}", "--chunk-size 1MiB")


def test_credentials_for_a_401() -> None:
    said = through(lambda request: httpx.Response(401, headers={"Tus-Resumable": "1.0.0"}))
    check(said, "auth= (an httpx.Auth", "TUSPIPE_TOKEN_COMMAND")
    check(said, "on_request=", "--header 'Authorization: ...'")


def test_credentials_for_a_403() -> None:
    said = through(lambda request: httpx.Response(403, headers={"Tus-Resumable": "1.0.0"}))
    check(said, "auth= or on_request=", "TUSPIPE_TOKEN_COMMAND can refresh them")


def test_credentials_kept_from_another_origin(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        transport = httpx.MockTransport(created_at("http://elsewhere.test/files/a"))
        async with httpx.AsyncClient(transport=transport) as http_client:
            await tuspipe.upload_async(
                b"12345",
                "http://tus.test/files/",
                http_client=http_client,
                journal=None,
                headers={"Authorization": "Bearer x"},
            )

    with caplog.at_level(logging.WARNING, logger="tuspipe"):
        trio.run(run)
    (warning,) = [record.getMessage() for record in caplog.records]
    check(warning, "allow_cross_origin_credentials=True", "credentials given with --header")


def test_a_stream_cannot_continue_an_upload() -> None:
    said = failure_of(
        lambda: tuspipe.upload(
            iter([b"x" * 10]), upload_url="http://tus.test/files/a", chunk_size=1
        )
    )
    check(said, "upload_url= and resume_key=", "--upload-url needs a file")


def test_the_url() -> None:
    said = through(lambda request: httpx.Response(404, headers={"Tus-Resumable": "1.0.0"}))
    check(said, "check `url`", "check the URL")


@pytest.mark.parametrize(
    ("answer", "url", "argument"),
    [
        (
            created_at("http://tus.test/files/a"),
            "https://tus.test/files/",
            "allow_insecure_location",
        ),
        (created_at("/files/a", then=405), "http://tus.test/files/", "method_override"),
    ],
    ids=["insecure-location", "method-override"],
)
def test_advice_without_a_flag_says_so(
    answer: Callable[[httpx.Request], httpx.Response], url: str, argument: str
) -> None:
    said = through(answer, url=url)
    assert f"{argument}=True" in said
    assert "the tuspipe command has no such flag" in in_cli_words(said)


def test_every_rewording_is_exercised_above() -> None:
    # A rule whose words the library no longer says would rewrite nothing; the cases above
    # make the library say each one (thirteen rules, some checked twice).
    assert len(REWORDINGS) == 13


def test_the_command_says_flags_in_its_errors(node_server: TusServer, make_file: MakeFile) -> None:
    done = run_tuspipe("upload", "--checksum", "sha256", make_file(10), node_server.url)
    assert done.returncode == 2
    assert "--checksum none or --checksum auto" in done.stderr
    assert "checksum=None" not in done.stderr


def test_the_command_says_flags_in_its_warnings(
    node_server: TusServer, make_file: MakeFile
) -> None:
    upstream = urlsplit(node_server.url)
    assert upstream.hostname is not None
    assert upstream.port is not None
    with ThreadedFaultProxy(upstream.hostname, upstream.port, max_body=MiB) as proxy:
        # 4 MiB in one PATCH, then 2 MiB: refused; 1 MiB fits.
        url = proxy.url_for(node_server.url)
        done = run_tuspipe("upload", "--no-journal", make_file(4 * MiB), url)
    assert done.returncode == 0, done.stderr
    assert "Pass --chunk-size 1MiB" in done.stderr
    assert "chunk_size=" not in done.stderr
