"""The entry point: parse, pick the display, run the command, turn its failure into an exit
code."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from ._commands import command_delete, command_info, command_journal, command_status
from ._display import Display, logging_to, make_display, report_failure, write_line
from ._exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ._parser import build_parser
from ._upload import command_upload

__all__ = ["RICH_MISSING", "main"]

RICH_MISSING = "the tuspipe command needs rich: pip install 'tuspipe[cli]'"


def main(argv: Sequence[str] | None = None, *, command: str = "tuspipe") -> int:
    """Run the command line `argv` (default ``sys.argv[1:]``); return the exit code.

    `command` is how the user ran it, used to print the command that resumes an upload.
    """
    try:
        import rich  # noqa: F401  (the cli extra)
    except ImportError:
        write_line(sys.stderr, f"tuspipe: error: {RICH_MISSING}")
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
        with logging_to(display, debug=args.debug):
            if args.command == "upload":
                return command_upload(args, recorded, shlex.split(command), display)
            if args.command == "info":
                return command_info(args, display)
            if args.command == "status":
                return command_status(args, display)
            if args.command == "delete":
                return command_delete(args, display)
            return command_journal(args, display)
    except KeyboardInterrupt:
        display.error("tuspipe: interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:
        return report_failure(display, error, debug=args.debug, prefix="")
