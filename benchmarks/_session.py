"""How every harness run starts, benchmark or ``--tune``: the report, the machine, the server.

:class:`Report` prints and keeps what it printed for the report file; :func:`describe_machine`
gives the lines RESULTS.md quotes (when, where, with what, the exact command);
:func:`open_server` starts the local sink (or takes a loopback URL), asks the server what it
offers and says so in the report.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from ._http import LoopbackHttp, ServerInfo, probe_server

__all__ = ["Report", "describe_machine", "load_average", "open_server"]


class Report:
    """Prints to the terminal and keeps a copy for the report file."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self.lines: list[str] = []

    def say(self, text: str = "") -> None:
        print(text, file=self._stream, flush=True)
        self.lines.append(text)

    def save(self, path: Path) -> None:
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("tuspipe", "tuspy", "aiotus", "aiohttp", "httpx", "trio", "requests"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} missing")
    return ", ".join(found)


def _curl_version(curl: str | None) -> str:
    if curl is None:
        return "curl not installed"
    try:
        said = subprocess.run(
            [curl, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError as exc:
        return f"curl unusable ({exc})"
    words = said.split()
    return " ".join(words[:2]) if len(words) >= 2 else "curl (version unknown)"


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def describe_machine(argv: Sequence[str], curl: str | None) -> list[str]:
    """The lines RESULTS.md quotes: when, where, with what, and the exact command."""
    return [
        f"  date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"  command: python -m benchmarks {shlex.join(argv)}".rstrip(),
        f"  machine: {_cpu_model()}, {os.cpu_count()} CPUs, load average {load_average()}, "
        f"{platform.system()} {platform.release()}",
        f"  software: {platform.python_implementation()} {platform.python_version()}, "
        f"{_versions()}, {_curl_version(curl)}",
    ]


@contextlib.contextmanager
def _serve(url: str | None, verify_checksums: bool) -> Iterator[tuple[str, str]]:
    """The server's URL and a description: `url` as given, or a fresh local sink process."""
    if url:
        yield url, "given on the command line"
        return
    from .sink import SinkProcess

    with SinkProcess(verify_checksums=verify_checksums, quiet=True) as sink:
        checking = "verifies" if verify_checksums else "does not verify"
        yield sink.url, f"local discard sink in its own process, {checking} checksums"


def open_server(
    stack: contextlib.ExitStack, report: Report, url: str | None, verify_checksums: bool
) -> tuple[LoopbackHttp, str, ServerInfo] | None:
    """The HTTP connection, URL and features of the server to measure, kept open on stack:
    `url` as given, or a fresh local sink. Reports which server it is; None when it cannot
    be used (started, reached or probed), with the reason reported.
    """
    http = stack.enter_context(LoopbackHttp())
    try:
        address, how = stack.enter_context(_serve(url, verify_checksums))
        server = probe_server(http, address)
    except (OSError, ConnectionError, RuntimeError) as exc:
        report.say(f"  server: cannot use it: {exc}")
        return None
    report.say(f"  server: {address} ({how}; {server.describe()})")
    return http, address, server
