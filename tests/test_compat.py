"""tuspipe.compat, tuspy's API on tuspipe: tuspy's own test behaviours, and its defects fixed.

Uploads go to the real Node server (@tus/server), or to asgi-tus where the server must verify
checksums, and the stored bytes are compared with the source by sha256. The in-memory
FakeTusServer is used only where an answer must be forced (a 500, a PATCH without
Upload-Offset, a missing Location) or where the exact requests sent are the point; it is
plugged in through ``TusClient.tuspipe_options["http_client"]``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import inspect
import io
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

import tuspipe
from tuspipe.compat import client as compat_client
from tuspipe.compat.exceptions import TusCommunicationError, TusUploadFailed
from tuspipe.compat.fingerprint import fingerprint as compat_fingerprint
from tuspipe.compat.request import AsyncTusRequest, TusRequest
from tuspipe.compat.storage import filestorage, interface
from tuspipe.compat.uploader import AsyncUploader, Uploader

from .conftest import MakeFile, TusServer, sha256_file
from .fakes import FakeTusServer
from .loops import both_loops

KiB = 1024
MiB = 1024 * KiB
CHUNK = 64 * KiB


def fake_client(server: FakeTusServer) -> compat_client.TusClient:
    """A TusClient whose uploaders talk to `server` (through its MockTransport)."""
    tus = compat_client.TusClient(server.endpoint)
    tus.tuspipe_options["http_client"] = server.client()
    return tus


def methods(server: FakeTusServer) -> list[str]:
    return [request.method for request in server.requests]


def assert_stored(server: TusServer, url: str | None, path: Path) -> None:
    """The server holds exactly the bytes of `path` for the upload at `url`."""
    assert url is not None
    assert server.stored_sha256(url) == sha256_file(path)


@pytest.fixture
def node_client(node_server: TusServer) -> compat_client.TusClient:
    return compat_client.TusClient(node_server.url)


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


def test_client_attributes_and_set_headers() -> None:
    tus = compat_client.TusClient("http://tus.test/files/", headers={"foo": "bar"})
    assert tus.url == "http://tus.test/files/"
    assert tus.headers == {"foo": "bar"}
    assert tus.client_cert is None
    tus.set_headers({"foo": "bar tender"})
    assert tus.headers == {"foo": "bar tender"}
    tus.set_headers({"food": "at the bar"})  # merged, not replaced
    assert tus.headers == {"foo": "bar tender", "food": "at the bar"}
    assert compat_client.TusClient("http://tus.test/files/").headers == {}
    pair = ("client.pem", "client.key")
    assert compat_client.TusClient("http://x/", client_cert=pair).client_cert == pair


def test_client_makes_uploaders_bound_to_it(make_file: MakeFile) -> None:
    path = make_file(10)
    tus = compat_client.TusClient("http://tus.test/files/")
    uploader = tus.uploader(str(path))
    assert isinstance(uploader, Uploader)
    assert uploader.client is tus
    async_uploader = tus.async_uploader(str(path))
    assert isinstance(async_uploader, AsyncUploader)
    assert async_uploader.client is tus


# --------------------------------------------------------------------------------------------
# Uploader construction, attributes and local helpers (no network)
# --------------------------------------------------------------------------------------------


def test_uploader_defaults(make_file: MakeFile) -> None:
    path = make_file(1000)
    tus = compat_client.TusClient("http://tus.test/files/")
    uploader = tus.uploader(str(path))
    assert uploader.chunk_size == uploader.DEFAULT_CHUNK_SIZE == sys.maxsize
    assert uploader.DEFAULT_HEADERS == {"Tus-Resumable": "1.0.0"}
    assert uploader.CHECKSUM_ALGORITHM_PAIR[0] == "sha1"
    assert uploader.CHECKSUM_ALGORITHM_PAIR[1] is hashlib.sha1
    assert uploader.client is tus
    assert uploader.url is None
    assert uploader.offset == 0
    assert uploader.stop_at == 1000
    assert uploader.metadata == {}
    assert uploader.metadata_encoding == "utf-8"
    assert (uploader.retries, uploader.retry_delay) == (0, 30)
    assert uploader.verify_tls_cert is True
    assert (uploader.store_url, uploader.url_storage) == (False, None)
    assert isinstance(uploader.fingerprinter, compat_fingerprint.Fingerprint)
    assert uploader.upload_checksum is False
    assert uploader.request is None
    assert uploader.checksum_algorithm is hashlib.sha1
    assert uploader.checksum_algorithm_name == "sha1"
    assert uploader.client_cert is None
    assert uploader.file_path == str(path)
    assert uploader.file_stream is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"url": "http://tus.test/files/u1"}, "Either 'file_path' or 'file_stream'"),
        ({"file_stream": io.BytesIO(b"x")}, "Either 'url' or 'client'"),
        (
            {"file_stream": io.BytesIO(b"x"), "url": "http://tus.test/files/u1", "store_url": True},
            "storage instance",
        ),
        ({"file_path": "/no/such/file", "url": "http://tus.test/files/u1"}, "invalid file"),
    ],
    ids=["no-source", "no-url-nor-client", "store-without-storage", "missing-file"],
)
def test_constructor_value_errors(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Uploader(**arguments)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        AsyncUploader(**arguments)  # type: ignore[arg-type]


def test_headers(make_file: MakeFile) -> None:
    server = FakeTusServer()
    tus = fake_client(server)
    uploader = tus.uploader(str(make_file(5)), metadata={"filename": "a.bin"})
    assert uploader.get_headers() == {"Tus-Resumable": "1.0.0"}
    tus.set_headers({"foo": "bar"})
    assert uploader.get_headers() == {"Tus-Resumable": "1.0.0", "foo": "bar"}
    assert uploader.get_url_creation_headers() == {
        "Tus-Resumable": "1.0.0",
        "foo": "bar",
        "upload-length": "5",
        "upload-metadata": "filename " + base64.b64encode(b"a.bin").decode(),
    }
    # ... and the client's headers travel with every request
    uploader.upload()
    assert methods(server) == ["POST", "PATCH"]
    for request in server.requests:
        assert request.headers["foo"] == "bar"
        assert request.headers["tus-resumable"] == "1.0.0"


def test_encode_metadata(make_file: MakeFile) -> None:
    uploader = compat_client.TusClient("http://tus.test/files/").uploader(str(make_file(1)))
    uploader.metadata = {"foo": "bar", "red": "blue"}
    assert sorted(uploader.encode_metadata()) == [
        "foo " + base64.b64encode(b"bar").decode(),
        "red " + base64.b64encode(b"blue").decode(),
    ]
    uploader.metadata = {"foo": "bär", "red": "🔵"}  # UTF-8
    assert sorted(uploader.encode_metadata()) == [
        "foo " + base64.b64encode("bär".encode()).decode(),
        "red " + base64.b64encode("🔵".encode()).decode(),
    ]
    uploader.metadata, uploader.metadata_encoding = {"foo": "bär"}, "latin-1"
    assert uploader.encode_metadata()[0] == "foo " + base64.b64encode(b"b\xe4r").decode()
    uploader.metadata = {"blob": b"\x00\xff"}  # bytes values go as they are (tuspy crashed)
    assert uploader.encode_metadata() == ["blob " + base64.b64encode(b"\x00\xff").decode()]


@pytest.mark.parametrize("key", ["", "foo, ", "a b", "a,b", "a\tb", "a\nb"])
def test_encode_metadata_refuses_bad_keys(make_file: MakeFile, key: str) -> None:
    uploader = compat_client.TusClient("http://tus.test/files/").uploader(str(make_file(1)))
    uploader.metadata = {key: "bar"}
    with pytest.raises(ValueError, match="cannot be empty nor contain spaces or commas"):
        uploader.encode_metadata()


def test_request_length(make_file: MakeFile) -> None:
    uploader = compat_client.TusClient("http://tus.test/files/").uploader(str(make_file(1000)))
    uploader.chunk_size = 200
    assert uploader.get_request_length() == 200
    uploader.chunk_size = uploader.get_file_size() + 3000
    assert uploader.get_request_length() == 1000
    uploader.chunk_size, uploader.offset = 300, 900
    assert uploader.get_request_length() == 100
    uploader.stop_at, uploader.offset = 500, 400
    assert uploader.get_request_length() == 100


def test_file_stream_and_file_size(make_file: MakeFile) -> None:
    path = make_file(3000)
    tus = compat_client.TusClient("http://tus.test/files/")
    from_path = tus.uploader(str(path))
    assert from_path.get_file_size() == 3000
    with from_path.get_file_stream() as stream:
        assert stream.read() == path.read_bytes()
    with path.open("rb") as caller_stream:
        caller_stream.seek(100)
        from_stream = tus.uploader(file_stream=caller_stream)
        assert from_stream.get_file_size() == 3000  # the whole stream, wherever it stands
        assert caller_stream.tell() == 100  # ... and it is left where it stood
        assert from_stream.get_file_stream() is caller_stream
        assert caller_stream.tell() == 0  # rewound, as in tuspy
    assert from_stream.stop_at == 3000


# --------------------------------------------------------------------------------------------
# Talking to real servers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [
        (1, sys.maxsize),
        (CHUNK, CHUNK),
        (CHUNK + 1, CHUNK),
        (5 * MiB + 3, sys.maxsize),  # the default: the whole file in one streamed PATCH
        (5 * MiB + 3, MiB),
    ],
    ids=["1B", "one-chunk", "chunk-plus-one", "5MiB-default-chunk", "5MiB-in-1MiB-chunks"],
)
def test_full_upload(
    node_server: TusServer,
    node_client: compat_client.TusClient,
    make_file: MakeFile,
    size: int,
    chunk_size: int,
) -> None:
    path = make_file(size)
    uploader = node_client.uploader(str(path), chunk_size=chunk_size)
    uploader.upload()
    assert uploader.offset == uploader.stop_at == size
    assert uploader.url is not None
    assert uploader.url.startswith(node_server.url)
    assert_stored(node_server, uploader.url, path)
    # the last PATCH answer, as tuspy's request object reports it
    assert uploader.request is not None
    assert uploader.request.status_code == 204
    assert uploader.request.response_headers["upload-offset"] == str(size)


def test_upload_is_one_tuspipe_call_on_one_connection(
    monkeypatch: pytest.MonkeyPatch, make_file: MakeFile
) -> None:
    calls: list[dict[str, object]] = []
    real_upload = tuspipe.upload_async

    # The blocking uploader is the blocking facade over the async one: its bytes go through
    # one upload_async call, run by one trio.run.
    async def counting_upload(*args: object, **kwargs: object) -> tuspipe.UploadResult:
        calls.append(kwargs)
        return await real_upload(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tuspipe, "upload_async", counting_upload)
    server = FakeTusServer()
    path = make_file(10 * CHUNK + 5)
    uploader = fake_client(server).uploader(str(path), chunk_size=CHUNK)
    uploader.upload()
    assert len(calls) == 1
    assert calls[0]["journal"] is None  # URLs are kept by url_storage, as in tuspy
    # created and streamed in the same call: no HEAD, eleven PATCHes in order
    assert methods(server) == ["POST"] + ["PATCH"] * 11
    assert [request.offset for request in server.seen("PATCH")] == list(range(0, 11 * CHUNK, CHUNK))
    assert server.data_of(uploader.url or "") == path.read_bytes()


def test_get_offset_asks_the_server_with_head(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    path = make_file(1000)
    first = node_client.uploader(str(path))
    first.upload(stop_at=300)
    assert first.offset == 300
    assert first.get_offset() == 300
    # an uploader given the URL asks the server for the offset, as tuspy's constructor does
    resumed = node_client.uploader(str(path), url=first.url)
    assert resumed.offset == 300
    resumed.upload()
    assert resumed.get_offset() == 1000
    assert_stored(node_server, resumed.url, path)

    server = FakeTusServer()
    url = server.create(10, b"abc")
    assert fake_client(server).uploader(file_stream=io.BytesIO(b"x" * 10), url=url).offset == 3
    assert methods(server) == ["HEAD"]


def test_metadata_reaches_the_server(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    path = make_file(10)
    # bytes values work (tuspy crashed on them); the Node server keeps values as UTF-8 text
    metadata: dict[str, str | bytes] = {"filename": "bär 🔵.bin", "blob": "é".encode()}
    uploader = node_client.uploader(str(path), metadata=metadata)
    uploader.upload()
    assert_stored(node_server, uploader.url, path)
    assert uploader.url is not None
    stored = tuspipe.upload_status(uploader.url).metadata
    assert stored["filename"] == "bär 🔵.bin".encode()
    assert stored["blob"] == "é".encode()
    # any bytes go out exactly
    server = FakeTusServer()
    raw = fake_client(server).uploader(str(path), metadata={"blob": b"\x00\x01\xff"})
    raw.upload()
    assert server.metadata_of(raw.url or "") == "blob " + base64.b64encode(b"\x00\x01\xff").decode()


def test_create_url_absolute_location(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    uploader = node_client.uploader(str(make_file(5)))
    url = uploader.create_url()
    assert url.startswith(node_server.url)
    assert len(url) > len(node_server.url)
    assert uploader.url is None  # create_url only reports it; upload() adopts it
    tuspipe.terminate(url)


def test_create_url_relative_location(make_file: MakeFile) -> None:
    server = FakeTusServer(relative_locations=True)
    tus = fake_client(server)
    assert tus.uploader(str(make_file(5))).create_url() == "http://tus.test/files/u1"
    uploader = tus.uploader(str(make_file(7)))
    uploader.upload()  # the resolved URL is used for the PATCH
    assert uploader.url == "http://tus.test/files/u2"
    assert server.data_of("http://tus.test/files/u2") == uploader.get_file_stream().read()


def test_create_url_without_location_is_a_communication_error(make_file: MakeFile) -> None:
    server = FakeTusServer()
    server.script(201, {"Tus-Resumable": "1.0.0"}, b"made it", method="POST")
    uploader = fake_client(server).uploader(str(make_file(5)))
    with pytest.raises(TusCommunicationError, match="no Location") as caught:
        uploader.create_url()
    assert caught.value.status_code == 201
    assert caught.value.response_content == b"made it"
    assert isinstance(caught.value.__cause__, tuspipe.ProtocolError)


def test_file_stream_upload_equals_path_upload(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    path = make_file(300 * KiB + 7)
    with path.open("rb") as stream:
        stream.seek(1234)  # tuspy uploads a stream from its start
        uploader = node_client.uploader(file_stream=stream, chunk_size=100 * KiB)
        uploader.upload()
        assert not stream.closed
    assert_stored(node_server, uploader.url, path)
    memory = node_client.uploader(file_stream=io.BytesIO(path.read_bytes()))
    memory.upload()
    assert_stored(node_server, memory.url, path)


def test_upload_chunk_advances_the_offset(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    path = make_file(3 * CHUNK + 100)
    uploader = node_client.uploader(str(path), chunk_size=CHUNK)
    offsets = []
    while uploader.offset < uploader.stop_at:
        uploader.upload_chunk()
        offsets.append(uploader.offset)
        assert uploader.request is not None
        assert uploader.request.status_code == 204
        assert uploader.request.response_headers["upload-offset"] == str(uploader.offset)
    assert offsets == [CHUNK, 2 * CHUNK, 3 * CHUNK, 3 * CHUNK + 100]
    assert_stored(node_server, uploader.url, path)


def test_upload_chunk_creates_the_upload_first(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    path = make_file(2 * CHUNK)
    uploader = node_client.uploader(str(path), chunk_size=CHUNK)
    uploader.upload_chunk()
    assert uploader.url is not None
    assert uploader.url.startswith(node_server.url)
    assert uploader.offset == CHUNK
    uploader.upload_chunk()
    assert_stored(node_server, uploader.url, path)

    server = FakeTusServer()
    chunked = fake_client(server).uploader(file_stream=io.BytesIO(b"hello"), chunk_size=3)
    chunked.upload_chunk()
    assert chunked.url == "http://tus.test/files/u1"
    assert methods(server) == ["POST", "PATCH"]  # created and sent on one connection
    assert chunked.offset == 3


def test_tus_request_reports_the_last_patch_answer(make_file: MakeFile) -> None:
    server = FakeTusServer()
    uploader = fake_client(server).uploader(str(make_file(10)), chunk_size=4)
    uploader.set_url(server.create(10))
    request = TusRequest(uploader)
    assert (request.status_code, request.response_headers, request.response_content) == (
        None,
        {},
        None,
    )
    assert request.perform() == 4  # the server's offset after the chunk
    assert uploader.offset == 0  # perform() leaves the uploader to its caller
    assert request.status_code == 204
    assert request.response_headers["upload-offset"] == "4"
    assert request.response_content == b""
    assert methods(server) == ["HEAD", "PATCH"]


def test_retry_count(make_file: MakeFile) -> None:
    server = FakeTusServer()
    server.script(500, {}, b"try later", method="PATCH", times=10)
    uploader = fake_client(server).uploader(
        str(make_file(10)), url=server.create(10), retries=3, retry_delay=0
    )
    with pytest.raises(TusUploadFailed) as caught:
        uploader.upload_chunk()
    assert len(server.seen("PATCH")) == 1 + 3
    assert caught.value.status_code == 500
    assert caught.value.response_content == b"try later"
    assert uploader.request is not None
    assert uploader.request.status_code == 500


def test_no_retries_by_default_and_refusals_are_final(make_file: MakeFile) -> None:
    server = FakeTusServer()
    server.script(500, method="PATCH")
    uploader = fake_client(server).uploader(str(make_file(10)), url=server.create(10))
    with pytest.raises(TusUploadFailed):
        uploader.upload()
    assert len(server.seen("PATCH")) == 1  # retries=0, as in tuspy
    # tuspy retried every failure alike; a 403 is final even with retries left
    server.script(403, {"Tus-Resumable": "1.0.0"}, b"no", method="PATCH")
    uploader.retries, uploader.retry_delay = 5, 0
    with pytest.raises(TusUploadFailed) as caught:
        uploader.upload()
    assert caught.value.status_code == 403
    assert len(server.seen("PATCH")) == 2


def test_errors_carry_status_and_body(make_file: MakeFile) -> None:
    server = FakeTusServer(max_size=3)
    uploader = fake_client(server).uploader(str(make_file(10)))
    with pytest.raises(TusCommunicationError) as caught:
        uploader.upload()
    assert not isinstance(caught.value, TusUploadFailed)  # the POST was refused, not a PATCH
    assert (caught.value.status_code, caught.value.response_content) == (413, b"upload too large")
    # no answer at all: no status
    offline = compat_client.TusClient("http://127.0.0.1:9/files/")
    with pytest.raises(TusCommunicationError) as unreachable:
        offline.uploader(str(make_file(3))).upload()
    assert unreachable.value.status_code is None
    assert isinstance(unreachable.value.__cause__, tuspipe.NetworkError)


def test_empty_file_is_post_only(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    path = make_file(0)
    uploader = node_client.uploader(str(path))
    uploader.upload()
    assert uploader.offset == 0
    assert_stored(node_server, uploader.url, path)
    server = FakeTusServer()
    fake_uploader = fake_client(server).uploader(file_stream=io.BytesIO(b""))
    fake_uploader.upload()
    assert methods(server) == ["POST"]
    assert fake_uploader.url == "http://tus.test/files/u1"


def test_checksum_header(asgitus_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(3 * CHUNK + 11)
    server = FakeTusServer()
    uploader = fake_client(server).uploader(str(path), chunk_size=CHUNK, upload_checksum=True)
    uploader.upload()
    data = path.read_bytes()
    patches = server.seen("PATCH")
    assert len(patches) == 4
    for patch in patches:
        chunk = data[patch.offset : patch.offset + CHUNK]
        expected = "sha1 " + base64.b64encode(hashlib.sha1(chunk).digest()).decode()
        assert patch.headers["upload-checksum"] == expected
        assert patch.checksum_ok
    # asgi-tus verifies every digest (460 on a mismatch) and stores the bytes
    real = compat_client.TusClient(asgitus_server.url).uploader(
        str(path), chunk_size=CHUNK, upload_checksum=True
    )
    real.upload()
    assert_stored(asgitus_server, real.url, path)


def test_checksum_the_server_does_not_offer(
    node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    uploader = node_client.uploader(str(make_file(10)), upload_checksum=True)
    with pytest.raises(TusCommunicationError, match="checksum"):
        uploader.upload()
    assert uploader.url is None  # refused before anything was created


# --------------------------------------------------------------------------------------------
# Storage and fingerprints
# --------------------------------------------------------------------------------------------


def test_filestorage_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "urls"
    storage = filestorage.FileStorage(str(path))
    assert isinstance(storage, interface.Storage)
    assert storage.get_item("key") is None
    storage.set_item("key", "http://tus.test/files/u1")
    assert storage.get_item("key") == "http://tus.test/files/u1"
    storage.set_item("key", "http://tus.test/files/u2")  # replaced
    assert storage.get_item("key") == "http://tus.test/files/u2"
    storage.set_item("other", "http://tus.test/files/u3")
    # another instance (another process) reads the same file
    assert filestorage.FileStorage(path).get_item("key") == "http://tus.test/files/u2"
    storage.remove_item("key")
    assert storage.get_item("key") is None
    assert storage.get_item("other") == "http://tus.test/files/u3"
    storage.remove_item("never-stored")  # nothing to do
    # the file is an ordinary tuspipe journal
    assert {key: entry.url for key, entry in tuspipe.Journal(path).load().items()} == {
        "other": "http://tus.test/files/u3"
    }
    assert path.stat().st_mode & 0o777 == 0o600
    storage.close()
    with pytest.raises(ValueError, match="closed"):
        storage.get_item("other")


def test_filestorage_refuses_a_tuspy_json_store(tmp_path: Path) -> None:
    path = tmp_path / "tuspy.json"
    path.write_text('{"_default": {"1": {"key": "k", "url": "http://x/files/1"}}}')
    with pytest.raises(ValueError, match="TinyDB"):
        filestorage.FileStorage(path)
    assert path.read_text().startswith('{"_default"')  # untouched


def test_fingerprints_equal_for_path_and_stream(make_file: MakeFile) -> None:
    fingerprinter = compat_fingerprint.Fingerprint()
    for size in (0, 1, 64 * KiB, 512 * KiB, 512 * KiB + 1, 3 * MiB + 5):
        path = make_file(size)
        with path.open("rb") as stream:
            from_file = fingerprinter.get_fingerprint(stream)
        content = path.read_bytes()
        assert fingerprinter.get_fingerprint(io.BytesIO(content)) == from_file
        assert fingerprinter.get_fingerprint(io.BytesIO(content + b"s")) != from_file


def test_fingerprint_leaves_the_stream_open_where_it_was() -> None:
    stream = io.BytesIO(b"x" * 1000)
    stream.seek(123)
    compat_fingerprint.Fingerprint().get_fingerprint(stream)
    assert not stream.closed
    assert stream.tell() == 123


def test_fingerprint_tells_apart_files_with_equal_size_and_prefix() -> None:
    # tuspy digests the first 64 KiB and the size: these two would share its fingerprint.
    fingerprinter = compat_fingerprint.Fingerprint()
    base = bytearray(os.urandom(4 * MiB))
    samples = fingerprinter._spans(len(base))
    assert samples[0] == (0, 64 * KiB)
    assert samples[-1] == (4 * MiB - 64 * KiB, 64 * KiB)  # the end, and six places between
    for offset, length in samples[1:]:
        position = offset + length // 2
        changed = bytearray(base)
        changed[position] ^= 0xFF
        assert fingerprinter.get_fingerprint(io.BytesIO(bytes(changed))) != (
            fingerprinter.get_fingerprint(io.BytesIO(bytes(base)))
        )


def test_resume_from_a_stored_url(
    node_server: TusServer,
    node_client: compat_client.TusClient,
    make_file: MakeFile,
    tmp_path: Path,
) -> None:
    path = make_file(3 * CHUNK)
    storage = filestorage.FileStorage(tmp_path / "urls")
    first = node_client.uploader(str(path), chunk_size=CHUNK, store_url=True, url_storage=storage)
    first.upload(stop_at=CHUNK)
    assert storage.get_item(first._get_fingerprint()) == first.url
    again = node_client.uploader(
        str(path),
        chunk_size=CHUNK,
        store_url=True,
        url_storage=filestorage.FileStorage(tmp_path / "urls"),
    )
    assert (again.url, again.offset) == (first.url, CHUNK)
    again.upload()
    assert again.offset == 3 * CHUNK
    assert_stored(node_server, again.url, path)


RESUME_CHILD = """
import sys
from tuspipe.compat import client
from tuspipe.compat.storage import filestorage
path, url, storage_path, stop_at = sys.argv[1:5]
storage = filestorage.FileStorage(storage_path)
uploader = client.TusClient(url).uploader(path, store_url=True, url_storage=storage)
uploader.upload(stop_at=int(stop_at))
storage.close()
print(uploader.url, uploader.offset)
"""


def test_resume_across_processes(
    node_server: TusServer,
    node_client: compat_client.TusClient,
    make_file: MakeFile,
    tmp_path: Path,
) -> None:
    path = make_file(MiB + 17)
    storage_path = tmp_path / "urls"
    child = subprocess.run(
        [sys.executable, "-c", RESUME_CHILD, str(path), node_server.url, str(storage_path), "1000"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    child_url, child_offset = child.stdout.split()
    assert int(child_offset) == 1000
    storage = filestorage.FileStorage(storage_path)
    uploader = node_client.uploader(str(path), store_url=True, url_storage=storage)
    assert (uploader.url, uploader.offset) == (child_url, 1000)
    uploader.upload()
    assert_stored(node_server, uploader.url, path)


# --------------------------------------------------------------------------------------------
# tuspy's defects, fixed
# --------------------------------------------------------------------------------------------


def test_stop_at_zero_is_honoured(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    path = make_file(1000)
    uploader = node_client.uploader(str(path))
    uploader.upload(stop_at=0)  # tuspy took 0 for "everything"
    assert (uploader.stop_at, uploader.offset) == (0, 0)
    assert uploader.url is not None
    assert uploader.get_offset() == 0
    uploader.upload()
    assert_stored(node_server, uploader.url, path)
    server = FakeTusServer()
    fake_client(server).uploader(str(path)).upload(stop_at=0)
    assert methods(server) == ["POST"]
    # a negative stop_at, tuspy's idiom for "create only", creates and sends nothing
    fake_client(server).uploader(str(path)).upload(stop_at=-1)
    assert methods(server) == ["POST", "POST"]


def test_file_stream_with_store_url(
    node_server: TusServer,
    node_client: compat_client.TusClient,
    make_file: MakeFile,
    tmp_path: Path,
) -> None:
    path = make_file(2 * CHUNK + 1)
    storage = filestorage.FileStorage(tmp_path / "urls")
    with path.open("rb") as stream:
        first = node_client.uploader(
            file_stream=stream, chunk_size=CHUNK, store_url=True, url_storage=storage
        )
        first.upload(stop_at=CHUNK)
        assert not stream.closed  # tuspy's fingerprinter closed the caller's stream
    with path.open("rb") as stream:
        again = node_client.uploader(
            file_stream=stream, chunk_size=CHUNK, store_url=True, url_storage=storage
        )
        assert (again.url, again.offset) == (first.url, CHUNK)
        again.upload()
        assert not stream.closed
    assert_stored(node_server, again.url, path)


@pytest.mark.parametrize("status", [404, 410])
def test_a_stale_stored_url_leads_to_a_new_upload(
    make_file: MakeFile, tmp_path: Path, status: int
) -> None:
    server = FakeTusServer()
    tus = fake_client(server)
    path = make_file(100)
    storage = filestorage.FileStorage(tmp_path / "urls")
    key = compat_fingerprint.Fingerprint().get_fingerprint(io.BytesIO(path.read_bytes()))
    storage.set_item(key, "http://tus.test/files/gone")
    server.script(status, {"Tus-Resumable": "1.0.0"}, method="HEAD")
    uploader = tus.uploader(str(path), store_url=True, url_storage=storage)
    assert uploader.url is None
    assert storage.get_item(key) is None  # forgotten, never retried
    uploader.upload()
    assert uploader.url == "http://tus.test/files/u1"
    assert storage.get_item(key) == uploader.url
    assert server.data_of("http://tus.test/files/u1") == path.read_bytes()


def test_a_stored_value_that_is_no_url_is_forgotten(make_file: MakeFile, tmp_path: Path) -> None:
    server = FakeTusServer()
    path = make_file(10)
    storage = filestorage.FileStorage(tmp_path / "urls")
    key = compat_fingerprint.Fingerprint().get_fingerprint(io.BytesIO(path.read_bytes()))
    storage.set_item(key, "not a URL")
    uploader = fake_client(server).uploader(str(path), store_url=True, url_storage=storage)
    assert uploader.url is None
    assert storage.get_item(key) is None
    assert server.requests == []


def test_a_caller_mistake_does_not_forget_the_stored_url(
    make_file: MakeFile, tmp_path: Path
) -> None:
    server = FakeTusServer()
    path = make_file(10)
    storage = filestorage.FileStorage(tmp_path / "urls")
    key = compat_fingerprint.Fingerprint().get_fingerprint(io.BytesIO(path.read_bytes()))
    url = server.create(10, b"12345")
    storage.set_item(key, url)
    tus = fake_client(server)
    tus.set_headers({"Upload-Offset": "0"})  # tuspipe sets this one itself: a ValueError
    with pytest.raises(ValueError, match="Upload-Offset"):
        tus.uploader(str(path), store_url=True, url_storage=storage)
    assert storage.get_item(key) == url


def test_a_deleted_upload_on_a_real_server_is_replaced(
    node_server: TusServer,
    node_client: compat_client.TusClient,
    make_file: MakeFile,
    tmp_path: Path,
) -> None:
    path = make_file(CHUNK)
    storage = filestorage.FileStorage(tmp_path / "urls")
    first = node_client.uploader(str(path), store_url=True, url_storage=storage)
    first.upload(stop_at=10)
    assert first.url is not None
    tuspipe.terminate(first.url)
    again = node_client.uploader(str(path), store_url=True, url_storage=storage)
    assert again.url is None
    again.upload()
    assert again.url != first.url
    assert_stored(node_server, again.url, path)


def test_a_stored_url_of_another_length_is_not_resumed(make_file: MakeFile, tmp_path: Path) -> None:
    server = FakeTusServer()
    path = make_file(100)
    storage = filestorage.FileStorage(tmp_path / "urls")
    key = compat_fingerprint.Fingerprint().get_fingerprint(io.BytesIO(path.read_bytes()))
    storage.set_item(key, server.create(99, b"x"))
    uploader = fake_client(server).uploader(str(path), store_url=True, url_storage=storage)
    assert uploader.url is None
    assert storage.get_item(key) is None


def test_equal_size_and_prefix_do_not_resume_each_other(
    node_server: TusServer, node_client: compat_client.TusClient, tmp_path: Path
) -> None:
    prefix = os.urandom(64 * KiB)
    one, other = tmp_path / "one.bin", tmp_path / "other.bin"
    one.write_bytes(prefix + os.urandom(MiB))
    other.write_bytes(prefix + os.urandom(MiB))
    storage = filestorage.FileStorage(tmp_path / "urls")
    first = node_client.uploader(str(one), store_url=True, url_storage=storage)
    first.upload(stop_at=100 * KiB)
    second = node_client.uploader(str(other), store_url=True, url_storage=storage)
    assert second.url is None  # tuspy would continue `one`'s upload with `other`'s bytes
    second.upload()
    first.upload()
    assert first.url != second.url
    assert_stored(node_server, first.url, one)
    assert_stored(node_server, second.url, other)


def test_none_is_never_stored(make_file: MakeFile, tmp_path: Path) -> None:
    storage = filestorage.FileStorage(tmp_path / "urls")
    uploader = compat_client.TusClient("http://tus.test/files/").uploader(
        str(make_file(5)), store_url=True, url_storage=storage
    )
    uploader.set_url(None)  # type: ignore[arg-type]
    assert tuspipe.Journal(tmp_path / "urls").load() == {}


def test_patch_answer_without_upload_offset(make_file: MakeFile) -> None:
    server = FakeTusServer()
    server.script(204, {"Tus-Resumable": "1.0.0"}, method="PATCH")
    uploader = fake_client(server).uploader(str(make_file(10)))
    with pytest.raises(TusCommunicationError, match="no Upload-Offset") as caught:
        uploader.upload()  # tuspy: TypeError from int(None)
    assert caught.value.status_code == 204
    assert isinstance(caught.value.__cause__, tuspipe.ProtocolError)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_file_handles_leak(
    node_server: TusServer,
    node_client: compat_client.TusClient,
    make_file: MakeFile,
    tmp_path: Path,
) -> None:
    path = make_file(41 * 4 * KiB)
    storage = filestorage.FileStorage(tmp_path / "urls")
    uploader = node_client.uploader(
        str(path), chunk_size=4 * KiB, store_url=True, url_storage=storage
    )
    uploader.upload_chunk()  # warm up: imports, the CA bundle
    before = _open_descriptors()
    for _ in range(40):
        uploader.upload_chunk()
    uploader.get_offset()
    assert _open_descriptors() == before  # tuspy leaked one handle per chunk
    assert uploader.offset == uploader.stop_at
    assert_stored(node_server, uploader.url, path)


# --------------------------------------------------------------------------------------------
# AsyncUploader: coroutines (under trio, and under asyncio for those marked both_loops),
# nothing blocking
# --------------------------------------------------------------------------------------------


class RecordingStorage(interface.Storage):
    """A dict storage that records each call and the thread it came from."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self.calls: list[tuple[str, bool]] = []

    def _note(self, name: str) -> None:
        self.calls.append((name, threading.current_thread() is threading.main_thread()))

    def get_item(self, key: str) -> str | None:
        self._note("get_item")
        return self.urls.get(key)

    def set_item(self, key: str, value: str) -> None:
        self._note("set_item")
        self.urls[key] = value

    def remove_item(self, key: str) -> None:
        self._note("remove_item")
        self.urls.pop(key, None)


