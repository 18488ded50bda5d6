"""The ``tuspipe`` command: upload files, inspect servers and uploads, tend the journal.

It is a thin shell over tuspipe's public API (``tuspipe.upload_async``, ``server_info``,
``upload_status``, ``terminate``, ``Journal``) plus rich for the progress display. rich is the
``tuspipe[cli]`` extra and is imported lazily, so the library never needs it; without it the
command says how to install it and exits 2.

Output discipline: results (upload URLs, ``--json`` objects, ``info``/``status`` reports) go
to standard output; progress, warnings, errors and the resume hint go to standard error, so
``tuspipe upload --json ... > results.jsonl`` keeps a clean file while the terminal shows bars.

FILE ``-`` uploads standard input: a pipe is read once, as it is uploaded (tus deferred length:
the length is declared by the last PATCH), so its progress shows bytes and rate but no
percentage until it ends, and it cannot be resumed; ``< file`` is uploaded like that file.

Exit codes (also in ``tuspipe --help``), one per failure class; with several files the
highest code of any file is the command's:

====  =====================================================================================
0     success
1     anything unexpected (a bug: please report it with the ``--debug`` output)
2     usage: bad arguments or options (``tuspipe.UsageError``)
3     a local file could not be read, or changed during the upload (``OSError``,
      ``tuspipe.SourceChangedError``)
4     the server refused (``tuspipe.ResponseError``: an error status, or an answer that breaks
      the tus protocol)
5     the network gave up: no answer after the retries ran out (``tuspipe.NetworkError``)
6     the server's TLS certificate could not be verified (``tuspipe.TLSVerificationError``;
      never retried: pass ``--cacert``, or ``--insecure``)
130   interrupted (Ctrl-C); the resuming command is printed
====  =====================================================================================
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import contextvars
import json
import logging
import math
import mimetypes
import os
import re
import shlex
import signal
import stat
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from fractions import Fraction
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TextIO

import trio

import tuspipe

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, Task, TaskID

__all__ = [
    "EXIT_CODES",
    "Display",
    "PlainDisplay",
    "RichDisplay",
    "build_parser",
    "decode_metadata_value",
    "describe_error",
    "exit_code_for",
    "format_bytes",
    "main",
    "make_display",
    "parse_size",
]

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_LOCAL = 3
EXIT_REFUSED = 4
EXIT_NETWORK = 5
EXIT_TLS = 6
EXIT_INTERRUPTED = 130

#: The documented exit codes and what each means (printed by ``tuspipe --help``).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_UNEXPECTED: "anything unexpected (please report it, with the --debug output)",
    EXIT_USAGE: "usage: bad arguments or options (tuspipe.UsageError)",
    EXIT_LOCAL: "a local file could not be read, or changed during the upload",
    EXIT_REFUSED: "the server refused (an error status, or an answer that breaks tus)",
    EXIT_NETWORK: "the network gave up: no answer after the retries ran out",
    EXIT_TLS: "the server's TLS certificate could not be verified (--cacert, --insecure)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); the command that resumes is printed",
}

RICH_MISSING = "the tuspipe command needs rich: pip install 'tuspipe[cli]'"

#: The FILE that stands for standard input: uploaded as it is read, its length declared once
#: it ends (tus deferred length), unless it is a regular file (``< file``).
STDIN = "-"
STDIN_METADATA = {"filename": "stdin", "filetype": "application/octet-stream"}

DEFAULT_CONCURRENCY = 4


def exit_code_for(error: BaseException) -> int:
    """The exit code of the failure class `error` belongs to (see the module docstring)."""
    if isinstance(error, tuspipe.UsageError):
        return EXIT_USAGE
    if isinstance(error, (OSError, tuspipe.SourceChangedError)):
        return EXIT_LOCAL
    if isinstance(error, tuspipe.ResponseError):
        return EXIT_REFUSED
    if isinstance(error, tuspipe.NetworkError):
        return EXIT_NETWORK
    if isinstance(error, tuspipe.TLSVerificationError):
        return EXIT_TLS
    return EXIT_UNEXPECTED


def describe_error(error: BaseException) -> str:
    """One line a user can act on; OSErrors read like the shell's ("x: No such file ...")."""
    if isinstance(error, OSError) and error.strerror:
        if error.filename is not None:
            return f"{os.fsdecode(error.filename)}: {error.strerror}"
        return error.strerror
    if isinstance(error, (tuspipe.TusError, OSError)):
        text = str(error)
        return text or type(error).__name__
    return f"unexpected {type(error).__name__}: {error}"


# ---- option values -------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})


