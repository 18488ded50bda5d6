"""The benchmark discard sink (benchmarks/sink.py), served in-process: the tus it speaks.

Concatenation (tuspipe's parallel uploads) and deferred lengths (tuspipe's one-pass streams)
end to end and request by request, the plain path with checksums verified, and the sink as a
process (its summary line, and ``--quiet``).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

import tuspipe
from benchmarks import sink as sink_module
from benchmarks.sink import HOST, SinkProcess, TusSink, UploadInfo

from .conftest import MakeFile

KiB = 1024
MiB = 1024 * KiB
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


@pytest.fixture
def sink() -> Iterator[TusSink]:
    with TusSink() as running:
        yield running


@pytest.fixture
def checking_sink() -> Iterator[TusSink]:
    with TusSink(verify_checksums=True) as running:
        yield running


def _call(
    sink: TusSink,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes | Iterable[bytes] = b"",
) -> tuple[int, dict[str, str]]:
    """One request on a fresh connection: the status and the (lower-cased) headers.

    A `body` that is an iterable of blocks (not bytes) is sent chunked."""
    connection = http.client.HTTPConnection(HOST, sink.port, timeout=5)
    try:
        connection.request(method, target, body=body, headers={**TUS, **headers})
        response = connection.getresponse()
        response.read()
        return response.status, {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()


def _create(sink: TusSink, headers: Mapping[str, str]) -> str:
    status, answer = _call(sink, "POST", "/files/", headers)
    assert status == 201, (status, answer)
    return answer["location"]


def _create_partial(sink: TusSink, length: int) -> str:
    return _create(sink, {"Upload-Concat": "partial", "Upload-Length": str(length)})


def _patch(
    sink: TusSink,
    url: str,
    offset: int,
    data: bytes | Iterable[bytes],
    extra: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str]]:
    headers = {"Upload-Offset": str(offset), "Content-Type": OCTETS, **(extra or {})}
    return _call(sink, "PATCH", url, headers, data)


def _final(sink: TusSink, *part_urls: str) -> tuple[int, dict[str, str]]:
    return _call(sink, "POST", "/files/", {"Upload-Concat": "final;" + " ".join(part_urls)})


def _by_url(sink: TusSink) -> dict[str, UploadInfo]:
    return {info.url: info for info in sink.uploads().values()}


# --------------------------------------------------------------------------------------------
# tuspipe end to end
# --------------------------------------------------------------------------------------------


def test_parallel_upload_makes_four_parts_and_one_final(sink: TusSink, make_file: MakeFile) -> None:
    size = 3 * MiB + 7  # not a multiple of 4: the parts differ in length
    path = make_file(size)

    result = tuspipe.upload(path, sink.url, parallel=4, journal=None, chunk_size=256 * KiB)

    assert (result.size, result.offset) == (size, size)
    uploads = _by_url(sink)
    partials = [info for info in uploads.values() if info.concat == "partial"]
    finals = [info for info in uploads.values() if (info.concat or "").startswith("final;")]
    assert len(uploads) == 5
    assert len(partials) == 4
    assert all(info.length is not None and info.offset == info.length > 0 for info in partials)
    assert sum(info.offset for info in partials) == size
    assert len(finals) == 1
    final = finals[0]
    assert final.url == result.url
    assert (final.length, final.offset) == (size, size)
    assert final.concat is not None
    listed = final.concat.partition(";")[2].split()
    assert sorted(listed) == sorted(info.url for info in partials)
    assert sink.stats.concatenations == 1
    assert sink.stats.uploads_created == 5
    assert sink.stats.bytes_received == size


def test_plain_upload_with_verified_sha1(checking_sink: TusSink, make_file: MakeFile) -> None:
    size = 2 * MiB + 3
    path = make_file(size)

    result = tuspipe.upload(path, checking_sink.url, checksum="sha1", journal=None, chunk_size=MiB)

    assert (result.offset, result.checksum) == (size, "sha1")
    [info] = checking_sink.uploads().values()
    assert (info.url, info.length, info.offset, info.concat) == (result.url, size, size, None)
    assert checking_sink.stats.patches == 3
    assert checking_sink.stats.concatenations == 0


# --------------------------------------------------------------------------------------------
# Requests one by one
# --------------------------------------------------------------------------------------------


def test_options_lists_concatenation_and_defer_length(sink: TusSink) -> None:
    status, answer = _call(sink, "OPTIONS", "/files/", {})
    assert status == 204
    extensions = [name.strip() for name in answer["tus-extension"].split(",")]
    assert "concatenation" in extensions
    assert "creation-defer-length" in extensions
    assert {"creation", "creation-with-upload", "termination", "checksum"} <= set(extensions)


def test_partial_upload_head_shows_upload_concat(sink: TusSink) -> None:
    url = _create_partial(sink, 5)
    assert _patch(sink, url, 0, b"he")[0] == 204
    status, answer = _call(sink, "HEAD", url, {})
    assert status == 200
    assert answer["upload-concat"] == "partial"
    assert (answer["upload-offset"], answer["upload-length"]) == ("2", "5")


def test_plain_upload_head_has_no_upload_concat(sink: TusSink) -> None:
    url = _create(sink, {"Upload-Length": "3"})
    status, answer = _call(sink, "HEAD", url, {})
    assert status == 200
    assert "upload-concat" not in answer


def test_final_upload_head_patch_and_delete(sink: TusSink) -> None:
    first, second = _create_partial(sink, 5), _create_partial(sink, 6)
    assert _patch(sink, first, 0, b"hello")[0] == 204
    assert _patch(sink, second, 0, b" world")[0] == 204
    # An absolute URL and a path, as the spec allows both.
    concat = f"final;{first} /files/{second.rsplit('/', 1)[1]}"

    status, answer = _call(sink, "POST", "/files/", {"Upload-Concat": concat})
    assert status == 201
    final = answer["location"]
    assert final.startswith(sink.url)
    assert sink.stats.concatenations == 1

    status, answer = _call(sink, "HEAD", final, {})
    assert status == 200
    assert answer["upload-concat"] == concat
    assert (answer["upload-offset"], answer["upload-length"]) == ("11", "11")

    status, _ = _patch(sink, final, 11, b"more")
    assert status == 403
    status, _ = _patch(sink, final, 0, b"")
    assert status == 403
    assert _by_url(sink)[final].offset == 11

    # The parts remain and can be joined again; the final one can be deleted.
    assert _final(sink, second, first)[0] == 201
    assert _call(sink, "DELETE", final, {})[0] == 204
    assert _call(sink, "HEAD", final, {})[0] == 404


def test_final_of_an_unfinished_partial_is_refused(sink: TusSink) -> None:
    done, unfinished = _create_partial(sink, 4), _create_partial(sink, 10)
    assert _patch(sink, done, 0, b"abcd")[0] == 204
    assert _patch(sink, unfinished, 0, b"0123")[0] == 204

    assert _final(sink, done, unfinished)[0] == 400
    assert _final(sink, unfinished)[0] == 400
    assert sink.stats.concatenations == 0
    assert len(sink.uploads()) == 2

    # Once the part is finished, the same request succeeds.
    assert _patch(sink, unfinished, 4, b"456789")[0] == 204
    status, answer = _final(sink, done, unfinished)
    assert status == 201
    assert _by_url(sink)[answer["location"]].length == 14
    assert sink.stats.concatenations == 1


def test_final_of_an_unknown_upload_is_404(sink: TusSink) -> None:
    part = _create_partial(sink, 1)
    assert _patch(sink, part, 0, b"x")[0] == 204
    unknown = f"{sink.url}{uuid.uuid4().hex}"

    assert _final(sink, part, unknown)[0] == 404
    assert _final(sink, f"/files/{uuid.uuid4().hex}")[0] == 404
    # A deleted part is unknown too.
    assert _call(sink, "DELETE", part, {})[0] == 204
    assert _final(sink, part)[0] == 404
    assert sink.stats.concatenations == 0


@pytest.mark.parametrize(
    "value",
    [
        "final;",
        "final;   ",
        "bogus",
        "partial;x",
        "final;http://127.0.0.1:1/files/abc",  # another server
        "final;ftp://127.0.0.1/files/abc",
        "final;/elsewhere/abc",
        "final;files/abc",
        "final;/files/",
    ],
)
def test_malformed_upload_concat_is_400(sink: TusSink, value: str) -> None:
    headers = {"Upload-Concat": value}
    if not value.startswith("final;"):
        headers["Upload-Length"] = "1"  # a valid creation but for Upload-Concat
    status, _ = _call(sink, "POST", "/files/", headers)
    assert status == 400
    assert sink.uploads() == {}


def test_final_must_list_finished_partials_only_and_no_length(sink: TusSink) -> None:
    plain = _create(sink, {"Upload-Length": "2"})
    assert _patch(sink, plain, 0, b"ab")[0] == 204
    part = _create_partial(sink, 2)
    assert _patch(sink, part, 0, b"cd")[0] == 204

    assert _final(sink, plain)[0] == 400  # not a partial upload
    status, answer = _final(sink, part)
    assert status == 201
    assert _final(sink, answer["location"])[0] == 400  # a final upload is no part either
    with_length = {"Upload-Concat": f"final;{part}", "Upload-Length": "2"}
    assert _call(sink, "POST", "/files/", with_length)[0] == 400
    assert sink.stats.concatenations == 1


def test_partial_upload_needs_a_length(sink: TusSink) -> None:
    status, _ = _call(sink, "POST", "/files/", {"Upload-Concat": "partial"})
    assert status == 400


# --------------------------------------------------------------------------------------------
# Checksums (verify_checksums=True)
# --------------------------------------------------------------------------------------------


def _sha1(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


def test_wrong_checksum_is_460_and_keeps_the_offset(checking_sink: TusSink) -> None:
    url = _create(checking_sink, {"Upload-Length": "8"})
    status, _ = _patch(checking_sink, url, 0, b"abcd", {"Upload-Checksum": _sha1(b"abce")})
    assert status == 460
    assert _by_url(checking_sink)[url].offset == 0

    status, answer = _patch(checking_sink, url, 0, b"abcd", {"Upload-Checksum": _sha1(b"abcd")})
    assert (status, answer["upload-offset"]) == (204, "4")


def test_unchecked_sink_accepts_any_checksum(sink: TusSink) -> None:
    url = _create(sink, {"Upload-Length": "4"})
    status, answer = _patch(sink, url, 0, b"abcd", {"Upload-Checksum": _sha1(b"nope")})
    assert (status, answer["upload-offset"]) == (204, "4")


def test_creation_with_upload_stores_the_post_body(sink: TusSink) -> None:
    status, answer = _call(
        sink,
        "POST",
        "/files/",
        {"Upload-Length": "10", "Content-Type": OCTETS},
        b"abcd",
    )
    assert (status, answer["upload-offset"]) == (201, "4")
    status, head = _call(sink, "HEAD", answer["location"], {})
    assert (status, head["upload-offset"], head["upload-length"]) == (200, "4", "10")
    assert _patch(sink, answer["location"], 4, b"efghij")[0] == 204
    assert sink.stats.bytes_received == 10


def test_creation_with_upload_refuses_a_body_past_the_length(sink: TusSink) -> None:
    status, _ = _call(
        sink, "POST", "/files/", {"Upload-Length": "3", "Content-Type": OCTETS}, b"abcd"
    )
    assert status == 413


def test_small_files_travel_in_their_post(sink: TusSink, make_file: MakeFile) -> None:
    paths = [make_file(16 * KiB + index) for index in range(5)]
    outcomes = tuspipe.upload_many(paths, sink.url, journal=None)
    assert all(outcome.ok for outcome in outcomes)
    # One OPTIONS, then each file whole in its creation request: no PATCH request at all.
    assert sink.stats.requests == 1 + len(paths)
    assert sink.stats.bytes_received == sum(path.stat().st_size for path in paths)
    assert sorted(info.offset for info in sink.uploads().values()) == sorted(
        path.stat().st_size for path in paths
    )


# --------------------------------------------------------------------------------------------
# creation-defer-length
# --------------------------------------------------------------------------------------------

DEFER = {"Upload-Defer-Length": "1"}


def _blocks(total: int, block: int) -> Iterator[bytes]:
    """A one-pass source of `total` bytes in blocks of `block` (the last may be shorter)."""
    sent = 0
    while sent < total:
        size = min(block, total - sent)
        yield bytes([sent % 251]) * size
        sent += size


@pytest.mark.parametrize("chunks", [4.0, 4.3], ids=["exact-multiple", "ragged-end"])
def test_stream_of_unknown_size_is_uploaded_with_a_deferred_length(
    sink: TusSink, chunks: float
) -> None:
    chunk_size = 64 * KiB
    total = int(chunks * chunk_size)
    result = tuspipe.upload(_blocks(total, 10_000), sink.url, chunk_size=chunk_size, journal=None)

    assert (result.size, result.offset) == (total, total)
    [info] = sink.uploads().values()
    assert (info.url, info.length, info.offset) == (result.url, total, total)
    assert sink.stats.bytes_received == total
    status, head = _call(sink, "HEAD", result.url, {})
    assert (status, head["upload-length"], head["upload-offset"]) == (200, str(total), str(total))
    assert "upload-defer-length" not in head


def _head(sink: TusSink, url: str) -> dict[str, str]:
    status, answer = _call(sink, "HEAD", url, {})
    assert status == 200
    return answer


def test_deferred_length_is_set_once_by_a_patch(sink: TusSink) -> None:
    url = _create(sink, DEFER)
    head = _head(sink, url)
    assert (head["upload-offset"], head["upload-defer-length"]) == ("0", "1")
    assert "upload-length" not in head
    assert _by_url(sink)[url].length is None

    # Bytes without a length: any number of them is taken.
    assert _patch(sink, url, 0, b"abcd")[0] == 204
    assert _head(sink, url)["upload-defer-length"] == "1"

    status, answer = _patch(sink, url, 4, b"ef", {"Upload-Length": "10"})
    assert (status, answer["upload-offset"]) == (204, "6")
    head = _head(sink, url)
    assert (head["upload-offset"], head["upload-length"]) == ("6", "10")
    assert "upload-defer-length" not in head

    # Once set, the length is never changed; repeating it is fine.
    assert _patch(sink, url, 6, b"gh", {"Upload-Length": "8"})[0] == 400
    assert _patch(sink, url, 6, b"gh", {"Upload-Length": "12"})[0] == 400
    assert _by_url(sink)[url].offset == 6
    assert _patch(sink, url, 6, b"ghijk")[0] == 413  # past the declared length
    assert _patch(sink, url, 6, [b"gh", b"ijk"])[0] == 413  # chunked, found out after reading
    status, answer = _patch(sink, url, 6, b"ghij", {"Upload-Length": "10"})
    assert (status, answer["upload-offset"]) == (204, "10")
    info = _by_url(sink)[url]
    assert (info.length, info.offset) == (10, 10)


def test_deferred_length_refuses_bytes_past_the_declared_length(sink: TusSink) -> None:
    url = _create(sink, DEFER)
    assert _patch(sink, url, 0, b"abcd", {"Upload-Length": "3"})[0] == 413
    assert _patch(sink, url, 0, [b"ab", b"cd"], {"Upload-Length": "3"})[0] == 413
    # A refused PATCH changes nothing: the length is still unknown.
    info = _by_url(sink)[url]
    assert (info.length, info.offset) == (None, 0)
    assert _head(sink, url)["upload-defer-length"] == "1"
    # A length below the bytes already there, and a malformed one, are refused.
    assert _patch(sink, url, 0, b"ab")[0] == 204
    assert _patch(sink, url, 2, b"", {"Upload-Length": "1"})[0] == 400
    assert _patch(sink, url, 2, b"c", {"Upload-Length": "-3"})[0] == 400
    assert _patch(sink, url, 2, b"c", {"Upload-Length": "three"})[0] == 400
    assert _by_url(sink)[url].offset == 2
    # The length may come with an empty PATCH once every byte is there.
    status, answer = _patch(sink, url, 2, b"", {"Upload-Length": "2"})
    assert (status, answer["upload-offset"]) == (204, "2")
    assert (_by_url(sink)[url].length, _head(sink, url)["upload-length"]) == (2, "2")


@pytest.mark.parametrize(
    "headers",
    [
        {"Upload-Length": "5", "Upload-Defer-Length": "1"},
        {"Upload-Defer-Length": "0"},
        {"Upload-Defer-Length": "2"},
        {"Upload-Defer-Length": "true"},
        {"Upload-Defer-Length": ""},
    ],
)
def test_bad_defer_length_creation_is_400(sink: TusSink, headers: dict[str, str]) -> None:
    status, _ = _call(sink, "POST", "/files/", headers)
    assert status == 400
    assert sink.uploads() == {}


def test_creation_with_upload_and_a_deferred_length(sink: TusSink) -> None:
    status, answer = _call(sink, "POST", "/files/", {**DEFER, "Content-Type": OCTETS}, b"abcd")
    assert (status, answer["upload-offset"]) == (201, "4")
    url = answer["location"]
    head = _head(sink, url)
    assert (head["upload-offset"], head["upload-defer-length"]) == ("4", "1")
    assert "upload-length" not in head
    assert _patch(sink, url, 4, b"ef", {"Upload-Length": "6"})[0] == 204
    info = _by_url(sink)[url]
    assert (info.length, info.offset) == (6, 6)


def test_partial_of_unknown_length_cannot_be_joined(sink: TusSink) -> None:
    part = _create(sink, {"Upload-Concat": "partial", **DEFER})
    assert _head(sink, part)["upload-concat"] == "partial"
    assert _patch(sink, part, 0, b"abc")[0] == 204

    assert _final(sink, part)[0] == 400  # every byte may be there, but the length is unknown
    assert _patch(sink, part, 3, b"", {"Upload-Length": "3"})[0] == 204
    status, answer = _final(sink, part)
    assert status == 201
    assert _by_url(sink)[answer["location"]].length == 3


# --------------------------------------------------------------------------------------------
# The sink as a process: the summary line, and --quiet
# --------------------------------------------------------------------------------------------

_ROOT = Path(sink_module.__file__).resolve().parent.parent


def _run_sink_until(sig: signal.Signals, *options: str) -> tuple[int, str]:
    """Start ``python -m benchmarks.sink``, wait for READY, send `sig`: (exit status, stderr)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.sink", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        ready = sink_module._readline_with_timeout(process.stdout, 10)
        assert ready.startswith("READY http://127.0.0.1:"), ready
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_quiet_sink_prints_no_summary(sig: signal.Signals) -> None:
    status, stderr = _run_sink_until(sig, "--quiet")
    assert (status, stderr) == (0, "")


