"""The curl ceilings: what curl is asked to do, and what its output means.

Two rows are measured with curl, each in one curl process:

* ``defaults``: the big file in one ``PATCH`` (``curl -X PATCH -T file``) to an upload the
  harness created first; the time is curl's own ``time_total``.
* ``many``: one creation-with-upload ``POST`` per small file (``Tus-Resumable``,
  ``Upload-Length``, ``Content-Type: application/offset+octet-stream``, the file as the body),
  ``--parallel --parallel-max N``, every request an entry of one ``-K`` config file. curl
  needs ``next`` between the entries (without it the later ``url`` lines would replace the
  earlier ones) and none after the last (an empty entry is an error). Each entry writes its
  file's index, the status and the ``Location`` header (``%header{location}``, curl >= 7.84),
  so the harness can check and delete every upload. The time is the whole process's, from
  its spawn to its end, curl's own start included: ``time_total`` is per transfer, and a
  curl this old has no clock to write out.

Nothing here runs curl: :class:`benchmarks._runs.Runner` does, with the process's CPU time
from ``os.wait4``. These functions build the command lines and the config, and read the
output: what curl said when it is not a success is the run's error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urljoin

from ._http import require_loopback

__all__ = [
    "CurlOutputError",
    "many_command",
    "parse_patch_output",
    "patch_command",
    "read_many_output",
    "write_many_config",
]

#: Headers every tus request of curl carries. "Expect:" (empty) drops curl's
#: "Expect: 100-continue" round trip, which no other client makes.
_COMMON_HEADERS = (
    "Tus-Resumable: 1.0.0",
    "Content-Type: application/offset+octet-stream",
    "Expect:",
)


class CurlOutputError(ValueError):
    """curl ended without the answers of a successful run; the message says what it said."""


def patch_command(curl: str, path: Path, upload_url: str) -> list[str]:
    """curl sending the whole file in one PATCH at offset 0 to `upload_url`."""
    headers = [*_COMMON_HEADERS, "Upload-Offset: 0"]
    return [
        curl,
        "--silent",
        "--show-error",
        "--http1.1",
        "--request",
        "PATCH",
        "--upload-file",
        str(path),
        *(word for header in headers for word in ("--header", header)),
        "--output",
        os.devnull,
        "--write-out",
        "%{http_code} %{time_total}",
        upload_url,
    ]


def parse_patch_output(said: str) -> float:
    """The PATCH's seconds (curl's ``time_total``), when curl wrote ``204 <seconds>``."""
    words = said.split()
    if len(words) != 2 or words[0] != "204":
        raise CurlOutputError(f"curl said {' '.join(words)!r}, not 204 and a time")
    return float(words[1])


def _quoted(text: str, *, newline: bool = False) -> str:
    """`text` as a double-quoted curl config value (backslash and quote escaped), with
    curl's ``\\n`` escape at the end when `newline`."""
    if any(character in text for character in "\r\n\t"):
        raise ValueError(f"a curl config value cannot hold a control character: {text!r}")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped + ("\\n" if newline else "") + '"'


def write_many_config(config: Path, url: str, paths: Sequence[Path]) -> None:
    """Write the ``-K`` file: one creation-with-upload POST of each file to `url`."""
    require_loopback(url)
    entries = []
    for index, path in enumerate(paths):
        size = path.stat().st_size
        lines = [
            f"url = {_quoted(url)}",
            'request = "POST"',
            *(f"header = {_quoted(h)}" for h in (*_COMMON_HEADERS, f"Upload-Length: {size}")),
            # --data-binary sends the file's bytes as they are (no newline stripping).
            f"data-binary = {_quoted('@' + str(path))}",
            f"output = {_quoted(os.devnull)}",
            f"write-out = {_quoted(f'{index} %{{http_code}} %header{{location}}', newline=True)}",
        ]
        entries.append("\n".join(lines) + "\n")
    config.write_text("next\n".join(entries), encoding="utf-8")


def many_command(curl: str, config: Path, parallel: int) -> list[str]:
    """curl running every request of `config`, `parallel` at a time."""
    return [
        curl,
        "--no-progress-meter",  # --silent does not quiet --parallel's meter here
        "--http1.1",
        "--parallel",
        "--parallel-max",
        str(parallel),
        "--config",
        str(config),
    ]


def read_many_output(said: str, url: str, count: int) -> tuple[list[str], str | None]:
    """The upload URLs curl wrote (lines ``<index> <status> <location>``), in file order,
    and None when every one of the `count` files was answered 201 with a Location once,
    else what went wrong. The URLs are returned either way, so they can all be deleted."""
    urls: list[str | None] = [None] * count
    problems: list[str] = []
    for line in said.splitlines():
        words = line.split()
        if not words:
            continue
        if len(words) not in (2, 3) or not words[0].isdigit() or int(words[0]) >= count:
            problems.append(f"unexpected line {line!r}")
            continue
        index, status = int(words[0]), words[1]
        location = words[2] if len(words) == 3 else ""
        if not location or location.startswith("%"):
            # "%header{location}" written as it is: a curl older than 7.84.
            problems.append(f"file {index}: POST answered {status} without a Location we read")
            continue
        try:
            found = require_loopback(urljoin(url, location))
        except ValueError as exc:
            problems.append(f"file {index}: {exc}")
            continue
        if urls[index] is not None:
            problems.append(f"file {index} answered twice")
        urls[index] = found
        if status != "201":
            problems.append(f"file {index}: POST answered {status}")
    missing = sum(found is None for found in urls)
    if missing:
        problems.append(f"no upload for {missing} of {count} files")
    problem = None
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        problem = "curl: " + "; ".join(problems[:3]) + more
    return [found for found in urls if found is not None], problem
