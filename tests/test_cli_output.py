"""What the command shows (issue 16): piped progress per tenth or per 5 s, a resumed upload
announced as it starts (on a terminal too), and every environment variable that changes its
behaviour named in ``tuspipe --help`` and taking effect."""

from __future__ import annotations

import io
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from rich.console import Console

from tests.commands import run_tuspipe
from tests.conftest import MakeFile, TusServer, sha256_file
from tests.tlsproxy import PKI, ThreadedTLSProxy
from tuspipe.cli import _display
from tuspipe.cli._display import PlainDisplay, RichDisplay
from tuspipe.cli._job import Job
from tuspipe.cli._parser import ENVIRONMENT


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_piped_progress_per_tenth_or_per_five_seconds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    monkeypatch.setattr("tuspipe.cli._display.time.monotonic", clock)
    display = PlainDisplay(quiet=False)
    job = Job(index=0, path="big.bin", size=1000, url="http://tus.test/files/a")
    job.first_progress = clock.now
    display.started(job)
    # (seconds later, acknowledged bytes): a slow upload, then a fast one
    for seconds, acknowledged in [(1, 10), (4, 20), (5, 30), (11, 40), (12, 120), (13, 130)]:
        clock.now = 1000.0 + seconds
        job.acknowledged = acknowledged
        display.advanced(job)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "big.bin: uploading 1000 B to http://tus.test/files/a"
    # 5 s after the start (30 B), 5 s after that (40 B), then the first tenth (120 B)
    assert [line.split(":")[1].split("%")[0].strip() for line in lines[1:]] == ["3", "4", "12"]


def test_piped_progress_says_nothing_while_nothing_moves(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    monkeypatch.setattr("tuspipe.cli._display.time.monotonic", clock)
    display = PlainDisplay(quiet=False)
    job = Job(index=0, path="big.bin", size=1000)
    display.started(job)
    for seconds in (6, 12, 18):
        clock.now = 1000.0 + seconds
        display.advanced(job)  # acknowledged stays 0
    assert len(capsys.readouterr().err.splitlines()) == 1


@pytest.mark.parametrize("terminal", [True, False])
def test_a_resumed_upload_says_so_as_it_starts(
    terminal: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    job = Job(index=0, path="big.bin", size=4 << 20, url="http://tus.test/files/a")
    job.acknowledged = job.resumed_from = 1 << 20
    if terminal:
        screen = io.StringIO()
        display: _display.Display = RichDisplay(
            Console(file=screen, force_terminal=True, width=120), stdout_is_terminal=False
        )
        display.begin([job])
        display.started(job)
        shown = screen.getvalue()
        display.end()
    else:
        display = PlainDisplay(quiet=False)
        display.started(job)
        shown = capsys.readouterr().err
    assert "big.bin: resuming http://tus.test/files/a at 1.0 MiB of 4.0 MiB" in shown


def test_help_names_every_environment_variable() -> None:
    shown = run_tuspipe("--help", env=dict(os.environ)).stdout
    for names in ENVIRONMENT:
        for name in names.split(", "):
            assert name in shown
    assert {"TUSPIPE_JOURNAL", "XDG_CACHE_HOME"} <= {
        name for names in ENVIRONMENT for name in names.split(", ")
    }


def test_the_journal_follows_xdg_cache_home(
    node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "TUSPIPE_JOURNAL"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    done = run_tuspipe("upload", make_file(1000), node_server.url, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cache" / "tuspipe" / "journal").is_file()


def test_ssl_cert_file_is_trusted(
    node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    pki = PKI()
    ca = tmp_path / "ca.pem"
    pki.ca.cert_pem.write_to_path(str(ca))
    path = make_file(1000)
    port = urlsplit(node_server.url).port
    assert port is not None
    with ThreadedTLSProxy(pki, upstream_port=port) as proxy:
        url = proxy.url_for("/files/")
        refused = run_tuspipe("upload", "--no-journal", path, url, env=dict(os.environ))
        trusted = run_tuspipe(
            "upload",
            "--no-journal",
            "--json",
            path,
            url,
            env={**os.environ, "SSL_CERT_FILE": str(ca)},
        )
    assert refused.returncode == 6
    assert trusted.returncode == 0, trusted.stderr
    (line,) = trusted.stdout.splitlines()
    upload_path = urlsplit(line.split('"url": "')[1].split('"')[0]).path
    assert node_server.stored_sha256(upload_path) == sha256_file(path)
