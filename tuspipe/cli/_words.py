"""The library's advice in the command line's words: one mapping, applied where its messages
reach the user (errors and logged warnings).

tuspipe's messages name the Python argument that would help (``checksum=None``,
``verify='ca.pem'``, ``chunk_size=1048576``); on the command line the advice must name the
flag. Each rule below rewrites one kind of advice; advice with no flag on the command line says
so instead of naming an argument the user cannot pass.
"""

from __future__ import annotations

import re

__all__ = ["REWORDINGS", "in_cli_words"]

_NO_FLAG = "{}; the tuspipe command has no such flag: use the Python API"

#: (pattern, replacement) in the order they apply; each pattern matches the library's words.
REWORDINGS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # checksums
        (r"use checksum=None or 'auto'", "use --checksum none or --checksum auto"),
        (r"checksum='([\w-]+)' was asked for", r"--checksum \1 was asked for"),
        # TLS
        (
            r"pass verify='ca\.pem' \(tuspipe --cacert ca\.pem\), or verify=False to skip the "
            r"check",
            "pass --cacert ca.pem, or --insecure to skip the check",
        ),
        (r"\(verify=False\)", "(--insecure)"),
        (
            r"pass cert='client\.pem' or cert=\('cert\.pem', 'key\.pem'\) "
            r"\(tuspipe --cert cert\.pem --key key\.pem\)",
            "pass --cert client.pem, or --cert cert.pem --key key.pem",
        ),
        # sizes
        (r"Pass chunk_size=\d+ \(tuspipe --chunk-size (\S+)\)", r"Pass --chunk-size \1"),
        # credentials
        (
            r"pass auth= \(an httpx\.Auth, or a function returning headers\) or on_request= to "
            r"supply credentials that are refreshed before every request and after a 401 "
            r"\(headers= stay as they were given\)",
            "set TUSPIPE_TOKEN_COMMAND to a command that prints a fresh token (run again after "
            "each 401), or give a fixed one in TUSPIPE_TOKEN or --header 'Authorization: ...'",
        ),
        (
            r"if credentials expired, auth= or on_request= can refresh them",
            "if credentials expired, TUSPIPE_TOKEN_COMMAND can refresh them",
        ),
        (
            r"credentials in headers= are not sent there \(allow_cross_origin_credentials=True "
            r"sends them\)",
            "credentials given with --header are not sent there",
        ),
        # sources
        (
            r"\(upload_url= and resume_key= need a file, bytes or a seekable stream\)",
            "(--upload-url needs a file)",
        ),
        (r"check `url`", "check the URL"),
        # advice without a flag
        (
            r"\(allow_insecure_location=True permits it\)",
            "(" + _NO_FLAG.format("allow_insecure_location=True permits it") + ")",
        ),
        (
            r"method_override=True sends it as POST with X-HTTP-Method-Override",
            _NO_FLAG.format("method_override=True sends it as POST with X-HTTP-Method-Override"),
        ),
    )
)


def in_cli_words(message: str) -> str:
    """`message` with the library's argument advice rewritten to name command-line flags."""
    for pattern, replacement in REWORDINGS:
        message = pattern.sub(replacement, message)
    return message
