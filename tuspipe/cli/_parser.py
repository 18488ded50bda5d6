"""The argument parser: the commands, their options, the option value types, the epilogs, and
what the connection options mean for the API."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import Any, Protocol

import tuspipe

from ._exits import EXIT_CODES
from ._token import TOKEN, TOKEN_COMMAND, credentials_from
from ._units import ByteCount

__all__ = ["DEFAULT_CONCURRENCY", "ENVIRONMENT", "build_parser", "connection_options"]

DEFAULT_CONCURRENCY = 4


def _size_argument(text: str) -> int:
    try:
        return ByteCount(text)
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


#: Every environment variable that changes what the command does, and how.
ENVIRONMENT: dict[str, str] = {
    "TUSPIPE_JOURNAL": "the journal file (default: $XDG_CACHE_HOME/tuspipe/journal)",
    "XDG_CACHE_HOME": "where the default journal lives (default: ~/.cache)",
    "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY": "proxies, as curl and httpx read them",
    "SSL_CERT_FILE, SSL_CERT_DIR": "CA certificates trusted instead of certifi's bundle",
    "NO_COLOR": "progress bars without colours",
    TOKEN: "a bearer token, sent as 'Authorization: Bearer TOKEN' (kept out of the shell's "
    "history, ps and the resume hint)",
    TOKEN_COMMAND: "a shell command that prints a bearer token; run before the first request "
    "and again after the server refuses the token (401), for tokens that expire",
}

_EPILOG = (
    "exit codes:\n"
    + "".join(f"  {code:<4} {meaning}\n" for code, meaning in EXIT_CODES.items())
    + "  With several files, the exit code is the highest of any file's.\n"
    "\n"
    "environment:\n"
    + "".join(f"  {name}\n      {meaning}\n" for name, meaning in ENVIRONMENT.items())
    + "\n"
    "Run 'tuspipe COMMAND --help' for a command's options."
)

_UPLOAD_EPILOG = (
    "Interrupted uploads resume: run the same command again and the journal (on by default; "
    "$TUSPIPE_JOURNAL, else $XDG_CACHE_HOME/tuspipe/journal, else ~/.cache/tuspipe/journal) "
    "continues each file where the server "
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


def connection_options(args: argparse.Namespace) -> dict[str, Any]:
    """The API keywords of the connection options in `args`. Raises UsageError."""
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
        **credentials_from(os.environ, headers),
        "verify": verify,
        "cert": cert,
        "timeout": args.timeout,
        "retries": args.retries,
    }
