"""Protocol reach against the real servers: discovery, maximum size, creation-with-upload,
many files, X-HTTP-Method-Override, termination, expiration."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import trio

import tuspipe
from tuspipe._journal import Journal

from .conftest import MakeFile, TusServer, sha256_file
from .uploads import recording_client

KiB = 1024
MiB = 1024 * KiB
METADATA = {"filename": "reach.bin", "filetype": "application/octet-stream"}


async def test_server_info_of_each_server(
    node_server: TusServer, asgitus_server: TusServer, tuspyserver_server: TusServer
) -> None:
    node = await tuspipe.server_info_async(node_server.url)
    assert "1.0.0" in node.versions
    assert {"creation", "creation-with-upload", "creation-defer-length", "termination"} <= (
        node.extensions
    )
    assert not node.supports("checksum")
    assert not node.supports("concatenation")
    assert node.max_size == 2 * 1024**3
    asgitus = await tuspipe.server_info_async(asgitus_server.url)
    assert {"sha1", "sha256", "md5", "crc32", "sha512"} <= set(asgitus.checksum_algorithms)
    tuspy = await tuspipe.server_info_async(tuspyserver_server.url)
    assert tuspy.supports("concatenation")


async def test_source_over_the_maximum_size_fails_before_any_byte(
    node_server: TusServer, tmp_path: Path
) -> None:
    sparse = tmp_path / "huge.bin"
    with sparse.open("wb") as stream:
        stream.truncate(2 * 1024**3 + 1)  # one byte over the server's Tus-Max-Size
    seen: list[tuple[str, httpx.Headers]] = []
    async with recording_client(seen) as http_client:
        # with the server's capabilities known, not even the creation request is sent
        async with tuspipe.Client(http_client=http_client) as client:
            await client.server_info(node_server.url)
            with pytest.raises(tuspipe.UploadTooLargeError, match="Tus-Max-Size"):
                await client.upload(sparse, node_server.url)
        assert [method for method, _ in seen] == ["OPTIONS"]
        # without them, the server refuses the POST (413) and still no byte is sent
        seen.clear()
        with pytest.raises(tuspipe.UploadTooLargeError) as refused:
            await tuspipe.upload_async(sparse, node_server.url, http_client=http_client)
        assert refused.value.status_code == 413
        assert [method for method, _ in seen] == ["POST"]


@pytest.mark.parametrize("size", [1, 10 * KiB, 3 * MiB + 7])
async def test_creation_with_upload_saves_a_round_trip(
    node_server: TusServer, make_file: MakeFile, size: int
) -> None:
    path = make_file(size)
    seen: list[tuple[str, httpx.Headers]] = []
    async with (
        recording_client(seen) as http_client,
        tuspipe.Client(http_client=http_client) as client,
    ):
        await client.server_info(node_server.url)
        seen.clear()
        result = await client.upload(path, node_server.url, chunk_size=1 * MiB)
    methods = [method for method, _ in seen]
    # the first chunk travels in the POST; only the rest needs PATCHes
    assert methods == ["POST"] + ["PATCH"] * ((size - 1) // MiB)
    post = seen[0][1]
    assert post["content-type"] == "application/offset+octet-stream"
    assert int(post["content-length"]) == min(size, MiB)
    assert result.resumed_from == 0
    assert node_server.stored_sha256(result.url) == sha256_file(path)


async def test_with_a_checksum_every_chunk_goes_by_patch(
    asgitus_server: TusServer, make_file: MakeFile
) -> None:
    """asgi-tus offers creation-with-upload, but a checksummed chunk is sent by PATCH, where
    a corrupted one is refused (460) and sent again."""
    path = make_file(2 * MiB + 3)
    seen: list[tuple[str, httpx.Headers]] = []
    async with (
        recording_client(seen) as http_client,
        tuspipe.Client(http_client=http_client) as client,
    ):
        info = await client.server_info(asgitus_server.url)
        assert info.supports("creation-with-upload")
        result = await client.upload(path, asgitus_server.url, chunk_size=MiB, checksum="sha1")
    posts = [headers for method, headers in seen if method == "POST"]
    patches = [headers for method, headers in seen if method == "PATCH"]
    assert len(posts) == 1
    assert "content-type" not in posts[0]
    assert len(patches) == 3
    assert all(headers["upload-checksum"].startswith("sha1 ") for headers in patches)
    assert asgitus_server.stored_sha256(result.url) == sha256_file(path)


@pytest.mark.slow
async def test_upload_many_500_files(node_server: TusServer, tmp_path: Path) -> None:
    paths = []
    for index in range(500):
        path = tmp_path / f"small-{index}.bin"
        path.write_bytes(os.urandom(16 * KiB))
        paths.append(path)
    per_file: dict[int, int] = {}
    totals: list[tuple[int, int | None]] = []
    outcomes = await tuspipe.upload_many_async(
        paths,
        node_server.url,
        concurrency=8,
        on_progress=lambda index, done, total: per_file.__setitem__(index, done),
        on_total_progress=lambda done, total: totals.append((done, total)),
    )
    assert [outcome.index for outcome in outcomes] == list(range(500))
    assert all(outcome.ok for outcome in outcomes)
    for outcome in outcomes:
        assert outcome.result is not None
        assert node_server.stored_sha256(outcome.result.url) == sha256_file(paths[outcome.index])
    assert per_file == dict.fromkeys(range(500), 16 * KiB)
    assert totals[-1] == (500 * 16 * KiB, 500 * 16 * KiB)
    assert len({outcome.result.url for outcome in outcomes if outcome.result}) == 500


async def test_upload_many_one_failure_does_not_stop_the_others(
    node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    good = [make_file(100), make_file(200)]
    missing = tmp_path / "missing.bin"
    outcomes = await tuspipe.upload_many_async([good[0], missing, good[1]], node_server.url)
    assert [outcome.ok for outcome in outcomes] == [True, False, True]
    assert isinstance(outcomes[1].error, FileNotFoundError)
    for outcome, path in ((outcomes[0], good[0]), (outcomes[2], good[1])):
        assert outcome.result is not None
        assert node_server.stored_sha256(outcome.result.url) == sha256_file(path)
    with pytest.raises(FileNotFoundError):
        await tuspipe.upload_many_async([good[0], missing], node_server.url, fail_fast=True)


async def test_method_override(tuspyserver_server: TusServer, make_file: MakeFile) -> None:
    path = make_file(3 * MiB)
    seen: list[tuple[str, httpx.Headers]] = []
    async with recording_client(seen) as http_client:
        result = await tuspipe.upload_async(
            path,
            tuspyserver_server.url,
            chunk_size=MiB,
            metadata=METADATA,
            method_override=True,
            http_client=http_client,
        )
        async with tuspipe.Client(http_client=http_client, method_override=True) as client:
            await client.terminate(result.url)
    overridden = [headers.get("x-http-method-override") for method, headers in seen]
    assert {method for method, _ in seen} == {"POST"}
    assert overridden.count("PATCH") == 3
    assert overridden.count("DELETE") == 1
    with pytest.raises(tuspipe.UploadNotFoundError):
        await tuspipe.upload_status_async(result.url)


async def test_terminate_on_cancel_deletes_the_upload(
    node_server: TusServer, make_file: MakeFile, private_journal: Path
) -> None:
    path = make_file(32 * MiB)
    urls: list[str] = []
    with trio.CancelScope() as scope:

        def cancel_after_the_first_chunk(done: int, total: int | None) -> None:
            if done >= MiB:
                scope.cancel()

        await tuspipe.upload_async(
            path,
            node_server.url,
            chunk_size=MiB,
            terminate_on_cancel=True,
            on_upload_url=urls.append,
            on_progress=cancel_after_the_first_chunk,
        )
    assert scope.cancelled_caught
    (url,) = urls
    with pytest.raises(tuspipe.UploadNotFoundError):
        await tuspipe.upload_status_async(url)
    assert Journal(private_journal).unfinished() == []


async def test_cancel_without_terminate_keeps_the_upload(
    node_server: TusServer, make_file: MakeFile
) -> None:
    path = make_file(32 * MiB)
    urls: list[str] = []
    with trio.move_on_after(30) as scope:

        def cancel(done: int, total: int | None) -> None:
            if done >= MiB:
                scope.cancel()

        await tuspipe.upload_async(
            path, node_server.url, chunk_size=MiB, on_upload_url=urls.append, on_progress=cancel
        )
    status = await tuspipe.upload_status_async(urls[0])
    assert MiB <= status.offset < 32 * MiB


async def test_terminate_is_idempotent(node_server: TusServer) -> None:
    url = await tuspipe.create_upload_async(node_server.url, 10, metadata=METADATA)
    status = await tuspipe.upload_status_async(url)
    assert (status.offset, status.length, status.metadata["filename"]) == (0, 10, b"reach.bin")
    await tuspipe.terminate_async(url)
    await tuspipe.terminate_async(url)  # already gone: still success
    with pytest.raises(tuspipe.UploadNotFoundError):
        await tuspipe.upload_status_async(url)


async def test_expiry_is_journaled(
    node_server: TusServer, make_file: MakeFile, private_journal: Path
) -> None:
    path = make_file(2 * MiB)
    await tuspipe.upload_async(path, node_server.url, chunk_size=MiB, stop_at=MiB)
    (entry,) = Journal(private_journal).unfinished()
    # the Node server here is configured to expire uploads after a day
    assert entry.expires is not None
    assert "GMT" in entry.expires
