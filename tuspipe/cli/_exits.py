"""The exit codes, one per failure class (the table is in the package docstring), and the line
that describes a failure to the user."""

from __future__ import annotations

import os

import tuspipe

from ._words import in_cli_words

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
    "describe_error",
    "exit_code_for",
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


def exit_code_for(error: BaseException) -> int:
    """The exit code of the failure class `error` belongs to (see the package docstring)."""
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
        text = in_cli_words(str(error))
        return text or type(error).__name__
    return f"unexpected {type(error).__name__}: {error}"
