"""The upload command: the files uploaded at once (up to ``--concurrency``) in one trio run,
each reported as it ends, Ctrl-C turned into a clean stop and the command that resumes."""

from __future__ import annotations

import argparse
import mimetypes
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO

import trio

import tuspipe

from ._display import Display, print_json, report_failure
from ._exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, describe_error
from ._job import CURRENT_JOB, STDIN, Job
from ._plan import (
    HIDDEN,
    UploadPlan,
    check_standard_input,
    resume_commands,
    split_upload_arguments,
    upload_plan,
)
from ._units import format_bytes

__all__ = ["STDIN_METADATA", "command_upload"]

STDIN_METADATA = {"filename": "stdin", "filetype": "application/octet-stream"}


@dataclass
class _Interrupted:
    """Whether Ctrl-C cancelled the uploads."""

    interrupted: bool = False


def _default_metadata(path: str) -> dict[str, str]:
    filetype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return {"filename": os.path.basename(path), "filetype": filetype}


def _report_job_failure(display: Display, job: Job, error: BaseException, *, debug: bool) -> int:
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
    return report_failure(display, error, debug=debug, prefix=prefix)


def _finish_line(job: Job) -> str:
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


class _JobHooks:
    """The per-file hooks of tuspipe.upload_many, kept in each file's :class:`Job` and shown
    by the display; a file's outcome is reported the moment it is known."""

    def __init__(
        self,
        jobs: Sequence[Job],
        display: Display,
        *,
        debug: bool,
        on_finished: Callable[[Job], None],
    ) -> None:
        self._jobs = jobs
        self._display = display
        self._debug = debug
        self._on_finished = on_finished

    def start(self, index: int) -> None:
        job = self._jobs[index]
        CURRENT_JOB.set(job)  # this task's context only: the log bridge attributes by it
        job.began = time.monotonic()

    def upload_url(self, index: int, url: str) -> None:
        self._jobs[index].url = url

    def retry(self, index: int, error: tuspipe.TusError, attempt: int, wait: float) -> None:
        job = self._jobs[index]
        job.retries += 1
        self._display.retried(job)

    def progress(self, index: int, acknowledged: int, total: int | None) -> None:
        job = self._jobs[index]
        job.acknowledged = acknowledged
        if total is not None:  # (None: standard input, until it ends)
            job.size = total
        if job.first_progress is None:
            job.first_progress = time.monotonic()
            job.resumed_from = acknowledged
            self._display.started(job)
        else:
            self._display.advanced(job)

    def outcome(self, outcome: tuspipe.UploadOutcome) -> None:
        job = self._jobs[outcome.index]
        job.seconds = time.monotonic() - (job.began or time.monotonic())
        if outcome.error is not None:
            job.error = outcome.error
            job.exit_code = _report_job_failure(
                self._display, job, outcome.error, debug=self._debug
            )
        else:
            job.result = outcome.result
            job.exit_code = EXIT_OK
        self._display.ended(job)
        self._on_finished(job)


async def _upload_all(
    jobs: Sequence[Job],
    plan: UploadPlan,
    display: Display,
    state: _Interrupted,
    *,
    debug: bool,
    on_finished: Callable[[Job], None],
) -> None:
    """Upload the jobs not yet finished with one tuspipe.upload_many call (tuspipe.upload
    for --upload-url, which continues one file), until done or Ctrl-C."""
    waiting = [job for job in jobs if not job.finished]
    hooks = _JobHooks(waiting, display, debug=debug, on_finished=on_finished)
    sources: list[str | BinaryIO] = [
        _standard_input() if job.path == STDIN else job.path for job in waiting
    ]
    metadata = [
        {**(STDIN_METADATA if job.path == STDIN else _default_metadata(job.path)), **plan.metadata}
        for job in waiting
    ]

    # upload_many hands each source back to the metadata function as it was given.
    metadata_of = {id(source): pairs for source, pairs in zip(sources, metadata, strict=True)}

    async def upload_continued() -> None:
        # --upload-url continues exactly one file (checked when the command line was read).
        hooks.start(0)
        try:
            result = await tuspipe.upload_async(
                sources[0],
                upload_url=plan.upload_url,
                metadata=metadata[0],
                on_progress=partial(hooks.progress, 0),
                on_upload_url=partial(hooks.upload_url, 0),
                on_retry=partial(hooks.retry, 0),
                **plan.options,
            )
        except (tuspipe.TusError, OSError) as error:
            hooks.outcome(tuspipe.UploadOutcome(0, sources[0], error=error))
        else:
            hooks.outcome(tuspipe.UploadOutcome(0, sources[0], result=result))

    async def upload_many() -> None:
        assert plan.url is not None
        try:
            await tuspipe.upload_many_async(
                sources,
                plan.url,
                concurrency=plan.concurrency,
                metadata=lambda source: metadata_of[id(source)],
                on_start=hooks.start,
                on_progress=hooks.progress,
                on_upload_url=hooks.upload_url,
                on_retry=hooks.retry,
                on_outcome=hooks.outcome,
                **plan.options,
            )
        except (tuspipe.TusError, OSError) as error:
            # The call itself failed (a bad option, an endpoint that cannot be asked): every
            # file not yet done fails with it.
            for index, job in enumerate(waiting):
                if not job.finished:
                    hooks.outcome(tuspipe.UploadOutcome(index, sources[index], error=error))

    with trio.CancelScope() as everything:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_interrupt, everything, state)
            if waiting:
                await (upload_continued() if plan.upload_url is not None else upload_many())
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


def _standard_input() -> BinaryIO:
    """Standard input, unbuffered (the command reads nothing of it before).

    ``sys.stdin.buffer`` would do, but a read of a pipe that an interrupted upload abandons
    (its writer silent) keeps a BufferedReader's lock, and the interpreter's shutdown then
    fails on it ("Fatal Python error: could not acquire lock for <_io.BufferedReader
    name='<stdin>'>"). A raw file object has no such lock.
    """
    return open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)


def command_upload(
    args: argparse.Namespace,
    recorded: Sequence[argparse.Action],
    invocation: list[str],
    display: Display,
) -> int:
    """``tuspipe upload``: every file of `args`, `recorded` its options and `invocation` how
    the command was run (to print the command that resumes). Returns the exit code."""
    files, url = split_upload_arguments(args)
    check_standard_input(files, args)
    seen: dict[str, str] = {}
    for path in files:
        if path == STDIN:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise tuspipe.UsageError(f"{path!r} is the same file as {seen[real]!r}; give it once")
        seen[real] = path
    plan = upload_plan(args, recorded, invocation, url)
    jobs = [Job(index=index, path=path) for index, path in enumerate(files)]

    def emit_result(job: Job) -> None:
        if args.json:
            if job.result is not None:
                print_json(
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
                print_json(display, failure)
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
                print_json(display, interrupted)
        commands = resume_commands(jobs, plan)
        if commands:
            lines = "\n".join(f"  {line}" for line in commands)
            if HIDDEN in lines:
                lines += (
                    f"\n(credential header values are shown as {HIDDEN}; "
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