def parse_size(text: str) -> int:
    """Bytes in `text`: ``8MiB``, ``512KB``, ``1.5GiB``, ``1048576`` (KB = 1000, KiB = 1024).

    Raises ValueError for anything else, or for a size that is not a positive whole number of
    bytes.
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a size; give bytes, or a number with a unit: "
            "B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
        )
    number, unit = match.groups()
    value = Fraction(number) * _UNITS[(unit or "b").lower()]
    if value.denominator != 1 or value <= 0:
        raise ValueError(f"{text!r} is not a positive whole number of bytes")
    return int(value)


class _ByteCount(int):
    """A size option's bytes that prints as the user wrote it (``1MiB``, not ``1048576``), so
    the command that resumes an upload reads like the one typed."""

    text: str

    def __new__(cls, text: str) -> _ByteCount:
        value = super().__new__(cls, parse_size(text))
        value.text = text
        return value

    def __str__(self) -> str:
        return self.text


def _size_argument(text: str) -> int:
    try:
        return _ByteCount(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be {minimum} or more")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _header(text: str) -> str:
    name, colon, _ = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a header; write it as 'Name: value'")
    return text


def _metadata_pair(text: str) -> str:
    key, equals, _ = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not metadata; write it as key=value")
    return text


def format_bytes(count: float) -> str:
    """`count` bytes in binary units: ``512 B``, ``1.5 KiB``, ``256.0 MiB``."""
    if count < 1024:
        return f"{count:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        count /= 1024
        if count < 1024 or unit == "TiB":
            break
    return f"{count:.1f} {unit}"


# ---- the parser ------------------------------------------------------------------------------

_EPILOG = (
    "exit codes:\n"
    + "".join(f"  {code:<4} {meaning}\n" for code, meaning in EXIT_CODES.items())
    + "  With several files, the exit code is the highest of any file's.\n"
    "\n"
    "Run 'tuspipe COMMAND --help' for a command's options."
)

_UPLOAD_EPILOG = (
    "Interrupted uploads resume: run the same command again and the journal (on by default; "
    "$TUSPIPE_JOURNAL, else ~/.cache/tuspipe/journal) continues each file where the server "
    "left off. Ctrl-C stops cleanly and prints the command that resumes. "
    "FILE '-' is standard input: a pipe is uploaded as it is read, its length declared when "
    "it ends (the server must support tus deferred length); it is read once, so it cannot "
    "be resumed."
)


class _Container(Protocol):
    """A parser, an argument group or a mutually exclusive group."""

    def add_argument(self, *flags: str, **options: Any) -> argparse.Action: ...


def _add(
    container: _Container,
    recorded: list[argparse.Action],
    *flags: str,
    **options: Any,
) -> None:
    """Add an option and remember it, so an upload's command line can be written back."""
    recorded.append(container.add_argument(*flags, **options))


def _add_output_options(parser: argparse.ArgumentParser, recorded: list[argparse.Action]) -> None:
    group = parser.add_argument_group("output")
    _add(group, recorded, "--json", action="store_true", help="print results as JSON lines")
    _add(group, recorded, "--quiet", "-q", action="store_true", help="print nothing but errors")
    _add(group, recorded, "--debug", action="store_true", help="log every request; tracebacks")


def _add_connection_options(
    parser: argparse.ArgumentParser, recorded: list[argparse.Action]
) -> None:
    group = parser.add_argument_group("connection")
    _add(
        group,
        recorded,
        "--header",
        "-H",
        action="append",
        default=[],
        type=_header,
        metavar="'NAME: VALUE'",
        help="an extra header for every request (repeatable)",
    )
    tls = group.add_mutually_exclusive_group()
    _add(tls, recorded, "--insecure", "-k", action="store_true", help="do not verify TLS")
    _add(tls, recorded, "--cacert", metavar="PATH", help="verify TLS with this CA bundle")
    _add(group, recorded, "--cert", metavar="PATH", help="client certificate (PEM)")
    _add(group, recorded, "--key", metavar="PATH", help="the client certificate's key (PEM)")
    _add(
        group,
        recorded,
        "--timeout",
        type=_seconds,
        default=tuspipe.DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"to connect (default {tuspipe.DEFAULT_TIMEOUT:g})",
    )
    _add(
        group,
        recorded,
        "--retries",
        type=_whole_number(0),
        default=tuspipe.DEFAULT_RETRIES,
        metavar="N",
        help=f"tries again after a transient failure (default {tuspipe.DEFAULT_RETRIES})",
    )


