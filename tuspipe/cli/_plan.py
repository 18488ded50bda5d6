"""The upload command's arguments checked into an :class:`UploadPlan` before any traffic, and
the command lines that continue its uploads after an interruption (credentials hidden)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import tuspipe

from ._job import STDIN, Job
from ._parser import connection_options

__all__ = [
    "HIDDEN",
    "UploadPlan",
    "check_standard_input",
    "resume_commands",
    "split_upload_arguments",
    "upload_plan",
]


@dataclass(frozen=True)
class UploadPlan:
    """What the upload command was asked for, checked and ready for the API."""

    url: str | None
    upload_url: str | None
    options: dict[str, Any]
    metadata: dict[str, str]
    concurrency: int
    journal_on: bool
    command: list[str]  # the command line as typed, to print it back
    rebuild: Callable[[Sequence[str], Sequence[str]], list[str]]  # (files, extra options)


def split_upload_arguments(args: argparse.Namespace) -> tuple[list[str], str | None]:
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


def upload_plan(
    args: argparse.Namespace,
    recorded: Sequence[argparse.Action],
    invocation: list[str],
    url: str | None,
) -> UploadPlan:
    """The plan of the upload command `args` (its files go to `url`); `invocation` is how
    the command was run, to write it back. Raises UsageError."""
    checksum: str | None = args.checksum
    if checksum is not None and checksum.lower() == "none":
        checksum = None
    journal: bool | str = False if args.no_journal else (args.journal or True)
    metadata: dict[str, str] = {}
    for pair in args.metadata:
        key, _, value = pair.partition("=")
        metadata[key] = value
    options: dict[str, Any] = {
        **connection_options(args),
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

    return UploadPlan(
        url=url,
        upload_url=args.upload_url,
        options=options,
        metadata=metadata,
        concurrency=args.concurrency,
        journal_on=journal is not False,
        command=[*invocation, *args.original],
        rebuild=rebuild,
    )


# Headers whose values are secrets: never echoed in a resume hint (terminals get logged).
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
HIDDEN = "<hidden>"


def _hide_credentials(tokens: Sequence[str]) -> list[str]:
    """`tokens` with the values of credential headers (-H/--header) replaced by HIDDEN."""

    def hidden(header: str) -> str:
        name, colon, _ = header.partition(":")
        if colon and name.strip().lower() in _CREDENTIAL_HEADERS:
            return f"{name}: {HIDDEN}"
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


def resume_commands(jobs: Sequence[Job], plan: UploadPlan) -> list[str]:
    """The command lines that continue the unfinished `jobs` (standard input is read once:
    never), credential header values hidden."""
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


def check_standard_input(files: Sequence[str], args: argparse.Namespace) -> None:
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
