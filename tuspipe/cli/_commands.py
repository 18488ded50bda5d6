"""The commands that ask or tell the server or the journal one thing: ``info``, ``status``,
``delete`` and ``journal list|forget|clear``."""

from __future__ import annotations

import argparse
import base64
from datetime import UTC, datetime

import tuspipe

from ._display import Display, print_json
from ._exits import EXIT_OK, EXIT_REFUSED
from ._parser import connection_options
from ._units import format_bytes

__all__ = [
    "command_delete",
    "command_info",
    "command_journal",
    "command_status",
    "decode_metadata_value",
]


def command_info(args: argparse.Namespace, display: Display) -> int:
    """``tuspipe info``: what the server supports. Returns the exit code."""
    capabilities = tuspipe.server_info(args.url, **connection_options(args))
    if args.json:
        print_json(
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


def _expiry_note(expires_at: datetime | None) -> str:
    if expires_at is None:
        return ""
    return " (expired)" if expires_at <= datetime.now(UTC) else ""


def command_status(args: argparse.Namespace, display: Display) -> int:
    """``tuspipe status``: how far an upload got. Returns the exit code."""
    status = tuspipe.upload_status(args.url, **connection_options(args))
    percent: float | None = None
    if status.length is not None:
        percent = 100.0 if status.length == 0 else status.offset * 100 / status.length
    texts: dict[str, str] = {}
    binaries: dict[str, str] = {}
    for key, value in status.metadata.items():
        kind, decoded = decode_metadata_value(value)
        (texts if kind == "text" else binaries)[key] = decoded
    if args.json:
        print_json(
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
        ("expires", (status.expires or "not stated") + _expiry_note(status.expires_at)),
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


# What delete says of an upload the server does not have: a typo must not look like success.
NOT_FOUND = "not found (already deleted?)"


def command_delete(args: argparse.Namespace, display: Display) -> int:
    """``tuspipe delete``: terminate an upload. Returns the exit code: EXIT_REFUSED when the
    server has no such upload (404/410)."""
    deleted = tuspipe.terminate(args.url, **connection_options(args))
    if args.json:
        answer: dict[str, object] = {"url": args.url, "deleted": deleted}
        if not deleted:
            answer.update(error=NOT_FOUND, exit_code=EXIT_REFUSED)
        print_json(display, answer)
    elif deleted and not args.quiet:
        display.result(f"deleted {args.url}")
    if not deleted:
        display.error(f"tuspipe: error: {args.url}: {NOT_FOUND}")
        return EXIT_REFUSED
    return EXIT_OK


# ---- journal ---------------------------------------------------------------------------------


def _journal_from(args: argparse.Namespace) -> tuspipe.Journal:
    journal = tuspipe.Journal(args.journal) if args.journal else tuspipe.Journal()
    if journal.path.is_dir():
        raise tuspipe.UsageError(f"--journal {str(journal.path)!r} is a directory; name a file")
    return journal


def command_journal(args: argparse.Namespace, display: Display) -> int:
    """``tuspipe journal list|forget|clear``. Returns the exit code."""
    journal = _journal_from(args)
    if args.journal_command == "list":
        entries = journal.unfinished()
        for entry in entries:
            if args.json:
                print_json(
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
                    f"created {created}{_expiry_note(entry.expires_at)}"
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
            print_json(display, {"key": entry.key, "url": entry.url, "forgotten": True})
        elif not args.quiet:
            display.result(f"forgot {entry.key} ({entry.source}, {entry.url})")
        return EXIT_OK
    count = journal.clear(expired_only=args.expired)
    if args.json:
        print_json(display, {"forgotten": count})
    elif not args.quiet:
        what = "expired unfinished" if args.expired else "unfinished"
        display.result(f"forgot {count} {what} upload{'' if count == 1 else 's'}")
    return EXIT_OK
