"""The ``tuspipe`` command, run as a subprocess (``python -m tuspipe``) against the real Node
server; stored bytes are compared with the sources by sha256.

Every test journals into its own file: the `private_journal` fixture sets ``TUSPIPE_JOURNAL``
in the environment the subprocesses inherit.
"""

from __future__ import annotations

import ast
import http.server
import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import tuspipe
from tuspipe import cli as _cli
from tuspipe.cli._plan import _hide_credentials

from .commands import run_tuspipe, tuspipe_argv
from .conftest import MakeFile, TusServer, sha256_file
from .faultproxy import ThreadedFaultProxy
from .waiting import unread_bytes, wait_until

MiB = 1024 * 1024
TIMEOUT = 120


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def delete(url: str) -> None:
    """Free the server's disk after the large uploads."""
    tuspipe.terminate(url)


# ---- upload ----------------------------------------------------------------------------------


def test_upload_one_file_json(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(3 * MiB + 17)
    done = run_tuspipe("upload", "--json", "--chunk-size", "1MiB", path, node_server.url)
    assert done.returncode == 0, done.stderr
    [result] = json_lines(done.stdout)
    assert set(result) == {"file", "url", "size", "seconds", "resumed_from"}
    assert result["file"] == str(path)
    assert result["size"] == path.stat().st_size
    assert result["resumed_from"] == 0
    assert result["seconds"] >= 0
    assert node_server.stored_sha256(result["url"]) == sha256_file(path)


def test_upload_several_files_concurrently(node_server: TusServer, make_file: MakeFile) -> None:
    paths = [make_file(size) for size in (0, 1, 700_000, 2 * MiB + 3, 5 * MiB)]
    done = run_tuspipe(
        "upload", "--json", "--concurrency", "2", "--chunk-size", "512KiB", *paths, node_server.url
    )
    assert done.returncode == 0, done.stderr
    results = {result["file"]: result for result in json_lines(done.stdout)}
    assert set(results) == {str(path) for path in paths}
    for path in paths:
        result = results[str(path)]
        assert result["size"] == path.stat().st_size
        assert node_server.stored_sha256(result["url"]) == sha256_file(path)
    assert len({result["url"] for result in results.values()}) == len(paths)


def test_default_and_given_metadata(node_server: TusServer, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("some notes\n")
    metadata = ["-m", "owner=zoë", "--metadata", "filetype=text/x-notes"]
    done = run_tuspipe("upload", "--json", *metadata, path, node_server.url)
    assert done.returncode == 0, done.stderr
    [result] = json_lines(done.stdout)
    status = tuspipe.upload_status(result["url"])
    assert status.metadata == {
        "filename": b"notes.txt",
        "filetype": b"text/x-notes",  # given beats the guess
        "owner": "zoë".encode(),
    }
    other = tmp_path / "data.unknownext"
    other.write_bytes(b"\x00" * 10)
    done = run_tuspipe("upload", "--json", other, node_server.url)
    [result] = json_lines(done.stdout)
    assert tuspipe.upload_status(result["url"]).metadata["filetype"] == b"application/octet-stream"


def test_plain_progress_on_a_pipe(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(4 * MiB)
    done = run_tuspipe("upload", "--chunk-size", "1MiB", path, node_server.url)
    assert done.returncode == 0, done.stderr
    # standard output: the result; standard error: a line per event and per 10 %
    [line] = done.stdout.splitlines()
    assert line.startswith(f"{path}: {node_server.url}")
    assert "4.0 MiB in" in line
    assert f"{path}: uploading 4.0 MiB to {node_server.url}" in done.stderr
    percentages = [int(found) for found in re.findall(r": (\d+)% \(", done.stderr)]
    assert percentages == [25, 50, 75, 100]
    assert "\x1b[" not in done.stderr  # no terminal codes in a pipe


def test_quiet_prints_nothing_but_errors(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(100_000)
    done = run_tuspipe("upload", "--quiet", path, node_server.url)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    missing = f"{path}.missing"
    done = run_tuspipe("upload", "-q", path, missing, node_server.url)
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr == (
        f"tuspipe: error: {missing}: No such file or directory\ntuspipe: 1 of 2 uploads failed\n"
    )


def test_console_script(node_server: TusServer, make_file: MakeFile) -> None:
    script = Path(sys.executable).parent / "tuspipe"
    assert script.exists(), "pip install -e . installs the tuspipe command"
    version = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=False, timeout=TIMEOUT
    )
    assert (version.returncode, version.stdout.strip()) == (0, f"tuspipe {tuspipe.__version__}")
    path = make_file(1000)
    done = subprocess.run(
        [str(script), "upload", "--json", str(path), node_server.url],
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    [result] = json_lines(done.stdout)
    assert node_server.stored_sha256(result["url"]) == sha256_file(path)


# ---- standard input ('-') ----------------------------------------------------------------------


def run_with_input(data: bytes | Path, *arguments: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the command with `data` on standard input: through a pipe (bytes), or redirected
    from a file (a Path)."""
    if isinstance(data, Path):
        with data.open("rb") as stdin:
            done = subprocess.run(
                tuspipe_argv(*arguments),
                stdin=stdin,
                capture_output=True,
                timeout=TIMEOUT,
                check=False,
            )
    else:
        done = subprocess.run(
            tuspipe_argv(*arguments),
            input=data,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def test_upload_standard_input_of_unknown_size(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(16 * MiB + 3)
    done = run_with_input(
        path.read_bytes(), "upload", "-", node_server.url, "--json", "--chunk-size", "4MiB"
    )
    assert done.returncode == 0, done.stderr
    [result] = json_lines(done.stdout)
    assert result["file"] == "-"
    assert result["size"] == 16 * MiB + 3
    assert result["resumed_from"] == 0
    assert node_server.stored_sha256(result["url"]) == sha256_file(path)
    # a pipe: its size was unknown when the upload began
    assert f"standard input: uploading a stream of unknown size to {result['url']}" in (done.stderr)
    # its metadata names it, as a file's would (tuspyserver needs both keys)
    assert tuspipe.upload_status(result["url"]).metadata == {
        "filename": b"stdin",
        "filetype": b"application/octet-stream",
    }
    # it is not journaled: read once, it can never be resumed
    assert tuspipe.Journal().unfinished() == []
    delete(result["url"])


def test_standard_input_progress_shows_bytes_and_rate_until_the_size_is_known(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(20 * MiB + 5)
    done = run_with_input(path.read_bytes(), "upload", "--chunk-size", "1MiB", "-", node_server.url)
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith(f"standard input: {node_server.url}")
    assert "20.0 MiB in" in line
    progress = [
        found.group(1)
        for found in re.finditer(r"^standard input: (.*)$", done.stderr, re.MULTILINE)
    ]
    assert progress[0].startswith("uploading a stream of unknown size to ")
    # while unknown: bytes so far (a line at 1, 2, 4, 8, 16 MiB) and a rate, no percentage
    unknown = [state for state in progress[1:] if "so far" in state]
    assert [state.split(" so far")[0] for state in unknown] == [
        "1.0 MiB",
        "2.0 MiB",
        "4.0 MiB",
        "8.0 MiB",
        "16.0 MiB",
    ]
    assert all(re.fullmatch(r"\S+ MiB so far, [\d.]+ \S+/s", state) for state in unknown)
    assert not any("%" in state for state in unknown)
    # once the end is read, the size is known: the last line is 100 %
    assert progress[-1].startswith("100% (20.0 MiB of 20.0 MiB")
    url = line.split()[2]
    assert node_server.stored_sha256(url) == sha256_file(path)
    delete(url)


def test_standard_input_redirected_from_a_file_has_a_known_size(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(3 * MiB + 1)
    done = run_with_input(path, "upload", "--json", "--chunk-size", "1MiB", "-", node_server.url)
    assert done.returncode == 0, done.stderr
    [result] = json_lines(done.stdout)
    assert result["size"] == 3 * MiB + 1
    assert node_server.stored_sha256(result["url"]) == sha256_file(path)
    assert f"standard input: uploading 3.0 MiB to {result['url']}" in done.stderr


def test_standard_input_with_files(node_server: TusServer, make_file: MakeFile) -> None:
    first, stream, last = make_file(MiB + 1), make_file(5 * MiB + 7), make_file(10)
    done = run_with_input(
        stream.read_bytes(),
        "upload",
        "--json",
        "--chunk-size",
        "1MiB",
        first,
        "-",
        last,
        node_server.url,
    )
    assert done.returncode == 0, done.stderr
    results = {result["file"]: result for result in json_lines(done.stdout)}
    assert set(results) == {str(first), "-", str(last)}
    for name, path in ((str(first), first), ("-", stream), (str(last), last)):
        assert results[name]["size"] == path.stat().st_size
        assert node_server.stored_sha256(results[name]["url"]) == sha256_file(path)


def test_standard_input_survives_a_cut_patch(
    node_server: TusServer, make_file: MakeFile, cut_once: str
) -> None:
    # The first PATCH is reset 300 kB into its body: it is sent again from the bytes the
    # stream still holds (they cannot be read again).
    path = make_file(4 * MiB + 99)
    done = run_with_input(
        path.read_bytes(), "upload", "--json", "--chunk-size", "1MiB", "-", cut_once
    )
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"^tuspipe: warning: standard input: PATCH at offset 0 failed", done.stderr, re.MULTILINE
    )
    [result] = json_lines(done.stdout)
    assert node_server.stored_sha256(result["url"]) == sha256_file(path)


def test_sigint_during_standard_input_says_it_cannot_be_resumed(node_server: TusServer) -> None:
    # The writer sends 3 MiB and then stays silent: the upload waits for more when Ctrl-C
    # comes (the third MiB is not cut into a chunk before a byte after it shows whether it is
    # the last). It stops cleanly, with no resume command (nothing can read the stream again),
    # and the interpreter's shutdown is not stalled by the abandoned read of the pipe.
    process = subprocess.Popen(
        tuspipe_argv("upload", "--chunk-size", "1MiB", "-", node_server.url),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stderr is not None
    seen: list[bytes] = []
    try:
        process.stdin.write(os.urandom(3 * MiB))
        process.stdin.flush()
        for line in process.stderr:
            seen.append(line)
            if b"2.0 MiB so far" in line:
                break
        else:
            pytest.fail(f"no progress: {b''.join(seen).decode()}")
        stdin = process.stdin
        wait_until(lambda: unread_bytes(stdin) == 0, "the upload read all 3 MiB", timeout=TIMEOUT)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = (b"".join(seen) + stderr).decode()
    assert process.returncode == 130, output
    assert "standard input was read once and cannot be resumed; upload it again" in output
    assert "to resume, run" not in output
    assert "Fatal Python error" not in output
    assert "Traceback" not in output


def test_standard_input_from_a_terminal_is_refused() -> None:
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            tuspipe_argv("upload", "-", "http://127.0.0.1:9/files/"),
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        os.close(slave)
        os.close(master)
    assert done.returncode == 2
    assert done.stderr == (
        "tuspipe: error: standard input ('-') is a terminal; pipe the bytes to upload into "
        "tuspipe (e.g. 'tar c dir | tuspipe upload - URL')\n"
    )


def test_standard_input_progress_bar_on_a_terminal(
    node_server: TusServer, make_file: MakeFile
) -> None:
    # Standard input is a pipe; standard error (and output) a terminal: the bar of a stream
    # of unknown size shows bytes, rate and the time so far, no percentage and no time left.
    path = make_file(24 * MiB + 1)
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        tuspipe_argv("upload", "--chunk-size", "1MiB", "-", node_server.url),
        stdin=subprocess.PIPE,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    assert process.stdin is not None

    def feed() -> None:
        assert process.stdin is not None
        with process.stdin, path.open("rb") as stream:
            while block := stream.read(MiB):
                process.stdin.write(block)
                process.stdin.flush()
                time.sleep(0.02)  # a slow producer: the bar is drawn while it is unknown

    writer = threading.Thread(target=feed)
    writer.start()
    captured = bytearray()
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                captured += data
            elif process.poll() is not None:
                break
        assert process.wait(timeout=TIMEOUT) == 0, captured.decode(errors="replace")
    finally:
        writer.join(timeout=TIMEOUT)
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    output = captured.decode("utf-8", errors="replace")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)
    lines = [line for line in re.split(r"\r\n|\r|\n", plain) if "standard input" in line]
    # rich's bytes of an unknown total, once the first bytes were acknowledged
    unknown = [line for line in lines if "/? " in line and " 0/? " not in line]
    assert unknown, plain
    for line in unknown:
        assert "%" not in line
        assert re.search(r"\d+\.\d/\? MiB", line), line
        assert re.search(r"(\?|[\d.]+ \S+/s)", line), line
        assert "-:--:--" not in line  # no time left to guess
    final = [line for line in lines if "100%" in line]
    assert any("24.0/24.0 MiB" in line for line in final), plain
    [url] = re.findall(r"standard input: (\S+) \(", plain)
    assert node_server.stored_sha256(url) == sha256_file(path)
    delete(url)


# ---- Ctrl-C and resuming ---------------------------------------------------------------------


def _interrupt_midway(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `command`, send SIGINT once it reports progress past 0 %, and let it finish."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        for line in process.stderr:
            seen.append(line)
            found = re.search(r": (\d+)% \(", line)
            if found and 0 < int(found.group(1)) < 100:
                process.send_signal(signal.SIGINT)
                break
            assert time.monotonic() < deadline, "no progress reported"
        else:
            pytest.fail(f"the upload ended before it could be interrupted: {''.join(seen)}")
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(command, process.returncode, stdout, "".join(seen) + stderr)


def test_sigint_stops_cleanly_and_the_same_command_resumes(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(256 * MiB)
    arguments = ["upload", "--json", "--chunk-size", "1MiB", str(path), node_server.url]
    command = tuspipe_argv(*arguments)

    first = _interrupt_midway(command)
    assert first.returncode == 130, first.stderr
    assert "Traceback" not in first.stderr
    # the resume hint is the same command line again
    hint = first.stderr.split("tuspipe: interrupted; to resume, run:\n", 1)[1].splitlines()[0]
    assert hint.strip() == shlex.join(["python", "-m", "tuspipe", *arguments])
    [interrupted] = json_lines(first.stdout)
    assert interrupted["error"] == "interrupted"
    assert interrupted["exit_code"] == 130
    upload_url = interrupted["url"]
    assert [entry.url for entry in tuspipe.Journal().unfinished()] == [upload_url]

    second = run_tuspipe(*arguments)
    assert second.returncode == 0, second.stderr
    [result] = json_lines(second.stdout)
    assert result["url"] == upload_url
    assert 0 < result["resumed_from"] < path.stat().st_size
    assert node_server.stored_sha256(upload_url) == sha256_file(path)
    assert tuspipe.Journal().unfinished() == []
    delete(upload_url)


def test_sigint_hint_hides_credential_headers(node_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(256 * MiB)
    arguments = [
        "upload",
        "--no-journal",
        "--chunk-size",
        "1MiB",
        "-H",
        "Authorization: Bearer s3cret-token",
        "--header=Cookie: session=abc123",
        "-H",
        "X-Trace: visible",
        str(path),
        node_server.url,
    ]
    first = _interrupt_midway(tuspipe_argv(*arguments))
    assert first.returncode == 130, first.stderr
    assert "s3cret-token" not in first.stderr
    assert "abc123" not in first.stderr
    hint = first.stderr.split("tuspipe: interrupted; to resume, run:\n", 1)[1]
    tokens = shlex.split(hint.splitlines()[0])
    assert "Authorization: <hidden>" in tokens
    assert "X-Trace: visible" in tokens  # other headers are written back as they were
    assert "credential header values are shown as <hidden>" in hint
    upload_url = tokens[tokens.index("--upload-url") + 1]
    delete(upload_url)


@pytest.mark.parametrize(
    ("tokens", "shown"),
    [
        (["-H", "Authorization: Basic eA=="], ["-H", "Authorization: <hidden>"]),
        (["--header", "proxy-authorization:x"], ["--header", "proxy-authorization: <hidden>"]),
        (["--header=Cookie: a=b"], ["--header=Cookie: <hidden>"]),
        (["-HAuthorization: t"], ["-HAuthorization: <hidden>"]),
        (["-H", "X-Other: kept"], ["-H", "X-Other: kept"]),
        # after "--" come file names, which are never touched
        (["--", "-H", "Authorization: t"], ["--", "-H", "Authorization: t"]),
    ],
)
def test_hide_credentials(tokens: list[str], shown: list[str]) -> None:
    assert _hide_credentials(tokens) == shown


def test_sigint_without_journal_hints_upload_url(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(256 * MiB)
    arguments = ["upload", "--no-journal", "--chunk-size", "1MiB", str(path), node_server.url]
    first = _interrupt_midway(tuspipe_argv(*arguments))
    assert first.returncode == 130, first.stderr
    hint = first.stderr.split("tuspipe: interrupted; to resume, run:\n", 1)[1].splitlines()[0]
    tokens = shlex.split(hint)
    assert tokens[:4] == ["python", "-m", "tuspipe", "upload"]
    assert "--upload-url" in tokens
    assert "1MiB" in tokens  # written back as it was typed
    upload_url = tokens[tokens.index("--upload-url") + 1]

    # run the printed command as it stands (with this interpreter)
    second = run_tuspipe(tokens[3], "--json", *tokens[4:])
    assert second.returncode == 0, second.stderr
    [result] = json_lines(second.stdout)
    assert result["url"] == upload_url
    assert result["resumed_from"] > 0
    assert node_server.stored_sha256(upload_url) == sha256_file(path)
    delete(upload_url)


# ---- info, status, delete --------------------------------------------------------------------


def test_info(node_server: TusServer) -> None:
    done = run_tuspipe("info", node_server.url)
    assert done.returncode == 0, done.stderr
    assert "tus versions: 1.0.0" in done.stdout
    assert re.search(r"extensions:\s.*\bcreation\b.*\btermination\b", done.stdout)
    assert "maximum size: 2.0 GiB (2147483648 bytes)" in done.stdout
    assert "checksums:    none offered" in done.stdout
    done = run_tuspipe("info", "--json", node_server.url)
    [info] = json_lines(done.stdout)
    assert info["versions"] == ["1.0.0"]
    assert {"creation", "termination"} <= set(info["extensions"])
    assert info["max_size"] == 2147483648
    assert info["checksum_algorithms"] == []


def test_status_and_delete(node_server: TusServer, tmp_path: Path) -> None:
    path = tmp_path / "part.bin"
    path.write_bytes(os.urandom(1000))
    result = tuspipe.upload(
        path,
        node_server.url,
        stop_at=250,
        journal=None,
        metadata={"filename": "part.bin", "blob": b"\x00\x01"},
    )
    done = run_tuspipe("status", result.url)
    assert done.returncode == 0, done.stderr
    assert "offset:   250 B of 1000 B (250 of 1000 bytes, 25.0%)" in done.stdout
    assert "complete: no" in done.stdout
    assert re.search(r"^  filename  part\.bin$", done.stdout, re.MULTILINE)
    assert re.search(r"^  blob      \(base64\) AAE=$", done.stdout, re.MULTILINE)
    [status] = json_lines(run_tuspipe("status", "--json", result.url).stdout)
    assert status["offset"] == 250
    assert status["length"] == 1000
    assert status["percent"] == 25.0
    assert status["complete"] is False
    assert status["metadata"] == {"filename": "part.bin"}
    assert status["metadata_base64"] == {"blob": "AAE="}

    done = run_tuspipe("delete", result.url)
    assert (done.returncode, done.stdout) == (0, f"deleted {result.url}\n")
    gone = run_tuspipe("status", result.url)
    assert gone.returncode == 4
    assert gone.stderr.startswith("tuspipe: error: ")
    assert "404" in gone.stderr
    assert "Traceback" not in gone.stderr
    # Deleting what is not there is not a success (a typo must not look like one): issue 14.
    again = run_tuspipe("delete", "--json", result.url)
    assert again.returncode == 4
    assert json_lines(again.stdout) == [
        {
            "url": result.url,
            "deleted": False,
            "error": "not found (already deleted?)",
            "exit_code": 4,
        }
    ]
    plain = run_tuspipe("delete", result.url)
    assert (plain.returncode, plain.stdout) == (4, "")
    assert plain.stderr == f"tuspipe: error: {result.url}: not found (already deleted?)\n"


# ---- journal ---------------------------------------------------------------------------------


def test_journal_list_forget_clear(
    node_server: TusServer, make_file: MakeFile, private_journal: Path
) -> None:
    first, second = make_file(10_000), make_file(20_000)
    unfinished = [
        tuspipe.upload(path, node_server.url, stop_at=4096, chunk_size=4096)
        for path in (first, second)
    ]
    done = run_tuspipe("journal", "list", "--json")
    assert done.returncode == 0, done.stderr
    entries = json_lines(done.stdout)
    assert [(entry["source"], entry["offset"], entry["size"]) for entry in entries] == [
        (str(first), 4096, 10_000),
        (str(second), 4096, 20_000),
    ]
    assert [entry["url"] for entry in entries] == [result.url for result in unfinished]

    human = run_tuspipe("journal", "list").stdout
    assert f"{entries[0]['key']}  {first}" in human
    assert "4.0 KiB of 9.8 KiB (4096/10000 bytes, 41.0%), created " in human
    assert unfinished[1].url in human

    done = run_tuspipe("journal", "forget", entries[0]["key"][:12])  # a unique start is enough
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"forgot {entries[0]['key']}")
    assert [entry.key for entry in tuspipe.Journal().unfinished()] == [entries[1]["key"]]
    unknown = run_tuspipe("journal", "forget", "nope")
    assert unknown.returncode == 2
    assert "has no unfinished upload with key 'nope'" in unknown.stderr

    assert (
        run_tuspipe("journal", "clear", "--expired").stdout
        == "forgot 0 expired unfinished uploads\n"
    )
    assert run_tuspipe("journal", "clear").stdout == "forgot 1 unfinished upload\n"
    assert run_tuspipe("journal", "list").stdout == f"no unfinished uploads in {private_journal}\n"
    other = private_journal.with_name("other-journal")
    assert run_tuspipe("journal", "list", "--json", "--journal", str(other)).stdout == ""


# ---- errors and exit codes -------------------------------------------------------------------


@pytest.fixture
def not_found_url() -> Iterator[str]:
    """An HTTP endpoint that answers 404 to everything."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = b"no tus here"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_HEAD = do_PATCH = do_OPTIONS = do_DELETE = answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/files/"
    finally:
        server.shutdown()
        server.server_close()


def test_server_refusal_exits_4(make_file: MakeFile, not_found_url: str) -> None:
    done = run_tuspipe("upload", "--retries", "0", make_file(100), not_found_url)
    assert done.returncode == 4
    assert re.fullmatch(r"tuspipe: error: .*answered 404\): 'no tus here'\n", done.stderr)
    done = run_tuspipe("upload", "--json", make_file(100), not_found_url)
    [failure] = json_lines(done.stdout)
    assert set(failure) == {"file", "error", "exit_code"}
    assert failure["exit_code"] == 4


def test_unreachable_server_exits_5(make_file: MakeFile) -> None:
    done = run_tuspipe("upload", "--retries", "0", make_file(100), "http://127.0.0.1:9/files/")
    assert done.returncode == 5
    assert done.stderr.startswith("tuspipe: error: ")
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    info = run_tuspipe("info", "--retries", "0", "http://127.0.0.1:9/files/")
    assert info.returncode == 5


@pytest.fixture
def cut_once(node_server: TusServer) -> Iterator[str]:
    """The Node server behind a proxy that resets the first PATCH 300 kB into its body; yields
    the creation URL through the proxy."""
    port = urlsplit(node_server.url).port
    assert port is not None
    with ThreadedFaultProxy("127.0.0.1", port) as proxy:
        proxy.cut("up", after=300_000, trigger=b"PATCH ", once=True)
        yield proxy.url_for("/files/")


def test_a_retried_patch_is_reported_and_the_upload_completes(
    node_server: TusServer, make_file: MakeFile, cut_once: str
) -> None:
    path = make_file(4 * MiB)
    done = run_tuspipe("upload", "--json", "--chunk-size", "1MiB", path, cut_once)
    assert done.returncode == 0, done.stderr
    warning = rf"^tuspipe: warning: {re.escape(str(path))}: PATCH at offset 0 failed .* try 1 of 5 "
    assert re.search(warning, done.stderr, re.MULTILINE)
    [result] = json_lines(done.stdout)
    assert node_server.stored_sha256(result["url"]) == sha256_file(path)


def test_retries_are_reported(make_file: MakeFile) -> None:
    path = make_file(100)
    done = run_tuspipe("upload", "--retries", "1", path, "http://127.0.0.1:9/files/")
    assert done.returncode == 5
    warning = rf"^tuspipe: warning: {re.escape(str(path))}: POST .* try 1 of 1 in "
    assert re.search(warning, done.stderr, re.MULTILINE)


def test_missing_file_exits_3_and_the_others_still_upload(
    node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    present = make_file(5000)
    missing = tmp_path / "missing.bin"
    done = run_tuspipe("upload", "--json", missing, present, node_server.url)
    assert done.returncode == 3
    results = {result["file"]: result for result in json_lines(done.stdout)}
    assert results[str(missing)] == {
        "file": str(missing),
        "error": f"{missing}: No such file or directory",
        "exit_code": 3,
    }
    assert node_server.stored_sha256(results[str(present)]["url"]) == sha256_file(present)
    assert f"tuspipe: error: {missing}: No such file or directory" in done.stderr


def test_worst_exit_code_wins(make_file: MakeFile, tmp_path: Path, not_found_url: str) -> None:
    done = run_tuspipe(
        "upload", "--retries", "0", tmp_path / "missing", make_file(10), not_found_url
    )
    assert done.returncode == 4  # 4 (refused) beats 3 (local file)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["upload", "--chunk-size", "8XB", "f", "http://x/"],
            "--chunk-size: '8XB' is not",
        ),
        (["upload", "--chunk-size", "0", "f", "http://x/"], "not a positive whole number"),
        (["upload", "--chunk-size", "1.5B", "f", "http://x/"], "not a positive whole number"),
        (["upload", "--concurrency", "0", "f", "http://x/"], "must be 1 or more"),
        (["upload", "--retries", "-1", "f", "http://x/"], "must be 0 or more"),
        (["upload", "--timeout", "nan", "f", "http://x/"], "positive number of seconds"),
        (["upload", "-H", "NoColon", "f", "http://x/"], "write it as 'Name: value'"),
        (["upload", "-m", "novalue", "f", "http://x/"], "write it as key=value"),
        (["upload", "--journal", "j", "--no-journal", "f", "http://x/"], "not allowed with"),
        (["upload", "--insecure", "--cacert", "ca.pem", "f", "http://x/"], "not allowed with"),
        (["upload"], "the following arguments are required"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
        (["journal"], "required: ACTION"),
        (["status"], "required: UPLOAD_URL"),
    ],
)
def test_bad_arguments_exit_2(arguments: list[str], message: str) -> None:
    done = run_tuspipe(*arguments)
    assert done.returncode == 2
    assert message in done.stderr
    assert "usage: tuspipe" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["upload", "-", "-", "http://127.0.0.1:9/files/"], "can be given only once"),
        (
            ["upload", "--upload-url", "http://127.0.0.1:9/files/1", "-"],
            "standard input ('-') can be read only once, so it cannot continue an earlier "
            "upload (--upload-url)",
        ),
        (["upload", "FILE"], "give one or more FILEs, then the creation URL"),
        (["upload", "a", "b"], "'b' is not a URL"),
        (["upload", "a", "b", "--upload-url", "http://x/files/1"], "give exactly one FILE"),
        (["upload", "SELF", "ftp://x/", "--retries", "0"], "ftp"),
        (["upload", "SELF", "SELF2", "ftp://x/"], "ftp"),
        (["upload", "--checksum", "blake3", "SELF", "http://127.0.0.1:9/"], "blake3"),
        (["upload", "-H", "Bad Name: x", "SELF", "http://127.0.0.1:9/"], "Bad Name"),
        (["upload", "--key", "k.pem", "SELF", "http://127.0.0.1:9/"], "--key needs --cert"),
        (["upload", "--cacert", "/nonexistent", "SELF", "http://127.0.0.1:9/"], "/nonexistent"),
        (["upload", "SELF", "SELF", "http://127.0.0.1:9/"], "is the same file as"),
        (["info", "not-a-url"], "not-a-url"),
    ],
)
def test_usage_errors_exit_2(arguments: list[str], message: str, make_file: MakeFile) -> None:
    sources = {"SELF": str(make_file(10)), "SELF2": str(make_file(20))}
    done = run_tuspipe(*[sources.get(argument, argument) for argument in arguments])
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("tuspipe: error: ")
    assert message in done.stderr
    # said once, even when it concerns several files
    assert done.stderr.count("tuspipe: error: ") == 1
    assert "Traceback" not in done.stderr


def test_debug_shows_requests_and_traceback(make_file: MakeFile) -> None:
    done = run_tuspipe(
        "upload", "--debug", "--retries", "0", make_file(10), "http://127.0.0.1:9/files/"
    )
    assert done.returncode == 5
    assert "tuspipe: debug: " in done.stderr
    assert "Traceback" in done.stderr


def test_help_documents_exit_codes() -> None:
    done = run_tuspipe("--help")
    assert done.returncode == 0
    for code, meaning in _cli.EXIT_CODES.items():
        assert f"  {code:<4} {meaning}" in done.stdout


def test_missing_rich_explains_itself(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    assert _cli.main(["info", "http://127.0.0.1:9/"]) == 2
    assert capsys.readouterr().err == (
        "tuspipe: error: the tuspipe command needs rich: pip install 'tuspipe[cli]'\n"
    )


# ---- the parts, without processes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1", 1),
        ("1048576", MiB),
        ("8MiB", 8 * MiB),
        ("8 mib", 8 * MiB),
        ("512KB", 512_000),
        ("512KiB", 512 * 1024),
        ("1GiB", 1 << 30),
        ("2GB", 2_000_000_000),
        ("1.5MiB", 3 * MiB // 2),
        ("10B", 10),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert _cli.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "-1", "0", "0KiB", "1.5", "8M", "8 MBs", "1e3"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a size|whole number of bytes"):
        _cli.parse_size(text)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (tuspipe.UsageError("x"), 2),
        (tuspipe.UnsupportedFeatureError("x"), 2),
        (FileNotFoundError(2, "No such file or directory", "f"), 3),
        (PermissionError(13, "Permission denied", "f"), 3),
        (tuspipe.SourceChangedError("x"), 3),
        (tuspipe.ResponseError("x", status_code=400), 4),
        (tuspipe.UploadNotFoundError("x", status_code=404), 4),
        (tuspipe.ProtocolError("x"), 4),
        (tuspipe.ChecksumMismatchError("x", status_code=460), 4),
        (tuspipe.NetworkError("x"), 5),
        (tuspipe.NetworkTimeoutError("x"), 5),
        (RuntimeError("x"), 1),
    ],
)
def test_exit_code_for(error: BaseException, code: int) -> None:
    assert _cli.exit_code_for(error) == code


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        (b"report.pdf", ("text", "report.pdf")),
        ("zoë".encode(), ("text", "zoë")),
        (b"", ("text", "")),
        (b"\xff\x00\x01", ("base64", "/wAB")),
        (b"line\nbreak", ("base64", "bGluZQpicmVhaw==")),
    ],
)
def test_decode_metadata_value(value: bytes, decoded: tuple[str, str]) -> None:
    assert _cli.decode_metadata_value(value) == decoded