def build_parser() -> tuple[argparse.ArgumentParser, list[argparse.Action]]:
    """The argument parser, and the upload command's options (to write its command back)."""
    parser = argparse.ArgumentParser(
        prog="tuspipe",
        description="Upload files to a tus server (resumable uploads, tus 1.0.0).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tuspipe {tuspipe.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    ignored: list[argparse.Action] = []

    upload_recorded: list[argparse.Action] = []
    upload = commands.add_parser(
        "upload",
        usage="%(prog)s [options] FILE... URL\n"
        "       %(prog)s [options] FILE --upload-url UPLOAD_URL",
        help="upload files to a creation URL",
        description="Upload FILEs to the tus creation URL (e.g. https://tus.example/files/).",
        epilog=_UPLOAD_EPILOG,
    )
    upload.add_argument(
        "arguments",
        nargs="+",
        metavar="FILE... URL",
        help="the files to upload ('-': standard input, uploaded as it is read), then the "
        "creation URL",
    )
    options = upload.add_argument_group("upload")
    _add(
        options,
        upload_recorded,
        "--chunk-size",
        type=_size_argument,
        default=None,
        metavar="SIZE",
        help="bytes per PATCH: 64MiB, 512KB, 1GiB or bytes (default 64MiB for files, 8MiB for "
        "standard input)",
    )
    _add(
        options,
        upload_recorded,
        "--metadata",
        "-m",
        action="append",
        default=[],
        type=_metadata_pair,
        metavar="KEY=VALUE",
        help="Upload-Metadata (repeatable); filename and filetype default from each file",
    )
    _add(
        options,
        upload_recorded,
        "--checksum",
        default="none",
        metavar="ALGORITHM",
        help="auto, none (default), or sha1, sha256, sha512, md5, crc32",
    )
    _add(
        options,
        upload_recorded,
        "--concurrency",
        "-j",
        type=_whole_number(1),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"files uploaded at once (default {DEFAULT_CONCURRENCY})",
    )
    _add(
        options,
        upload_recorded,
        "--stall-timeout",
        type=_seconds,
        default=tuspipe.DEFAULT_STALL_TIMEOUT,
        metavar="SECONDS",
        help="abort and retry a request that moves no byte for this long "
        f"(default {tuspipe.DEFAULT_STALL_TIMEOUT:g})",
    )
    journal = options.add_mutually_exclusive_group()
    _add(journal, upload_recorded, "--journal", metavar="PATH", help="the journal file")
    _add(
        journal,
        upload_recorded,
        "--no-journal",
        action="store_true",
        help="remember nothing (resume with --upload-url)",
    )
    _add(
        options,
        upload_recorded,
        "--no-resume",
        action="store_true",
        help="make new uploads even if the journal knows unfinished ones",
    )
    options.add_argument(
        "--upload-url", metavar="URL", help="continue this upload (one file only; URL optional)"
    )
    _add_connection_options(upload, upload_recorded)
    _add_output_options(upload, upload_recorded)

    info = commands.add_parser(
        "info",
        help="what a tus server supports",
        description="Ask a tus server (OPTIONS) for its versions, extensions, maximum size "
        "and checksum algorithms.",
    )
    info.add_argument("url", metavar="URL", help="the creation URL")
    _add_connection_options(info, ignored)
    _add_output_options(info, ignored)

    status = commands.add_parser(
        "status",
        help="an upload's offset, length, expiry and metadata",
        description="Ask the server (HEAD) how far an upload got.",
    )
    status.add_argument("url", metavar="UPLOAD_URL")
    _add_connection_options(status, ignored)
    _add_output_options(status, ignored)

    delete = commands.add_parser(
        "delete", help="delete an upload", description="Delete an upload (tus termination)."
    )
    delete.add_argument("url", metavar="UPLOAD_URL")
    _add_connection_options(delete, ignored)
    _add_output_options(delete, ignored)

    journal_parser = commands.add_parser(
        "journal",
        help="list, forget or clear remembered unfinished uploads",
        description="The journal remembers unfinished uploads so they resume.",
    )
    journal_commands = journal_parser.add_subparsers(
        dest="journal_command", metavar="ACTION", required=True
    )
    listing = journal_commands.add_parser("list", help="list unfinished uploads")
    forget = journal_commands.add_parser("forget", help="forget one upload")
    forget.add_argument("key", metavar="KEY", help="its key (or a unique start of it)")
    clear = journal_commands.add_parser("clear", help="forget every unfinished upload")
    clear.add_argument(
        "--expired", action="store_true", help="only those whose server expiry has passed"
    )
    for sub in (listing, forget, clear):
        sub.add_argument("--journal", metavar="PATH", help="the journal file")
        _add_output_options(sub, ignored)
    return parser, upload_recorded


# ---- output ----------------------------------------------------------------------------------


@dataclass
class _Job:
    """One file of an upload command, and what became of it."""

    index: int
    path: str
    size: int | None = 0  # None: standard input, of unknown size until it ends
    url: str | None = None
    began: float | None = None  # when the upload call started
    first_progress: float | None = None
    resumed_from: int = 0
    acknowledged: int = 0
    retries: int = 0
    result: tuspipe.UploadResult | None = None
    error: BaseException | None = None
    exit_code: int | None = None
    seconds: float = 0.0
    last_decile: int = 0
    next_note: int = 0  # (unknown size) the acknowledged bytes of the next plain line

    @property
    def name(self) -> str:
        return "standard input" if self.path == STDIN else self.path

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None


_CURRENT_JOB: contextvars.ContextVar[_Job | None] = contextvars.ContextVar(
    "tuspipe_cli_job", default=None
)


_UNKNOWN_SIZE_FIRST_NOTE = 1 << 20
_UNKNOWN_SIZE_MAX_NOTE_STEP = 1 << 30


def _write(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


class Display:
    """Where the command's words go. This base class is the ``--quiet`` display: results and
    errors only. Progress events are no-ops here."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.reported: set[str] = set()  # usage errors already said, said once

    def begin(self, jobs: Sequence[_Job]) -> None:
        pass

    def started(self, job: _Job) -> None:
        pass

    def advanced(self, job: _Job) -> None:
        pass

    def retried(self, job: _Job) -> None:
        """`job.retries` went up (the retry's reason arrives as a logged warning)."""

    def ended(self, job: _Job) -> None:
        pass

    def end(self) -> None:
        pass

    def result(self, line: str) -> None:
        """A result, on standard output."""
        _write(sys.stdout, line)

    def error(self, line: str) -> None:
        """An error (never silenced), on standard error."""
        _write(sys.stderr, line)

    def note(self, line: str) -> None:
        """A warning or event, on standard error unless quiet."""
        if not self.quiet:
            _write(sys.stderr, line)


class PlainDisplay(Display):
    """For a pipe or a log file: a line when a file starts, per 10 % it advances, and when it
    ends."""

    def started(self, job: _Job) -> None:
        where = job.url or "?"
        if job.size is None:
            self.note(f"{job.name}: uploading a stream of unknown size to {where}")
            job.next_note = _UNKNOWN_SIZE_FIRST_NOTE
        elif job.resumed_from:
            self.note(
                f"{job.name}: resuming {where} at {format_bytes(job.resumed_from)} "
                f"of {format_bytes(job.size)}"
            )
        else:
            self.note(f"{job.name}: uploading {format_bytes(job.size)} to {where}")
        job.last_decile = job.acknowledged * 10 // job.size if job.size else 0

    def advanced(self, job: _Job) -> None:
        if job.size is None:
            # No percentage of an unknown size: a line at 1, 2, 4, 8 ... MiB (then each GiB).
            if job.acknowledged >= job.next_note:
                while job.next_note <= job.acknowledged:
                    job.next_note += min(job.next_note, _UNKNOWN_SIZE_MAX_NOTE_STEP)
                self.note(f"{job.name}: {self._state(job)}")
            return
        decile = job.acknowledged * 10 // job.size if job.size else 10
        if decile > job.last_decile:
            job.last_decile = decile
            self.note(f"{job.name}: {self._state(job)}")

    def _state(self, job: _Job) -> str:
        moved = job.acknowledged - job.resumed_from
        elapsed = time.monotonic() - (job.first_progress or time.monotonic())
        rate = f", {format_bytes(moved / elapsed)}/s" if elapsed > 0 and moved > 0 else ""
        if job.size is None:
            return f"{format_bytes(job.acknowledged)} so far{rate}"
        percent = job.acknowledged * 100 // job.size if job.size else 100
        return f"{percent}% ({format_bytes(job.acknowledged)} of {format_bytes(job.size)}{rate})"


class RichDisplay(Display):
    """For a terminal: a rich progress bar per file and one for the total, with bytes, rate,
    time left and the retries so far."""

    def __init__(self, console: Console, *, stdout_is_terminal: bool) -> None:
        super().__init__(quiet=False)
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
        )
        from rich.table import Column

        self._console = console
        self._stdout_is_terminal = stdout_is_terminal
        self._progress: Progress = Progress(
            TextColumn(
                "{task.description}",
                table_column=Column(no_wrap=True, overflow="ellipsis", max_width=40),
            ),
            BarColumn(),
            TaskProgressColumn(),
            DownloadColumn(binary_units=True),
            _binary_rate_column(),
            _time_remaining_column(),
            TextColumn("{task.fields[retries]}", style="yellow"),
            console=console,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._tasks: dict[int, TaskID] = {}
        self._total: TaskID | None = None
        self._total_size: int | None = 0
        self._jobs: Sequence[_Job] = ()

    @staticmethod
    def _label(job: _Job, mark: str = "") -> str:
        from rich.markup import escape

        return f"{mark}{escape(job.name)}"

    def begin(self, jobs: Sequence[_Job]) -> None:
        self._jobs = jobs
        for job in jobs:
            if job.error is None:
                self._tasks[job.index] = self._progress.add_task(
                    self._label(job), total=job.size, start=False, retries=""
                )
        if len(self._tasks) > 1:
            self._total_size = self._sum_of_sizes()
            self._total = self._progress.add_task("[bold]total", total=self._total_size, retries="")
        self._progress.start()

    def _sum_of_sizes(self) -> int | None:
        """The bytes of all files, or None while one of them has no known size (stdin)."""
        sizes = [job.size for job in self._jobs if job.error is None]
        return None if None in sizes else sum(size or 0 for size in sizes)

    def _update_total(self, *, restart: bool = False) -> None:
        if self._total is None:
            return
        if self._total_size is None and (total_size := self._sum_of_sizes()) is not None:
            # The stream of unknown size ended: the total bar gets its total (and percentage).
            self._total_size = total_size
            self._progress.update(self._total, total=total_size)
        done = sum(job.acknowledged for job in self._jobs)
        retries = sum(job.retries for job in self._jobs)
        text = _retry_text(retries)
        if restart:
            # Bytes found on the server are no transfer: restart the rate estimate after them.
            self._progress.reset(self._total, total=self._total_size, completed=done, retries=text)
        else:
            self._progress.update(self._total, completed=done, retries=text)

    def started(self, job: _Job) -> None:
        task = self._tasks[job.index]
        self._progress.reset(task, total=job.size, completed=job.acknowledged, retries="")
        self._update_total(restart=job.acknowledged > 0)

    def advanced(self, job: _Job) -> None:
        # (total=None changes nothing: a stream's bar gets its total once the size is known)
        self._progress.update(self._tasks[job.index], total=job.size, completed=job.acknowledged)
        self._update_total()

    def retried(self, job: _Job) -> None:
        task = self._tasks.get(job.index)
        if task is not None:
            self._progress.update(task, retries=_retry_text(job.retries))
        self._update_total()

    def ended(self, job: _Job) -> None:
        task = self._tasks.get(job.index)
        if task is None:
            return
        if job.result is not None:
            mark = "[green]✓[/] "
        elif job.error is not None:
            mark = "[red]✗[/] "
        else:
            mark = "[yellow]‖[/] "  # interrupted: resumable
        self._progress.update(task, description=self._label(job, mark))
        self._progress.stop_task(task)

    def end(self) -> None:
        self._progress.stop()

    def _print(self, line: str, style: str | None = None) -> None:
        self._console.print(line, markup=False, highlight=False, soft_wrap=True, style=style)

    def result(self, line: str) -> None:
        # A terminal on standard output is the terminal the bars are drawn on: print above
        # them. Anything else (a pipe, a file) gets the plain line.
        if self._stdout_is_terminal:
            self._print(line)
        else:
            super().result(line)

    def error(self, line: str) -> None:
        self._print(line, style="red")

    def note(self, line: str) -> None:
        self._print(line, style="dim")


def _binary_rate_column() -> ProgressColumn:
    """Transfer rate in MiB/s, matching the byte counts (rich's own column says MB/s)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class BinaryRateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            text = "?" if speed is None else f"{format_bytes(speed)}/s"
            return Text(text, style="progress.data.speed")

    return BinaryRateColumn()


def _time_remaining_column() -> ProgressColumn:
    """The time left, and the time taken once finished; for a stream of unknown size, which
    has no time left to tell, the time so far."""
    from rich.progress import ProgressColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.text import Text

    remaining = TimeRemainingColumn(elapsed_when_finished=True)
    elapsed = TimeElapsedColumn()

    class TimeColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            return elapsed.render(task) if task.total is None else remaining.render(task)

    return TimeColumn()


def _retry_text(count: int) -> str:
    if not count:
        return ""
    return f"{count} retry" if count == 1 else f"{count} retries"


def make_display(args: argparse.Namespace) -> Display:
    if args.quiet:
        return Display(quiet=True)
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal and not console.is_dumb_terminal:
        return RichDisplay(console, stdout_is_terminal=sys.stdout.isatty())
    return PlainDisplay(quiet=False)


class _LogBridge(logging.Handler):
    """tuspipe's log records onto the display: warnings (each retry is one, with its reason),
    and with --debug everything; named by the file whose upload logged them."""

    def __init__(self, display: Display, *, debug: bool) -> None:
        super().__init__(logging.DEBUG if debug else logging.WARNING)
        self.display = display
        self.debug = debug

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            job = _CURRENT_JOB.get()
            prefix = f"{job.name}: " if job is not None else ""
            if self.debug:
                self.display.error(f"tuspipe: {record.levelname.lower()}: {prefix}{message}")
            else:
                self.display.note(f"tuspipe: warning: {prefix}{message}")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _logging_to(display: Display, *, debug: bool) -> Iterator[None]:
    logger = logging.getLogger("tuspipe")
    bridge = _LogBridge(display, debug=debug)
    level = logger.level
    logger.addHandler(bridge)
    if debug:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(bridge)
        logger.setLevel(level)


def _print_json(display: Display, value: dict[str, Any]) -> None:
    display.result(json.dumps(value, ensure_ascii=False))


def _report_failure(display: Display, error: BaseException, *, debug: bool, prefix: str) -> int:
    code = exit_code_for(error)
    display.error(f"tuspipe: error: {prefix}{describe_error(error)}")
    if debug:
        display.error("".join(traceback.format_exception(error)).rstrip())
    elif code == EXIT_UNEXPECTED:
        display.error("tuspipe: run with --debug for the traceback")
    return code


# ---- upload ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _UploadPlan:
    """What the upload command was asked for, checked and ready for the API."""

    url: str | None
    upload_url: str | None
    options: dict[str, Any]
    metadata: dict[str, str]
    concurrency: int
    journal_on: bool
    command: list[str]  # the command line as typed, to print it back
    rebuild: Callable[[Sequence[str], Sequence[str]], list[str]]  # (files, extra options)


@dataclass
class _Interrupted:
    """Whether Ctrl-C cancelled the uploads."""

    interrupted: bool = False


def _default_metadata(path: str) -> dict[str, str]:
    filetype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return {"filename": os.path.basename(path), "filetype": filetype}


def _split_upload_arguments(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """FILE... URL, or with --upload-url: FILE [URL]. Raises UsageError."""
    arguments: list[str] = list(args.arguments)
    if args.upload_url is not None:
        if len(arguments) == 2 and "://" in arguments[1]:
            return arguments[:1], arguments[1]
        if len(arguments) != 1:
            raise tuspipe.UsageError("--upload-url continues one upload: give exactly one FILE")
        return arguments, None
    if len(arguments) < 2 or "://" not in arguments[-1]:
        last = arguments[-1]
        raise tuspipe.UsageError(
            "give one or more FILEs, then the creation URL "
            f"(like https://tus.example/files/); {last!r} is not a URL"
        )
    return arguments[:-1], arguments[-1]


def _connection_options(args: argparse.Namespace) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for line in args.header:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    verify: bool | str = True
    if args.insecure:
        verify = False
    elif args.cacert is not None:
        verify = args.cacert
    cert: str | tuple[str, str] | None = args.cert
    if args.key is not None:
        if args.cert is None:
            raise tuspipe.UsageError("--key needs --cert (the certificate it belongs to)")
        cert = (args.cert, args.key)
    return {
        "headers": headers,
        "verify": verify,
        "cert": cert,
        "timeout": args.timeout,
        "retries": args.retries,
    }


def _option_tokens(args: argparse.Namespace, recorded: Sequence[argparse.Action]) -> list[str]:
    """The options of `args` that differ from their defaults, as command-line tokens."""
    tokens: list[str] = []
    for action in recorded:
        value = getattr(args, action.dest)
        if value == action.default or action.dest == "no_resume":
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:
            tokens.append(flag)
        elif isinstance(value, list):
            for item in value:
                tokens += [flag, str(item)]
        else:
            tokens += [flag, str(value)]
    return tokens


def _upload_plan(
    args: argparse.Namespace,
    recorded: Sequence[argparse.Action],
    invocation: list[str],
    url: str | None,
) -> _UploadPlan:
    checksum: str | None = args.checksum
    if checksum is not None and checksum.lower() == "none":
        checksum = None
    journal: bool | str = False if args.no_journal else (args.journal or True)
    metadata: dict[str, str] = {}
    for pair in args.metadata:
        key, _, value = pair.partition("=")
        metadata[key] = value
    options: dict[str, Any] = {
        **_connection_options(args),
        "chunk_size": None if args.chunk_size is None else int(args.chunk_size),
        "checksum": checksum,
        "journal": journal,
        "resume": not args.no_resume,
        "stall_timeout": args.stall_timeout,
    }
    option_tokens = _option_tokens(args, recorded)

    def rebuild(paths: Sequence[str], extra: Sequence[str]) -> list[str]:
        positionals = [*paths, url] if url is not None else list(paths)
        # "--" keeps a file named like an option from being read as one.
        return [*invocation, "upload", *option_tokens, *extra, "--", *positionals]

    return _UploadPlan(
        url=url,
        upload_url=args.upload_url,
        options=options,
        metadata=metadata,
        concurrency=args.concurrency,
        journal_on=journal is not False,
        command=[*invocation, *args.original],
        rebuild=rebuild,
    )


async def _upload_one(
    job: _Job,
    plan: _UploadPlan,
    display: Display,
    limiter: trio.CapacityLimiter,
    debug: bool,
) -> None:
    async with limiter:
        _CURRENT_JOB.set(job)  # this task's context only: the log bridge attributes by it
        job.began = time.monotonic()

        def on_upload_url(url: str) -> None:
            job.url = url

        def on_retry(error: tuspipe.TusError, attempt: int, wait: float) -> None:
            job.retries += 1
            display.retried(job)

        def on_progress(acknowledged: int, total: int | None) -> None:
            job.acknowledged = acknowledged
            if total is not None:  # (None: standard input, until it ends)
                job.size = total
            if job.first_progress is None:
                job.first_progress = time.monotonic()
                job.resumed_from = acknowledged
                display.started(job)
            else:
                display.advanced(job)

        source: str | BinaryIO = job.path
        metadata = _default_metadata(job.path)
        if job.path == STDIN:
            source = _standard_input()
            metadata = dict(STDIN_METADATA)
        try:
            job.result = await tuspipe.upload_async(
                source,
                plan.url,
                upload_url=plan.upload_url,
                metadata={**metadata, **plan.metadata},
                on_progress=on_progress,
                on_upload_url=on_upload_url,
                on_retry=on_retry,
                **plan.options,
            )
        except Exception as error:  # one file's failure is reported; the others go on
            job.seconds = time.monotonic() - job.began
            job.error = error
            job.exit_code = _report_job_failure(display, job, error, debug=debug)
        else:
            job.seconds = time.monotonic() - job.began
            job.exit_code = EXIT_OK
        finally:
            display.ended(job)


def _report_job_failure(display: Display, job: _Job, error: BaseException, *, debug: bool) -> int:
    if isinstance(error, tuspipe.UsageError):
        # It names what is wrong itself (an option, a URL, or the file); a bad option would
        # repeat word for word for every file, so each message is said once.
        if str(error) in display.reported:
            return EXIT_USAGE
        display.reported.add(str(error))
        prefix = ""
    elif isinstance(error, OSError) and error.filename is not None:
        prefix = ""  # the message starts with the file's name
    else:
        prefix = f"{job.name}: "
    return _report_failure(display, error, debug=debug, prefix=prefix)


def _finish_line(job: _Job) -> str:
    assert job.result is not None
    moved = job.result.offset - job.result.resumed_from
    # The rate of a few bytes says more about round trips than about throughput.
    rate = (
        f", {format_bytes(moved / job.seconds)}/s" if job.seconds > 0 and moved >= 1 << 20 else ""
    )
    resumed = (
        f", resumed at {format_bytes(job.result.resumed_from)}" if job.result.resumed_from else ""
    )
    return (
        f"{job.name}: {job.result.url} ({format_bytes(job.result.size)} in "
        f"{job.seconds:.1f} s{rate}{resumed})"
    )


async def _upload_all(
    jobs: Sequence[_Job],
    plan: _UploadPlan,
    display: Display,
    state: _Interrupted,
    *,
    debug: bool,
    on_finished: Callable[[_Job], None],
) -> None:
    limiter = trio.CapacityLimiter(plan.concurrency)

    async def run(job: _Job) -> None:
        try:
            await _upload_one(job, plan, display, limiter, debug)
        finally:
            if job.finished:
                on_finished(job)

    with trio.CancelScope() as everything:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_interrupt, everything, state)
            async with trio.open_nursery() as uploads:
                for job in jobs:
                    if not job.finished:
                        uploads.start_soon(run, job)
            nursery.cancel_scope.cancel()  # every upload ended: stop listening for Ctrl-C


async def _stop_on_interrupt(scope: trio.CancelScope, state: _Interrupted) -> None:
    """The first Ctrl-C cancels the uploads (they stop cleanly and stay resumable); after it
    trio's own handling returns, so a second Ctrl-C interrupts the cleanup itself."""
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            state.interrupted = True
            scope.cancel()
            return


def _is_interrupt(error: BaseException) -> bool:
    if isinstance(error, KeyboardInterrupt):
        return True
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(KeyboardInterrupt) is not None
    return False


# Headers whose values are secrets: never echoed in a resume hint (terminals get logged).
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_HIDDEN = "<hidden>"


def _hide_credentials(tokens: Sequence[str]) -> list[str]:
    """`tokens` with the values of credential headers (-H/--header) replaced by _HIDDEN."""

    def hidden(header: str) -> str:
        name, colon, _ = header.partition(":")
        if colon and name.strip().lower() in _CREDENTIAL_HEADERS:
            return f"{name}: {_HIDDEN}"
        return header

    shown: list[str] = []
    header_follows = False
    for index, token in enumerate(tokens):
        if token == "--":  # only file names and the URL follow
            return [*shown, *tokens[index:]]
        if header_follows:
            token = hidden(token)
            header_follows = False
        elif token in ("-H", "--header"):
            header_follows = True
        elif token.startswith("--header="):
            token = "--header=" + hidden(token.removeprefix("--header="))
        elif token.startswith("-H"):
            token = "-H" + hidden(token.removeprefix("-H"))
        shown.append(token)
    return shown


def _resume_commands(jobs: Sequence[_Job], plan: _UploadPlan) -> list[str]:
    unfinished = [
        job
        for job in jobs
        if job.result is None and job.exit_code is None and job.path != STDIN  # read once
    ]
    if not unfinished:
        return []
    if plan.journal_on or plan.upload_url is not None:
        if len(unfinished) == len(jobs):
            # The same command line: the journal (or --upload-url) continues every file.
            same = [token for token in plan.command if token != "--no-resume"]
            return [shlex.join(_hide_credentials(same))]
        return [shlex.join(_hide_credentials(plan.rebuild([job.path for job in unfinished], [])))]
    # No journal: each upload is continued by its URL, one command per file.
    return [
        shlex.join(
            _hide_credentials(
                plan.rebuild([job.path], ["--upload-url", job.url] if job.url else [])
            )
        )
        for job in unfinished
    ]


def _standard_input() -> BinaryIO:
    """Standard input, unbuffered (the command reads nothing of it before).

    ``sys.stdin.buffer`` would do, but a read of a pipe that an interrupted upload abandons
    (its writer silent) keeps a BufferedReader's lock, and the interpreter's shutdown then
    fails on it ("Fatal Python error: could not acquire lock for <_io.BufferedReader
    name='<stdin>'>"). A raw file object has no such lock.
    """
    return open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)


def _check_standard_input(files: Sequence[str], args: argparse.Namespace) -> None:
    """'-' (standard input) is read once: given once, never continued, not from a terminal."""
    if STDIN not in files:
        return
    if files.count(STDIN) > 1:
        raise tuspipe.UsageError("standard input ('-') can be given only once")
    if args.upload_url is not None:
        raise tuspipe.UsageError(
            "standard input ('-') can be read only once, so it cannot continue an earlier "
            "upload (--upload-url)"
        )
    if sys.stdin is None or sys.stdin.isatty():
        raise tuspipe.UsageError(
            "standard input ('-') is a terminal; pipe the bytes to upload into tuspipe "
            "(e.g. 'tar c dir | tuspipe upload - URL')"
        )


def _command_upload(
    args: argparse.Namespace,
    recorded: Sequence[argparse.Action],
    invocation: list[str],
    display: Display,
) -> int:
    files, url = _split_upload_arguments(args)
    _check_standard_input(files, args)
    seen: dict[str, str] = {}
    for path in files:
        if path == STDIN:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise tuspipe.UsageError(f"{path!r} is the same file as {seen[real]!r}; give it once")
        seen[real] = path
    plan = _upload_plan(args, recorded, invocation, url)
    jobs = [_Job(index=index, path=path) for index, path in enumerate(files)]

    def emit_result(job: _Job) -> None:
        if args.json:
            if job.result is not None:
                _print_json(
                    display,
                    {
                        "file": job.path,
                        "url": job.result.url,
                        "size": job.result.size,
                        "seconds": round(job.seconds, 3),
                        "resumed_from": job.result.resumed_from,
                    },
                )
            else:
                failure: dict[str, Any] = {
                    "file": job.path,
                    "error": describe_error(job.error) if job.error else "interrupted",
                    "exit_code": job.exit_code,
                }
                if job.url is not None:
                    failure["url"] = job.url
                _print_json(display, failure)
        elif job.result is not None and not args.quiet:
            display.result(_finish_line(job))

    # A file that cannot even be looked at fails here, before any traffic; the rest go on.
    for job in jobs:
        if job.path == STDIN:
            job.size = None  # known once it ends (or when it is a regular file)
            continue
        try:
            info = os.stat(job.path)
        except OSError as error:
            job.error = error
            job.exit_code = _report_job_failure(display, job, error, debug=args.debug)
            emit_result(job)
        else:
            job.size = info.st_size if stat.S_ISREG(info.st_mode) else 0

    state = _Interrupted()
    try:
        display.begin(jobs)
        trio.run(
            partial(
                _upload_all,
                jobs,
                plan,
                display,
                state,
                debug=args.debug,
                on_finished=emit_result,
            )
        )
    except BaseException as error:
        if not _is_interrupt(error):
            raise
        state.interrupted = True
    finally:
        display.end()

    if state.interrupted:
        if any(job.path == STDIN and not job.finished for job in jobs):
            display.error(
                "tuspipe: standard input was read once and cannot be resumed; upload it again"
            )
        for job in jobs:
            if not job.finished and args.json:
                interrupted: dict[str, Any] = {
                    "file": job.path,
                    "error": "interrupted",
                    "exit_code": EXIT_INTERRUPTED,
                }
                if job.url is not None:
                    interrupted["url"] = job.url
                _print_json(display, interrupted)
        commands = _resume_commands(jobs, plan)
        if commands:
            lines = "\n".join(f"  {line}" for line in commands)
            if _HIDDEN in lines:
                lines += (
                    f"\n(credential header values are shown as {_HIDDEN}; "
                    "give them again when you run it)"
                )
            display.error(f"tuspipe: interrupted; to resume, run:\n{lines}")
        else:
            display.error("tuspipe: interrupted")
        return EXIT_INTERRUPTED

    codes = [job.exit_code for job in jobs if job.exit_code is not None]
    failed = sum(1 for code in codes if code != EXIT_OK)
    if failed and len(jobs) > 1:
        display.error(f"tuspipe: {failed} of {len(jobs)} uploads failed")
    return max(codes, default=EXIT_OK)


# ---- info, status, delete --------------------------------------------------------------------


def _command_info(args: argparse.Namespace, display: Display) -> int:
    capabilities = tuspipe.server_info(args.url, **_connection_options(args))
    if args.json:
        _print_json(
            display,
            {
                "url": args.url,
                "versions": list(capabilities.versions),
                "extensions": sorted(capabilities.extensions),
                "max_size": capabilities.max_size,
                "checksum_algorithms": list(capabilities.checksum_algorithms),
            },
        )
    elif not args.quiet:
        max_size = (
            f"{format_bytes(capabilities.max_size)} ({capabilities.max_size} bytes)"
            if capabilities.max_size is not None
            else "not stated"
        )
        rows = [
            ("server", args.url),
            ("tus versions", ", ".join(capabilities.versions) or "none stated"),
            ("extensions", ", ".join(sorted(capabilities.extensions)) or "none"),
            ("maximum size", max_size),
            ("checksums", ", ".join(capabilities.checksum_algorithms) or "none offered"),
        ]
        for label, value in rows:
            display.result(f"{label + ':':<14}{value}")
    return EXIT_OK


def decode_metadata_value(value: bytes) -> tuple[str, str]:
    """("text", the text) when `value` is printable UTF-8, else ("base64", its base64)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if text.isprintable():
            return "text", text
    return "base64", base64.b64encode(value).decode("ascii")


def _expiry_note(expires: str | None) -> str:
    if not expires:
        return ""
    try:
        moment = parsedate_to_datetime(expires).timestamp()
    except (TypeError, ValueError):
        return ""
    return " (expired)" if moment <= time.time() else ""


def _command_status(args: argparse.Namespace, display: Display) -> int:
    status = tuspipe.upload_status(args.url, **_connection_options(args))
    percent: float | None = None
    if status.length is not None:
        percent = 100.0 if status.length == 0 else status.offset * 100 / status.length
    texts: dict[str, str] = {}
    binaries: dict[str, str] = {}
    for key, value in status.metadata.items():
        kind, decoded = decode_metadata_value(value)
        (texts if kind == "text" else binaries)[key] = decoded
    if args.json:
        _print_json(
            display,
            {
                "url": args.url,
                "offset": status.offset,
                "length": status.length,
                "percent": None if percent is None else round(percent, 2),
                "complete": status.complete,
                "expires": status.expires,
                "metadata": texts,
                "metadata_base64": binaries,
            },
        )
        return EXIT_OK
    if args.quiet:
        return EXIT_OK
    if status.length is None:
        progress = f"{format_bytes(status.offset)} ({status.offset} bytes) of an unknown length"
    else:
        progress = (
            f"{format_bytes(status.offset)} of {format_bytes(status.length)} "
            f"({status.offset} of {status.length} bytes, {percent:.1f}%)"
        )
    rows = [
        ("upload", args.url),
        ("offset", progress),
        ("complete", "yes" if status.complete else "no"),
        ("expires", (status.expires or "not stated") + _expiry_note(status.expires)),
    ]
    for label, value in rows:
        display.result(f"{label + ':':<10}{value}")
    if not status.metadata:
        display.result(f"{'metadata:':<10}none")
        return EXIT_OK
    display.result("metadata:")
    width = max(len(key) for key in status.metadata)
    for key in sorted(status.metadata):
        if key in texts:
            display.result(f"  {key:<{width}}  {texts[key]}")
        else:
            display.result(f"  {key:<{width}}  (base64) {binaries[key]}")
    return EXIT_OK


def _command_delete(args: argparse.Namespace, display: Display) -> int:
    tuspipe.terminate(args.url, **_connection_options(args))
    if args.json:
        _print_json(display, {"url": args.url, "deleted": True})
    elif not args.quiet:
        display.result(f"deleted {args.url}")
    return EXIT_OK


# ---- journal ---------------------------------------------------------------------------------


def _journal_from(args: argparse.Namespace) -> tuspipe.Journal:
    journal = tuspipe.Journal(args.journal) if args.journal else tuspipe.Journal()
    if journal.path.is_dir():
        raise tuspipe.UsageError(f"--journal {str(journal.path)!r} is a directory; name a file")
    return journal


def _command_journal(args: argparse.Namespace, display: Display) -> int:
    journal = _journal_from(args)
    if args.journal_command == "list":
        entries = journal.unfinished()
        for entry in entries:
            if args.json:
                _print_json(
                    display,
                    {
                        "key": entry.key,
                        "source": entry.source,
                        "offset": entry.offset,
                        "size": entry.size,
                        "url": entry.url,
                        "endpoint": entry.endpoint,
                        "created": entry.created,
                        "expires": entry.expires,
                    },
                )
            elif not args.quiet:
                created = datetime.fromtimestamp(entry.created).strftime("%Y-%m-%d %H:%M:%S")
                percent = entry.offset * 100 / entry.size if entry.size else 100.0
                display.result(f"{entry.key}  {entry.source}")
                display.result(
                    f"  {format_bytes(entry.offset)} of {format_bytes(entry.size)} "
                    f"({entry.offset}/{entry.size} bytes, {percent:.1f}%), "
                    f"created {created}{_expiry_note(entry.expires)}"
                )
                display.result(f"  {entry.url}")
        if not entries and not args.json and not args.quiet:
            display.result(f"no unfinished uploads in {journal.path}")
        return EXIT_OK
    if args.journal_command == "forget":
        matches = [entry for entry in journal.unfinished() if entry.key.startswith(args.key)]
        if not args.key or not matches:
            raise tuspipe.UsageError(
                f"the journal {journal.path} has no unfinished upload with key {args.key!r}"
            )
        if len(matches) > 1:
            raise tuspipe.UsageError(
                f"{args.key!r} starts {len(matches)} keys in the journal; give more of the key"
            )
        entry = matches[0]
        journal.forget(entry.key)
        if args.json:
            _print_json(display, {"key": entry.key, "url": entry.url, "forgotten": True})
        elif not args.quiet:
            display.result(f"forgot {entry.key} ({entry.source}, {entry.url})")
        return EXIT_OK
    count = journal.clear(expired_only=args.expired)
    if args.json:
        _print_json(display, {"forgotten": count})
    elif not args.quiet:
        what = "expired unfinished" if args.expired else "unfinished"
        display.result(f"forgot {count} {what} upload{'' if count == 1 else 's'}")
    return EXIT_OK


# ---- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, *, command: str = "tuspipe") -> int:
    """Run the command line `argv` (default ``sys.argv[1:]``); return the exit code.

    `command` is how the user ran it, used to print the command that resumes an upload.
    """
    try:
        import rich  # noqa: F401  (the cli extra)
    except ImportError:
        _write(sys.stderr, f"tuspipe: error: {RICH_MISSING}")
        return EXIT_USAGE
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser, recorded = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exit_request:  # --help, --version, or argparse's usage error
        code = exit_request.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    args.original = arguments
    display: Display = Display(quiet=args.quiet)
    try:
        if args.command == "upload":
            display = make_display(args)
        with _logging_to(display, debug=args.debug):
            if args.command == "upload":
                return _command_upload(args, recorded, shlex.split(command), display)
            if args.command == "info":
                return _command_info(args, display)
            if args.command == "status":
                return _command_status(args, display)
            if args.command == "delete":
                return _command_delete(args, display)
            return _command_journal(args, display)
    except KeyboardInterrupt:
        display.error("tuspipe: interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:
        return _report_failure(display, error, debug=args.debug, prefix="")
