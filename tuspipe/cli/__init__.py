"""The ``tuspipe`` command: upload files, inspect servers and uploads, tend the journal.

It is a thin shell over tuspipe's public API (``tuspipe.upload_async``, ``server_info``,
``upload_status``, ``terminate``, ``Journal``) plus rich for the progress display. rich is the
``tuspipe[cli]`` extra and is imported lazily, so the library never needs it; without it the
command says how to install it and exits 2.

Output discipline: results (upload URLs, ``--json`` objects, ``info``/``status`` reports) go
to standard output; progress, warnings, errors and the resume hint go to standard error, so
``tuspipe upload --json ... > results.jsonl`` keeps a clean file while the terminal shows bars.

Credentials: ``--header 'Authorization: ...'``, or from the environment (out of the shell's
history and the resume hint): ``TUSPIPE_TOKEN`` (a bearer token) or ``TUSPIPE_TOKEN_COMMAND``
(a command printing one, run again whenever the server refuses it: tokens that expire).

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

The package's modules, each importing only those before it in this list: ``_units`` (sizes),
``_words`` (the library's advice in flags), ``_token`` (credentials from the environment:
``TUSPIPE_TOKEN``, ``TUSPIPE_TOKEN_COMMAND``), ``_exits`` (exit codes), ``_job`` (one file of an
upload), ``_parser`` (the arguments), ``_display`` (progress and messages), ``_plan`` (an
upload command checked, and the command that resumes it), ``_upload`` (the upload command),
``_commands`` (info, status, delete, journal), ``_main`` (the entry point).
"""

from __future__ import annotations

from ._commands import decode_metadata_value
from ._display import Display, PlainDisplay, RichDisplay, make_display
from ._exits import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_LOCAL,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TLS,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    describe_error,
    exit_code_for,
)
from ._main import main
from ._parser import build_parser
from ._units import format_bytes, parse_size

__all__ = [
    "EXIT_CODES",
    "EXIT_INTERRUPTED",
    "EXIT_LOCAL",
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_TLS",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
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
