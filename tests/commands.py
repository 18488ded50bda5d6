"""The ``tuspipe`` command as a user runs it: ``python -m tuspipe`` in a child process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

__all__ = ["TIMEOUT", "run_tuspipe", "tuspipe_argv"]

#: Seconds a command may take before the test fails.
TIMEOUT = 120


def tuspipe_argv(*arguments: object) -> list[str]:
    """The command line of ``tuspipe ARGUMENTS`` (for Popen and the like)."""
    return [sys.executable, "-m", "tuspipe", *map(str, arguments)]


def run_tuspipe(
    *arguments: object, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``tuspipe ARGUMENTS`` to its end (in `env`, or this process's environment) and
    return what it printed and its exit status."""
    return subprocess.run(
        tuspipe_argv(*arguments),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=None if env is None else dict(env),
        check=False,
    )
