"""The options, declared once (tuspipe._options): every call offers the same options with the
same defaults, checks them the same way, and upload_many takes every upload option plus its
per-source hooks (against the real Node server, stored bytes compared by sha256)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, get_type_hints

import httpx
import pytest
import trio

import tuspipe
from tests.conftest import MakeFile, TusServer, sha256_file
from tests.faults import FaultTransport, Respond, Rule
from tuspipe._options import (
    ClientOptions,
    ConnectionOptions,
    ManyCallOptions,
    ManyOptions,
    TransferOptions,
    UploadCallOptions,
    UploadOptions,
)
from tuspipe._schemas import option_names

SCHEMAS = [
    ConnectionOptions,
    ClientOptions,
    TransferOptions,
    UploadOptions,
    ManyOptions,
    UploadCallOptions,
    ManyCallOptions,
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: schema.__name__)
def test_every_declared_option_has_a_default_and_a_meaning(schema: type) -> None:
    hints = get_type_hints(schema, include_extras=True)
    assert set(hints) == set(option_names(schema))
    for name, hint in hints.items():
        (option,) = hint.__metadata__
        assert option.doc.strip(), name


@pytest.mark.parametrize(
    ("call", "schemas"),
    [
        (tuspipe.upload, (UploadCallOptions,)),
        (tuspipe.upload_async, (UploadCallOptions,)),
        (tuspipe.upload_many, (ManyCallOptions,)),
        (tuspipe.Client, (ClientOptions,)),
        (tuspipe.Client.upload, (UploadOptions,)),
        (tuspipe.Client.upload_many, (ManyOptions,)),
        (tuspipe.server_info, (ClientOptions,)),
        (tuspipe.upload_status_async, (ClientOptions,)),
        (tuspipe.create_upload, (ClientOptions,)),
        (tuspipe.terminate, (ClientOptions,)),
    ],
    ids=lambda value: getattr(value, "__qualname__", ""),
)
def test_signatures_and_docstrings_list_every_option(call: Any, schemas: tuple[type]) -> None:
    signature = inspect.signature(call)
    documentation = inspect.getdoc(call) or ""
    for schema in schemas:
        for name in option_names(schema):
            parameter = signature.parameters[name]
            assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
            assert f"{name} (default " in documentation, name
    assert not any(
        parameter.kind is inspect.Parameter.VAR_KEYWORD
        for parameter in signature.parameters.values()
    )


def test_defaults_in_signatures_are_the_library_defaults() -> None:
    parameters = inspect.signature(tuspipe.upload).parameters
    assert parameters["retries"].default == tuspipe.DEFAULT_RETRIES
    assert parameters["read_size"].default is None  # DEFAULT_READ_SIZE, DEFAULT_SPAN_SIZE
    assert parameters["timeout"].default == tuspipe.DEFAULT_TIMEOUT
    assert parameters["journal"].default is True
    assert inspect.signature(tuspipe.upload_many).parameters["concurrency"].default == 4


@pytest.mark.parametrize(
    ("call", "misspelt", "suggestion"),
    [
        (
            lambda **kw: tuspipe.upload(b"x", "http://127.0.0.1:9/files/", **kw),
            "chunksize",
            "chunk_size",
        ),
        (lambda **kw: tuspipe.upload(b"x", "http://127.0.0.1:9/files/", **kw), "header", "headers"),
        (
            lambda **kw: tuspipe.upload_many([b"x"], "http://127.0.0.1:9/", **kw),
            "concurency",
            "concurrency",
        ),
        (lambda **kw: tuspipe.Client(**kw), "retrys", "retries"),
        (lambda **kw: tuspipe.server_info("http://127.0.0.1:9/", **kw), "timout", "timeout"),
    ],
)
def test_a_misspelt_option_is_a_usage_error_naming_the_right_one(
    call: Any, misspelt: str, suggestion: str
) -> None:
    with pytest.raises(tuspipe.UsageError, match=rf"'{misspelt}' is not an option.*'{suggestion}'"):
        call(**{misspelt: 1})


def test_upload_many_checks_the_shared_options_before_any_traffic() -> None:
    for bad in ({"chunk_size": 0}, {"read_ahead": -1}, {"checksum": "sha3"}, {"parallel": 0}):
        with pytest.raises(tuspipe.UsageError):
            tuspipe.upload_many([b"x"], "http://127.0.0.1:9/files/", **bad)


def test_upload_many_per_source_hooks_and_options(
    node_server: TusServer, make_file: MakeFile, tmp_path: Path
) -> None:
    """Every source is told apart in every hook, upload options reach each upload, and a
    retry is reported with the index of the source that retried."""
    paths = [make_file(size) for size in (10_000, 300_000, 70_000)]
    started: list[int] = []
    urls: dict[int, str] = {}
    retried: list[tuple[int, int]] = []
    finished: list[int] = []
    transport = FaultTransport(
        httpx.AsyncHTTPTransport(),
        # The 2nd PATCH (of whichever upload sends it) is refused once with a 503.
        [Rule("PATCH", Respond(503), nth=2)],
    )

    async def run() -> list[tuspipe.UploadOutcome]:
        async with httpx.AsyncClient(transport=transport) as http_client:
            return await tuspipe.upload_many_async(
                paths,
                node_server.url,
                concurrency=1,
                chunk_size=64 * 1024,
                retry_delays=[0],
                http_client=http_client,
                journal=tmp_path / "journal",
                metadata=lambda path: {"filename": Path(str(path)).name},
                on_start=started.append,
                on_upload_url=lambda index, url: urls.__setitem__(index, url),
                on_retry=lambda index, error, attempt, wait: retried.append((index, attempt)),
                on_outcome=lambda outcome: finished.append(outcome.index),
            )

    outcomes = trio.run(run)
    assert [outcome.ok for outcome in outcomes] == [True, True, True]
    assert started == finished == [0, 1, 2]
    assert set(urls) == {0, 1, 2}
    for index, path in enumerate(paths):
        result = outcomes[index].result
        assert result is not None
        assert result.url == urls[index]
        assert node_server.stored_sha256(result.url) == sha256_file(path)
    # Source 0 (10 kB) goes whole with its POST; the 2nd PATCH overall is source 1's second.
    assert retried == [(1, 1)]
    patch_sizes = [exchange.body_sent or 0 for exchange in transport.exchanges("PATCH")]
    assert 0 < max(patch_sizes) <= 64 * 1024
