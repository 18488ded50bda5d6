"""Credentials for the command line from the environment (issue 18): ``TUSPIPE_TOKEN`` (fixed)
and ``TUSPIPE_TOKEN_COMMAND`` (a command printing a token, run again after a 401).

The command runs as a subprocess against the real Node server behind the token-checking proxy
(tests/tokenproxy.py), whose tokens expire after a few requests like short-lived JWTs. The
token command asks the proxy's ``POST /token`` for a new one, as ``gcloud auth
print-access-token`` or a vault CLI would ask their service.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import tuspipe
from tuspipe.cli._token import TOKEN, TOKEN_COMMAND, TokenCommand, credentials_from

from .commands import run_tuspipe
from .conftest import MakeFile, TusServer, sha256_file
from .tokenproxy import ThreadedTokenProxy

MiB = 1 << 20
CHUNK = 2 * MiB
# 16 bodies (a POST and 15 PATCHes) and a HEAD per refusal: a token good for 5 requests
# expires three times.
SIZE = 32 * MiB
LIFETIME = 5


@pytest.fixture
def gate(node_server: TusServer) -> Iterator[ThreadedTokenProxy]:
    port = urlsplit(node_server.url).port
    assert port is not None
    with ThreadedTokenProxy(port, lifetime_requests=LIFETIME) as proxy:
        yield proxy


def token_command(gate: ThreadedTokenProxy) -> str:
    """A shell command printing a fresh token from the proxy's token endpoint."""
    script = (
        "import json, urllib.request as u; "
        f"r = u.urlopen(u.Request({gate.url_for('/token')!r}, method='POST')); "
        "print(json.load(r)['access_token'])"
    )
    return shlex.join([sys.executable, "-c", script])


def tuspipe_command(*arguments: object, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in (TOKEN, TOKEN_COMMAND, "TUSPIPE_JOURNAL")
    }
    env.update(environment)
    return run_tuspipe(*arguments, env=env)