def test_async_methods_are_coroutine_functions() -> None:
    for name in ("upload", "upload_chunk", "create_url", "get_offset"):
        assert inspect.iscoroutinefunction(getattr(AsyncUploader, name)), name
    assert inspect.iscoroutinefunction(AsyncTusRequest.perform)


async def test_async_constructor_does_no_io(make_file: MakeFile) -> None:
    server = FakeTusServer()
    tus = fake_client(server)
    storage = RecordingStorage()
    path = make_file(10)
    uploader = tus.async_uploader(
        str(path), url=server.create(10), store_url=True, url_storage=storage
    )
    # tuspy sent a blocking HEAD here (and read storage)
    assert server.requests == []
    assert storage.calls == []
    assert uploader.url == "http://tus.test/files/u1"
    # even an unreachable server costs the constructor nothing
    offline = compat_client.TusClient("http://127.0.0.1:9/files/")
    offline.async_uploader(str(path), url="http://127.0.0.1:9/files/x")
    assert await uploader.get_offset() == 0
    assert methods(server) == ["HEAD"]


@both_loops
async def test_async_upload(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    path = make_file(3 * MiB + 1)
    uploader = node_client.async_uploader(str(path), chunk_size=MiB)
    await uploader.upload()
    assert uploader.offset == 3 * MiB + 1
    assert_stored(node_server, uploader.url, path)
    assert await uploader.get_offset() == 3 * MiB + 1
    empty = make_file(0)
    empty_uploader = node_client.async_uploader(str(empty))
    await empty_uploader.upload()
    assert_stored(node_server, empty_uploader.url, empty)


@both_loops
async def test_async_upload_chunk_and_stop_at(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    path = make_file(2 * CHUNK + 5)
    uploader = node_client.async_uploader(str(path), chunk_size=CHUNK)
    await uploader.upload(stop_at=0)
    assert uploader.url is not None
    assert uploader.offset == 0
    # stop_at stays where upload() set it, for upload_chunk() too (as in tuspy)
    await uploader.upload_chunk()
    assert uploader.offset == 0
    uploader.stop_at = uploader.get_file_size()
    offsets = []
    while uploader.offset < uploader.stop_at:
        await uploader.upload_chunk()
        offsets.append(uploader.offset)
    assert offsets == [CHUNK, 2 * CHUNK, 2 * CHUNK + 5]
    assert_stored(node_server, uploader.url, path)
    url = await node_client.async_uploader(str(path)).create_url()
    assert url.startswith(node_server.url)
    await tuspipe.terminate_async(url)


@both_loops
async def test_async_storage_and_fingerprints_run_off_the_event_loop(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    path = make_file(2 * CHUNK)
    storage = RecordingStorage()
    first = node_client.async_uploader(
        str(path), chunk_size=CHUNK, store_url=True, url_storage=storage
    )
    await first.upload_chunk()
    second = node_client.async_uploader(
        str(path), chunk_size=CHUNK, store_url=True, url_storage=storage
    )
    await second.upload()
    assert second.url == first.url
    assert_stored(node_server, second.url, path)
    assert [name for name, _ in storage.calls] == ["get_item", "set_item", "get_item"]
    assert not any(on_main_thread for _, on_main_thread in storage.calls)


async def test_async_stale_stored_url(make_file: MakeFile) -> None:
    server = FakeTusServer()
    storage = RecordingStorage()
    path = make_file(100)
    key = compat_fingerprint.Fingerprint().get_fingerprint(io.BytesIO(path.read_bytes()))
    storage.urls[key] = "http://tus.test/files/gone"
    uploader = fake_client(server).async_uploader(str(path), store_url=True, url_storage=storage)
    await uploader.upload()
    assert uploader.url == "http://tus.test/files/u1"
    assert storage.urls[key] == uploader.url
    assert server.data_of(uploader.url) == path.read_bytes()
    assert methods(server) == ["HEAD", "POST", "HEAD", "PATCH"]


async def test_async_get_offset_after_a_stale_stored_url(make_file: MakeFile) -> None:
    server = FakeTusServer()
    storage = RecordingStorage()
    path = make_file(10)
    key = compat_fingerprint.Fingerprint().get_fingerprint(io.BytesIO(path.read_bytes()))
    storage.urls[key] = "http://tus.test/files/gone"
    uploader = fake_client(server).async_uploader(str(path), store_url=True, url_storage=storage)
    with pytest.raises(ValueError, match="no URL yet"):
        await uploader.get_offset()
    assert key not in storage.urls


async def test_async_uploads_run_concurrently(
    node_server: TusServer, node_client: compat_client.TusClient, make_file: MakeFile
) -> None:
    paths = [make_file(MiB + index) for index in range(3)]
    uploaders = [node_client.async_uploader(str(path), chunk_size=256 * KiB) for path in paths]
    async with trio.open_nursery() as nursery:
        for uploader in uploaders:
            nursery.start_soon(uploader.upload)
    for uploader, path in zip(uploaders, paths, strict=True):
        assert_stored(node_server, uploader.url, path)


async def test_async_errors_are_translated(make_file: MakeFile) -> None:
    server = FakeTusServer()
    server.script(500, {}, b"nope", method="PATCH")
    uploader = fake_client(server).async_uploader(str(make_file(10)))
    with pytest.raises(TusUploadFailed) as caught:
        await uploader.upload()
    assert (caught.value.status_code, caught.value.response_content) == (500, b"nope")


# --------------------------------------------------------------------------------------------
# TLS: the verify flag and client certificates, through a TLS front to the Node server
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_combined: Path  # certificate and key in one PEM file


def _openssl(*arguments: str) -> None:
    subprocess.run(["openssl", *arguments], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=tuspipe test CA",
    )
    made: dict[str, tuple[Path, Path]] = {}
    for name, extension in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "")):
        key, request, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
        _openssl(
            "req",
            "-new",
            *ec,
            "-keyout",
            str(key),
            "-out",
            str(request),
            "-subj",
            f"/CN=tuspipe test {name}",
        )
        options = folder / f"{name}.ext"
        options.write_text(extension + "\n" if extension else "basicConstraints=CA:FALSE\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            str(request),
            "-CA",
            str(ca),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-days",
            "2",
            "-extfile",
            str(options),
        )
        made[name] = (cert, key)
    combined = folder / "client-combined.pem"
    combined.write_bytes(made["client"][0].read_bytes() + made["client"][1].read_bytes())
    return Certificates(ca, *made["server"], *made["client"], combined)


class TlsFront:
    """A TLS server on 127.0.0.1 that demands a client certificate signed by the test CA and
    forwards the decrypted bytes to a plain HTTP server on loopback (threads; test use)."""

    def __init__(self, certificates: Certificates, upstream_port: int) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certificates.server_cert, certificates.server_key)
        self._context.load_verify_locations(certificates.ca)
        self._context.verify_mode = ssl.CERT_REQUIRED
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.handshake_failures = 0

    def __enter__(self) -> TlsFront:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()
        for sock in list(self._sockets):
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def _spawn(self, target: object, *arguments: object) -> None:
        thread = threading.Thread(target=target, args=arguments, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(connection)
            self._spawn(self._serve, connection)

    def _serve(self, connection: socket.socket) -> None:
        try:
            secure = self._context.wrap_socket(connection, server_side=True)
        except (OSError, ssl.SSLError):
            self.handshake_failures += 1
            connection.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
        self._sockets += [secure, upstream]
        self._spawn(self._pump, upstream, secure)
        self._pump(secure, upstream)

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(256 * KiB):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def url_for(self, plain_url: str) -> str:
        """The https:// URL on this front for a URL of the upstream server."""
        path = plain_url.split(f"127.0.0.1:{self._upstream_port}", 1)[1]
        return f"https://127.0.0.1:{self.port}{path}"


@pytest.fixture
def tls_front(certificates: Certificates, node_server: TusServer) -> Iterator[TlsFront]:
    port = int(node_server.url.split(":")[2].split("/")[0])
    with TlsFront(certificates, port) as front:
        yield front


@pytest.mark.parametrize("form", ["pair", "combined-path"])
def test_tls_client_certificate_and_verify_flag(
    node_server: TusServer,
    certificates: Certificates,
    tls_front: TlsFront,
    make_file: MakeFile,
    form: str,
) -> None:
    path = make_file(300 * KiB)
    # Created over plain HTTP: the Node server names uploads with its own (http) scheme.
    plain_url = tuspipe.create_upload(node_server.url, 300 * KiB)
    url = tls_front.url_for(plain_url)
    cert: str | tuple[str, str] = (
        (str(certificates.client_cert), str(certificates.client_key))
        if form == "pair"
        else str(certificates.client_combined)
    )
    tus = compat_client.TusClient(tls_front.url_for(node_server.url), client_cert=cert)
    # verify_tls_cert=True (the default): the test CA is unknown, the HEAD fails
    with pytest.raises(TusCommunicationError) as unverified:
        tus.uploader(str(path), url=url)
    assert unverified.value.status_code is None
    # verify_tls_cert=False: the certificate is not checked; the client certificate is sent
    uploader = tus.uploader(str(path), url=url, verify_tls_cert=False, chunk_size=100 * KiB)
    assert uploader.client_cert == cert
    uploader.upload()
    assert_stored(node_server, plain_url, path)
    # a CA bundle path verifies the server properly
    checked = tus.uploader(str(path), url=url, verify_tls_cert=str(certificates.ca))
    assert checked.get_offset() == 300 * KiB


def test_tls_without_a_client_certificate_is_refused(
    node_server: TusServer, tls_front: TlsFront, make_file: MakeFile
) -> None:
    tus = compat_client.TusClient(tls_front.url_for(node_server.url))
    uploader = tus.uploader(str(make_file(10)), verify_tls_cert=False)
    with pytest.raises(TusCommunicationError):
        uploader.upload()
    # (TLS 1.3: the client may see the server's alert before the server's thread has counted
    # the failed handshake; give that thread a moment)
    deadline = time.monotonic() + 5
    while tls_front.handshake_failures < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tls_front.handshake_failures >= 1


@both_loops
async def test_tls_client_certificate_on_the_async_path(
    node_server: TusServer, certificates: Certificates, tls_front: TlsFront, make_file: MakeFile
) -> None:
    # tuspy's async path mishandled a certificate given as a path string
    path = make_file(100 * KiB)
    plain_url = await tuspipe.create_upload_async(node_server.url, 100 * KiB)
    tus = compat_client.TusClient(
        tls_front.url_for(node_server.url), client_cert=str(certificates.client_combined)
    )
    uploader = tus.async_uploader(
        str(path), url=tls_front.url_for(plain_url), verify_tls_cert=False
    )
    await uploader.upload()
    assert_stored(node_server, plain_url, path)
