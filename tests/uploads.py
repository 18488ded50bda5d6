"""What the tests against real servers share: recorders of the requests an upload sends, a child
process that uploads and reports, the server's settled offset, and a resume that counts the
bytes it sends.

Used by ``test_resumption``, ``test_node09``, ``test_streams`` and ``test_reach``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import tuspipe
from tuspipe import Request, Response

from .waiting import settled

__all__ = [
    "UPLOAD_CHILD",
    "Seen",
    "read_event",
    "recording_client",
    "resume_counting_patches",
    "settled_offset",
    "start_upload_child",
]


@dataclass
class Seen:
    """The requests of one upload, as ``on_response`` saw them (header names lower-case)."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __call__(self, request: Request, response: Response) -> None:
        headers = {name.lower(): value for name, value in request.headers}
        self.requests.append((request.method, headers))

    def methods(self) -> list[str]:
        return [method for method, _ in self.requests]

    def of(self, method: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.requests if seen == method]


def recording_client(seen: list[tuple[str, httpx.Headers]]) -> httpx.AsyncClient:
    """An httpx client that records every request's method and headers into `seen`."""

    async def record(request: httpx.Request) -> None:
        seen.append((request.method, request.headers))

    return httpx.AsyncClient(event_hooks={"request": [record]})


# A child that uploads with the blocking API and reports, as JSON lines, the upload URL and
# every progress call (the first one is the offset the upload starts from).
UPLOAD_CHILD = """
import json, signal, sys, tuspipe
# Ctrl-C raises KeyboardInterrupt even when this process was started with SIGINT ignored (as
# a background job of a shell without job control is).
signal.signal(signal.SIGINT, signal.default_int_handler)
path, url, journal, chunk_size = sys.argv[1:5]
def say(**fields):
    print(json.dumps(fields), flush=True)
result = tuspipe.upload(
    path, url, journal=journal, chunk_size=int(chunk_size),
    on_upload_url=lambda upload_url: say(url=upload_url),
    on_progress=lambda done, total: say(offset=done),
)
say(done=True, resumed_from=result.resumed_from)
"""


def start_upload_child(
    path: Path, url: str, journal: Path, chunk_size: int
) -> subprocess.Popen[str]:
    """:data:`UPLOAD_CHILD` uploading `path` to `url`, journaled in `journal`."""
    return subprocess.Popen(
        [sys.executable, "-c", UPLOAD_CHILD, str(path), url, str(journal), str(chunk_size)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def read_event(child: subprocess.Popen[str]) -> dict[str, Any]:
    """The child's next report; fails the test when the child ended instead."""
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        child.wait(10)
        stderr = child.stderr.read() if child.stderr else ""
        pytest.fail(f"the child ended early (exit {child.returncode}): {stderr[-2000:]}")
    event: dict[str, Any] = json.loads(line)
    return event


def settled_offset(upload_url: str) -> int:
    """The server's offset once it has settled (an aborted PATCH may still be landing)."""

    def ask() -> int:
        answer = httpx.head(upload_url, headers={"Tus-Resumable": "1.0.0"}, timeout=10)
        assert answer.status_code in (200, 204), answer
        return int(answer.headers["upload-offset"])

    return settled(ask)


def resume_counting_patches(
    path: Path, url: str, journal: Path, chunk_size: int
) -> tuple[tuspipe.UploadResult, list[int]]:
    """Upload `path` again through `journal` (so it resumes), in this process; the result and
    the body length of every PATCH it sent."""
    sent: list[int] = []

    async def count(request: httpx.Request) -> None:
        if request.method == "PATCH":
            sent.append(int(request.headers["content-length"]))

    async def finish() -> tuspipe.UploadResult:
        async with httpx.AsyncClient(event_hooks={"request": [count]}) as client:
            return await tuspipe.upload_async(
                path, url, journal=journal, chunk_size=chunk_size, http_client=client
            )

    return trio.run(finish), sent