def test_sink_prints_a_summary_when_stopped() -> None:
    status, stderr = _run_sink_until(signal.SIGINT)
    assert status == 0
    assert stderr.startswith("sink stopped after "), stderr


@pytest.mark.parametrize("quiet", [True, False])
def test_sink_process_passes_quiet(quiet: bool, capfd: pytest.CaptureFixture[str]) -> None:
    with SinkProcess(quiet=quiet) as process:
        assert process.url.startswith(f"http://{HOST}:")
    # The child writes to this process's stderr, which capfd holds.
    summary = "sink stopped after" in capfd.readouterr().err
    assert summary is not quiet


def test_default_chunk_sizes_files_and_streams(sink: TusSink, make_file: MakeFile) -> None:
    # A file goes in PATCHes of DEFAULT_CHUNK_SIZE (64 MiB) ...
    size = tuspipe.DEFAULT_CHUNK_SIZE + 5
    result = tuspipe.upload(make_file(size), sink.url, journal=None)
    assert result.offset == size
    assert [stats.items for stats in result.channel_stats if stats.name == "chunks"] == [2]
    # ... and a one-pass stream, whose unacknowledged chunk is held in memory, in 8 MiB ones.
    assert 8 * MiB == tuspipe.DEFAULT_STREAM_CHUNK_SIZE
    blocks = (bytes(MiB) for _ in range(17))
    result = tuspipe.upload(blocks, sink.url, journal=None)
    assert result.offset == 17 * MiB
    assert [stats.items for stats in result.channel_stats if stats.name == "chunks"] == [3]