#: The cli package's modules in order: each may import only modules before it (no cycles).
CLI_MODULES = [
    "_units",
    "_words",
    "_token",
    "_exits",
    "_job",
    "_parser",
    "_display",
    "_plan",
    "_upload",
    "_commands",
    "_main",
]


def test_cli_modules_import_only_down() -> None:
    package = Path(_cli.__file__).parent
    found = sorted(path.stem for path in package.glob("_*.py") if path.stem != "__init__")
    assert found == sorted(CLI_MODULES)  # a new module gets its place in the order
    for index, name in enumerate(CLI_MODULES):
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        relative = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level > 0
        }
        assert relative <= set(CLI_MODULES[:index]), (name, relative - set(CLI_MODULES[:index]))
        absolute = [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ]
        absolute += [
            node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0
        ]
        assert not [module for module in absolute if module.startswith("tuspipe.cli")], name


# ---- a terminal ------------------------------------------------------------------------------


def test_progress_bar_on_a_terminal(
    node_server: TusServer, make_file: MakeFile, cut_once: str
) -> None:
    paths = [make_file(32 * MiB), make_file(3 * MiB)]
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        tuspipe_argv("upload", "--chunk-size", "1MiB", *paths, cut_once),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    captured = bytearray()
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                captured += data
            elif process.poll() is not None:
                break
        assert process.wait(timeout=TIMEOUT) == 0, captured.decode(errors="replace")
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    output = captured.decode("utf-8", errors="replace")
    assert "\x1b[" in output  # drawn with terminal codes, redrawn in place
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)
    assert "━" in plain  # the bar
    final = [line for line in re.split(r"\r\n|\r|\n", plain) if "100%" in line]
    assert any(line.lstrip().startswith("total") for line in final)
    assert any("32.0/32.0 MiB" in line and "MiB/s" in line for line in final)
    # the PATCH the proxy cut was retried, and counted on its bar and the total
    assert any(line.lstrip().startswith("total") and "1 retry" in line for line in final)
    assert "PATCH at offset 0 failed" in plain
    names = "|".join(re.escape(str(path)) for path in paths)
    urls = [
        found.group(1)
        for line in re.split(r"\r\n|\r|\n", plain)
        if (found := re.match(rf"(?:{names}): (\S+) \(", line))
    ]
    assert len(urls) == len(paths)  # the result lines, printed above the bars
    for url in urls:
        delete(url)