def outcome(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    (line,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert isinstance(line, dict)
    return line


def no_token_anywhere(gate: ThreadedTokenProxy, *texts: str | bytes) -> None:
    for token in gate.proxy.tokens:
        for text in texts:
            shown = text if isinstance(text, str) else text.decode("latin-1")
            assert token not in shown


@pytest.mark.slow
def test_a_token_command_outlives_three_expiries(
    gate: ThreadedTokenProxy, node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    path = make_file(SIZE)
    journal = tmp_path / "journal"
    done = tuspipe_command(
        "upload", "--json", "--chunk-size", "2MiB", "--journal", journal, "--debug",
        path, gate.url_for("/files/"),
        TUSPIPE_TOKEN_COMMAND=token_command(gate),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    upload_url = outcome(done)["url"]
    assert node_server.stored_sha256(upload_url) == sha256_file(path)
    # Three expiries: each refused once, then a new token (the command ran 4 times in all).
    assert len(gate.refused()) >= 3
    assert len(gate.proxy.tokens) == len(gate.refused()) + 1
    assert all(request.status != 401 for request in gate.received()[-1:])
    no_token_anywhere(gate, done.stdout, done.stderr, journal.read_bytes())
    tuspipe.terminate(urlsplit(node_server.url)._replace(path=urlsplit(upload_url).path).geturl())


def test_a_fixed_token_that_expires_names_the_command_and_the_command_resumes(
    gate: ThreadedTokenProxy, node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    path = make_file(16 * MiB)
    journal = tmp_path / "journal"
    url = gate.url_for("/files/")
    token = gate.issue()
    failed = tuspipe_command(
        "upload", "--chunk-size", "2MiB", "--journal", journal, path, url,
        TUSPIPE_TOKEN=token,
    )  # fmt: skip
    assert failed.returncode == 4, failed.stderr
    assert "TUSPIPE_TOKEN_COMMAND" in failed.stderr
    assert "auth=" not in failed.stderr
    assert "on_request" not in failed.stderr
    no_token_anywhere(gate, failed.stdout, failed.stderr, journal.read_bytes())
    acknowledged = sum(1 for request in gate.received("PATCH") if request.status == 204)
    assert 0 < acknowledged < 8  # it stopped midway

    resumed = tuspipe_command(
        "upload", "--json", "--chunk-size", "2MiB", "--journal", journal, path, url,
        TUSPIPE_TOKEN_COMMAND=token_command(gate),
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    result = outcome(resumed)
    assert result["resumed_from"] > 0
    assert node_server.stored_sha256(result["url"]) == sha256_file(path)


def test_a_failing_token_command_stops_before_any_request(
    gate: ThreadedTokenProxy, make_file: MakeFile
) -> None:
    failing = shlex.join(
        [sys.executable, "-c", "import sys; sys.exit('not logged in: run  login  first')"]
    )
    done = tuspipe_command(
        "upload", "--no-journal", make_file(1000), gate.url_for("/files/"),
        TUSPIPE_TOKEN_COMMAND=failing,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "TUSPIPE_TOKEN_COMMAND" in done.stderr
    assert "exit status 1: not logged in: run login first" in done.stderr
    assert gate.received() == []


def test_the_other_commands_take_the_token(gate: ThreadedTokenProxy, make_file: MakeFile) -> None:
    token = gate.issue()
    gate.proxy.lifetime_requests = None
    url = gate.url_for("/files/")
    created = tuspipe_command(
        "upload", "--no-journal", "--json", make_file(1000), url, TUSPIPE_TOKEN=token
    )
    assert created.returncode == 0, created.stderr
    upload_url = outcome(created)["url"]
    for arguments in (("info", url), ("status", upload_url), ("delete", upload_url)):
        assert tuspipe_command(*arguments).returncode == 4  # no token: refused
        done = tuspipe_command(*arguments, TUSPIPE_TOKEN=token)
        assert done.returncode == 0, (arguments, done.stderr)
        no_token_anywhere(gate, done.stdout, done.stderr)
    assert all(
        request.header("authorization") in (None, f"Bearer {token}") for request in gate.received()
    )


def test_both_variables_set_is_a_usage_error(make_file: MakeFile) -> None:
    done = tuspipe_command(
        "upload", "--no-journal", make_file(10), "http://127.0.0.1:9/files/",
        TUSPIPE_TOKEN="x", TUSPIPE_TOKEN_COMMAND="echo y",
    )  # fmt: skip
    assert done.returncode == 2
    assert "both set" in done.stderr


def test_the_command_line_header_wins_over_the_environment() -> None:
    given = {"Authorization": "Basic abc"}
    environ = {TOKEN: "t", TOKEN_COMMAND: "echo t"}
    assert credentials_from(environ, given) == {"headers": given}
    assert credentials_from({TOKEN: " t \n"}, {"X-A": "1"}) == {
        "headers": {"X-A": "1", "Authorization": "Bearer t"}
    }
    assert credentials_from({}, {}) == {"headers": {}}
    with_command = credentials_from({TOKEN_COMMAND: "echo t"}, {})
    assert isinstance(with_command["auth"], TokenCommand)
    assert with_command["on_response"] == with_command["auth"].on_response


def test_a_401_to_a_replaced_token_does_not_run_the_command_again() -> None:
    URL = "http://tus.test/files/a"
    tokens = TokenCommand("unused")
    tokens._token = "new"
    refused = tuspipe.Response(401)
    tokens.on_response(tuspipe.Request("HEAD", URL, (("Authorization", "Bearer old"),)), refused)
    assert tokens._token == "new"  # an older token's refusal: the current one stays
    tokens.on_response(tuspipe.Request("HEAD", URL, (("authorization", "Bearer new"),)), refused)
    assert tokens._token is None
    assert "new" not in repr(tokens)
