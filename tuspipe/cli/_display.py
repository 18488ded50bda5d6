"""Where the command's words go: the ``--quiet`` :class:`Display`, the line-per-step
:class:`PlainDisplay` for pipes and logs, and the progress bars of :class:`RichDisplay` for a
terminal; tuspipe's log records bridged onto them; a failure reported on them.

rich is imported only inside the functions that draw bars, so this module loads without it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ._exits import EXIT_UNEXPECTED, describe_error, exit_code_for
from ._job import CURRENT_JOB, Job
from ._units import format_bytes
from ._words import in_cli_words

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, Task, TaskID

__all__ = [
    "Display",
    "PlainDisplay",
    "RichDisplay",
    "logging_to",
    "make_display",
    "print_json",
    "report_failure",
    "resuming_line",
    "write_line",
]

_UNKNOWN_SIZE_FIRST_NOTE = 1 << 20
_UNKNOWN_SIZE_MAX_NOTE_STEP = 1 << 30


def write_line(stream: TextIO, line: str) -> None:
    """`line` on `stream`, at once (flushed)."""
    stream.write(line + "\n")
    stream.flush()


def resuming_line(job: Job) -> str:
    """What a resumed upload says when it starts: where, and how much was there already."""
    size = "?" if job.size is None else format_bytes(job.size)
    return f"{job.name}: resuming {job.url or '?'} at {format_bytes(job.resumed_from)} of {size}"


# A piped progress line at least this often (seconds) while the server acknowledges bytes,
# besides one per tenth: a 64 MiB PATCH may take a while to be acknowledged on a slow link.
PLAIN_NOTE_INTERVAL = 5.0


class Display:
    """Where the command's words go. This base class is the ``--quiet`` display: results and
    errors only. Progress events are no-ops here."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.reported: set[str] = set()  # usage errors already said, said once

    def begin(self, jobs: Sequence[Job]) -> None:
        pass

    def started(self, job: Job) -> None:
        pass

    def advanced(self, job: Job) -> None:
        pass

    def retried(self, job: Job) -> None:
        """`job.retries` went up (the retry's reason arrives as a logged warning)."""

    def ended(self, job: Job) -> None:
        pass

    def end(self) -> None:
        pass

    def result(self, line: str) -> None:
        """A result, on standard output."""
        write_line(sys.stdout, line)

    def error(self, line: str) -> None:
        """An error (never silenced), on standard error."""
        write_line(sys.stderr, line)

    def note(self, line: str) -> None:
        """A warning or event, on standard error unless quiet."""
        if not self.quiet:
            write_line(sys.stderr, line)


class PlainDisplay(Display):
    """For a pipe or a log file: a line when a file starts, whenever the server has
    acknowledged another tenth of it or every PLAIN_NOTE_INTERVAL seconds while it acknowledges
    bytes (whichever comes first), and when it ends. The server acknowledges a PATCH's bytes
    when the PATCH ends, so with large chunks the lines follow the chunks."""

    def started(self, job: Job) -> None:
        where = job.url or "?"
        if job.size is None:
            self.note(f"{job.name}: uploading a stream of unknown size to {where}")
            job.next_note = _UNKNOWN_SIZE_FIRST_NOTE
        elif job.resumed_from:
            self.note(resuming_line(job))
        else:
            self.note(f"{job.name}: uploading {format_bytes(job.size)} to {where}")
        job.last_decile = job.acknowledged * 10 // job.size if job.size else 0
        job.last_note_at, job.last_noted = time.monotonic(), job.acknowledged

    def advanced(self, job: Job) -> None:
        if job.size is None:
            # No percentage of an unknown size: a line at 1, 2, 4, 8 ... MiB (then each GiB).
            if job.acknowledged >= job.next_note:
                while job.next_note <= job.acknowledged:
                    job.next_note += min(job.next_note, _UNKNOWN_SIZE_MAX_NOTE_STEP)
                self.note(f"{job.name}: {self._state(job)}")
            return
        decile = job.acknowledged * 10 // job.size if job.size else 10
        now = time.monotonic()
        if decile > job.last_decile or (
            now - job.last_note_at >= PLAIN_NOTE_INTERVAL and job.acknowledged > job.last_noted
        ):
            job.last_decile = max(job.last_decile, decile)
            self._note_state(job, now)

    def _note_state(self, job: Job, now: float) -> None:
        job.last_note_at, job.last_noted = now, job.acknowledged
        self.note(f"{job.name}: {self._state(job)}")

    def _state(self, job: Job) -> str:
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
        self._jobs: Sequence[Job] = ()

    @staticmethod
    def _label(job: Job, mark: str = "") -> str:
        from rich.markup import escape

        return f"{mark}{escape(job.name)}"

    def begin(self, jobs: Sequence[Job]) -> None:
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

    def started(self, job: Job) -> None:
        task = self._tasks[job.index]
        if job.resumed_from:
            self.note(resuming_line(job))  # above the bars, as it starts
        self._progress.reset(task, total=job.size, completed=job.acknowledged, retries="")
        self._update_total(restart=job.acknowledged > 0)

    def advanced(self, job: Job) -> None:
        # (total=None changes nothing: a stream's bar gets its total once the size is known)
        self._progress.update(self._tasks[job.index], total=job.size, completed=job.acknowledged)
        self._update_total()

    def retried(self, job: Job) -> None:
        task = self._tasks.get(job.index)
        if task is not None:
            self._progress.update(task, retries=_retry_text(job.retries))
        self._update_total()

    def ended(self, job: Job) -> None:
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
    """The display `args` ask for: quiet, bars on a terminal, else plain lines."""
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
            message = in_cli_words(record.getMessage())
            job = CURRENT_JOB.get()
            prefix = f"{job.name}: " if job is not None else ""
            if self.debug:
                self.display.error(f"tuspipe: {record.levelname.lower()}: {prefix}{message}")
            else:
                self.display.note(f"tuspipe: warning: {prefix}{message}")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def logging_to(display: Display, *, debug: bool) -> Iterator[None]:
    """While inside, tuspipe's log records go to `display` (all of them with `debug`)."""
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


def print_json(display: Display, value: dict[str, Any]) -> None:
    """`value` as one JSON line, a result."""
    display.result(json.dumps(value, ensure_ascii=False))


def report_failure(display: Display, error: BaseException, *, debug: bool, prefix: str) -> int:
    """Say `error` on `display` (with `debug`, its traceback too); return its exit code."""
    code = exit_code_for(error)
    display.error(f"tuspipe: error: {prefix}{describe_error(error)}")
    if debug:
        display.error("".join(traceback.format_exception(error)).rstrip())
    elif code == EXIT_UNEXPECTED:
        display.error("tuspipe: run with --debug for the traceback")
    return code
