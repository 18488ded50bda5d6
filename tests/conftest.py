"""Shared fixtures: the real tus servers that `tests/run.sh test` starts.

The servers are found through the environment (`TUS_URL_<NAME>` and `TUS_DATA_<NAME>`, as
printed by `tests/servers/start-servers.sh env`). A missing server is a failure, never a skip:
run the suite through `bash tests/run.sh test`, which starts them.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio

# pytest finds hooks and fixtures by name in conftest: these run the tests marked both_loops
# under asyncio as well as trio (see tests/loops.py).
from .loops import loop_name, pytest_collection_modifyitems  # noqa: F401

MakeFile = Callable[[int], Path]
"""The `make_file` fixture: make a file of n pseudo-random bytes."""


@dataclass(frozen=True)
class TusServer:
    """A running real tus server: its creation endpoint and where it stores upload bytes."""

    name: str
    url: str
    data_dir: Path

    def stored_path(self, upload_url: str) -> Path:
        """The file holding an upload's bytes (each server names it after the upload id).

        `upload_url` may be absolute, relative (``/files/ID``) or protocol-relative
        (``//host:port/files/ID``): only its path's last segment counts."""
        upload_id = urlsplit(upload_url).path.rstrip("/").rsplit("/", 1)[-1]
        return self.data_dir / upload_id

    def stored_sha256(self, upload_url: str) -> str:
        return sha256_file(self.stored_path(upload_url))

    def upload_count(self) -> int:
        """How many uploads the server holds (files without a sidecar suffix)."""
        return sum(1 for path in self.data_dir.iterdir() if path.is_file() and not path.suffix)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _server(name: str) -> TusServer:
    key = name.upper()
    url = os.environ.get(f"TUS_URL_{key}")
    data = os.environ.get(f"TUS_DATA_{key}")
    if not url or not data:
        pytest.fail(
            f"the {name} tus server is not configured (TUS_URL_{key} / TUS_DATA_{key} unset); "
            "run the suite with `bash tests/run.sh test`, which starts the servers",
            pytrace=False,
        )
    try:
        answer = httpx.options(url, timeout=5)
    except httpx.HTTPError as exc:
        pytest.fail(f"the {name} tus server at {url} does not answer: {exc}", pytrace=False)
    # tus-node-server 0.9.0 leaves Tus-Version out of its OPTIONS answer but sends Tus-Resumable:
    # either shows a tus server
    if "tus-version" not in answer.headers and "tus-resumable" not in answer.headers:
        pytest.fail(
            f"{url} answered OPTIONS with neither Tus-Version nor Tus-Resumable: not a tus server",
            pytrace=False,
        )
    return TusServer(name=name, url=url, data_dir=Path(data))


@pytest.fixture(scope="session")
def node_server() -> TusServer:
    """@tus/server, the official Node server: core, creation, termination, expiration."""
    return _server("node")


@pytest.fixture(scope="session")
def asgitus_server() -> TusServer:
    """asgi-tus: the server here that verifies checksums (460 on a mismatch)."""
    return _server("asgitus")


@pytest.fixture(scope="session")
def tuspyserver_server() -> TusServer:
    """tuspyserver: the server here with concatenation."""
    return _server("tuspyserver")


@pytest.fixture(scope="session")
def node09_server() -> TusServer:
    """tus-node-server 0.9.0, the Node server before @tus/server: creation (with upload, with
    deferred length) and termination; no Tus-Version in OPTIONS, protocol-relative Location."""
    return _server("node09")


@pytest.fixture(autouse=True)
def private_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test journals into its own file, never into the user's cache directory."""
    path = tmp_path / "journal"
    monkeypatch.setenv("TUSPIPE_JOURNAL", str(path))
    return path


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[[int], Path]:
    """Make a file of n pseudo-random bytes (seeded, so failures reproduce)."""
    counter = 0

    def make(size: int) -> Path:
        nonlocal counter
        counter += 1
        path = tmp_path / f"source-{counter}-{size}.bin"
        generator = random.Random(f"{counter}-{size}")
        with path.open("wb") as stream:
            for start in range(0, size, 1 << 20):
                stream.write(generator.randbytes(min(1 << 20, size - start)))
        return path

    return make


@pytest.fixture
def thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The functions handed to ``trio.to_thread.run_sync`` from now on, in order."""
    calls: list[object] = []
    real = trio.to_thread.run_sync

    async def recording(function: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(function)
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", recording)
    return calls
